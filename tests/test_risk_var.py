"""VaR, CVaR, component CVaR and the EVT (GPD peaks-over-threshold) tail: oracles from NUMERICS.md.

Hand calculations for the historical (pinned numpy quantile method) and normal VaR, the McNeil-Frey
VaR/ES formulas against the GPD tail function and a ``quad`` integral of VaR, the vectorised GPD
maximum likelihood fit against ``scipy.stats.genpareto.fit``, recovery of a known tail index on
large simulated samples, the Euler decomposition of CVaR, and the backtest statistics (Kupiec,
Christoffersen) against closed forms, ``vartests`` and ``scipy.stats.chi2_contingency``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import scipy.optimize as so
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as st_h
from scipy.integrate import quad

from mqf_pipeline.risk import evt
from mqf_pipeline.risk.evt import MIN_EVT_EXCEEDANCES, scaled_component_cvar
from mqf_pipeline.risk.var import (
    QUANTILE_METHOD,
    christoffersen_independence,
    component_cvar,
    historical_cvar,
    historical_var,
    hybrid_var,
    kupiec_pof,
    parametric_var,
    transition_counts,
)

# ten daily returns, already sorted ascending for the hand calculations
SAMPLE = np.array([-0.05, -0.03, -0.021, -0.01, 0.0, 0.004, 0.011, 0.015, 0.02, 0.032])


def _hand_stats(x: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) by plain sums."""
    n = len(x)
    mean = sum(x) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))


# ---------------------------------------------------------------------------------------------
# historical / parametric / hybrid VaR


def test_quantile_method_is_pinned_linear() -> None:
    """The pin is numpy's "linear" (Hyndman-Fan type 7), used by historical_var (exact)."""
    assert QUANTILE_METHOD == "linear"
    r = np.random.default_rng(0).standard_t(4, 252) * 0.012
    assert historical_var(r) == -np.quantile(r, 1 - 0.95, method="linear")


def test_historical_var_by_hand() -> None:
    """Sorted sample x_(0..9), alpha = 1 - level, h = (n - 1) alpha, q = x_(h0) + frac(h) (x_(h0+1) - x_(h0)).

    Tolerance 1e-10 (absolute, on losses of a few percent)."""
    # level 0.95: h = 9 * 0.05 = 0.45 -> q = -0.05 + 0.45 * (-0.03 + 0.05) = -0.041
    assert historical_var(SAMPLE, 0.95) == pytest.approx(0.041, abs=1e-10)
    # level 0.80: h = 9 * 0.2 = 1.8 -> q = -0.03 + 0.8 * (-0.021 + 0.03) = -0.0228
    assert historical_var(SAMPLE, 0.80) == pytest.approx(0.0228, abs=1e-10)
    # 2-D: one column per series, the shuffled sample gives the same quantile
    shuffled = np.random.default_rng(1).permutation(SAMPLE)
    out = historical_var(np.column_stack([SAMPLE, shuffled, -SAMPLE]), 0.95)
    # -SAMPLE sorted: -0.032, -0.02, ... -> q = -0.032 + 0.45 * 0.012 = -0.0266
    np.testing.assert_allclose(out, [0.041, 0.041, 0.0266], rtol=0, atol=1e-10)
    assert isinstance(historical_var(SAMPLE), float)
    assert out.shape == (3,)


def test_parametric_var_closed_form() -> None:
    """Normal VaR = -(mean + z_{1-level} * sd(ddof=1)), z from statistics.NormalDist; tolerance 1e-10."""
    mean, sd = _hand_stats(SAMPLE.tolist())
    for level in (0.95, 0.99):
        z = NormalDist().inv_cdf(1 - level)
        assert parametric_var(SAMPLE, level) == pytest.approx(-(mean + z * sd), abs=1e-10)
    # ddof matters: the population sd would give a different number
    pop = -(mean + NormalDist().inv_cdf(0.05) * sd * math.sqrt(9 / 10))
    assert abs(parametric_var(SAMPLE) - pop) > 1e-4


