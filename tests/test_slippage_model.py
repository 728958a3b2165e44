"""The seed 002 section 5.3 slippage model (mqf_pipeline.slippage.model).

Oracles and tolerances:
* shrinkage off: per-symbol and pooled coefficients, R^2 and HC3 standard errors equal statsmodels'
  ``smf.ols("slip ~ qadv * sigma + spread", d).fit(cov_type="HC3")`` within 1e-8 relative;
* on fills from a known linear model with heteroskedastic noise: |a_hat - a| / se_HC3 < 3 (NUMERICS.md);
* the shrinkage estimate equals the closed form ``(X'X + k G)^-1 (X'y + k G b_pool)`` solved in the raw
  (uncentred, column-scaled) basis within 1e-8 relative: the centring does not change it;
* out of sample on fills from the paper broker's cost model: R^2 > 0.5, and the MAE below the static
  default's where the true impact coefficients differ from the policy's (>= 30% live-like); where they
  equal it (paper), the static default is the truth's expected cost and must not be beaten (that would be
  leakage).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import statsmodels.formula.api as smf
from sklearn.base import clone

from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.slippage import (
    POOLED_SYMBOL,
    SlippageModel,
    SlippageParams,
    coeff_rows,
    fill_predictions,
    prediction_errors,
)
from mqf_pipeline.slippage.simulate import FillSimParams, simulate_feedback
from mqf_pipeline.storage.schema import row_schema

NAMES = ["Intercept", "qadv", "sigma", "spread", "qadv:sigma"]
FAR = dt.date(2100, 1, 1)
OWN = SlippageParams(shrinkage=0.0)


def _oracle_frame(fb: pl.DataFrame):
    """The aggressive fills as statsmodels' data frame, computed from the feedback columns directly."""
    return (
        fb.filter(~pl.col("market_conditions_json").str.contains("LIMIT"))
        .select(
            "symbol",
            (pl.col("market_impact_bps") + pl.col("spread_bps") / 2).alias("slip"),
            (pl.col("quantity") / pl.col("adv")).alias("qadv"),
            pl.col("volatility").alias("sigma"),
            pl.col("spread_bps").alias("spread"),
        )
        .to_pandas()
    )


def _linear_feedback(seed: int, n: int, symbols: list[str], coef: np.ndarray, noise_bps: float = 3.0) -> pl.DataFrame:
    """Feedback rows whose cost vs the mid follows the seed's linear form plus heteroskedastic noise."""
    rng = np.random.default_rng(seed)
    qadv = np.exp(rng.uniform(np.log(1e-4), np.log(0.05), n))
    sigma = 0.018 * np.exp(0.4 * rng.standard_normal(n))
    spread = np.exp(rng.uniform(0.0, np.log(30.0), n))
    slip = coef[0] + coef[1] * qadv + coef[2] * sigma + coef[3] * spread + coef[4] * qadv * sigma
    slip = slip + noise_bps * (0.5 + 50 * sigma) * rng.standard_normal(n)
    return pl.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "date": pl.Series([dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 200, n)]),
            "symbol": [symbols[i % len(symbols)] for i in range(n)],
            "quantity": qadv * 1e6,
            "adv": np.full(n, 1e6),
            "expected_price": np.full(n, 20.0),
            "volatility": sigma,
            "spread_bps": spread,
            "market_impact_bps": slip - spread / 2,
            "market_conditions_json": ['{"strategy": "VWAP"}'] * n,
            "regime": ["BULL_QUIET"] * n,
        }
    )


@pytest.fixture(scope="module")
def sim_fills() -> pl.DataFrame:
    return simulate_feedback(1, FillSimParams(n_symbols=4, n_sessions=120, activity=(0.6, 0.9), impact_dispersion=0.4))


