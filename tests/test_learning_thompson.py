"""Discounted Thompson sampling per regime: Beta posteriors (scipy.stats.beta), P(best) (quad, Monte Carlo),
forgetting, and the learner's regime switching. Oracles and tolerances per test."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from mqf_pipeline.learning import WeightLearningParams, agent_outcomes, learn_weights
from mqf_pipeline.learning.thompson import beta_mean_var, beta_posterior, discounted_counts, prob_best, ts_weights

FLOOR, CAP = 0.05, 0.40


def test_counts_and_posterior_match_the_definition_and_scipy() -> None:
    """S_ck(t) = sum_tau gamma^(t - tau) hit over regime-c outcomes (loop oracle, 1e-12); undiscounted counts
    are exact integers; posterior mean and variance equal scipy.stats.beta(a, b).stats (rel 1e-14)."""
    rng = np.random.default_rng(4)
    t_len, n, n_reg, gamma = 80, 5, 3, 0.97
    hits = (rng.uniform(size=(t_len, n)) < 0.6).astype(float)
    hits[rng.uniform(size=hits.shape) < 0.1] = np.nan
    codes = np.repeat(rng.integers(-1, n_reg, size=(t_len, 1)), n, axis=1)
    s, f = discounted_counts(hits, codes, n_reg, gamma)
    for t in (0, 17, 79):
        for c in range(n_reg):
            for k in range(n):
                taus = [u for u in range(t + 1) if codes[u, k] == c and np.isfinite(hits[u, k])]
                assert abs(s[t, c, k] - sum(gamma ** (t - u) * hits[u, k] for u in taus)) <= 1e-12
                assert abs(f[t, c, k] - sum(gamma ** (t - u) * (1 - hits[u, k]) for u in taus)) <= 1e-12
    s1, f1 = discounted_counts(hits, codes, n_reg, 1.0)
    a, b = beta_posterior(s1[-1], f1[-1], (1.0, 1.0))
    for c in range(n_reg):
        for k in range(n):
            sel = (codes[:, k] == c) & np.isfinite(hits[:, k])
            assert a[c, k] == 1.0 + hits[sel, k].sum() and b[c, k] == 1.0 + (1 - hits[sel, k]).sum()
    a, b = beta_posterior(s[-1], f[-1], (2.0, 3.0))
    mean, var = beta_mean_var(a, b)
    want_mean, want_var = stats.beta.stats(a, b, moments="mv")
    np.testing.assert_allclose(mean, want_mean, rtol=1e-14)
    np.testing.assert_allclose(var, want_var, rtol=1e-14)


def test_discount_makes_an_absent_regime_fade() -> None:
    """A regime's counts shrink by gamma per outcome session once it is no longer seen (exact up to rounding)."""
    hits = np.ones((30, 3))
    codes = np.zeros((30, 3), dtype=np.int64)
    codes[10:] = 1
    s, _ = discounted_counts(hits, codes, 2, 0.9)
    np.testing.assert_allclose(s[29, 0], s[9, 0] * 0.9**20, rtol=1e-13)
    assert np.all(s[29, 1] > s[29, 0])


def test_prob_best_matches_quad_and_monte_carlo() -> None:
    """Oracles: scipy.integrate.quad of f_k prod_{j != k} F_j (1e-9) and 400,000 seeded draws (4 s.e.)."""
    a = np.array([3.0, 12.5, 30.0, 8.0, 1.0, 55.0])
    b = np.array([4.0, 10.0, 28.0, 9.5, 1.0, 60.0])
    p = prob_best(a, b, 256)
    for k in range(a.size):
        others = [j for j in range(a.size) if j != k]

        def f(x: float, k: int = k, others: list[int] = others) -> float:
            return stats.beta.pdf(x, a[k], b[k]) * np.prod([stats.beta.cdf(x, a[j], b[j]) for j in others])

        want, _ = integrate.quad(f, 0.0, 1.0, epsabs=1e-13, epsrel=1e-12, limit=200)
        assert abs(p[k] - want) <= 1e-9
    draws = np.random.default_rng(0).beta(a, b, size=(400_000, a.size))
    mc = np.bincount(draws.argmax(axis=1), minlength=a.size) / draws.shape[0]
    se = np.sqrt(mc * (1 - mc) / draws.shape[0])
    assert np.all(np.abs(p - mc) <= 4 * se + 1e-12)


posteriors = st.integers(3, 20).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(1.0, 120.0), min_size=n, max_size=n), st.lists(st.floats(1.0, 120.0), min_size=n, max_size=n)
    )
)


@settings(max_examples=150, deadline=None)
@given(posteriors, st.integers(0, 2**32 - 1))
def test_prob_best_invariants(ab: tuple[list[float], list[float]], seed: int) -> None:
    """Sums to 1, in [0, 1], permutation-equivariant (1e-12), larger alpha_k never lowers p_k; the TS weights
    lie in the capped simplex (sum to 1e-12)."""
    a, b = np.array(ab[0]), np.array(ab[1])
    p = prob_best(a, b)
    assert abs(p.sum() - 1.0) <= 1e-12 and np.all(p >= 0) and np.all(p <= 1)
    perm = np.random.default_rng(seed).permutation(a.size)
    np.testing.assert_allclose(prob_best(a[perm], b[perm]), p[perm], atol=1e-12)
    a2 = a.copy()
    a2[0] += 5.0
    assert prob_best(a2, b)[0] >= p[0] - 1e-12
    w = ts_weights(a, b, FLOOR, CAP)
    assert np.all(w >= FLOOR) and np.all(w <= CAP) and abs(w.sum() - 1.0) <= 1e-12


