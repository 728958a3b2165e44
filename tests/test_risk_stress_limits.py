"""Historical stress scenarios and the §7.4 limits table (sector caps, correlation shock).

Numbers are compared with an absolute tolerance of 1e-12 (1e-10 for OLS betas against numpy.polyfit)
unless a test says otherwise.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mqf_pipeline.market.sim.params import SECTORS
from mqf_pipeline.risk.limits import (
    DEFAULT_LIMITS,
    Limit,
    average_correlation,
    check_limits,
    combined_scale,
    correlation_shock_vol,
    rejections,
    sector_exposures,
    sector_scale,
    with_values,
)
from mqf_pipeline.risk.stress import (
    SCENARIOS,
    STRESS_COLUMNS,
    Scenario,
    estimate_betas,
    max_stress_loss,
    stress_losses,
)

TOL = 1e-12
BY_NAME = {s.name: s for s in SCENARIOS}
TOY = Scenario(
    name="toy",
    description="hand example",
    start=dt.date(2020, 1, 2),
    end=dt.date(2020, 1, 3),
    market_shock=-0.10,
    sector_shocks={"Energy": 0.05},
    factor_shocks={"value": 0.02},
)


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------------------------------------- scenarios


def test_scenarios_cover_the_four_crashes() -> None:
    assert set(BY_NAME) == {"black_monday_1987", "gfc_2008", "covid_2020", "inflation_2022"}
    assert BY_NAME["black_monday_1987"].end == dt.date(1987, 10, 19)
    expected = {"black_monday_1987": -0.205, "gfc_2008": -0.28, "covid_2020": -0.34, "inflation_2022": -0.25}
    for name, shock in expected.items():
        assert abs(BY_NAME[name].market_shock - shock) < TOL
    for sc in SCENARIOS:
        assert set(sc.sector_shocks) <= set(SECTORS)
    gfc, covid, infl = BY_NAME["gfc_2008"], BY_NAME["covid_2020"], BY_NAME["inflation_2022"]
    assert gfc.sector_shocks["Financials"] == min(gfc.sector_shocks.values())
    assert covid.sector_shocks["Energy"] < 0 and covid.sector_shocks["Financials"] < 0
    assert covid.sector_shocks["Information Technology"] > 0 and covid.sector_shocks["Health Care"] > 0
    assert infl.sector_shocks["Information Technology"] < 0
    assert infl.market_shock + infl.sector_shocks["Energy"] > 0  # a beta-1 energy name gained


def test_scenario_validation() -> None:
    base = {"name": "x", "description": "", "start": dt.date(2020, 1, 2), "end": dt.date(2020, 1, 3)}
    with pytest.raises(ValueError, match="unknown sector"):
        Scenario(**base, market_shock=-0.1, sector_shocks={"Tech": -0.1})
    with pytest.raises(ValueError, match="unknown factor"):
        Scenario(**base, market_shock=-0.1, factor_shocks={"low_vol": 0.1})
    with pytest.raises(ValueError, match="market_shock"):
        Scenario(**base, market_shock=-1.0)
    with pytest.raises(ValueError, match="before"):
        Scenario(**{**base, "end": dt.date(2019, 1, 1)}, market_shock=-0.1)


def test_hand_example() -> None:
    # r_A = 1.2 * -0.10 + 0.05 = -0.07, r_B = 0.8 * -0.10 = -0.08
    # contributions: A = -0.6 * -0.07 = 0.042, B = 0.2 * -0.08 = -0.016, loss = 0.026
    out = stress_losses({"A": 0.6, "B": -0.2}, {"A": 1.2, "B": 0.8}, {"A": "Energy", "B": "Financials"}, [TOY])
    assert out.columns == list(STRESS_COLUMNS)
    row = out.row(0, named=True)
    assert row["scenario"] == "toy" and row["worst_symbol"] == "A"
    assert abs(row["loss"] - 0.026) < TOL
    assert abs(row["worst_contribution"] - 0.042) < TOL


def test_hand_example_with_style_exposures() -> None:
    # value loadings A = 1, B = -2 add 0.02 and -0.04: r_A = -0.05, r_B = -0.12
    # contributions: A = 0.03, B = 0.2 * -0.12 = -0.024, loss = 0.006
    out = stress_losses(
        np.array([0.6, -0.2]),
        np.array([1.2, 0.8]),
        ["Energy", "Financials"],
        [TOY],
        symbols=["A", "B"],
        exposures={"value": {"A": 1.0, "B": -2.0}, "size": [5.0, 5.0]},  # no size shock in TOY
    )
    assert abs(out["loss"][0] - 0.006) < TOL
    assert out["worst_symbol"][0] == "A" and abs(out["worst_contribution"][0] - 0.03) < TOL


def test_alignment_and_empty_book() -> None:
    by_dict = stress_losses({"A": 0.3, "B": 0.2}, [1.0, 1.5], ["Energy", "Utilities"])
    by_array = stress_losses([0.3, 0.2], {"A": 1.0, "B": 1.5}, {"A": "Energy", "B": "Utilities"}, symbols=["A", "B"])
    assert by_dict.equals(by_array)
    assert by_dict["scenario"].to_list() == [s.name for s in SCENARIOS]
    # 1987: -(0.3 * 1.0 + 0.2 * 1.5) * -0.205 = 0.123
    assert abs(by_dict.filter(pl.col("scenario") == "black_monday_1987")["loss"][0] - 0.123) < TOL
    assert abs(max_stress_loss(by_dict) - by_dict["loss"].max()) < TOL
    empty = stress_losses({}, {}, {})
    assert empty.height == len(SCENARIOS)
    assert empty["loss"].to_list() == [0.0] * len(SCENARIOS) and empty["worst_symbol"].to_list() == [""] * 4
    with pytest.raises(ValueError, match="betas lacks"):
        stress_losses({"A": 0.1}, {"B": 1.0}, {"A": "Energy"})
    with pytest.raises(ValueError, match="sectors has"):
        stress_losses([0.1, 0.2], [1.0, 1.0], ["Energy"])


def test_energy_long_gains_in_2022() -> None:
    # -0.1 * (1.1 * -0.25 + 0.65) = -0.0375: a gain
    out = stress_losses({"XOM": 0.1}, {"XOM": 1.1}, {"XOM": "Energy"}, [BY_NAME["inflation_2022"]])
    assert abs(out["loss"][0] + 0.0375) < TOL
    assert out["worst_contribution"][0] < 0


@st.composite
def balanced_long_books(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Long-only books holding every sector at 5%-15% of NAV (at most 100% invested), betas 0.8-1.2.

    Even the most favourable such book for 2022 (15% each in energy, utilities, staples and health care, 5% in
    the rest, every beta 0.8) loses about 4.9% there, and every sector return is negative in the other crashes.
    """
    per_sector = np.array(draw(st.lists(_floats(0.05, 0.15), min_size=len(SECTORS), max_size=len(SECTORS))))
    per_sector = per_sector / max(1.0, per_sector.sum())
    weights, sectors = [], []
    for sector, total in zip(SECTORS, per_sector, strict=True):
        k = draw(st.integers(1, 3))
        split = np.array(draw(st.lists(_floats(0.1, 1.0), min_size=k, max_size=k)))
        weights.extend(total * split / split.sum())
        sectors.extend([sector] * k)
    betas = draw(st.lists(_floats(0.8, 1.2), min_size=len(weights), max_size=len(weights)))
    return np.array(weights), np.array(betas), sectors


