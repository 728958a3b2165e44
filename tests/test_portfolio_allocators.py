"""Allocators (seed 000 §8.1, §8.3) and the risk integration of the portfolio step (seed 002 §4.7).

Oracles: closed forms, KKT conditions, scipy optimisers and Gauss-Hermite quadrature, and skfolio's
``RiskBudgeting``. Tolerances are stated in each test's docstring.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import minimize
from scipy.stats import norm

from mqf_pipeline.portfolio.allocators import (
    ALLOCATORS,
    DEFAULT_CAPS,
    apply_caps,
    kelly_weights,
    manage_positions,
    risk_contributions,
    risk_parity,
    volatility_target,
)
from mqf_pipeline.portfolio.risk_integration import (
    apply_risk_limits,
    parametric_var_daily,
    pre_trade_check,
    scale_weights,
)

NO_CAPS = {"max_position": math.inf, "max_gross": math.inf}


def random_cov(n: int, seed: int, factors: int = 3) -> np.ndarray:
    """An annualised covariance: ``factors`` common factors plus idiosyncratic noise (vols ~15-45%/year)."""
    rng = np.random.default_rng(seed)
    load = rng.normal(0.0, 0.12, (n, factors))
    idio = rng.uniform(0.1, 0.4, n) ** 2
    return load @ load.T + np.diag(idio)


def correlated_cov() -> tuple[np.ndarray, np.ndarray]:
    """Three assets, vols 20/25/30% a year, correlations 0.5/0.2/0.4; ``mu`` annualised excess returns."""
    vol = np.array([0.20, 0.25, 0.30])
    corr = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.4], [0.2, 0.4, 1.0]])
    return corr * np.outer(vol, vol), np.array([0.06, 0.03, 0.07])


# ------------------------------------------------------------------------------------------------ caps
def test_apply_caps_order_no_shorts_then_gross_then_single_name() -> None:
    """Hand-computed: negatives dropped, gross scaled to 1, then names clipped to 0.10 (exact to 1e-15)."""
    w = apply_caps(np.array([0.6, 0.6, 0.05, -0.3]), max_position=0.10, max_gross=1.0, allow_shorts=False)
    np.testing.assert_allclose(w, [0.1, 0.1, 0.04, 0.0], rtol=0, atol=1e-15)
    w = apply_caps(np.array([0.6, 0.6, 0.05, -0.3]), max_position=0.5, max_gross=1.0, allow_shorts=True)
    np.testing.assert_allclose(w, np.array([0.6, 0.6, 0.05, -0.3]) / 1.55, rtol=0, atol=1e-15)
    w = apply_caps(np.array([0.3, -0.2]), max_position=0.25, max_gross=1.0, allow_shorts=True)
    np.testing.assert_allclose(w, [0.25, -0.2], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="max_position"):
        apply_caps(np.array([0.1]), max_position=0.0)


# ----------------------------------------------------------------------------------------- risk parity
@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=st.integers(2, 40), seed=st.integers(0, 10_000), equal=st.booleans())
def test_risk_parity_contributions_equal_budgets(n: int, seed: int, equal: bool) -> None:
    """Risk contributions ``w_i (Sigma w)_i / w'Sigma w`` equal the budgets within 1e-8; weights > 0 sum to budget
    (1e-12) when no cap binds."""
    cov = random_cov(n, seed)
    rng = np.random.default_rng(seed + 1)
    budgets = None if equal else rng.uniform(0.2, 3.0, n)
    w = risk_parity(cov, budget=0.8, risk_budgets=budgets, max_position=1.0)
    target = np.full(n, 1.0 / n) if budgets is None else budgets / budgets.sum()
    np.testing.assert_allclose(risk_contributions(w, cov), target, rtol=0, atol=1e-8)
    assert np.all(w > 0)
    assert abs(w.sum() - 0.8) < 1e-12


def test_risk_parity_diagonal_closed_form() -> None:
    """Diagonal Sigma: ``w_i ∝ sqrt(b_i) / sigma_i`` (inverse vol for equal budgets), within 1e-10."""
    sd = np.array([0.10, 0.20, 0.35, 0.50, 0.15])
    cov = np.diag(sd**2)
    w = risk_parity(cov, max_position=1.0)
    np.testing.assert_allclose(w, (1 / sd) / (1 / sd).sum(), rtol=0, atol=1e-10)
    b = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    w = risk_parity(cov, budget=0.5, risk_budgets=b, max_position=1.0)
    raw = np.sqrt(b) / sd
    np.testing.assert_allclose(w, 0.5 * raw / raw.sum(), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("n", "seed"), [(4, 3), (8, 11), (15, 29)])
def test_risk_parity_matches_skfolio(n: int, seed: int) -> None:
    """skfolio ``RiskBudgeting(VARIANCE)`` (Clarabel, tight tolerances, returns in percent: decimal daily units
    are badly scaled for Clarabel) agrees on the weights within 1e-6; same sample covariance on both sides."""
    from skfolio.measures import RiskMeasure
    from skfolio.optimization import RiskBudgeting

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, (400, n)) @ rng.normal(0, 0.5, (n, n)) + rng.normal(0, 0.01, (400, n))
    tight = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-10}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, solver_params=tight).fit(x * 100)
    cov = model.prior_estimator_.return_distribution_.covariance
    np.testing.assert_allclose(cov, np.cov(x * 100, rowvar=False), rtol=1e-12)
    w = risk_parity(cov * 252 / 1e4, max_position=1.0)  # back to annualised decimal: weights are scale-free
    np.testing.assert_allclose(w, model.weights_, rtol=0, atol=1e-6)


def test_risk_parity_caps_and_zero_budgets() -> None:
    """Zero-budget names get 0 and the rest is the ERC of the sub-matrix (1e-12); the single-name cap clips
    (``min(w, 0.10)``, 1e-15) without redistributing."""
    cov = random_cov(6, 5)
    b = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    w = risk_parity(cov, risk_budgets=b, max_position=1.0)
    keep = b > 0
    assert np.all(w[~keep] == 0)
    np.testing.assert_allclose(w[keep], risk_parity(cov[np.ix_(keep, keep)], max_position=1.0), rtol=0, atol=1e-12)
    uncapped = risk_parity(cov, max_position=1.0)
    assert uncapped.max() > 0.10
    np.testing.assert_allclose(risk_parity(cov), np.minimum(uncapped, 0.10), rtol=0, atol=1e-15)


def test_risk_parity_rejects_bad_input() -> None:
    """Negative budgets, zero variance with a positive budget, and an asymmetric cov raise ValueError."""
    cov = random_cov(3, 1)
    with pytest.raises(ValueError, match="risk_budgets"):
        risk_parity(cov, risk_budgets=np.array([1.0, -1.0, 1.0]))
    zero = cov.copy()
    zero[0, :] = zero[:, 0] = 0.0
    with pytest.raises(ValueError, match="positive variance"):
        risk_parity(zero)
    asym = cov.copy()
    asym[0, 1] += 0.01
    with pytest.raises(ValueError, match="symmetric"):
        risk_parity(asym)


# ---------------------------------------------------------------------------------------------- Kelly
def test_kelly_equals_fractional_closed_form_when_no_cap_binds() -> None:
    """All long, caps slack: ``gamma * Sigma^-1 mu`` to 1e-12 (against ``inv(Sigma) @ mu``)."""
    cov = random_cov(5, 7)
    mu = cov @ np.array([0.05, 0.1, 0.02, 0.08, 0.15])  # Sigma^-1 mu > 0 by construction
    f = kelly_weights(mu, cov, gamma=0.3)
    expected = 0.3 * np.linalg.inv(cov) @ mu
    assert np.all(expected > 0) and expected.max() <= 0.10 and expected.sum() <= 1.0
    np.testing.assert_allclose(f, expected, rtol=0, atol=1e-12)


def test_kelly_maximises_expected_log_growth() -> None:
    """Full Kelly (gamma = 1, no caps, shorts on) vs the numeric ``argmax_f E log(1 + f'R)``, R ~ N(mu/252,
    Sigma/252) one day; ``f'R`` is normal so E is an 80-node Gauss-Hermite sum. Within 1% (relative norm); a
    per-asset ``mu_i / sigma_i^2`` (ignoring correlations) is > 20% off here."""
    cov, mu = correlated_cov()
    md, sd = mu / 252, cov / 252
    nodes, wq = hermegauss(80)
    wq = wq / math.sqrt(2 * math.pi)

    def neg_growth(f: np.ndarray) -> tuple[float, np.ndarray]:
        m, s = float(f @ md), math.sqrt(float(f @ sd @ f))
        x = m + s * nodes
        grad = (wq @ (1 / (1 + x))) * md + (wq @ (nodes / (1 + x))) * (sd @ f) / s
        return -float(wq @ np.log1p(x)), -grad

    oracle = minimize(neg_growth, np.full(3, 0.5), jac=True, method="BFGS", options={"gtol": 1e-14}).x
    f = kelly_weights(mu, cov, gamma=1.0, allow_shorts=True, **NO_CAPS)
    assert f.min() < 0  # the correlated short leg is part of the check
    assert np.linalg.norm(f - oracle) / np.linalg.norm(oracle) < 0.01
    assert np.linalg.norm(mu / np.diag(cov) - oracle) / np.linalg.norm(oracle) > 0.2


def test_kelly_long_only_solves_the_constrained_problem() -> None:
    """Shorts off and the unconstrained Kelly has a short: KKT of ``max_{f>=0} f'mu - f'Sigma f / (2 gamma)``
    (gradient <= 1e-10 at 0, |gradient| <= 1e-10 where f > 0) and L-BFGS-B with bounds agrees within 1e-6;
    clipping the unconstrained vector at 0 would be > 1e-2 off."""
    cov, mu = correlated_cov()
    gamma = 0.5
    f = kelly_weights(mu, cov, gamma=gamma, allow_shorts=False, **NO_CAPS)
    grad = mu - cov @ f / gamma
    assert np.all(f >= 0)
    assert np.all(grad[f == 0] <= 1e-10) and np.any(f == 0)
    assert np.all(np.abs(grad[f > 0]) <= 1e-10)

    def neg(g: np.ndarray) -> tuple[float, np.ndarray]:
        return -float(g @ mu - g @ cov @ g / (2 * gamma)), -(mu - cov @ g / gamma)

    ref = minimize(
        neg,
        np.full(3, 0.1),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * 3,
        options={"ftol": 1e-15, "gtol": 1e-12},
    ).x
    np.testing.assert_allclose(f, ref, rtol=0, atol=1e-6)
    clipped = np.maximum(gamma * np.linalg.solve(cov, mu), 0)
    assert np.max(np.abs(clipped - f)) > 1e-2


def test_kelly_caps_scale_gross_then_clip() -> None:
    """Gross above the cap: the vector is scaled to gross 1 then clipped to 0.10 (hand formula, 1e-15)."""
    cov = random_cov(4, 2)
    mu = cov @ np.array([2.0, 1.0, 0.5, 0.05])
    raw = 0.3 * np.linalg.solve(cov, mu)
    assert raw.sum() > 1.0
    f = kelly_weights(mu, cov, gamma=0.3)
    np.testing.assert_allclose(f, np.minimum(raw / raw.sum(), 0.10), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="positive definite"):
        kelly_weights(mu, np.ones((4, 4)))
    with pytest.raises(ValueError, match="gamma"):
        kelly_weights(mu, cov, gamma=1.5)


# ------------------------------------------------------------------------------------ volatility target
def test_volatility_target_closed_form() -> None:
    """Scale ``target / sqrt(w'Sigma w)`` and ex-ante vol == target (1e-12); when that would pass max_gross the
    scale is ``max_gross / gross`` (1e-12) and the vol stays below target; a zero book is unchanged, scale 1."""
    cov, _ = correlated_cov()
    w = np.array([0.1, 0.05, 0.08])
    vol = math.sqrt(w @ cov @ w)
    out, scale = volatility_target(w, cov, target_vol=0.10, max_gross=1.0)
    assert abs(scale - 0.10 / vol) < 1e-12
    assert abs(math.sqrt(out @ cov @ out) - 0.10) < 1e-12
    np.testing.assert_allclose(out, w * 0.10 / vol, rtol=0, atol=1e-12)
    out, scale = volatility_target(w, cov, target_vol=0.50, max_gross=1.0)
    assert abs(scale - 1.0 / w.sum()) < 1e-12 and abs(np.abs(out).sum() - 1.0) < 1e-12
    assert math.sqrt(out @ cov @ out) < 0.50
    out, scale = volatility_target(np.zeros(3), cov)
    assert scale == 1.0 and not out.any()


# ------------------------------------------------------------------------------------------ registry
def test_registry_names_and_common_signature() -> None:
    """Exactly the three allocators (mean_variance is the integrator's); each is called the same way and
    respects caps (1e-15), long-only, and gives blocked names (mu = 0) weight exactly 0; risk parity and vol
    targeting also give 0 to mu < 0 names."""
    assert set(ALLOCATORS) == {"risk_parity", "kelly", "volatility_target"}
    assert "mean_variance" not in ALLOCATORS
    n = 30
    cov = random_cov(n, 9)
    mu = np.random.default_rng(9).normal(0.05, 0.05, n)
    mu[:4] = 0.0
    for name, alloc in ALLOCATORS.items():
        w = alloc(mu, cov, caps=DEFAULT_CAPS, prev=np.zeros(n))
        assert w.shape == (n,), name
        assert np.all(w >= 0) and np.all(w[:4] == 0), name
        if name != "kelly":  # long-only Kelly may hold a negative-mu name as a hedge (KKT-optimal)
            assert np.all(w[mu < 0] == 0), name
        assert w.max() <= 0.10 + 1e-15 and w.sum() <= 1.0 + 1e-15 and w.sum() > 0, name
    # why the registry drops mu == 0 names: Sigma^-1 mu gives a blocked, correlated name a hedge weight
    assert np.any(kelly_weights(mu, cov, allow_shorts=True, **NO_CAPS)[:4] != 0)
    with pytest.raises(ValueError, match="unknown caps"):
        ALLOCATORS["kelly"](mu, cov, caps={"max_pos": 0.1})
    with pytest.raises(ValueError, match="unknown params"):
        ALLOCATORS["kelly"](mu, cov, caps={}, params={"gama": 0.5})
    with pytest.raises(ValueError, match="prev"):
        ALLOCATORS["kelly"](mu, cov, caps={}, prev=np.zeros(n + 1))


def test_registry_entries_match_the_functions() -> None:
    """Slack caps: risk_parity is the ERC of the mu > 0 names (1e-12); kelly is ``gamma Sigma^-1 mu`` with the
    given gamma (1e-12); volatility_target is inverse vol with ex-ante vol == target_vol (1e-12)."""
    cov, mu = correlated_cov()
    mu = np.array([0.06, -0.01, 0.07])
    caps = {"max_position": 10.0, "max_gross": 10.0, "allow_shorts": True}
    rp = ALLOCATORS["risk_parity"](mu, cov, caps=caps, params={"budget": 1.0})
    keep = mu > 0
    np.testing.assert_allclose(rp[keep], risk_parity(cov[np.ix_(keep, keep)], max_position=1.0), atol=1e-12)
    assert rp[1] == 0.0
    kel = ALLOCATORS["kelly"](mu, cov, caps=caps, params={"gamma": 0.5})
    np.testing.assert_allclose(kel, 0.5 * np.linalg.solve(cov, mu), rtol=0, atol=1e-12)
    vt = ALLOCATORS["volatility_target"](mu, cov, caps=caps, params={"target_vol": 0.12})
    assert abs(math.sqrt(vt @ cov @ vt) - 0.12) < 1e-12
    base = np.sign(mu) / np.sqrt(np.diag(cov))
    np.testing.assert_allclose(vt / vt[0], base / base[0], rtol=1e-12)


# -------------------------------------------------------------------------------- position management
def test_manage_positions_branches() -> None:
    """Each branch of seed 000 §8.3 (exact): add, reduce/close, hold, no-signal no-open, open only with the
    signal's direction, and the symmetric short cases."""
    current = {"ADD": 0.04, "RED": 0.06, "CLO": 0.05, "AGN": 0.03, "HLD": 0.07, "NAN": 0.02, "SHT": -0.05}
    targets = {
        "ADD": 0.08,
        "RED": 0.02,
        "CLO": 0.0,
        "AGN": 0.09,
        "HLD": 0.01,
        "NAN": 0.0,
        "SHT": 0.0,
        "NEW": 0.05,
        "NOS": 0.05,
        "NEG": 0.05,
    }
    signals = {"ADD": 1.2, "RED": -0.5, "CLO": -2.0, "AGN": -1.0, "NAN": math.nan, "SHT": 1.0, "NEW": 0.8, "NEG": -1.0}
    out = manage_positions(targets, current, signals)
    assert out == {
        "ADD": 0.08,  # positive signal + long: add to the target
        "RED": 0.02,  # negative signal + long: reduce
        "CLO": 0.0,  # negative signal + long: close
        "AGN": 0.03,  # negative signal + long, target above current: no add against the signal
        "HLD": 0.07,  # no signal + existing: hold
        "NAN": 0.02,  # NaN signal is no signal: hold
        "SHT": 0.0,  # positive signal + short: cover
        "NEW": 0.05,  # positive signal, no position: open
        "NOS": 0.0,  # no signal, no position: nothing opened
        "NEG": 0.0,  # negative signal, long target: not opened
    }


# ---------------------------------------------------------------------------------------- risk limits
def test_apply_risk_limits() -> None:
    """Blocked names get mu = 0, others ``mu * multiplier`` (exact); an index array or a multiplier outside
    [0, 1] is refused. The unconstrained mean-variance optimum with the scaled mu equals the original optimum
    with risk aversion lambda / s (1e-12)."""
    cov, mu = correlated_cov()
    blocked = np.array([False, True, False])
    out = apply_risk_limits(mu, blocked=blocked, sizing_multiplier=0.5)
    np.testing.assert_array_equal(out, [0.03, 0.0, 0.035])
    lam = 2.0
    np.testing.assert_allclose(
        np.linalg.solve(cov, out) / (2 * lam),
        np.linalg.solve(cov, np.where(blocked, 0.0, mu)) / (2 * lam / 0.5),
        rtol=0,
        atol=1e-12,
    )
    with pytest.raises(TypeError, match="boolean"):
        apply_risk_limits(mu, blocked=np.array([0, 1, 0]), sizing_multiplier=1.0)
    with pytest.raises(ValueError, match="sizing_multiplier"):
        apply_risk_limits(mu, blocked=blocked, sizing_multiplier=1.5)
    with pytest.raises(ValueError, match="shape"):
        apply_risk_limits(mu, blocked=np.array([True]), sizing_multiplier=1.0)


def test_parametric_var_matches_normal_tail() -> None:
    """``P(loss > VaR) = 1 - level`` for the one-day normal ``N(0, w'Sigma w / 252)`` (via norm.cdf, 1e-12)."""
    cov, _ = correlated_cov()
    w = np.array([0.3, 0.4, 0.3])
    sd_daily = math.sqrt(w @ cov @ w / 252)
    for level in (0.95, 0.99):
        var = parametric_var_daily(w, cov, level)
        assert abs(norm.cdf(-var / sd_daily) - (1 - level)) < 1e-12


def test_pre_trade_check_scales_var_to_the_limit() -> None:
    """A book with VaR above the limit: ``scale * weights`` has VaR equal to the limit (1e-12), ok False;
    gross binding: gross after scaling == max_gross (1e-12); vol cap: vol after scaling == vol_target."""
    cov = random_cov(6, 4) * 4  # vols ~0.3-0.9/year: a concentrated book breaches 4% daily VaR
    w = np.array([0.3, 0.3, 0.2, 0.1, 0.05, 0.05])
    chk = pre_trade_check(w, cov, var_limit_daily=0.02, max_gross=1.0)
    assert chk.var_daily > 0.02 and not chk.ok and 0 < chk.scale_factor < 1
    assert any("var_daily" in r for r in chk.reasons)
    assert abs(parametric_var_daily(scale_weights(w, chk.scale_factor), cov) - 0.02) < 1e-12

    chk = pre_trade_check(w * 3, cov, var_limit_daily=1.0, max_gross=1.0)
    assert not chk.ok and abs(np.abs(scale_weights(w * 3, chk.scale_factor)).sum() - 1.0) < 1e-12

    chk = pre_trade_check(w, cov, var_limit_daily=1.0, vol_target=0.05)
    scaled = scale_weights(w, chk.scale_factor)
    assert not chk.ok and abs(math.sqrt(scaled @ cov @ scaled) - 0.05) < 1e-12


def test_pre_trade_check_passes_a_book_within_limits() -> None:
    """A small book: ok True, scale_factor exactly 1.0, no reasons; metrics match their closed forms (1e-15)."""
    cov, _ = correlated_cov()
    w = np.array([0.05, 0.05, 0.05])
    chk = pre_trade_check(w, cov, vol_target=0.10)
    assert chk.ok and chk.scale_factor == 1.0 and chk.reasons == []
    assert abs(chk.gross - 0.15) < 1e-15
    assert abs(chk.vol_annual - math.sqrt(w @ cov @ w)) < 1e-15
    assert abs(chk.var_daily - norm.ppf(0.95) * math.sqrt(w @ cov @ w / 252)) < 1e-15


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 25),
    lever=st.floats(0.01, 20.0),
    var_limit=st.floats(0.001, 0.1),
    max_gross=st.floats(0.2, 2.0),
    vol_target=st.one_of(st.none(), st.floats(0.02, 0.5)),
)
def test_pre_trade_scaling_property(
    seed: int, n: int, lever: float, var_limit: float, max_gross: float, vol_target: float | None
) -> None:
    """After scaling by the check's factor: VaR <= limit + 1e-12, gross <= max_gross + 1e-12 (and vol <=
    vol_target + 1e-12); factor in (0, 1]; the scaled book then passes the check up to that tolerance, and a
    book that was ok keeps factor 1."""
    cov = random_cov(n, seed)
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, n)
    w *= lever / np.abs(w).sum()
    chk = pre_trade_check(w, cov, var_limit_daily=var_limit, max_gross=max_gross, vol_target=vol_target)
    assert 0 < chk.scale_factor <= 1
    assert chk.ok == (chk.scale_factor == 1.0)
    scaled = scale_weights(w, chk.scale_factor)
    assert parametric_var_daily(scaled, cov) <= var_limit + 1e-12
    assert np.abs(scaled).sum() <= max_gross + 1e-12
    if vol_target is not None:
        assert math.sqrt(scaled @ cov @ scaled) <= vol_target + 1e-12


def test_scale_weights_mapping_and_range() -> None:
    """Arrays and symbol mappings are scaled exactly; factors outside [0, 1] raise."""
    np.testing.assert_array_equal(scale_weights(np.array([0.2, -0.1]), 0.5), [0.1, -0.05])
    assert scale_weights({"A": 0.2, "B": 0.1}, 0.5) == {"A": 0.1, "B": 0.05}
    with pytest.raises(ValueError, match="factor"):
        scale_weights(np.array([0.1]), 1.2)