def test_hybrid_var_by_hand() -> None:
    """Seed 60/40 hybrid at 95%: 0.6 * 0.041 + 0.4 * normal closed form; tolerance 1e-10."""
    mean, sd = _hand_stats(SAMPLE.tolist())
    param = -(mean + NormalDist().inv_cdf(0.05) * sd)
    assert hybrid_var(SAMPLE) == pytest.approx(0.6 * 0.041 + 0.4 * param, abs=1e-10)
    assert hybrid_var(SAMPLE, hist_weight=1.0) == pytest.approx(0.041, abs=1e-10)
    assert hybrid_var(SAMPLE, hist_weight=0.0) == pytest.approx(param, abs=1e-10)
    two = np.column_stack([SAMPLE, 2 * SAMPLE])
    np.testing.assert_allclose(
        hybrid_var(two), [0.6 * 0.041 + 0.4 * param, 2 * (0.6 * 0.041 + 0.4 * param)], atol=1e-10
    )
    with pytest.raises(ValueError, match="hist_weight"):
        hybrid_var(SAMPLE, hist_weight=1.5)


def test_numpy_quantile_methods_differ() -> None:
    """Why the method is pinned: numpy's methods give different 95% VaRs (differences stated exactly).

    On the 10-point sample: linear 0.041 by hand, while weibull/hazen/inverted_cdf all return the
    minimum (0.05): a 22% difference. On 252 Student-t returns (seed 3) weibull differs from linear by
    more than 2%, median_unbiased by more than 0.4%."""
    for method in ("weibull", "hazen", "inverted_cdf"):
        assert -np.quantile(SAMPLE, 0.05, method=method) == pytest.approx(0.05, abs=1e-15)
    r = 0.012 * np.random.default_rng(3).standard_t(4, 252)
    lin = historical_var(r)
    assert abs(-np.quantile(r, 0.05, method="weibull") / lin - 1) > 0.02
    assert abs(-np.quantile(r, 0.05, method="median_unbiased") / lin - 1) > 0.004


def test_nan_and_shape_errors() -> None:
    """NaN/inf raise ValueError naming the first bad column (callers clean first); bad shapes/levels raise."""
    r = np.random.default_rng(0).normal(0, 0.01, (50, 4))
    r[7, 2] = np.nan
    r[9, 3] = np.inf
    for fn in (historical_var, parametric_var, hybrid_var, historical_cvar, evt.fit_pot):
        with pytest.raises(ValueError, match="column 2"):
            fn(r)
    with pytest.raises(ValueError, match="level"):
        historical_var(SAMPLE, 1.0)
    with pytest.raises(ValueError, match="shape"):
        historical_var(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="rows"):
        parametric_var(np.array([0.01]))


# ---------------------------------------------------------------------------------------------
# historical CVaR and the Euler decomposition


def test_historical_cvar_by_hand_and_tie_rule() -> None:
    """Mean loss over returns at or below the quantile; ties with the quantile are all in; exact to 1e-12."""
    # level 0.8 -> q = -0.0228: tail {-0.05, -0.03} -> 0.04
    assert historical_cvar(SAMPLE, 0.80) == pytest.approx(0.04, abs=1e-12)
    # ties: sorted -0.05, -0.02, -0.02, -0.02, 0.01, ... (n = 10, level 0.8, h = 1.8) -> q = -0.02 exactly,
    # so the tail holds all three tied returns: (0.05 + 3 * 0.02) / 4 = 0.0275 (not (0.05 + 0.02) / 2)
    tied = np.array([0.01, -0.02, 0.03, -0.05, -0.02, 0.0, 0.02, -0.02, 0.04, 0.05])
    assert historical_var(tied, 0.80) == pytest.approx(0.02, abs=1e-15)
    assert historical_cvar(tied, 0.80) == pytest.approx(0.0275, abs=1e-12)
    r = 0.01 * np.random.default_rng(2).standard_t(3, (252, 20))
    assert np.all(historical_cvar(r) >= historical_var(r))


def test_component_cvar_sums_to_total() -> None:
    """Components sum to the portfolio CVaR and it equals historical_cvar of r @ w (1e-12, absolute).

    Marginal CVaR (component / w) is the mean loss of each asset over the portfolio tail scenarios."""
    rng = np.random.default_rng(4)
    r = 0.01 * rng.standard_t(4, (252, 8))
    w = np.array([0.2, 0.15, -0.1, 0.3, 0.05, 0.1, 0.2, 0.1])
    cvar, comp = component_cvar(w, r)
    assert comp.shape == (8,)
    assert comp.sum() == pytest.approx(cvar, abs=1e-12)
    assert cvar == pytest.approx(historical_cvar(r @ w), abs=1e-12)
    port = r @ w
    tail = port <= np.quantile(port, 0.05, method="linear")
    assert tail.sum() == 13  # h = 251 * 0.05 = 12.55: the 13 smallest portfolio returns
    np.testing.assert_allclose(comp / w, -r[tail].mean(axis=0), atol=1e-12)
    with pytest.raises(ValueError, match="weights"):
        component_cvar(w[:3], r)