@settings(max_examples=100, deadline=None)
@given(book=balanced_long_books())
def test_balanced_long_only_book_loses_in_every_crash(book: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    w, beta, sectors = book
    out = stress_losses(w, beta, sectors)
    assert (out["loss"] > 0).all(), out


@settings(max_examples=100, deadline=None)
@given(
    w=arrays(np.float64, 8, elements=_floats(-0.2, 0.2)),
    beta=arrays(np.float64, 8, elements=_floats(0.0, 2.0)),
    value=arrays(np.float64, 8, elements=_floats(-3.0, 3.0)),
    sector_idx=st.lists(st.integers(0, len(SECTORS) - 1), min_size=8, max_size=8),
    a=_floats(-3.0, 3.0),
)
def test_stress_loss_is_linear_in_weights(
    w: np.ndarray, beta: np.ndarray, value: np.ndarray, sector_idx: list[int], a: float
) -> None:
    sectors = [SECTORS[i] for i in sector_idx]
    base = stress_losses(w, beta, sectors, exposures={"value": value})["loss"].to_numpy()
    scaled = stress_losses(a * w, beta, sectors, exposures={"value": value})["loss"].to_numpy()
    np.testing.assert_allclose(scaled, a * base, rtol=0, atol=TOL)


def test_estimate_betas_match_polyfit() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(0.0004, 0.012, 500)
    true = np.array([0.5, 1.0, 1.3, -0.2])
    r = 0.0002 + m[:, None] * true + rng.normal(0, 0.01, (500, 4))
    got = estimate_betas(r, m)
    want = np.array([np.polyfit(m, r[:, j], 1)[0] for j in range(4)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    r[:50, 1] = np.nan  # pairwise: column 1 uses rows 50..499 only
    got = estimate_betas(r, m)
    assert abs(got[1] - np.polyfit(m[50:], r[50:, 1], 1)[0]) < 1e-10
    assert abs(got[0] - want[0]) < 1e-10
    assert np.isnan(estimate_betas(r, np.full(500, 0.01))).all()
    with pytest.raises(ValueError, match="align"):
        estimate_betas(r, m[:-1])


# ---------------------------------------------------------------------------------------------- limits


def test_default_limits_are_the_seed_table() -> None:
    table = {lim.name: (lim.value, lim.action) for lim in DEFAULT_LIMITS}
    assert table == {
        "max_gross_leverage": (1.0, "SCALE"),
        "max_drawdown": (0.18, "REJECT"),
        "var_95": (0.04, "SCALE"),
        "cvar_95": (0.06, "SCALE"),
        "stress_loss": (0.25, "REJECT"),
        "sector_exposure": (0.15, "SCALE"),
        "correlation_shock": (0.70, "SCALE"),
    }
    with pytest.raises(ValueError, match="action"):
        Limit("x", 1.0, "WARN")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value"):
        Limit("x", 0.0, "SCALE")


def test_with_values_overrides_from_config() -> None:
    limits = with_values({"var_95": 0.03, "stress_loss": 0.2})
    table = {lim.name: lim for lim in limits}
    assert table["var_95"] == Limit("var_95", 0.03, "SCALE")
    assert table["stress_loss"] == Limit("stress_loss", 0.2, "REJECT")
    assert table["cvar_95"] == Limit("cvar_95", 0.06, "SCALE")
    with pytest.raises(ValueError, match="unknown limits"):
        with_values({"var95": 0.03})


def test_check_limits_scale_and_reject() -> None:
    checks = check_limits(
        {"var_95": 0.05, "max_gross_leverage": 0.9, "max_drawdown": 0.2, "stress_loss": 0.1, "other": 9.0}
    )
    by = {c.name: c for c in checks}
    assert set(by) == {"var_95", "max_gross_leverage", "max_drawdown", "stress_loss"}
    assert by["var_95"].breached and abs(by["var_95"].scale - 0.8) < TOL and by["var_95"].limit == 0.04
    assert not by["max_gross_leverage"].breached and by["max_gross_leverage"].scale == 1.0
    assert by["max_drawdown"].breached and by["max_drawdown"].scale == 1.0 and by["max_drawdown"].action == "REJECT"
    assert not by["stress_loss"].breached
    assert abs(combined_scale(checks) - 0.8) < TOL
    assert [c.name for c in rejections(checks)] == ["max_drawdown"]
    assert combined_scale([]) == 1.0


def test_check_limits_edge_values() -> None:
    by = {c.name: c for c in check_limits({"var_95": 0.04, "cvar_95": float("nan"), "max_gross_leverage": 0.0})}
    at, nan, zero = by["var_95"], by["cvar_95"], by["max_gross_leverage"]
    assert not at.breached and at.scale == 1.0
    assert nan.breached and nan.scale == 0.0
    assert not zero.breached and zero.scale == 1.0
    assert combined_scale([at, nan, zero]) == 0.0


def test_sector_exposures_are_gross() -> None:
    got = sector_exposures({"A": 0.1, "B": -0.08, "C": 0.05}, {"A": "Energy", "B": "Energy", "C": "Utilities"})
    assert got.keys() == {"Energy", "Utilities"}
    assert abs(got["Energy"] - 0.18) < TOL and abs(got["Utilities"] - 0.05) < TOL
    scale = sector_scale([0.1, -0.08, 0.05], ["Energy", "Energy", "Utilities"])
    np.testing.assert_allclose(scale, [0.15 / 0.18, 0.15 / 0.18, 1.0], rtol=0, atol=TOL)


@settings(max_examples=150, deadline=None)
@given(
    w=arrays(np.float64, st.integers(1, 30), elements=_floats(-0.2, 0.2)),
    data=st.data(),
    cap=_floats(0.01, 0.3),
)
def test_sector_scale_caps_every_sector(w: np.ndarray, data: st.DataObject, cap: float) -> None:
    sectors = data.draw(st.lists(st.sampled_from(SECTORS[:5]), min_size=w.size, max_size=w.size))
    before = sector_exposures(w, sectors)
    factor = sector_scale(w, sectors, cap=cap)
    after = sector_exposures(w * factor, sectors)
    assert np.all(factor > 0) and np.all(factor <= 1.0)
    assert np.all(np.abs(w * factor) <= np.abs(w))
    for s, gross in after.items():
        assert gross <= cap + 1e-12
        if before[s] <= cap:
            assert np.all(factor[[x == s for x in sectors]] == 1.0)
        else:
            assert abs(gross - cap) < TOL


@settings(max_examples=100, deadline=None)
@given(
    w=arrays(np.float64, 6, elements=_floats(-0.3, 0.3)),
    book=st.data(),
)
def test_combined_scale_fixes_every_homogeneous_scale_limit(w: np.ndarray, book: st.DataObject) -> None:
    sectors = book.draw(st.lists(st.sampled_from(SECTORS[:3]), min_size=6, max_size=6))
    vols = book.draw(arrays(np.float64, 6, elements=_floats(0.1, 0.6)))
    var = 1.645 * correlation_shock_vol(w, vols, rho=0.3) / math.sqrt(252)  # a homogeneous VaR proxy

    def metrics(x: np.ndarray, v: float) -> dict[str, float]:
        return {
            "max_gross_leverage": float(np.abs(x).sum()),
            "sector_exposure": max(sector_exposures(x, sectors).values()),
            "var_95": v,
        }

    checks = check_limits(metrics(w, var))
    k = combined_scale(checks)
    assert 0.0 <= k <= 1.0
    for c in check_limits(metrics(w * k, var * k)):
        assert c.value <= c.limit * (1 + 1e-12)


# ---------------------------------------------------------------------------------------------- correlation


def test_average_correlation_hand_examples() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 1))
    r = np.hstack([x, 2 * x + 1, -x, rng.normal(size=(300, 1))])
    # names 0 and 1 are perfectly correlated; name 3 is not held
    assert abs(average_correlation(r, np.array([0.1, -0.3, 0.0, 0.0])) - 1.0) < TOL
    # names 0, 1, 2: pair weights |w_i w_j| = 0.02 (0,1), 0.01 (0,2), 0.02 (1,2); rho = 1, -1, -1
    got = average_correlation(r, np.array([0.1, 0.2, 0.1, 0.0]))
    assert abs(got - (0.02 - 0.01 - 0.02) / 0.05) < TOL
    assert average_correlation(r, np.array([0.5, 0.0, 0.0, 0.0])) == 0.0
    tiny = np.array([1e-200, 2e-200, 1e-200, 0.0])  # |w_i w_j| underflows: only relative weights matter
    assert abs(average_correlation(r, tiny) - (0.02 - 0.01 - 0.02) / 0.05) < TOL


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    w=arrays(np.float64, 5, elements=st.one_of(st.just(0.0), _floats(1e-6, 0.3), _floats(-0.3, -1e-6))),
)
def test_average_correlation_matches_an_explicit_loop(seed: int, w: np.ndarray) -> None:
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
    held = [i for i in range(5) if w[i] != 0]
    assume(len(held) >= 2)
    c = np.corrcoef(r, rowvar=False)
    num = sum(abs(w[i] * w[j]) * c[i, j] for i in held for j in held if i != j)
    den = sum(abs(w[i] * w[j]) for i in held for j in held if i != j)
    assert abs(average_correlation(r, w) - num / den) < 1e-12


