"""Online agent weights: the capped-simplex KL projection, EG regret, outcomes, rolling statistics, rewards
and the learner's rows (warm-up fallback, no lookahead, determinism). Oracles and tolerances per test."""

from __future__ import annotations

import datetime as dt
import math

import cvxpy as cp
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize

from mqf_pipeline.learning import (
    OUTCOME_SCHEMA,
    InfeasibleWeightsError,
    WeightLearningParams,
    agent_outcomes,
    agent_performance_rows,
    eg_step,
    kl_project,
    learn_weights,
    returns_from_bars,
)
from mqf_pipeline.learning.outcomes import decayed_window_stats, rolling_sharpe
from mqf_pipeline.learning.projection import best_fixed_in_capped_simplex, kl_divergence
from mqf_pipeline.learning.rewards import unit_rewards
from mqf_pipeline.storage.schema import row_schema

FLOOR, CAP = 0.05, 0.40


def _kl(w: np.ndarray, v: np.ndarray) -> float:
    return float(np.sum(w * np.log(w / v)))


# ---------------------------------------------------------------- projection


@pytest.mark.parametrize("n", [3, 4, 6, 12, 20])
def test_projection_matches_slsqp_and_cvxpy(n: int) -> None:
    """Oracles: scipy SLSQP on sum w ln(w / v) (weights 1e-7, objective never better than ours by > 1e-12)
    and cvxpy/Clarabel with rel_entr, gaps 1e-10 (weights 1e-5: the objective is flat at the optimum, so an
    interior-point solution is accurate to about the root of its gap; objective 1e-9, its point being feasible
    only to ~1e-10)."""
    rng = np.random.default_rng(n)
    for _ in range(5):
        v = np.exp(rng.normal(0.0, 1.5, n))
        w = kl_project(v, FLOOR, CAP)
        res = minimize(
            lambda z, v=v: _kl(z, v),
            np.full(n, 1.0 / n),
            jac=lambda z, v=v: np.log(z / v) + 1.0,
            method="SLSQP",
            bounds=[(FLOOR, CAP)] * n,
            constraints=[{"type": "eq", "fun": lambda z: z.sum() - 1.0, "jac": lambda z: np.ones(n)}],
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        np.testing.assert_allclose(w, res.x, atol=1e-7)
        assert _kl(w, v) <= _kl(res.x, v) + 1e-12
        x = cp.Variable(n)
        cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(x, v))), [x >= FLOOR, x <= CAP, cp.sum(x) == 1]).solve(
            solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10
        )
        np.testing.assert_allclose(w, x.value, atol=1e-5)
        assert _kl(w, v) <= _kl(x.value, v) + 1e-9


def test_projection_kkt_form_and_clip_renormalise_breaks_floor() -> None:
    """w_i = clip(c v_i, floor, cap) with one c (free ratios equal to 1e-12 rel); the naive clip-then-
    renormalise of the same v leaves an agent below the floor."""
    v = np.array([0.001, 0.02, 0.2, 0.6, 0.9, 1.0])
    w = kl_project(v, FLOOR, CAP)
    free = (w > FLOOR) & (w < CAP)
    ratios = w[free] / v[free]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-12)
    assert np.all(w[~free & (v < v[free].min())] == FLOOR) and np.all(w[~free & (v > v[free].max())] == CAP)
    naive = np.clip(v / v.sum(), FLOOR, CAP)
    naive = naive / naive.sum()
    assert naive.min() < FLOOR and w.min() >= FLOOR


@pytest.mark.parametrize("n", [1, 2, 21, 40])
def test_infeasible_agent_count_is_named(n: int) -> None:
    with pytest.raises(InfeasibleWeightsError, match=rf"^{n} agent\(s\).*3 <= N <= 20"):
        kl_project(np.ones(n), FLOOR, CAP)


vectors = st.integers(3, 20).flatmap(
    lambda n: st.lists(st.floats(-12.0, 12.0, allow_nan=False), min_size=n, max_size=n).map(
        lambda logs: np.exp(np.array(logs))
    )
)


