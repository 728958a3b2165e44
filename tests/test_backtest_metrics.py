"""Backtest performance metrics against empyrical-reloaded (the oracle), properties and closed forms."""

from __future__ import annotations

import math
from dataclasses import asdict

import empyrical as ep
import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mqf_pipeline.backtest import metrics as m

RTOL = 1e-10
ATOL = 1e-12
SEEDS = [0, 1, 2, 7, 42]
LENGTHS = [2, 3, 21, 252, 1260]


def close(ours: float, oracle: float) -> None:
    """Equal within 1e-10 relative (1e-12 absolute); NaN equals NaN and infinities must match exactly."""
    np.testing.assert_allclose(ours, float(oracle), rtol=RTOL, atol=ATOL, equal_nan=True)


def series(seed: int, n: int, nan_share: float = 0.0) -> np.ndarray:
    """Daily-like decimal returns: mean 5 bp, vol 1.2%, a share of NaN gaps if asked."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.012, n)
    if nan_share:
        r[rng.random(n) < nan_share] = np.nan
    return r


def oracle_cases() -> list[tuple[int, int, float]]:
    return [(s, n, nan) for s in SEEDS for n in LENGTHS for nan in (0.0, 0.1)]


@pytest.mark.parametrize(("seed", "n", "nan_share"), oracle_cases())
def test_single_series_metrics_match_empyrical(seed: int, n: int, nan_share: float) -> None:
    r = series(seed, n, nan_share)
    for ppy in (252, 52, 12):
        close(m.annual_return(r, ppy), ep.annual_return(r, annualization=ppy))
        close(m.annual_volatility(r, ppy), ep.annual_volatility(r, annualization=ppy))
        close(m.sharpe_ratio(r, periods_per_year=ppy), ep.sharpe_ratio(r, annualization=ppy))
        close(m.sortino_ratio(r, periods_per_year=ppy), ep.sortino_ratio(r, annualization=ppy))
        close(m.downside_risk(r, periods_per_year=ppy), ep.downside_risk(r, annualization=ppy))
        close(m.calmar_ratio(r, ppy), ep.calmar_ratio(r, annualization=ppy))
    close(m.max_drawdown(r), ep.max_drawdown(r))
    np.testing.assert_allclose(m.drawdown_series(r), ep.stats.drawdown_series(r), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("seed", "n", "nan_share"), oracle_cases())
def test_risk_free_and_required_return_match_empyrical(seed: int, n: int, nan_share: float) -> None:
    r = series(seed, n, nan_share)
    rf_daily = 0.04 / 252
    rf_path = np.random.default_rng(seed + 100).uniform(0.0, 0.0003, n)
    close(m.sharpe_ratio(r, rf_daily), ep.sharpe_ratio(r, risk_free=rf_daily))
    close(m.sharpe_ratio(r, rf_path), ep.sharpe_ratio(r, risk_free=rf_path))
    close(m.sortino_ratio(r, rf_daily), ep.sortino_ratio(r, required_return=rf_daily))
    close(m.downside_risk(r, rf_daily), ep.downside_risk(r, required_return=rf_daily))


@pytest.mark.parametrize(("seed", "n", "nan_share"), oracle_cases())
def test_benchmark_metrics_match_empyrical(seed: int, n: int, nan_share: float) -> None:
    r = series(seed, n, nan_share)
    b = 0.8 * np.nan_to_num(r) + series(seed + 1000, n, nan_share) * 0.5
    excess_sharpe = ep.excess_sharpe(r, b)
    close(m.information_ratio_per_period(r, b), excess_sharpe)
    close(m.information_ratio(r, b), excess_sharpe * np.sqrt(252))
    close(m.information_ratio(r, b, 12), excess_sharpe * np.sqrt(12))
    active = (r - b)[~np.isnan(r - b)]
    te = np.std(active, ddof=1) if active.size >= 2 else np.nan
    close(m.tracking_error_per_period(r, b), te)
    close(m.tracking_error(r, b), te * np.sqrt(252))


def test_polars_series_with_nulls_equals_numpy_with_nan() -> None:
    r = series(3, 300, 0.1)
    s = pl.Series("r", [None if np.isnan(x) else float(x) for x in r], dtype=pl.Float64)
    assert s.null_count() > 0
    for f in (m.annual_return, m.annual_volatility, m.sharpe_ratio, m.sortino_ratio, m.max_drawdown, m.calmar_ratio):
        assert f(s) == f(r)
    close(m.sharpe_ratio(s), ep.sharpe_ratio(r))


def test_all_positive_series_has_infinite_sortino_as_empyrical() -> None:
    r = np.abs(series(5, 100)) + 1e-4
    assert ep.sortino_ratio(r) == np.inf
    assert m.sortino_ratio(r) == np.inf
    assert m.downside_risk(r) == ep.downside_risk(r) == 0.0
    assert math.isnan(m.calmar_ratio(r)) and math.isnan(ep.calmar_ratio(r))  # no drawdown
    assert m.max_drawdown(r) == ep.max_drawdown(r) == 0.0


@pytest.mark.parametrize(
    "r",
    [
        np.zeros(10),
        np.full(10, 0.001),
        np.full(10, -0.001),
        np.array([0.01]),
        np.array([np.nan, np.nan, np.nan]),
        np.array([0.01, np.nan]),
        np.array([-1.0, 0.5, 0.2]),
        np.array([]),
    ],
    ids=["zeros", "const_pos", "const_neg", "one", "all_nan", "one_present", "wipeout", "empty"],
)
def test_degenerate_series_match_empyrical(r: np.ndarray) -> None:
    with np.errstate(all="ignore"):
        close(m.sharpe_ratio(r), ep.sharpe_ratio(r))
        close(m.sortino_ratio(r), ep.sortino_ratio(r))
        close(m.max_drawdown(r), ep.max_drawdown(r))
        close(m.annual_return(r), ep.annual_return(r))
        close(m.calmar_ratio(r), ep.calmar_ratio(r))
    if r.size >= 2 and np.isfinite(r).sum() >= 2:
        close(m.annual_volatility(r), ep.annual_volatility(r))
        close(m.information_ratio_per_period(r, np.zeros_like(r)), ep.excess_sharpe(r, np.zeros_like(r)))


def test_inf_and_misaligned_inputs_raise() -> None:
    with pytest.raises(ValueError, match="inf"):
        m.sharpe_ratio(np.array([0.01, np.inf]))
    with pytest.raises(ValueError, match="periods"):
        m.information_ratio(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="1-D"):
        m.max_drawdown(np.zeros((3, 2)))


# ---------------------------------------------------------------- properties

returns_lists = st.lists(
    st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, allow_subnormal=False), min_size=1, max_size=300
)


@settings(max_examples=200, deadline=None)
@given(returns_lists)
def test_max_drawdown_in_unit_interval(r: list[float]) -> None:
    mdd = m.max_drawdown(r)
    assert -1.0 <= mdd <= 0.0
    assert np.all(m.drawdown_series(r) <= 0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-0.5, max_value=0.5, allow_nan=False, allow_subnormal=False), min_size=2, max_size=300
    ),
    st.floats(min_value=0.01, max_value=100.0),
)
def test_sharpe_is_scale_invariant_without_risk_free(r: list[float], c: float) -> None:
    arr = np.asarray(r)
    assume(np.std(arr) > 1e-6)
    assert math.isclose(m.sharpe_ratio(c * arr), m.sharpe_ratio(arr), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(min_value=-1.0, max_value=1.0), st.just(0.0), st.just(math.nan)), max_size=100))
def test_hit_rate_in_unit_interval(r: list[float]) -> None:
    h = m.hit_rate(r)
    present = [x for x in r if not math.isnan(x) and x != 0.0]
    assert math.isnan(h) if not present else 0.0 <= h <= 1.0


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=2, max_value=30),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_turnover_bounded_by_gross_exposure(t: int, n: int, seed: int) -> None:
    w = np.random.default_rng(seed).normal(0.0, 0.3, (t, n))
    to = m.turnover(w)
    gross = m.gross_exposure(w)
    assert to.shape == (t - 1,)
    assert np.all(to >= 0.0)
    assert np.all(to <= (gross[1:] + gross[:-1]) / 2.0 + 1e-12)


# ---------------------------------------------------------------- closed forms


def test_turnover_closed_form() -> None:
    w = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(m.turnover(w), [0.5, 0.0, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(m.turnover(w, np.zeros(3)), [0.5, 0.5, 0.0, 1.0], rtol=0, atol=1e-15)
    long_short = np.array([[0.5, -0.5], [-0.5, 0.5]])  # flip a 100% gross book: (1 + 1) / 2
    np.testing.assert_allclose(m.turnover(long_short), [1.0], rtol=0, atol=1e-15)
    with_nan = np.array([[0.5, np.nan], [0.5, 0.25]])  # NaN weight is no position
    np.testing.assert_allclose(m.turnover(with_nan), [0.125], rtol=0, atol=1e-15)
    frame = pl.DataFrame({"AAA": [0.5, 0.0, 0.0, 1.0], "BBB": [0.5, 0.5, 0.5, 0.0], "CCC": [0.0, 0.5, 0.5, 0.0]})
    np.testing.assert_allclose(m.turnover(frame), m.turnover(w), rtol=0, atol=0)
    with pytest.raises(ValueError, match="non-numeric"):
        m.turnover(frame.with_columns(pl.lit("x").alias("date")))


def test_exposure_closed_form() -> None:
    w = np.array([[0.5, 0.5], [0.75, -0.25], [np.nan, 0.0]])
    np.testing.assert_allclose(m.gross_exposure(w), [1.0, 1.0, 0.0], rtol=0, atol=0)
    assert m.exposure(w) == pytest.approx(2.0 / 3.0, rel=1e-15)


def test_cost_drag_closed_form() -> None:
    assert m.cost_drag(np.full(252, 0.0005)) == pytest.approx(0.126, rel=1e-12)
    assert m.cost_drag(np.full(24, 0.001), periods_per_year=12) == pytest.approx(0.012, rel=1e-12)
    # NaN is no cost but still a period: 3 bp over 4 periods, x252
    assert m.cost_drag([0.0001, np.nan, 0.0002, 0.0]) == pytest.approx(0.0003 / 4 * 252, rel=1e-12)
    gross = series(9, 504)
    costs = np.random.default_rng(9).uniform(0.0, 0.0004, 504)
    drag = m.cost_drag(costs)
    assert drag == pytest.approx(costs.mean() * 252, rel=1e-12)
    # arithmetic annual drag equals the gap in arithmetic annual mean returns of gross and net
    assert drag == pytest.approx(252 * (gross.mean() - (gross - costs).mean()), rel=1e-9)


def test_hit_rate_closed_form() -> None:
    assert m.hit_rate([0.01, -0.01, 0.0, np.nan, 0.02]) == pytest.approx(2.0 / 3.0)
    assert math.isnan(m.hit_rate([0.0, np.nan]))


def test_summarize_collects_every_metric() -> None:
    r, b = series(11, 504, 0.05), series(12, 504)
    w = np.abs(np.random.default_rng(11).normal(0.1, 0.05, (504, 10)))
    costs = np.full(504, 0.0001)
    s = m.summarize(r, benchmark=b, weights=w, costs=costs, risk_free=0.0001)
    close(s.sharpe_ratio, ep.sharpe_ratio(r, risk_free=0.0001))
    close(s.sortino_ratio, ep.sortino_ratio(r))
    close(s.max_drawdown, ep.max_drawdown(r))
    close(s.calmar_ratio, ep.calmar_ratio(r))
    close(s.annual_return, ep.annual_return(r))
    close(s.annual_volatility, ep.annual_volatility(r))
    close(s.information_ratio_per_period, ep.excess_sharpe(r, b))
    close(s.information_ratio, ep.excess_sharpe(r, b) * np.sqrt(252))
    assert s.tracking_error == pytest.approx(s.tracking_error_per_period * np.sqrt(252), rel=1e-15)
    assert s.turnover == pytest.approx(m.turnover(w).mean(), rel=1e-15)
    assert s.annual_turnover == pytest.approx(s.turnover * 252, rel=1e-15)
    assert s.exposure == pytest.approx(m.exposure(w), rel=1e-15)
    assert s.cost_drag == pytest.approx(0.0252, rel=1e-12)
    assert s.hit_rate == m.hit_rate(r)
    assert s.n_periods == 504

    bare = m.summarize(r)
    missing = ("tracking_error", "information_ratio", "turnover", "annual_turnover", "cost_drag", "exposure")
    assert all(math.isnan(asdict(bare)[k]) for k in missing)
    with pytest.raises(AttributeError):
        bare.sharpe_ratio = 0.0  # type: ignore[misc]