def test_prob_best_rejects_improper_posteriors() -> None:
    with pytest.raises(ValueError, match="alpha, beta >= 1"):
        prob_best(np.array([0.5, 2.0, 2.0]), np.ones(3))


def _regime_world(seed: int, t: int = 240, n_sym: int = 40, skill: float = 0.4):
    """Six agents; a0-a2 skilled in risk_on, a3-a5 in risk_off; regimes alternate every 40 sessions."""
    rng = np.random.default_rng(seed)
    days = [dt.date(2023, 1, 2) + dt.timedelta(days=i) for i in range(t)]
    reg = (np.arange(t) // 40) % 2
    z = rng.standard_normal((t, n_sym))
    rho = np.where(reg[:-1, None] == 0, [skill] * 3 + [0.0] * 3, [0.0] * 3 + [skill] * 3)[:, :, None]
    mu = 0.001 * (rho * z[1:, None, :] + np.sqrt(1 - rho**2) * rng.standard_normal((t - 1, 6, n_sym)))
    syms, agents = [f"S{i}" for i in range(n_sym)], [f"a{i}" for i in range(6)]
    sig = pl.DataFrame(
        {
            "date": np.repeat(days[:-1], 6 * n_sym).tolist(),
            "agent": np.tile(np.repeat(agents, n_sym), t - 1).tolist(),
            "symbol": syms * (6 * (t - 1)),
            "mu": mu.ravel(),
            "horizon_days": 1,
        },
        schema={"date": pl.Date, "agent": pl.String, "symbol": pl.String, "mu": pl.Float64, "horizon_days": pl.Int32},
    )
    ret = pl.DataFrame(
        {"date": np.repeat(days, n_sym).tolist(), "symbol": syms * t, "ret": (0.02 * z).ravel()},
        schema={"date": pl.Date, "symbol": pl.String, "ret": pl.Float64},
    )
    regimes = pl.DataFrame({"date": days, "regime": np.where(reg == 0, "risk_on", "risk_off").tolist()})
    return days, agent_outcomes(sig, ret), regimes, {a: 1 / 6 for a in agents}


def test_learner_switches_to_ts_after_a_regime_change() -> None:
    """With ts_share_stable 0: after a change TS leads, favouring the agents skilled in the new regime; later
    EG applies again; with the default (1) it stays TS; every row lies in the capped simplex."""
    days, out, regimes, static = _regime_world(5)
    p = WeightLearningParams(ts_share_stable=0.0)
    rows = learn_weights(out, regimes, static, p, days[-1], strategy="s", sessions=days)
    day = days[125]  # risk_off since session 120 (the 3rd switch): 6 sessions
    now = rows.filter(pl.col("date") == day).sort("agent_name")
    assert now["algorithm_used"][0] == "TS (regime risk_off for 6 sessions)"
    assert now["regime"][0] == "risk_off"
    w = now["weight"].to_numpy()
    assert w[3:].min() > w[:3].max()
    assert rows.filter(pl.col("date") == days[150])["algorithm_used"][0] == "EG"
    assert rows.filter(pl.col("date") == days[45])["algorithm_used"][0].startswith("EG (regime risk_off: ")
    default = learn_weights(out, regimes, static, WeightLearningParams(), days[-1], strategy="s", sessions=days)
    assert default.filter(pl.col("date") == days[150])["algorithm_used"][0] == "TS"
    sums = rows.group_by("date").agg(pl.col("weight").sum())["weight"]
    assert (sums - 1.0).abs().max() <= 1e-12 and rows["weight"].min() >= FLOOR and rows["weight"].max() <= CAP


def test_learner_blend_and_no_lookahead_with_regimes() -> None:
    """The blend is (1 - s) EG + s TS; rows <= D do not move when regimes and returns after D change."""
    days, out, regimes, static = _regime_world(6)
    p = WeightLearningParams(ts_share_stable=0.5)
    rows = learn_weights(out, regimes, static, p, days[-1], strategy="s", sessions=days)
    assert rows.filter(pl.col("date") == days[150])["algorithm_used"][0] == "EG+TS blend (TS share 0.50)"
    eg_only = learn_weights(
        out, regimes, static, WeightLearningParams(ts_share_stable=0.0), days[-1], strategy="s", sessions=days
    )
    ts_only = learn_weights(
        out, regimes, static, WeightLearningParams(ts_share_stable=1.0), days[-1], strategy="s", sessions=days
    )

    def at(frame: pl.DataFrame) -> np.ndarray:
        return frame.filter(pl.col("date") == days[150]).sort("agent_name")["weight"].to_numpy()

    np.testing.assert_allclose(at(rows), 0.5 * at(eg_only) + 0.5 * at(ts_only), atol=1e-15)
    cut = days[100]
    out2 = out.with_columns(
        actual_return=pl.when(pl.col("date") > cut).then(-pl.col("actual_return")).otherwise(pl.col("actual_return")),
        hit=pl.when(pl.col("date") > cut).then(1 - pl.col("hit")).otherwise(pl.col("hit")),
    )
    regimes2 = regimes.with_columns(
        pl.when(pl.col("date") > cut).then(pl.lit("crisis")).otherwise("regime").alias("regime")
    )
    moved = learn_weights(out2, regimes2, static, p, days[-1], strategy="s", sessions=days)
    assert rows.filter(pl.col("date") <= cut).equals(moved.filter(pl.col("date") <= cut))