@settings(max_examples=300, deadline=None)
@given(vectors)
def test_projection_invariants(v: np.ndarray) -> None:
    """Bounds hold exactly, the sum is 1 to 1e-12, idempotent on K, invariant to the scale of v."""
    w = kl_project(v, FLOOR, CAP)
    assert np.all(w >= FLOOR) and np.all(w <= CAP)
    assert abs(w.sum() - 1.0) <= 1e-12
    np.testing.assert_allclose(kl_project(w, FLOOR, CAP), w, atol=1e-12)
    np.testing.assert_allclose(kl_project(v * 37.5, FLOOR, CAP), w, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(vectors, st.integers(0, 2**32 - 1))
def test_projection_beats_random_feasible_points(v: np.ndarray, seed: int) -> None:
    """KL(w* || v) <= KL(u || v) for feasible u (random points of K: projections of random vectors)."""
    w = kl_project(v, FLOOR, CAP)
    u = kl_project(np.random.default_rng(seed).exponential(size=v.size), FLOOR, CAP)
    assert kl_divergence(w, v) <= kl_divergence(u, v) + 1e-12


@settings(max_examples=200, deadline=None)
@given(vectors, st.integers(0, 2**32 - 1))
def test_eg_step_stays_in_capped_simplex(v: np.ndarray, seed: int) -> None:
    w0 = kl_project(v, FLOOR, CAP)
    g = np.random.default_rng(seed).uniform(size=v.size)
    w = eg_step(w0, g, 0.1, FLOOR, CAP)
    assert np.all(w >= FLOOR) and np.all(w <= CAP) and abs(w.sum() - 1.0) <= 1e-12


# ---------------------------------------------------------------- EG regret


def _reward_paths(kind: str, rng: np.random.Generator, t: int, n: int) -> np.ndarray:
    if kind == "iid":
        return rng.uniform(size=(t, n)) * rng.uniform(0.2, 1.0, size=n)
    if kind == "switching":  # the best agent changes every 50 sessions
        best = (np.arange(t) // 50) % n
        return np.where(np.arange(n)[None, :] == best[:, None], 0.8, 0.3) + 0.2 * rng.uniform(size=(t, n)) - 0.1
    return (rng.uniform(size=(t, n)) < np.linspace(0.4, 0.6, n)).astype(float)  # Bernoulli


@pytest.mark.parametrize("kind", ["iid", "switching", "bernoulli"])
@pytest.mark.parametrize("n", [3, 6, 20])
@pytest.mark.parametrize("t", [200, 2000])
def test_eg_regret_bounds(kind: str, n: int, t: int) -> None:
    """Rewards in [0, 1], eta 0.1, w_1 uniform. Unprojected (Hedge: floor 0, cap 1): regret vs the best agent
    <= ln N / eta + eta T / 8. Projected on K: regret vs the best fixed u in K <= KL(u || w_1) / eta + eta T / 8
    (mirror descent with the generalised Pythagorean inequality), and KL(u || w_1) <= ln N."""
    eta = 0.1
    g = np.clip(_reward_paths(kind, np.random.default_rng([n, t]), t, n), 0.0, 1.0)
    for floor, cap in [(0.0, 1.0), (FLOOR, CAP)]:
        w = np.full(n, 1.0 / n)
        earned = 0.0
        for row in g:
            earned += float(w @ row)
            w = eg_step(w, row, eta, floor, cap)
        u = best_fixed_in_capped_simplex(g.sum(axis=0), floor, cap)
        regret = float(u @ g.sum(axis=0)) - earned
        bound = kl_divergence(u, np.full(n, 1.0 / n)) / eta + eta * t / 8
        assert regret <= bound <= math.log(n) / eta + eta * t / 8 + 1e-12


def test_best_fixed_point_matches_linprog() -> None:
    """Oracle: scipy linprog of max <u, G> over K (objective 1e-9)."""
    g = np.random.default_rng(3).normal(size=7)
    u = best_fixed_in_capped_simplex(g, FLOOR, CAP)
    lp = linprog(-g, A_eq=np.ones((1, 7)), b_eq=[1.0], bounds=[(FLOOR, CAP)] * 7)
    assert abs(float(g @ u) - float(g @ lp.x)) <= 1e-9


def test_unit_rewards_in_unit_interval_and_monotone() -> None:
    """g = expit((R - lambda Risk) / median Risk): in (0, 1), ranks agents as r does within a session."""
    rng = np.random.default_rng(1)
    actual = rng.normal(0, 0.01, size=(50, 6))
    risk = rng.uniform(0.005, 0.02, size=(50, 6))
    g = unit_rewards(actual, risk, 0.1)
    assert np.all((g > 0) & (g < 1))
    r = actual - 0.1 * risk
    assert np.all(np.argsort(g, axis=1) == np.argsort(r, axis=1))
    np.testing.assert_allclose(g[:, 0], 1 / (1 + np.exp(-r[:, 0] / np.median(risk, axis=1))), rtol=1e-14)


# ---------------------------------------------------------------- outcomes and statistics


def _dates(n: int, start: dt.date = dt.date(2024, 1, 1)) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def test_agent_outcomes_match_a_loop() -> None:
    """Oracle: a plain loop over (agent, session) with a_i = mu_d / sum |mu_d| (1e-12); the calendar is the
    returns' dates (a gap in them links the signal session to the next return date)."""
    rng = np.random.default_rng(7)
    days = [d for d in _dates(12) if d.day != 5]
    syms = ["A", "B", "C", "D"]
    ret = pl.DataFrame(
        [(d, s, float(rng.normal(0, 0.02))) for d in days for s in syms if not (d == days[4] and s == "B")],
        schema={"date": pl.Date, "symbol": pl.String, "ret": pl.Float64},
        orient="row",
    )
    sig = pl.DataFrame(
        [(d, s, a, float(rng.normal(0, 0.01)), h) for d in days[:-1] for s in syms for a, h in (("x", 1), ("y", 5))],
        schema={"date": pl.Date, "symbol": pl.String, "agent": pl.String, "mu": pl.Float64, "horizon_days": pl.Int32},
        orient="row",
    )
    out = agent_outcomes(sig, ret)
    r = {(d, s): x for d, s, x in ret.iter_rows()}
    for row in out.iter_rows(named=True):
        prev = days[days.index(row["date"]) - 1]
        assert row["signal_date"] == prev
        mus = {
            s: m / h for d, s, a, m, h in sig.iter_rows() if d == prev and a == row["agent"] and (row["date"], s) in r
        }
        gross = sum(abs(m) for m in mus.values())
        assert row["n_symbols"] == len(mus)
        assert abs(row["predicted_return"] - sum(m * m for m in mus.values()) / gross) <= 1e-12
        actual = sum(m * r[(row["date"], s)] for s, m in mus.items()) / gross
        assert abs(row["actual_return"] - actual) <= 1e-12
        assert row["hit"] == int(actual > 0)
    assert out.height == 2 * (len(days) - 1)


def test_returns_from_bars_match_pandas() -> None:
    """Oracle: pandas pct_change per symbol on the full calendar (1e-14); a missing bar gives no return."""
    rng = np.random.default_rng(2)
    days = _dates(8)
    rows = [
        (d, s, float(100 * np.exp(rng.normal(0, 0.02)))) for d in days for s in ("A", "B") if (d, s) != (days[3], "B")
    ]
    bars = pl.DataFrame(rows, schema={"date": pl.Date, "symbol": pl.String, "adjusted_close": pl.Float64}, orient="row")
    got = returns_from_bars(bars)
    wide = bars.to_pandas().pivot(index="date", columns="symbol", values="adjusted_close").pct_change(fill_method=None)
    want = wide.stack().dropna()
    assert got.height == len(want)
    for d, s, x in got.iter_rows():
        assert abs(x - want[(pd.Timestamp(d), s)]) <= 1e-14


def test_decayed_stats_match_numpy_weighted_oracle() -> None:
    """Oracle per window: np.average / np.cov(aweights, bias=True) with weights 0.5 ** (lag / 10) over the last
    21 rows, missing rows dropped (1e-12); Sharpe annualised by sqrt(252)."""
    rng = np.random.default_rng(11)
    x = rng.normal(0.001, 0.01, size=(60, 3))
    x[rng.uniform(size=x.shape) < 0.2] = np.nan
    p = WeightLearningParams()
    mean, std, count = decayed_window_stats(x, p.lookback, p.decay)
    sharpe = rolling_sharpe(mean, std, 252)
    for t in range(60):
        for k in range(3):
            lags = np.arange(min(t, 20), -1, -1)
            vals = x[t - lags, k]
            ok = np.isfinite(vals)
            assert count[t, k] == ok.sum()
            if ok.sum() >= 2:
                w = 0.5 ** (lags[ok] / 10.0)
                m = np.average(vals[ok], weights=w)
                s = math.sqrt(np.cov(vals[ok], aweights=w, bias=True))
                assert abs(mean[t, k] - m) <= 1e-12 and abs(std[t, k] - s) <= 1e-12
                assert abs(sharpe[t, k] - m / s * math.sqrt(252)) <= 1e-9 * max(1.0, abs(sharpe[t, k]))


# ---------------------------------------------------------------- the learner


def _world(seed: int, t: int = 120, n_sym: int = 30, k: int = 4, skill: float = 0.3):
    """Agent 0 skilled (correlation ``skill`` with the next return), the others noise; one regime."""
    rng = np.random.default_rng(seed)
    days = _dates(t)
    z = rng.standard_normal((t, n_sym))
    syms = [f"S{i}" for i in range(n_sym)]
    agents = [f"a{i}" for i in range(k)]
    ret = pl.DataFrame(
        {"date": np.repeat(days, n_sym).tolist(), "symbol": syms * t, "ret": (0.02 * z).ravel()},
        schema={"date": pl.Date, "symbol": pl.String, "ret": pl.Float64},
    )
    eps = rng.standard_normal((t - 1, k, n_sym))
    rho = np.array([skill] + [0.0] * (k - 1))[None, :, None]
    mu = 0.001 * (rho * z[1:, None, :] + np.sqrt(1 - rho**2) * eps)
    sig = pl.DataFrame(
        {
            "date": np.repeat(days[:-1], k * n_sym).tolist(),
            "agent": np.tile(np.repeat(agents, n_sym), t - 1).tolist(),
            "symbol": syms * (k * (t - 1)),
            "mu": mu.ravel(),
            "horizon_days": 1,
        },
        schema={"date": pl.Date, "agent": pl.String, "symbol": pl.String, "mu": pl.Float64, "horizon_days": pl.Int32},
    )
    regimes = pl.DataFrame({"date": days, "regime": ["neutral"] * t, "volatility_percentile": np.linspace(0, 1, t)})
    return days, sig, ret, regimes, {a: 1.0 / k for a in agents}


def test_learner_rows_schema_warm_up_and_invariants() -> None:
    days, sig, ret, regimes, static = _world(0)
    p = WeightLearningParams(ts_share_stable=0.0)  # one regime: EG once the regime's TS has its trials
    out = agent_outcomes(sig, ret)
    rows = learn_weights(out, regimes, static, p, days[-1], strategy="hybrid", sessions=days)
    assert dict(rows.schema) == row_schema("agent_weights")
    assert rows.height == len(days) * 4
    first = rows.filter(pl.col("date") == days[5])
    assert first["algorithm_used"].unique().to_list() == ["static (warm-up: 5 of 21 sessions)"]
    assert first["weight"].to_list() == [static[a] for a in first["agent_name"]]
    assert rows.filter(pl.col("date") == days[0])["algorithm_used"][0] == "static (warm-up: 0 of 21 sessions)"
    assert rows["cycle_id"][0] == f"hybrid-{days[0].isoformat()}"
    sums = rows.group_by("date").agg(pl.col("weight").sum())
    assert (sums["weight"] - 1.0).abs().max() <= 1e-12
    assert rows["weight"].min() >= FLOOR and rows["weight"].max() <= CAP
    learned = rows.filter(pl.col("date") == days[-1]).sort("agent_name")
    assert learned["algorithm_used"][0] == "EG"
    assert learned["weight"][0] == learned["weight"].max()  # the skilled agent leads after 119 sessions
    assert 0.5 < learned["recent_hit_rate"][0] <= 1.0 and learned["rolling_sharpe"][0] > 0
    perf = agent_performance_rows(out, rows)
    assert dict(perf.schema) == row_schema("agent_performance")
    joined = perf.join(
        out.select("date", pl.col("agent").alias("agent_name"), "signal_date"), on=["date", "agent_name"]
    )
    w = rows.select(pl.col("date").alias("signal_date"), "agent_name", "weight")
    check = joined.join(w, on=["signal_date", "agent_name"])
    assert (check["pnl_contribution"] - check["weight"] * check["actual_return"]).abs().max() <= 1e-15


def test_learner_has_no_lookahead_and_is_deterministic() -> None:
    """Changing the returns after D (and the regimes after D) leaves every row dated <= D unchanged; the same
    inputs give the same rows."""
    days, sig, ret, regimes, static = _world(1)
    p = WeightLearningParams(ts_share_stable=0.5)
    cut = days[70]
    base = learn_weights(agent_outcomes(sig, ret), regimes, static, p, days[-1], strategy="s", sessions=days)
    again = learn_weights(agent_outcomes(sig, ret), regimes, static, p, days[-1], strategy="s", sessions=days)
    assert base.equals(again)
    ret2 = ret.with_columns(ret=pl.when(pl.col("date") > cut).then(-pl.col("ret") * 3.0).otherwise(pl.col("ret")))
    regimes2 = regimes.with_columns(regime=pl.when(pl.col("date") > cut).then(pl.lit("x")).otherwise(pl.col("regime")))
    moved = learn_weights(agent_outcomes(sig, ret2), regimes2, static, p, days[-1], strategy="s", sessions=days)
    assert base.filter(pl.col("date") <= cut).equals(moved.filter(pl.col("date") <= cut))
    assert not base.filter(pl.col("date") > cut).equals(moved.filter(pl.col("date") > cut))
    alone = learn_weights(agent_outcomes(sig, ret), regimes, static, p, cut, strategy="s", sessions=days)
    assert alone.equals(base.filter(pl.col("date") <= cut))


def test_learner_rejects_bad_static_weights() -> None:
    days, sig, ret, regimes, _ = _world(2)
    out = agent_outcomes(sig, ret)
    p = WeightLearningParams()
    with pytest.raises(InfeasibleWeightsError, match=r"^2 agent\(s\)"):
        learn_weights(out, regimes, {"a0": 0.5, "a1": 0.5}, p, days[-1], strategy="s")
    with pytest.raises(ValueError, match="must sum to 1"):
        learn_weights(out, regimes, {"a0": 0.7, "a1": 0.1, "a2": 0.1, "a3": 0.1}, p, days[-1], strategy="s")


def test_learner_without_outcomes_gives_static_rows() -> None:
    """No outcome yet (or no regime history): the preset's weights, warm-up 0 of n."""
    static = {"a": 0.4, "b": 0.3, "c": 0.3}
    day = dt.date(2024, 1, 2)
    for regimes in (pl.DataFrame({"date": [day], "regime": ["risk_on"]}), pl.DataFrame()):
        rows = learn_weights(
            pl.DataFrame(schema=OUTCOME_SCHEMA),
            regimes,
            static,
            WeightLearningParams(),
            day,
            strategy="s",
            sessions=[day],
        )
        assert rows["weight"].to_list() == [0.4, 0.3, 0.3]
        assert rows["algorithm_used"].unique().to_list() == ["static (warm-up: 0 of 21 sessions)"]