@settings(max_examples=60, deadline=None)
@given(
    seed=st_h.integers(0, 2**32 - 1),
    t=st_h.integers(20, 300),
    n=st_h.integers(1, 12),
    level=st_h.sampled_from([0.9, 0.95, 0.975, 0.99]),
)
def test_component_cvar_property_sum(seed: int, t: int, n: int, level: float) -> None:
    """Random weights (any sign) and fat-tailed returns: components sum to the CVaR within 1e-12."""
    rng = np.random.default_rng(seed)
    r = 0.02 * rng.standard_t(3, (t, n))
    w = rng.uniform(-1, 1, n)
    cvar, comp = component_cvar(w, r, level)
    assert comp.sum() == pytest.approx(cvar, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st_h.integers(0, 2**32 - 1),
    t=st_h.integers(20, 300),
    n=st_h.integers(1, 12),
    k=st_h.integers(-10, 10),
    c=st_h.floats(0.01, 100.0),
)
def test_component_cvar_positive_homogeneity(seed: int, t: int, n: int, k: int, c: float) -> None:
    """CVaR(c w) = c CVaR(w) for c > 0: exact (0) for c = 2**k, relative 1e-12 for any c
    (continuous returns, so rounding cannot reorder the tail)."""
    rng = np.random.default_rng(seed)
    r = 0.02 * rng.standard_t(3, (t, n))
    w = rng.uniform(-1, 1, n)
    cvar, comp = component_cvar(w, r)
    c2 = 2.0**k
    cvar2, comp2 = component_cvar(c2 * w, r)
    assert cvar2 == c2 * cvar
    np.testing.assert_array_equal(comp2, c2 * comp)
    cvar_c, comp_c = component_cvar(c * w, r)
    assert cvar_c == pytest.approx(c * cvar, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(comp_c, c * comp, rtol=1e-12, atol=1e-15 * c * np.abs(comp).max())


def test_scaled_component_cvar() -> None:
    """Scaled components sum to the portfolio EVT ES (1e-12) and keep the historical shares (1e-12);
    with fewer than MIN_EVT_EXCEEDANCES exceedances the historical result is returned unchanged."""
    rng = np.random.default_rng(5)
    r = 0.01 * rng.standard_t(4, (252, 6))
    w = np.full(6, 1 / 6)
    es, comp = scaled_component_cvar(w, r)
    _, es_direct = evt.evt_cvar(r @ w)
    assert es == pytest.approx(es_direct[0], abs=1e-12)
    assert comp.sum() == pytest.approx(es, abs=1e-12)
    cvar, hist = component_cvar(w, r)
    assert es != pytest.approx(cvar, rel=1e-6)  # the EVT number is not the historical one
    np.testing.assert_allclose(comp / es, hist / cvar, atol=1e-12)
    short = r[:60]  # 60 * 0.1 -> 6 exceedances < MIN_EVT_EXCEEDANCES
    assert evt.fit_pot(short @ w).n_exceed[0] < MIN_EVT_EXCEEDANCES
    got, got_comp = scaled_component_cvar(w, short)
    want, want_comp = component_cvar(w, short)
    assert got == want
    np.testing.assert_array_equal(got_comp, want_comp)


# ---------------------------------------------------------------------------------------------
# EVT: McNeil-Frey formulas


def _fit(xi: float, beta: float = 0.008, u: float = 0.02, n: int = 252, n_u: int = 26) -> evt.GPDFit:
    one = np.ones(1)
    return evt.GPDFit(xi=xi * one, beta=beta * one, threshold=u * one, n_obs=n * one, n_exceed=n_u * one)


@pytest.mark.parametrize("xi", [0.35, 0.1, -0.25, 1e-9, 0.0])
@pytest.mark.parametrize("level", [0.95, 0.99])
def test_evt_var_inverts_the_tail(xi: float, level: float) -> None:
    """Tail probability at VaR_p, (N_u / n) * genpareto.sf(VaR_p - u; xi, beta), equals 1 - p (rel 1e-10)."""
    fit = _fit(xi)
    var = evt.evt_var(fit, level)[0]
    tail = 26 / 252 * st.genpareto.sf(var - 0.02, xi, scale=0.008)
    assert tail == pytest.approx(1 - level, rel=1e-10)


@pytest.mark.parametrize("xi", [0.6, 0.35, 0.1, -0.25, 1e-9, 0.0])
@pytest.mark.parametrize("level", [0.95, 0.99])
def test_evt_es_is_the_integral_of_var(xi: float, level: float) -> None:
    """ES_p = (1 / (1 - p)) * integral_p^1 VaR_q dq by scipy quad (epsrel 1e-13; QAGS copes with the
    integrable endpoint singularity (1 - q)^-xi of xi > 0 and never evaluates q = 1); agreement rel 1e-10."""
    fit = _fit(xi)
    integral, _ = quad(lambda q: float(evt.evt_var(fit, q)[0]), level, 1, epsrel=1e-13, limit=500)
    assert evt.evt_es(fit, level)[0] == pytest.approx(integral / (1 - level), rel=1e-10)


def test_evt_xi_near_zero_is_the_exponential_limit() -> None:
    """xi -> 0: VaR -> u - beta log(a), ES -> VaR + beta; continuous through 0 (rel 1e-10 at |xi| = 1e-12)."""
    a = 252 / 26 * 0.01
    exp_var = 0.02 - 0.008 * math.log(a)
    for xi in (0.0, 1e-12, -1e-12):
        assert evt.evt_var(_fit(xi), 0.99)[0] == pytest.approx(exp_var, rel=1e-10)
        assert evt.evt_es(_fit(xi), 0.99)[0] == pytest.approx(exp_var + 0.008, rel=1e-10)


def test_evt_level_and_infinite_mean() -> None:
    """ES is NaN for xi >= 1 (VaR stays finite); a level outside the modelled tail raises ValueError."""
    assert np.isnan(evt.evt_es(_fit(1.0), 0.99)[0])
    assert np.isnan(evt.evt_es(_fit(1.5), 0.99)[0])
    assert np.isfinite(evt.evt_var(_fit(1.5), 0.99)[0])
    # 26 / 252 = 10.3% exceedances: a 0.85 level (15% tail) is below the threshold
    with pytest.raises(ValueError, match="below the GPD threshold"):
        evt.evt_var(_fit(0.2), 0.85)
    # the threshold level itself is fine here (10% <= 10.3%) and gives a VaR just above u
    assert evt.evt_var(_fit(0.2), 0.90)[0] > 0.02


# ---------------------------------------------------------------------------------------------
# EVT: the vectorised GPD maximum likelihood fit


def _excesses(r: np.ndarray, q: float = 0.9) -> np.ndarray:
    losses = -r
    u = np.quantile(losses, q, method="linear")
    return losses[losses > u] - u


def _scipy_fit(y: np.ndarray, tight: bool = False) -> tuple[float, float, bool]:
    """scipy.stats.genpareto.fit(y, floc=0) with its default optimizer (fmin), or a tight fmin; converged flag."""
    flag: dict[str, int] = {}

    def optimizer(func, x0, args=(), disp=0):  # type: ignore[no-untyped-def]
        opts = {"xtol": 1e-10, "ftol": 1e-12, "maxiter": 20000, "maxfun": 40000} if tight else {}
        out = so.fmin(func, x0, args=args, disp=0, full_output=True, **opts)
        flag["warn"] = out[4]
        return out[0]

    c, _, scale = st.genpareto.fit(y, floc=0, optimizer=optimizer)
    return float(c), float(scale), flag["warn"] == 0


def test_gpd_fit_matches_scipy() -> None:
    """Per column of 252 Student-t returns (26 exceedances), against genpareto.fit(excesses, floc=0).

    Default scipy (fmin): xi within 1e-3, beta rel 1e-3 (observed <= 1.2e-4). Tight scipy (fmin xtol 1e-10,
    ftol 1e-12): xi within 1e-6, beta rel 1e-6 (observed <= 8e-8). Our log-likelihood >= scipy's - 1e-9 (a
    true MLE); GPDFit.loglik equals scipy's logpdf sum (rel 1e-12). Columns where our fit sits on the
    xi = -1 edge would be skipped (scipy then wanders into xi < -1); here all 12 are interior."""
    rng = np.random.default_rng(11)
    r = 0.01 * rng.standard_t(4, (252, 12))
    fit = evt.fit_pot(r)
    checked = 0
    for j in range(r.shape[1]):
        y = _excesses(r[:, j])
        assert y.size == fit.n_exceed[j] == 26
        ours = st.genpareto.logpdf(y, fit.xi[j], scale=fit.beta[j]).sum()
        assert fit.loglik[j] == pytest.approx(ours, rel=1e-12)
        if not fit.converged[j]:
            continue
        checked += 1
        c, scale, ok = _scipy_fit(y)
        assert ok
        assert abs(c - fit.xi[j]) <= 1e-3
        assert scale == pytest.approx(fit.beta[j], rel=1e-3)
        assert ours >= st.genpareto.logpdf(y, c, scale=scale).sum() - 1e-9
        c, scale, ok = _scipy_fit(y, tight=True)
        assert ok
        assert abs(c - fit.xi[j]) <= 1e-6
        assert scale == pytest.approx(fit.beta[j], rel=1e-6)
        assert ours >= st.genpareto.logpdf(y, c, scale=scale).sum() - 1e-9
    assert checked == 12


def test_gpd_fit_vectorised_equals_per_column_with_masks() -> None:
    """Columns with different exceedance counts (ties at the threshold) fit identically (bitwise, tolerance 0)
    in one matrix and one by one; a constant column has no exceedance and gets NaN (not converged)."""
    rng = np.random.default_rng(12)
    base = 0.01 * rng.standard_t(4, (300, 4))
    tied = base[:, 1].copy()
    u = np.quantile(-tied, 0.9)
    tied[np.argsort(-tied)[-45:-25]] = -u  # 20 more losses equal to the threshold: fewer strictly above
    mat = np.column_stack([base[:, 0], tied, np.round(base[:, 2], 3), base[:, 3], np.full(300, 0.001)])
    fit = evt.fit_pot(mat)
    assert len(set(fit.n_exceed[:4].tolist())) > 1
    assert fit.n_exceed[4] == 0 and not fit.converged[4] and np.isnan(fit.xi[4])
    assert np.isnan(evt.evt_var(fit, 0.95)[4])
    for j in range(4):
        one = evt.fit_pot(mat[:, j])
        assert one.n_exceed[0] == fit.n_exceed[j]
        for name in ("xi", "beta", "threshold", "loglik", "converged"):
            assert getattr(one, name)[0] == getattr(fit, name)[j]


def test_gpd_fit_edge_for_short_tails() -> None:
    """Uniform excesses (xi = -1 exactly) give the edge fit xi = -1, beta = max(y), loglik = -N_u log max(y)
    (rel 1e-12) with converged False, while scipy's unconstrained fit reports xi < -1 (unbounded likelihood)."""
    y = np.linspace(0.001, 0.02, 25)
    xi, beta, ll, conv = evt.gpd_mle(y)
    assert xi[0] == -1.0 and beta[0] == pytest.approx(0.02, rel=1e-12) and not conv[0]
    assert ll[0] == pytest.approx(-25 * math.log(0.02), rel=1e-12)
    assert st.genpareto.fit(y, floc=0)[0] < -1


@pytest.mark.parametrize("xi_true", [-0.2, 0.0, 0.2, 0.4])
def test_gpd_recovers_known_tail_index(xi_true: float) -> None:
    """Losses drawn from GPD(xi, beta = 0.01), 3 columns x 20,000: above the 90% threshold u the excesses
    are GPD(xi, beta + xi u). ~2,000 excesses give sd(xi) ~ (1 + xi) / sqrt(2000) <= 0.032: xi within 0.12
    and beta within 15% (about 4 sd), on every column."""
    rng = np.random.default_rng(int(100 * (xi_true + 1)))
    losses = st.genpareto.rvs(xi_true, scale=0.01, size=(20_000, 3), random_state=rng)
    fit = evt.fit_pot(-losses)
    assert fit.converged.all()
    np.testing.assert_allclose(fit.xi, xi_true, atol=0.12)
    np.testing.assert_allclose(fit.beta, 0.01 + xi_true * fit.threshold, rtol=0.15)


def test_evt_es_student_t_truth() -> None:
    """Student-t(4) returns, 6 columns x 20,000: EVT ES at 99% against the closed-form t ES. Statistical:
    over 300 such columns the relative error had mean -0.6% and sd 2.9%, so each column must be within 15%
    (5 sd) and the mean error of the 6 within 4% (about 3 sd of a 6-column mean)."""
    df, level = 4, 0.99
    q = st.t.ppf(level, df)
    true_es = (df + q * q) / (df - 1) * st.t.pdf(q, df) / (1 - level)
    r = np.random.default_rng(13).standard_t(df, (20_000, 6))
    _, es = evt.evt_cvar(r, level)
    err = es / true_es - 1
    assert np.abs(err).max() < 0.15
    assert abs(err.mean()) < 0.04


# ---------------------------------------------------------------------------------------------
# backtests


def test_kupiec_by_hand() -> None:
    """LR_POF by hand, p-value by the chi2(1) closed form erfc(sqrt(LR / 2)); rel 1e-12."""
    hits = np.zeros(100, dtype=bool)
    hits[[3, 17, 18, 40, 55, 71, 80, 99]] = True  # 8 hits in 100 at a 5% rate
    lr = -2 * (8 * math.log(0.05) + 92 * math.log(0.95) - 8 * math.log(0.08) - 92 * math.log(0.92))
    got = kupiec_pof(hits, 0.95)
    assert got.statistic == pytest.approx(lr, rel=1e-12)
    assert got.pvalue == pytest.approx(math.erfc(math.sqrt(lr / 2)), rel=1e-12)
    # no hits at all: 0 log 0 = 0, LR = -2 T log(0.95)
    assert kupiec_pof(np.zeros(250, dtype=bool), 0.95).statistic == pytest.approx(-500 * math.log(0.95), rel=1e-12)
    # exactly the nominal rate: LR = 0 (up to the rounding of 1 - 0.95), p = 1
    nominal = kupiec_pof(np.arange(200) % 20 == 0, 0.95)
    assert nominal.statistic < 1e-9 and nominal.pvalue > 1 - 1e-4


def test_kupiec_matches_vartests() -> None:
    """Against vartests.kupiec_test(hits, risk_conf_level=0.95) (its default level is 0.99); rel 1e-12."""
    vartests = pytest.importorskip("vartests")
    rng = np.random.default_rng(21)
    for rate in (0.02, 0.05, 0.08):
        hits = rng.random(750) < rate
        ref = vartests.kupiec_test(hits.astype(int), risk_conf_level=0.95)
        got = kupiec_pof(hits, 0.95)
        assert got.statistic == pytest.approx(ref["statistic"], rel=1e-12)
        assert got.pvalue == pytest.approx(ref["p-value"], rel=1e-12)


def test_christoffersen_matches_g_test() -> None:
    """LR_ind equals the G statistic of chi2_contingency(table, correction=False, lambda_="log-likelihood")
    on the transition table, and the asymptotic p-value its chi2(1) p-value; rel 1e-10."""
    rng = np.random.default_rng(22)
    for rate in (0.05, 0.1, 0.3):
        hits = rng.random(1000) < rate
        table = transition_counts(hits)
        assert table.sum() == 999 and table[0, 1] == np.sum(~hits[:-1] & hits[1:])
        g, p, dof, _ = st.chi2_contingency(table, correction=False, lambda_="log-likelihood")
        got = christoffersen_independence(hits)
        assert dof == 1
        assert got.statistic == pytest.approx(g, rel=1e-10)
        assert got.pvalue == pytest.approx(p, rel=1e-10)


def test_christoffersen_monte_carlo_size_and_power() -> None:
    """Permutation p-values: iid Bernoulli(5%) hits reject at 5% in at most 9% of 300 sequences (size <= 5%
    plus 3 s.e.); a persistent Markov chain of hits (P(hit | hit) = 0.4, P(hit | no hit) = 0.03) is rejected
    in at least 90% of 50 sequences. p-values lie in (0, 1] and repeat for a fixed seed (exact)."""
    rng = np.random.default_rng(23)
    rejected = sum(
        christoffersen_independence(rng.random(500) < 0.05, n_sim=199, seed=s).pvalue <= 0.05 for s in range(300)
    )
    assert rejected <= 27
    power = 0
    for s in range(50):
        h = np.zeros(1000, dtype=bool)
        u = rng.random(1000)
        for t in range(1, 1000):
            h[t] = u[t] < (0.4 if h[t - 1] else 0.03)
        res = christoffersen_independence(h, n_sim=199, seed=s)
        assert 0 < res.pvalue <= 1
        power += res.pvalue <= 0.05
    assert power >= 45
    hits = rng.random(500) < 0.05
    assert christoffersen_independence(hits, 99, seed=1) == christoffersen_independence(hits, 99, seed=1)