def test_shrinkage_off_equals_statsmodels_per_symbol_and_pooled(sim_fills):
    model = SlippageModel(OWN).fit(sim_fills, FAR)
    d = _oracle_frame(sim_fills)
    assert model.symbols_ == tuple(sorted(d["symbol"].unique()))
    for i, sym in enumerate(model.symbols_):
        ref = smf.ols("slip ~ qadv * sigma + spread", d[d.symbol == sym]).fit(cov_type="HC3")
        assert model.status_[i] == "own"
        np.testing.assert_allclose(model.coef_[i], ref.params[NAMES].to_numpy(), rtol=1e-8)
        np.testing.assert_allclose(model.stderr_[i], ref.bse[NAMES].to_numpy(), rtol=1e-8)
        assert model.r_squared_[i] == pytest.approx(ref.rsquared, rel=1e-8)
        assert model.n_obs_[i] == ref.nobs
    ref = smf.ols("slip ~ qadv * sigma + spread", d).fit(cov_type="HC3")
    np.testing.assert_allclose(model.pooled_coef_, ref.params[NAMES].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(model.pooled_stderr_, ref.bse[NAMES].to_numpy(), rtol=1e-8)
    assert model.pooled_r_squared_ == pytest.approx(ref.rsquared, rel=1e-8)
    # predict uses the uncentred coefficients: statsmodels' fitted values per symbol
    sub = d[d.symbol == "S002"]
    own = smf.ols("slip ~ qadv * sigma + spread", sub).fit()
    got = model.predict(sub.qadv.to_numpy(), sub.sigma.to_numpy(), sub.spread.to_numpy(), "S002")
    np.testing.assert_allclose(got, own.fittedvalues.to_numpy(), rtol=1e-8)


def test_coefficients_within_three_hc3_standard_errors_of_the_truth():
    truth = np.array([1.5, 40.0, 120.0, 0.5, 25_000.0])
    fb = _linear_feedback(7, 3_000, ["A", "B", "C"], truth)
    model = SlippageModel(OWN).fit(fb, FAR)
    z = np.abs(model.pooled_coef_ - truth) / model.pooled_stderr_
    assert (z < 3).all(), z
    for i in range(3):
        assert (np.abs(model.coef_[i] - truth) / model.stderr_[i] < 3).all()


def test_shrinkage_equals_the_closed_form_in_the_raw_basis(sim_fills):
    k = 10.0
    model = SlippageModel(SlippageParams(shrinkage=k)).fit(sim_fills, FAR)
    d = _oracle_frame(sim_fills)
    raw = np.column_stack([np.ones(len(d)), d.qadv, d.sigma, d.spread, d.qadv * d.sigma])
    scale = np.sqrt(np.mean(raw**2, axis=0))  # column scaling only (no centring), for a well-posed solve
    x, y = raw / scale, d.slip.to_numpy()
    b_pool = np.linalg.lstsq(x, y, rcond=None)[0]
    g = x.T @ x / len(y)
    np.testing.assert_allclose(model.pooled_coef_, b_pool / scale, rtol=1e-8)
    for i, sym in enumerate(model.symbols_):
        xs, ys = x[(d.symbol == sym).to_numpy()], y[(d.symbol == sym).to_numpy()]
        b = np.linalg.solve(xs.T @ xs + k * g, xs.T @ ys + k * g @ b_pool)
        np.testing.assert_allclose(model.coef_[i], b / scale, rtol=1e-8)
        assert model.status_[i] == "shrunk"


def _rms_gap(model: SlippageModel, a: np.ndarray, b: np.ndarray, grid: np.ndarray) -> float:
    q, s, p = grid.T
    pa = a[0] + a[1] * q + a[2] * s + a[3] * p + a[4] * q * s
    pb = b[0] + b[1] * q + b[2] * s + b[3] * p + b[4] * q * s
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


def test_few_fills_stay_near_pooled_many_fills_near_own_ols():
    base = np.array([1.0, 50.0, 100.0, 0.5, 20_000.0])
    other = base + np.array([20.0, 0.0, 0.0, 0.0, 0.0])  # symbols X and Y cost 20 bps more
    pool = _linear_feedback(1, 4_000, ["A", "B", "C", "D"], base)
    few = _linear_feedback(2, 2, ["X"], other)
    many = _linear_feedback(3, 2_000, ["Y"], other)
    fb = pl.concat([pool, few, many.with_columns(pl.col("order_id") + "y")])
    grid = fb.select(pl.col("quantity") / pl.col("adv"), "volatility", "spread_bps").to_numpy()
    shrunk = SlippageModel(SlippageParams(shrinkage=10.0)).fit(fb, FAR)
    own = SlippageModel(OWN).fit(fb, FAR)
    ix, iy = shrunk.symbols_.index("X"), shrunk.symbols_.index("Y")
    # X (2 fills, k = 10): moves at most 2 / (2 + 10) of the way to its own 20 bps offset (+ noise)
    assert shrunk.status_[ix] == "shrunk" and own.status_[ix] == "pooled_singular"
    gap_x = _rms_gap(shrunk, shrunk.coef_[ix], shrunk.pooled_coef_, grid)
    assert gap_x < 20.0 * 2 / 12 + 2.0, gap_x
    # Y (2,000 fills): within 1% of the way between the pooled fit and its own OLS
    own_gap = _rms_gap(own, own.coef_[iy], own.pooled_coef_, grid)
    assert own_gap > 10.0
    assert _rms_gap(shrunk, shrunk.coef_[iy], own.coef_[iy], grid) < 0.01 * own_gap
    # the limits: k -> infinity is the pooled fit, k = 0 the own OLS
    huge = SlippageModel(SlippageParams(shrinkage=1e12)).fit(fb, FAR)
    np.testing.assert_allclose(huge.coef_[iy], huge.pooled_coef_, rtol=1e-6)


def test_no_fills_predicts_the_static_default_and_says_so():
    empty = pl.DataFrame(schema=row_schema("execution_feedback"))
    model = SlippageModel().fit(empty, dt.date(2024, 1, 2))
    assert model.pooled_status_ == "no_fills"
    got = model.predict([0.01, 0.002], [0.02, 0.015], [10.0, 4.0], "ANY")
    want = [
        sim.expected_cost_bps("VWAP", q, s, p, sim.CostParams())
        for q, s, p in [(0.01, 0.02, 10.0), (0.002, 0.015, 4.0)]
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the VWAP closed form: half spread + 1e4 Y sigma sqrt(Q/ADV)
    assert got[0] == pytest.approx(5.0 + 1e4 * 0.7 * 0.02 * np.sqrt(0.01), rel=1e-12)
    rows = coeff_rows(model)
    assert rows.height == 1 and rows["symbol"][0] == POOLED_SYMBOL and rows["status"][0] == "no_fills"
    assert rows["alpha_0"][0] is None and rows["n_observations"][0] == 0


def test_too_few_fills_in_all_keep_the_static_default():
    fb = _linear_feedback(4, 19, ["A", "B"], np.array([1.0, 50.0, 100.0, 0.5, 20_000.0]))
    model = SlippageModel().fit(fb, FAR)
    assert model.pooled_status_ == "too_few_fills" and model.symbols_ == ()
    rows = coeff_rows(model)
    assert rows.height == 1 and rows["n_observations"][0] == 19 and rows["alpha_1"][0] is None
    want = sim.expected_cost_bps("VWAP", 0.01, 0.02, 6.0, sim.CostParams())
    assert model.predict(0.01, 0.02, 6.0, "A")[0] == pytest.approx(want, rel=1e-12)
    assert SlippageModel(SlippageParams(min_pooled_fills=19)).fit(fb, FAR).pooled_status_ == "pooled"


def test_one_fill_symbol_uses_the_pooled_coefficients():
    fb = _linear_feedback(4, 400, ["A", "B"], np.array([1.0, 50.0, 100.0, 0.5, 20_000.0]))
    lone = _linear_feedback(5, 1, ["Z"], np.array([30.0, 0, 0, 0, 0])).with_columns(pl.lit("z0").alias("order_id"))
    model = SlippageModel().fit(pl.concat([fb, lone]), FAR)
    i = model.symbols_.index("Z")
    assert model.status_[i] == "pooled_only" and model.n_obs_[i] == 1
    np.testing.assert_array_equal(model.coef_[i], model.pooled_coef_)
    assert np.isnan(model.r_squared_[i])
    assert model.predict(0.01, 0.02, 5.0, "Z")[0] == model.predict(0.01, 0.02, 5.0, "NEVER_SEEN")[0]


def test_every_fill_the_same_size_drops_the_size_terms():
    """Q/ADV constant in every fill: a1 = a4 = 0 (not identified; the level goes to a0) and the rest is
    statsmodels' ``slip ~ sigma + spread``."""
    fb = _linear_feedback(6, 500, ["A", "B"], np.array([1.0, 50.0, 100.0, 0.5, 20_000.0]))
    fb = fb.with_columns(pl.lit(5_000.0).alias("quantity"))
    model = SlippageModel(OWN).fit(fb, FAR)
    assert model.pooled_status_ == "pooled"
    ref = smf.ols("slip ~ sigma + spread", _oracle_frame(fb)).fit()
    want = [ref.params["Intercept"], 0.0, ref.params["sigma"], ref.params["spread"], 0.0]
    np.testing.assert_allclose(model.pooled_coef_, want, rtol=1e-8, atol=1e-12)


def test_a_symbol_with_one_size_is_singular_without_shrinkage():
    fb = _linear_feedback(8, 600, ["A", "B", "C"], np.array([1.0, 50.0, 100.0, 0.5, 20_000.0]))
    fb = fb.with_columns(pl.when(pl.col("symbol") == "C").then(3_000.0).otherwise(pl.col("quantity")).alias("quantity"))
    own = SlippageModel(OWN).fit(fb, FAR)
    i = own.symbols_.index("C")
    assert own.status_[i] == "pooled_singular"
    np.testing.assert_array_equal(own.coef_[i], own.pooled_coef_)
    shrunk = SlippageModel().fit(fb, FAR)
    assert shrunk.status_[i] == "shrunk" and np.isfinite(shrunk.coef_[i]).all()


def test_collinear_regressors_give_the_least_squares_fitted_values():
    fb = _linear_feedback(9, 300, ["A"], np.array([1.0, 50.0, 100.0, 0.5, 20_000.0]))
    fb = fb.with_columns((pl.col("volatility") * 1_000.0).alias("spread_bps"))  # spread = 1000 sigma exactly
    model = SlippageModel(OWN).fit(fb, FAR)
    assert model.pooled_status_ == "pooled_rank_deficient"
    d = _oracle_frame(fb)
    with pytest.warns(UserWarning, match="rank-deficient"):  # pinv: another minimum norm, the same fit
        ref = smf.ols("slip ~ qadv * sigma + spread", d).fit()
    got = model.predict(d.qadv.to_numpy(), d.sigma.to_numpy(), d.spread.to_numpy())
    np.testing.assert_allclose(got, ref.fittedvalues.to_numpy(), rtol=1e-8)
    assert np.isnan(model.pooled_stderr_).all()


def test_fit_uses_fills_up_to_the_estimation_date_only(sim_fills):
    day = sorted(sim_fills["date"].unique())[80]
    base = SlippageModel().fit(sim_fills, day)
    later = sim_fills.with_columns(
        pl.when(pl.col("date") > day).then(pl.col("market_impact_bps") * 5 + 100).otherwise(pl.col("market_impact_bps"))
    )
    extra = sim_fills.filter(pl.col("date") > day).with_columns(pl.col("order_id") + "x", pl.lit("NEW").alias("symbol"))
    for changed in (later, pl.concat([later, extra])):
        again = SlippageModel().fit(changed, day)
        assert coeff_rows(again).equals(coeff_rows(base))
    errs = prediction_errors(sim_fills, sorted(sim_fills["date"].unique())[60:81])
    errs_changed = prediction_errors(pl.concat([later, extra]), sorted(sim_fills["date"].unique())[60:81])
    assert errs.height > 0 and errs.equals(errs_changed)


def test_coeff_rows_match_the_table_and_are_unique(sim_fills):
    day = sorted(sim_fills["date"].unique())[-1]
    rows = coeff_rows(SlippageModel().fit(sim_fills, day))
    assert dict(rows.schema) == row_schema("slippage_model_coeffs")
    assert rows.select("symbol", "estimation_date").is_unique().all()
    assert rows["symbol"][0] == POOLED_SYMBOL and rows["status"][0] == "pooled"
    assert set(rows["status"][1:]) == {"shrunk"}
    with pytest.raises(ValueError, match="fitted as of"):
        coeff_rows(SlippageModel().fit(sim_fills, day), day - dt.timedelta(days=1))


def test_passive_and_invalid_fills_are_left_out(sim_fills):
    bad = sim_fills.head(3).with_columns(pl.col("order_id") + "bad", pl.Series("adv", [0.0, None, 1e6]))
    bad = bad.with_columns(
        pl.when(pl.col("adv") == 1e6).then(float("nan")).otherwise(pl.col("volatility")).alias("volatility")
    )
    base = SlippageModel().fit(sim_fills, FAR)
    with_bad = SlippageModel().fit(pl.concat([sim_fills, bad]), FAR)
    np.testing.assert_array_equal(with_bad.pooled_coef_, base.pooled_coef_)
    n_limit = sim_fills.filter(pl.col("market_conditions_json").str.contains("LIMIT")).height
    assert base.n_dropped_ == n_limit and with_bad.n_dropped_ == n_limit + 3


def test_lookback_keeps_only_recent_fills(sim_fills):
    day = sorted(sim_fills["date"].unique())[-1]
    recent = SlippageModel(SlippageParams(lookback_days=30)).fit(sim_fills, day)
    cut = sim_fills.filter(pl.col("date") > day - dt.timedelta(days=30))
    assert coeff_rows(recent).equals(coeff_rows(SlippageModel().fit(cut, day)))
    assert recent.pooled_n_obs_ < SlippageModel().fit(sim_fills, day).pooled_n_obs_


def test_estimator_clones_with_its_parameters():
    model = SlippageModel(SlippageParams(shrinkage=3.0, min_fills=4))
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "coef_")


def _oos(seed: int, world: FillSimParams, n_test: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fb = simulate_feedback(seed, world)
    days = sorted(fb["date"].unique())[-n_test:]
    pr = pl.concat([fill_predictions(fb, day) for day in days])
    return pr["y"].to_numpy(), pr["predicted_bps"].to_numpy(), pr["static_bps"].to_numpy()


def _scores(y: np.ndarray, pred: np.ndarray, static: np.ndarray) -> tuple[float, float]:
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    return float(r2), float(1 - np.mean(np.abs(y - pred)) / np.mean(np.abs(y - static)))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("world", "min_cut"),
    [
        (FillSimParams(impact_dispersion=0.5, world_dispersion=0.3), 0.30),
        (FillSimParams(impact_dispersion=0.5), 0.10),
    ],
    ids=["live_like", "symbol_spread"],
)
def test_out_of_sample_beats_the_static_default_where_the_world_differs_from_it(world, min_cut):
    """True impact coefficients differ from the policy's 0.7: per symbol (lognormal, log s.d. 0.5) and,
    live-like, by a market-wide factor (log s.d. 0.3). Walk-forward over the last 20 of 80 sessions, seeds
    0-4 pooled. Over 20 seeds (bench/slippage.py) the MAE reduction is 38.5% [27.7%, 49.3%] live-like and
    25.2% [18.6%, 31.9%] with the per-symbol spread alone: the seed's 30% is met on average only live-like
    (these five seeds are better than average: the floors here are regression checks, not the claim)."""
    y, pred, static = (np.concatenate(a) for a in zip(*[_oos(s, world) for s in range(5)], strict=True))
    r2, mae_cut = _scores(y, pred, static)
    assert r2 > 0.5, r2
    assert mae_cut >= min_cut, mae_cut


@pytest.mark.slow
def test_out_of_sample_does_not_beat_the_static_default_when_it_is_the_truth():
    """Paper mode: the broker fills with the policy's own cost model, so the static default is the true
    expected cost; the seed's linear form (impact is concave) explains most of the variance but must not
    beat it."""
    y, pred, static = (np.concatenate(a) for a in zip(*[_oos(s, FillSimParams()) for s in range(3)], strict=True))
    r2, mae_cut = _scores(y, pred, static)
    assert r2 > 0.5, r2
    assert mae_cut < 0, mae_cut
