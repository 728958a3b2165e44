"""Slippage prediction errors, the section 5.6 regime adjustment and the section 5.5 feedback actions.

Oracles: hand computations (notional-weighted means, percent errors, window ends counted on a calendar
with a holiday), the seed's regime table, and refits done explicitly; all exact or 1e-12 relative.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from mqf_pipeline.regimes.mapping import RISK_MULTIPLIERS
from mqf_pipeline.slippage import (
    ACTION_COLUMNS,
    FeedbackParams,
    SlippageModel,
    SlippageParams,
    actions_in_force,
    error_rows,
    fill_predictions,
    prediction_errors,
    regime_estimate,
    triggers,
)
from mqf_pipeline.slippage.regime import REGIME_ADJUSTMENTS
from mqf_pipeline.slippage.simulate import FillSimParams, simulate_feedback
from mqf_pipeline.storage.schema import row_schema

D = dt.date


def _fill(day: dt.date, symbol: str, cost_bps: float, *, qty: float = 1_000.0, price: float = 10.0, **kw) -> dict:
    """One execution_feedback row whose cost vs the mid is ``cost_bps`` (spread 4 bps)."""
    return {
        "order_id": kw.get("order_id", f"{day}-{symbol}-{cost_bps}-{qty}"),
        "date": day,
        "symbol": symbol,
        "quantity": qty,
        "adv": 1e5,
        "expected_price": price,
        "volatility": kw.get("sigma", 0.02),
        "spread_bps": 4.0,
        "market_impact_bps": cost_bps - 2.0,
        "slippage_bps": kw.get("slippage_bps", cost_bps),
        "market_conditions_json": f'{{"strategy": "{kw.get("strategy", "VWAP")}"}}',
        "regime": kw.get("regime", "BULL_QUIET"),
    }


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides={"date": pl.Date})


# --------------------------------------------------------------------------- prediction errors
@pytest.fixture(scope="module")
def fills() -> pl.DataFrame:
    return simulate_feedback(3, FillSimParams(n_symbols=6, n_sessions=40, impact_dispersion=0.4))


def test_errors_are_predicted_by_the_model_fitted_strictly_before(fills):
    day = sorted(fills["date"].unique())[30]
    pr = fill_predictions(fills, day)
    model = SlippageModel().fit(fills.filter(pl.col("date") < day), day)  # an explicit refit on the past only
    want = model.predict(pr["qadv"].to_numpy(), pr["sigma"].to_numpy(), pr["spread"].to_numpy(), pr["symbol"].to_list())
    np.testing.assert_allclose(pr["predicted_bps"].to_numpy(), want, rtol=1e-12)
    assert (pr["date"] == day).all() and pr.height > 0
    with pytest.raises(ValueError, match="lookahead"):
        fill_predictions(fills, day, model=model)


def test_error_rows_aggregate_by_notional_and_match_the_table():
    day = D(2024, 3, 5)
    history = [
        _fill(
            D(2024, 3, 1) + dt.timedelta(days=i % 3), s, 5.0 + i % 7, qty=500.0 + 37 * i, sigma=0.01 + 0.001 * (i % 5)
        )
        for i, s in enumerate(["A", "B"] * 30)
    ]
    today = [
        _fill(day, "A", 10.0, qty=1_000.0, price=10.0, regime="BEAR_CRISIS"),
        _fill(day, "A", 30.0, qty=3_000.0, price=10.0, regime="BEAR_CRISIS"),
        _fill(day, "B", 8.0, regime=None),
        _fill(day, "B", -3.0, strategy="LIMIT"),  # passive: left out
    ]
    fb = _frame(history + today)
    pr = fill_predictions(fb, day)
    rows = error_rows(pr)
    assert dict(rows.schema) == row_schema("slippage_prediction_errors")
    assert rows.select("date", "symbol").is_unique().all() and rows.height == 2
    a = rows.filter(pl.col("symbol") == "A").row(0, named=True)
    pa = pr.filter(pl.col("symbol") == "A")["predicted_bps"].to_numpy()
    assert a["actual_slippage"] == pytest.approx((10.0 * 1 + 30.0 * 3) / 4, rel=1e-12)
    assert a["predicted_slippage"] == pytest.approx((pa[0] * 1 + pa[1] * 3) / 4, rel=1e-12)
    assert a["error_bps"] == pytest.approx(a["actual_slippage"] - a["predicted_slippage"], rel=1e-12)
    assert a["error_pct"] == pytest.approx(100 * a["error_bps"] / abs(a["predicted_slippage"]), rel=1e-12)
    assert a["market_condition"] == "BEAR_CRISIS"
    b = rows.filter(pl.col("symbol") == "B").row(0, named=True)
    assert b["actual_slippage"] == pytest.approx(8.0) and b["market_condition"] is None


def test_prediction_errors_walk_forward_and_empty_history(fills):
    days = sorted(fills["date"].unique())[25:30]
    rows = prediction_errors(fills, days)
    assert rows["date"].unique().sort().to_list() == days
    alone = pl.concat([prediction_errors(fills, day) for day in days])
    assert rows.equals(alone)
    first = sorted(fills["date"].unique())[0]  # nothing before it: the static default predicts
    pr = fill_predictions(fills, first)
    assert set(pr["model_status"]) == {"no_fills"}
    np.testing.assert_allclose(pr["predicted_bps"].to_numpy(), pr["static_bps"].to_numpy(), rtol=1e-12)
    assert error_rows(pr.head(0)).height == 0


# --------------------------------------------------------------------------- regime adjustment
def test_regime_table_covers_the_project_regimes_and_gives_the_band():
    assert set(REGIME_ADJUSTMENTS) == set(RISK_MULTIPLIERS)
    out = regime_estimate([10.0, 10.0, 10.0, 10.0, -4.0, 10.0], [*REGIME_ADJUSTMENTS, "BEAR_CRISIS", "CRISIS"])
    seed = {"BULL_QUIET": (1.0, 0.9), "BULL_VOLATILE": (1.3, 0.7), "BEAR_QUIET": (1.2, 0.8), "BEAR_CRISIS": (2.0, 0.5)}
    for i, (name, (mult, conf)) in enumerate(seed.items()):
        r = out.row(i, named=True)
        assert r["regime"] == name and r["estimate"] == pytest.approx(10 * mult)
        assert r["lower"] == pytest.approx(10 * mult * conf) and r["upper"] == pytest.approx(10 * mult * (2 - conf))
    neg = out.row(4, named=True)  # a rebate: the band stays ordered
    assert (neg["estimate"], neg["lower"], neg["upper"]) == pytest.approx((-8.0, -12.0, -4.0))
    unknown = out.row(5, named=True)  # an HMM state name is not a risk regime
    assert unknown["regime"] is None and (unknown["multiplier"], unknown["confidence"]) == (1.0, 0.5)
    assert regime_estimate(5.0, None)["estimate"].to_list() == [5.0]


# --------------------------------------------------------------------------- feedback actions
#: a calendar with a holiday (2024-03-08 missing)
SESSIONS = [D(2024, 3, d) for d in (4, 5, 6, 7, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22)]


def test_a_trigger_holds_for_the_next_sessions_with_its_schedule():
    params = FeedbackParams(threshold_bps=25.0, pov_above_bps=50.0, hold_sessions=3)
    fb = _frame([_fill(D(2024, 3, 6), "A", 30.0), _fill(D(2024, 3, 6), "B", 80.0), _fill(D(2024, 3, 6), "C", 24.9)])
    fired = triggers(fb, D(2024, 3, 6), SESSIONS, params)
    assert fired.columns == list(ACTION_COLUMNS) and fired["symbol"].to_list() == ["A", "B"]
    a, b = fired.row(0, named=True), fired.row(1, named=True)
    assert (a["from_date"], a["until_date"]) == (D(2024, 3, 7), D(2024, 3, 12))  # 7, 11, 12: the holiday skipped
    assert (a["preferred_strategy"], b["preferred_strategy"]) == ("TWAP", "POV")
    assert (a["score_multiplier"], a["kelly_multiplier"]) == (0.8, 0.7)
    assert "30.0 bps > 25" in a["reason"] and "POV" in b["reason"]
    in_force = {day: actions_in_force(fb, day, SESSIONS, params)["symbol"].to_list() for day in SESSIONS[1:8]}
    # in force on 7, 11, 12 (as of 6, 7, 11), gone on 13 (as of 12)
    assert in_force[D(2024, 3, 6)] == ["A", "B"] and in_force[D(2024, 3, 11)] == ["A", "B"]
    assert in_force[D(2024, 3, 5)] == [] and in_force[D(2024, 3, 12)] == []


def test_latest_trigger_wins_and_passive_fills_do_not_count():
    params = FeedbackParams(hold_sessions=5)
    fb = _frame(
        [
            _fill(D(2024, 3, 11), "A", 90.0),
            _fill(D(2024, 3, 13), "A", 30.0),
            _fill(D(2024, 3, 13), "A", 20.0, qty=1.0),  # same session: notional-weighted mean ~ 30
            _fill(D(2024, 3, 13), "L", 400.0, strategy="LIMIT"),
        ]
    )
    rows = actions_in_force(fb, D(2024, 3, 14), SESSIONS, params)
    assert rows["symbol"].to_list() == ["A"]
    r = rows.row(0, named=True)
    assert r["trigger_date"] == D(2024, 3, 13) and r["preferred_strategy"] == "TWAP"
    assert r["slippage_bps"] == pytest.approx((30.0 * 1_000 + 20.0) / 1_001, rel=1e-12)
    assert (r["from_date"], r["until_date"]) == (D(2024, 3, 14), D(2024, 3, 20))


def test_actions_use_fills_up_to_the_date_only_and_check_the_calendar():
    params = FeedbackParams(hold_sessions=2)
    early = [_fill(D(2024, 3, 12), "A", 10.0)]
    late = [_fill(D(2024, 3, 13), "A", 99.0), _fill(D(2024, 3, 13), "B", 99.0)]
    assert actions_in_force(_frame(early), D(2024, 3, 12), SESSIONS, params).height == 0
    assert actions_in_force(_frame(early + late), D(2024, 3, 12), SESSIONS, params).height == 0
    assert actions_in_force(_frame(early + late), D(2024, 3, 13), SESSIONS, params).height == 2
    empty = pl.DataFrame(schema=row_schema("execution_feedback"))
    assert actions_in_force(empty, D(2024, 3, 13), SESSIONS).columns == list(ACTION_COLUMNS)
    assert actions_in_force(empty, D(2024, 3, 13), SESSIONS).height == 0
    with pytest.raises(ValueError, match="sessions"):
        actions_in_force(_frame(late), D(2024, 3, 22), SESSIONS, params)  # no session after the 22nd
    with pytest.raises(ValueError, match="sessions"):
        triggers(_frame(late), D(2024, 3, 13), SESSIONS[:6], FeedbackParams(hold_sessions=5))


def test_feedback_params_are_checked():
    with pytest.raises(ValueError, match="pov_above_bps"):
        FeedbackParams(threshold_bps=60.0, pov_above_bps=50.0)
    with pytest.raises(ValueError, match="hold_sessions"):
        FeedbackParams(hold_sessions=0)
    with pytest.raises(ValueError, match="shrinkage"):
        SlippageParams(shrinkage=-1.0)