def test_average_correlation_drops_incomplete_rows_and_constant_names() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=(100, 3))
    r[:, 2] = 0.01  # constant: correlates 0
    w = np.array([0.2, 0.2, 0.2])
    c01 = np.corrcoef(r[:, 0], r[:, 1])[0, 1]
    assert abs(average_correlation(r, w) - c01 / 3) < TOL  # pairs (0,1), (0,2), (1,2) with equal weight
    r2 = r.copy()
    r2[:10, 0] = np.nan
    c01 = np.corrcoef(r[10:, 0], r[10:, 1])[0, 1]
    assert abs(average_correlation(r2, w) - c01 / 3) < TOL


@settings(max_examples=150, deadline=None)
@given(
    w=arrays(np.float64, st.integers(1, 12), elements=_floats(-0.5, 0.5)),
    data=st.data(),
    rho=_floats(0.0, 1.0),
)
def test_correlation_shock_vol_matches_the_covariance_matrix(w: np.ndarray, data: st.DataObject, rho: float) -> None:
    vols = data.draw(arrays(np.float64, w.size, elements=_floats(0.0, 0.8)))
    corr = np.full((w.size, w.size), rho)
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(vols, vols)
    want = math.sqrt(max(float(w @ cov @ w), 0.0))
    assert abs(correlation_shock_vol(w, vols, rho) - want) < 1e-12


def test_correlation_shock_vol_extremes() -> None:
    w, s = np.array([0.5, 0.3, -0.2]), np.array([0.2, 0.3, 0.25])
    ws = w * s
    assert abs(correlation_shock_vol(w, s, 1.0) - abs(ws.sum())) < TOL
    assert abs(correlation_shock_vol(w, s, 0.0) - math.sqrt((ws**2).sum())) < TOL
    long_only = np.abs(w)
    assert correlation_shock_vol(long_only, s) > correlation_shock_vol(long_only, s, 0.3)  # more corr, more vol
    with pytest.raises(ValueError, match="rho"):
        correlation_shock_vol(w, s, 1.5)
