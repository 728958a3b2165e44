"""The orders of a session are planned with what the fills taught: the expected cost of the slippage model
fitted on the fills up to the session (the static cost model until enough exist) and seed 002 section 5.5's
preferred schedules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from mqf_pipeline.config import load_settings
from mqf_pipeline.execution import policy
from mqf_pipeline.execution.strategies import Strategy
from mqf_pipeline.slippage import SlippageModel
from mqf_pipeline.slippage.simulate import simulate_feedback
from mqf_pipeline.stages.execution_costs import session_costs
from mqf_pipeline.stages.params import policy_params, slippage_params

SETTINGS = load_settings("configs")


def test_no_fills_keep_the_static_cost_model() -> None:
    costs = session_costs(pl.DataFrame(), dt.date(2024, 3, 1), SETTINGS)
    assert costs.model is None and costs.preferred == {} and costs.label == "static cost model"
    assert costs.fitted_bps("S0001", 0.01, 0.02, 10.0) is None


def test_the_fitted_model_prices_orders_and_only_fills_up_to_the_session_count() -> None:
    fills = simulate_feedback(3)
    day = sorted(set(fills["date"].to_list()))[40]
    costs = session_costs(fills, day, SETTINGS)
    assert costs.model is not None and costs.label.startswith(f"fitted slippage model ({day}")
    oracle = SlippageModel(slippage_params(SETTINGS)).fit(fills.filter(pl.col("date") <= day), day)
    symbol = fills["symbol"][0]
    expected = oracle.predict(np.array([0.02]), np.array([0.015]), np.array([12.0]), symbol)[0]
    assert abs(costs.fitted_bps(symbol, 0.02, 0.015, 12.0) - expected) < 1e-12  # tolerance: float rounding
    later = fills.with_columns(
        pl.when(pl.col("date") > day).then(pl.col("market_impact_bps") * 10).otherwise(pl.col("market_impact_bps"))
    )
    assert session_costs(later, day, SETTINGS).fitted_bps(symbol, 0.02, 0.015, 12.0) == costs.fitted_bps(
        symbol, 0.02, 0.015, 12.0
    )


def test_the_policy_uses_the_fitted_cost_and_the_preferred_schedule() -> None:
    params = policy_params(SETTINGS)
    cheap = policy.OrderState(size_adv=0.01, sigma=0.02, spread_bps=5.0, fitted_cost_bps=5.0)
    dear = policy.OrderState(size_adv=0.01, sigma=0.02, spread_bps=5.0, fitted_cost_bps=80.0)
    assert policy.choose(cheap, params, kill_switch=False).expected_cost_bps == 5.0
    limit = policy.choose(dear, params, kill_switch=False)
    assert limit.action is Strategy.LIMIT and limit.fallback_reason == "EXPECTED_COST"
    pov = policy.choose(cheap, params, kill_switch=False, preferred=Strategy.POV)
    assert pov.action is Strategy.POV and pov.fallback_reason == "SLIPPAGE_FEEDBACK"
    spike = policy.choose(cheap, params, kill_switch=True, preferred=Strategy.POV)
    assert spike.action is Strategy.MARKET and spike.fallback_reason == "SLIPPAGE_SPIKE"


def _costly_fills() -> tuple[pl.DataFrame, dt.date, str]:
    """Simulated fills where one symbol's fills of the last session cost 400 bps vs the mid."""
    fills = simulate_feedback(5)
    day = sorted(set(fills["date"].to_list()))[-1]
    worst = fills.filter(pl.col("date") == day)["symbol"][0]
    hot = fills.with_columns(
        pl.when((pl.col("date") == day) & (pl.col("symbol") == worst))
        .then(pl.lit(400.0))
        .otherwise(pl.col("market_impact_bps"))
        .alias("market_impact_bps")
    )
    return hot, day, worst


def test_feedback_actions_name_the_symbols_whose_fills_cost_too_much() -> None:
    hot, day, worst = _costly_fills()
    costs = session_costs(hot, day, SETTINGS)
    assert costs.preferred.get(worst) is Strategy.POV  # 400 bps > feedback_pov_above_bps (50)


def test_feedback_multipliers_for_the_decisions() -> None:
    """The decisions of D get score x0.8 and Kelly x0.7 for a symbol whose fills at D cost too much, and say so."""
    from mqf_pipeline.stages.execution_costs import feedback_multipliers

    hot, day, worst = _costly_fills()
    found = feedback_multipliers(hot, day, SETTINGS)
    assert found.score[worst] == 0.8 and found.kelly[worst] == 0.7
    assert found.summary is not None and worst in found.summary
    assert feedback_multipliers(pl.DataFrame(), day, SETTINGS).summary is None


def test_the_fitted_cost_takes_the_regimes_multiplier() -> None:
    """Seed 002 section 5.6: in BEAR_CRISIS the fitted estimate is doubled (confidence 0.5), and the label says so."""
    fills = simulate_feedback(3)
    day = sorted(set(fills["date"].to_list()))[40]
    calm = session_costs(fills, day, SETTINGS, "BULL_QUIET")
    crisis = session_costs(fills, day, SETTINGS, "BEAR_CRISIS")
    base = calm.fitted_bps("S000", 0.02, 0.015, 12.0)
    assert base is not None and crisis.fitted_bps("S000", 0.02, 0.015, 12.0) == pytest.approx(2.0 * base, rel=1e-12)
    assert "BEAR_CRISIS x2 (confidence 0.5)" in crisis.label and "BULL_QUIET x1 (confidence 0.9)" in calm.label
