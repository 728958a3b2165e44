"""Portfolio optimizer (seed 002 Part 4): KKT, skfolio oracle, closed form, caching, fallbacks.

Units everywhere: annualised decimal mu and covariance, weights as fractions of NAV.
"""

from __future__ import annotations

import math
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from sklearn.covariance import LedoitWolf

from mqf_pipeline.portfolio import optimizer as opt_mod
from mqf_pipeline.portfolio.covariance import FactorCovariance, ledoit_wolf_covariance, ledoit_wolf_factor
from mqf_pipeline.portfolio.optimizer import (
    CONSTRAINT_NAMES,
    STATUSES,
    MeanVarianceProblem,
    OptimizerConstraints,
    PortfolioOptimizer,
    constraint_report,
    position_caps,
)

SECTORS = ("TECH", "FIN", "HLTH", "ENGY", "UTIL", "IND")


def instance(
    seed: int, n: int = 30, shorts: bool = True, nav: float = 5e7, n_sectors: int = 5, prev: float = 0.06
) -> dict[str, Any]:
    """Random annualised inputs: factor-model covariance (vols ~15-45%), mu ~ N(8%, 25%)."""
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(n, 4)) * 0.15
    cov = b @ b.T + np.diag(rng.uniform(0.02, 0.08, n))
    mu = rng.normal(0.08, 0.25, n)
    sectors = np.asarray(SECTORS[:n_sectors])[rng.integers(0, n_sectors, n)]
    adv = rng.lognormal(math.log(3e8), 1.0, n)
    w_prev = np.zeros(n)
    k = min(8, n)
    w_prev[:k] = rng.uniform(-prev if shorts else 0.0, prev, k)
    return {"mu": mu, "cov": cov, "w_prev": w_prev, "adv": adv, "nav": nav, "sectors": sectors}


def independent_violations(
    w: np.ndarray, inst: dict[str, Any], c: OptimizerConstraints, tol: float, turnover: float | None = None
) -> set[str]:
    """Constraint names broken by more than ``tol``, computed here from the definitions in seed 002 §4.2."""
    w_prev, sectors = inst["w_prev"], np.asarray(inst["sectors"])
    adv = np.where(np.isfinite(inst["adv"]) & (inst["adv"] > 0), inst["adv"], 0.0)
    out = set()
    if np.abs(w).sum() > c.gross + tol:
        out.add("gross")
    if w[w > 0].sum() > c.long + tol:
        out.add("long")
    if -w[w < 0].sum() > (c.short if c.allow_shorts else 0.0) + tol:
        out.add("short")
    if any(np.abs(w[sectors == s]).sum() > c.sector + tol for s in set(sectors.tolist())):
        out.add("sector")
    if np.abs(w - w_prev).sum() > (c.turnover if turnover is None else turnover) + tol:
        out.add("turnover")
    if (np.abs(w) > c.adv_fraction * adv / inst["nav"] + tol).any():
        out.add("liquidity")
    if (np.abs(w) > c.single_name + tol).any():
        out.add("single_name")
    return out


def utility(w: np.ndarray, inst: dict[str, Any], lam: float) -> float:
    return float(inst["mu"] @ w - lam * w @ inst["cov"] @ w)


def solve(c: OptimizerConstraints, inst: dict[str, Any], **kw: Any) -> Any:
    optimizer = PortfolioOptimizer(c, **kw)
    return optimizer, optimizer.solve(**inst)


# --------------------------------------------------------------------------- constraints dataclass


def test_defaults_are_the_seed_limits() -> None:
    """Seed 002 §4.2 table, exact."""
    c = OptimizerConstraints()
    assert (c.gross, c.long, c.short, c.sector, c.turnover, c.adv_fraction, c.single_name) == (
        1.0,
        0.6,
        0.4,
        0.15,
        0.20,
        0.02,
        0.10,
    )
    assert c.allow_shorts is False and c.risk_aversion == 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gross", -0.1),
        ("long", math.nan),
        ("short", math.inf),
        ("sector", "0.15"),
        ("turnover", -1e-9),
        ("adv_fraction", -0.02),
        ("single_name", True),
        ("risk_aversion", 0.0),
        ("allow_shorts", 1),
    ],
)
def test_constraints_validation_names_the_field(field: str, value: object) -> None:
    """Each invalid field raises ValueError naming it."""
    with pytest.raises(ValueError, match=rf"OptimizerConstraints\.{field}\b"):
        OptimizerConstraints(**{field: value})


# --------------------------------------------------------------------------- KKT


def _grad(expr: cp.Expression, var: cp.Variable) -> np.ndarray:
    """cvxpy's gradient of ``expr`` w.r.t. ``var`` as a dense (var.size, expr.size) array."""
    g = expr.grad.get(var)
    if g is None or (np.isscalar(g) and g == 0):
        return np.zeros((var.size, expr.size))
    arr = g.toarray() if hasattr(g, "toarray") else np.asarray(g)
    return arr.reshape(var.size, expr.size)


def kkt_residuals(prob: MeanVarianceProblem) -> dict[str, float]:
    """Max KKT residuals of ``min -f(x) s.t. g_j(x) <= 0`` at the stored primal/dual solution.

    Every constraint of the compiled problem is an inequality ``g = lhs - rhs <= 0`` (cvxpy's
    ``constraint.expr``) with multiplier ``z = constraint.dual_value``. Gradients come from cvxpy's
    own ``.grad`` (not from the optimizer's formulation): stationarity ``-grad f + sum_j J_j' z_j``
    over every variable (w, a, t), primal ``max g``, dual ``max(-z)``, complementary ``max |z g|``.
    """
    problem = prob.qp
    stat = 0.0
    for var in problem.variables():
        r = -_grad(problem.objective.expr, var).ravel()
        for con in prob.constraints.values():
            r = r + _grad(con.expr, var) @ np.atleast_1d(con.dual_value).ravel()
        stat = max(stat, float(np.abs(r).max()))
    primal = max(float(np.max(con.expr.value)) for con in prob.constraints.values())
    dual = max(float(np.max(-np.atleast_1d(con.dual_value))) for con in prob.constraints.values())
    comp = max(
        float(np.max(np.abs(np.atleast_1d(con.dual_value) * np.atleast_1d(con.expr.value))))
        for con in prob.constraints.values()
    )
    return {"stationarity": stat, "primal": max(primal, 0.0), "dual": max(dual, 0.0), "complementarity": comp}


@pytest.mark.parametrize(
    ("shorts", "limits", "expect_binding"),
    [
        (True, {"turnover": 0.4}, {"liquidity", "sector", "single_name", "turnover"}),
        (False, {"turnover": 1.0}, {"liquidity", "long", "sector", "single_name"}),
        (True, {"turnover": 1.0, "gross": 0.6, "short": 0.1}, {"gross", "short", "liquidity", "sector"}),
    ],
)
@pytest.mark.filterwarnings("ignore:Reading from a sparse CVXPY expression:RuntimeWarning")
def test_kkt_residuals_full_problem(shorts: bool, limits: dict[str, float], expect_binding: set[str]) -> None:
    """KKT residuals of the full QP (see kkt_residuals) <= 1e-8; every constraint type binds in some case."""
    c = OptimizerConstraints(allow_shorts=shorts, risk_aversion=1.5, **limits)
    inst = instance(4, n=30, shorts=shorts)
    optimizer, res = solve(c, inst)
    assert res.status == "optimal" and res.method == "qp/CLARABEL"
    binding = {k for k in CONSTRAINT_NAMES if res.utilisation[k].binding}
    assert expect_binding <= binding
    residuals = kkt_residuals(optimizer.last_problem)
    assert max(residuals.values()) <= 1e-8, residuals
    assert independent_violations(res.weights, inst, c, 1e-8) == set()


# --------------------------------------------------------------------------- skfolio oracle


@pytest.mark.parametrize(("shorts", "seed"), [(True, 5), (True, 6), (False, 0), (False, 5)])
def test_matches_skfolio_mean_risk(shorts: bool, seed: int) -> None:
    """Same problem in skfolio MeanRisk(MAXIMIZE_UTILITY, VARIANCE): weights within 1e-6, objective 1e-7 rel.

    Mapping (skfolio/optimization/convex/_mean_risk.py): skfolio maximises ``mu'w - risk_aversion *
    variance`` with variance ``w'Sigma w`` (square of its SOC standard deviation), so
    ``risk_aversion = lambda`` exactly (no factor 1/2). ``budget=None`` drops its sum(w) = 1,
    ``min/max_weights = -/+ cap`` (``0`` when long-only), ``max_long``/``max_short`` are the
    positive/negative-part sums; gross, the sector ``sum |w|`` and the *total* turnover go in
    ``add_constraints`` (skfolio's ``max_turnover`` is per asset). ``scale_objective=100`` only
    rescales skfolio's objective: without it Clarabel stops ~3e-6 away on its SOC formulation.
    """
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction
    from skfolio.prior import BasePrior, ReturnDistribution

    class FixedPrior(BasePrior):
        def __init__(self, mu: np.ndarray | None = None, covariance: np.ndarray | None = None) -> None:
            self.mu = mu
            self.covariance = covariance

        def fit(self, X: np.ndarray, y: None = None, **fit_params: Any) -> FixedPrior:
            self.return_distribution_ = ReturnDistribution(mu=self.mu, covariance=self.covariance, returns=X)
            return self

    c = OptimizerConstraints(allow_shorts=shorts, risk_aversion=1.5)
    inst = instance(seed, n=25, shorts=shorts)
    _, res = solve(c, inst)
    assert res.status == "optimal"
    cap = np.minimum(position_caps(inst["adv"], inst["nav"], c), c.single_name)
    labels = np.unique(inst["sectors"])
    member = (inst["sectors"][None, :] == labels[:, None]).astype(float)
    w_prev = inst["w_prev"]

    def extra(w: cp.Variable) -> list[cp.Constraint]:
        return [cp.norm1(w) <= c.gross, member @ cp.abs(w) <= c.sector, cp.norm1(w - w_prev) <= c.turnover]

    model = MeanRisk(
        objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
        risk_measure=RiskMeasure.VARIANCE,
        risk_aversion=c.risk_aversion,
        prior_estimator=FixedPrior(inst["mu"], inst["cov"]),
        min_weights=-cap if shorts else 0.0,
        max_weights=cap,
        budget=None,
        max_long=c.long,
        max_short=c.short if shorts else None,
        add_constraints=extra,
        solver="CLARABEL",
        solver_params={"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
        scale_objective=100.0,
    )
    model.fit(np.random.default_rng(seed).normal(0.0, 0.01, (60, 25)))
    assert np.abs(model.weights_ - res.weights).max() <= 1e-6
    ref = utility(model.weights_, inst, c.risk_aversion)
    assert abs(res.objective - ref) <= 1e-7 * abs(ref)
    assert {k for k in CONSTRAINT_NAMES if res.utilisation[k].binding} >= {"turnover", "liquidity"}


# --------------------------------------------------------------------------- closed form, factor form


LOOSE = {"gross": 1e3, "long": 1e3, "short": 1e3, "sector": 1e3, "turnover": 1e3, "single_name": 1e3}


@pytest.mark.parametrize("lam", [0.5, 1.0, 4.0])
def test_unconstrained_equals_closed_form(lam: float) -> None:
    """Loose limits: w = Sigma^-1 mu / (2 lambda), max error <= 1e-6 x max|w|; factor form too."""
    c = OptimizerConstraints(allow_shorts=True, risk_aversion=lam, **LOOSE)
    rng = np.random.default_rng(11)
    n = 20
    b = rng.normal(size=(n, 3)) * 0.2
    d = rng.uniform(0.02, 0.09, n)
    inst = instance(11, n=n)
    inst.update(cov=b @ b.T + np.diag(d), adv=np.full(n, 1e15), w_prev=np.zeros(n))
    expected = np.linalg.solve(inst["cov"], inst["mu"]) / (2 * lam)
    scale = np.abs(expected).max()
    optimizer, res = solve(c, inst)
    assert res.status == "optimal" and res.utilisation["gross"].binding is False
    assert np.abs(res.weights - expected).max() <= 1e-6 * scale
    res_f = optimizer.solve(**{**inst, "cov": FactorCovariance(b, d)})
    assert res_f.status == "optimal"
    assert np.abs(res_f.weights - expected).max() <= 1e-6 * scale


@pytest.mark.parametrize("shorts", [True, False])
def test_factor_form_matches_dense(shorts: bool) -> None:
    """FactorCovariance and its dense matrix give the same constrained optimum within 1e-7."""
    rng = np.random.default_rng(3)
    n = 40
    b = rng.normal(size=(n, 5)) * 0.12
    d = rng.uniform(0.02, 0.08, n)
    c = OptimizerConstraints(allow_shorts=shorts)
    inst = instance(3, n=n, shorts=shorts)
    inst["cov"] = b @ b.T + np.diag(d)
    optimizer, dense = solve(c, inst)
    factor = optimizer.solve(**{**inst, "cov": FactorCovariance(b, d)})
    assert dense.status == factor.status == "optimal"
    assert np.abs(dense.weights - factor.weights).max() <= 1e-7
    assert optimizer.cache_size == 2  # different structure (factor width) -> separate compiled problems


def test_singular_covariance_gets_a_tiny_ridge() -> None:
    """Rank-4 PSD Sigma (30 assets): optimal with a ridge <= 1e-9 x top eigenvalue, noted; objective
    equals the exact factor form's within 1e-7 relative (the weights need not be unique)."""
    rng = np.random.default_rng(21)
    b = rng.normal(size=(30, 4)) * 0.2
    c = OptimizerConstraints(allow_shorts=True)
    inst = instance(21, n=30)
    inst["cov"] = b @ b.T
    optimizer, res = solve(c, inst)
    assert res.status == "optimal" and any("cov is singular" in note for note in res.notes)
    ridge = float(res.notes[0].split("+ ")[1].split(" I")[0])
    assert 0 < ridge <= 1e-9 * np.linalg.eigvalsh(inst["cov"]).max()
    exact = optimizer.solve(**{**inst, "cov": FactorCovariance(b, np.zeros(30))})
    assert exact.status == "optimal" and exact.notes == []
    assert res.objective == pytest.approx(exact.objective, rel=1e-7)


# --------------------------------------------------------------------------- caching


def test_resolve_reuses_the_compiled_problem() -> None:
    """Same structure: the same DPP cvxpy Problem and compiled program are reused; compile not paid twice."""
    c = OptimizerConstraints(allow_shorts=True)
    inst = instance(1, n=60)
    optimizer = PortfolioOptimizer(c)
    first = optimizer.solve(**inst)
    prob = optimizer.last_problem
    assert prob is not None and prob.qp.is_dpp()
    program, chain = prob.qp._cache.param_prog, prob.qp._cache.solving_chain
    cold_compile = prob.qp.compilation_time
    rng = np.random.default_rng(2)
    second = optimizer.solve(**{**inst, "mu": inst["mu"] + rng.normal(0, 0.05, 60), "w_prev": first.weights})
    assert first.status == second.status == "optimal"
    assert optimizer.last_problem is prob and optimizer.cache_size == 1
    assert prob.qp._cache.param_prog is program and prob.qp._cache.solving_chain is chain
    assert prob.qp.compilation_time < 0.5 * cold_compile
    assert not np.allclose(first.weights, second.weights)  # the new parameters were used
    optimizer.solve(**{**inst, "sectors": np.roll(inst["sectors"], 1)})
    assert optimizer.last_problem is not prob and optimizer.cache_size == 2  # membership is structural


# --------------------------------------------------------------------------- reports and metrics


def test_constraint_report_hand_example() -> None:
    """Hand-computed usage on 4 assets, exact to 1e-12."""
    c = OptimizerConstraints(allow_shorts=True)
    w = np.array([0.10, -0.05, 0.02, 0.0])
    w_prev = np.array([0.0, -0.05, 0.05, 0.01])
    adv = np.array([1e9, 1e6, np.nan, 5e6])
    rep = constraint_report(w, w_prev, adv, 1e7, ["A", "A", "B", "B"], c)
    assert rep["gross"][:2] == pytest.approx((1.0, 0.17), abs=1e-12)
    assert rep["long"][:2] == pytest.approx((0.6, 0.12), abs=1e-12)
    assert rep["short"][:2] == pytest.approx((0.4, 0.05), abs=1e-12)
    assert rep["turnover"][:2] == pytest.approx((0.2, 0.14), abs=1e-12)
    assert rep["sector:A"][:2] == pytest.approx((0.15, 0.15), abs=1e-12) and rep["sector:A"].binding
    assert rep["sector"] == rep["sector:A"]
    assert rep["sector:B"][:2] == pytest.approx((0.15, 0.02), abs=1e-12) and not rep["sector:B"].binding
    # liquidity caps: 2% x ADV / NAV = [2.0, 0.002, 0 (NaN ADV), 0.01]; worst excess is asset 1 (0.048)
    assert rep["liquidity"][:2] == pytest.approx((0.002, 0.05), abs=1e-12)
    assert rep["liquidity"].utilisation_pct == pytest.approx(2500.0, rel=1e-12)
    assert rep["single_name"][:2] == pytest.approx((0.1, 0.1), abs=1e-12) and rep["single_name"].binding
    assert rep["gross"].utilisation_pct == pytest.approx(17.0, rel=1e-12)
    # binding means within max(1e-9, 1e-6 x limit) of the limit
    near = constraint_report(np.array([0.1 - 5e-8, 0.0]), np.zeros(2), np.full(2, 1e12), 1e7, ["A", "B"], c)
    far = constraint_report(np.array([0.0995, 0.0]), np.zeros(2), np.full(2, 1e12), 1e7, ["A", "B"], c)
    assert near["single_name"].binding and not far["single_name"].binding


def test_result_metrics_are_consistent() -> None:
    """objective, return, vol, Sharpe (rf = 2%) and Euler w . marginal_risk = vol, to 1e-12 relative."""
    c = OptimizerConstraints(allow_shorts=True)
    inst = instance(4)
    res = PortfolioOptimizer(c).solve(**inst, risk_free_rate=0.02)
    w, cov, mu = res.weights, inst["cov"], inst["mu"]
    vol = math.sqrt(w @ cov @ w)
    assert res.volatility == pytest.approx(vol, rel=1e-12)
    assert res.expected_return == pytest.approx(mu @ w, rel=1e-12)
    assert res.objective == pytest.approx(mu @ w - c.risk_aversion * vol**2, rel=1e-12)
    assert res.sharpe == pytest.approx((mu @ w - 0.02) / vol, rel=1e-12)
    assert w @ res.marginal_risk == pytest.approx(vol, rel=1e-12)
    assert res.marginal_risk == pytest.approx(cov @ w / vol, rel=1e-12)
    assert res.solve_time_ms > 0 and res.constraints_violated == [] and res.conflicts == []


def test_invalid_inputs_raise_value_error() -> None:
    """Shape mismatches, NaN mu/w_prev, non-PSD covariance and bad NAV are caller errors."""
    optimizer = PortfolioOptimizer()
    inst = instance(0, n=6)
    bad = [
        {"mu": inst["mu"][:5]},
        {"mu": np.where(np.arange(6) == 2, np.nan, inst["mu"])},
        {"w_prev": np.full(6, np.nan)},
        {"cov": np.diag([0.1, 0.1, -0.1, 0.1, 0.1, 0.1])},
        {"cov": np.eye(5)},
        {"nav": 0.0},
        {"sectors": ["A"] * 5},
        {"adv": np.ones(5)},
    ]
    for override in bad:
        with pytest.raises(ValueError):
            optimizer.solve(**{**inst, **override})


# --------------------------------------------------------------------------- fallback chain


def test_infeasible_sector_vs_turnover_is_relaxed_and_explained() -> None:
    """w_prev holds 0.5 in TECH (cap 0.15) with turnover 0.2: status relaxed, turnover = 0.35 (1e-5), caps 1e-7."""
    n = 24
    sectors = np.asarray(["TECH"] * 6 + ["FIN"] * 6 + ["HLTH"] * 6 + ["ENGY"] * 6)
    w_prev = np.zeros(n)
    w_prev[:5] = 0.10  # every name within the 10% single-name cap, the sector at 0.50
    inst = instance(8, n=n, shorts=False)
    inst.update(sectors=sectors, w_prev=w_prev, adv=np.full(n, 1e12))
    c = OptimizerConstraints()
    _, res = solve(c, inst)
    assert res.status == "relaxed" and res.method.startswith("relaxed-qp/")
    assert res.constraints_violated == ["turnover"]
    text = " ".join(res.conflicts)
    assert res.conflicts[0].startswith("turnover") and "sector TECH" in text and "0.5000 > cap 0.1500" in text
    assert res.utilisation["turnover"].value == pytest.approx(0.35, abs=1e-5)
    assert independent_violations(res.weights, inst, c, 1e-7) == {"turnover"}
    assert res.utilisation["sector:TECH"].value <= 0.15 + 1e-7


def _failing_solve(*args: Any, **kwargs: Any) -> None:
    raise cp.error.SolverError("simulated solver crash")


def test_solver_failure_falls_through_sequential_greedy_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cvxpy solve raises: sequential, then greedy, then hold; no exception, caps within 1e-9."""
    c = OptimizerConstraints(allow_shorts=True)
    inst = instance(2, n=30)
    inst["adv"] = np.maximum(inst["adv"], 2e8)  # liquidity caps >= 0.08 > every |w_prev|: w_prev is feasible
    assert independent_violations(inst["w_prev"], inst, c, 0.0) == set()
    _, best = solve(c, inst)
    assert best.status == "optimal"
    monkeypatch.setattr(cp.Problem, "solve", _failing_solve)
    optimizer = PortfolioOptimizer(c)
    seq = optimizer.solve(**inst)
    assert seq.status == "sequential" and any("simulated solver crash" in note for note in seq.notes)
    assert independent_violations(seq.weights, inst, c, 1e-9) == set() and seq.constraints_violated == []
    hold_obj = utility(inst["w_prev"], inst, c.risk_aversion)
    assert hold_obj - 1e-12 <= seq.objective <= best.objective + 1e-9

    monkeypatch.setattr(opt_mod, "_sequential", _failing_solve)
    greedy = optimizer.solve(**inst)
    assert greedy.status == "greedy" and independent_violations(greedy.weights, inst, c, 1e-9) == set()
    assert greedy.objective <= best.objective + 1e-9

    monkeypatch.setattr(opt_mod, "_greedy", _failing_solve)
    hold = optimizer.solve(**inst)
    assert hold.status == "hold" and np.array_equal(hold.weights, inst["w_prev"])


@pytest.mark.parametrize("shorts", [True, False])
def test_clarabel_failure_uses_the_backup_solver(monkeypatch: pytest.MonkeyPatch, shorts: bool) -> None:
    """Clarabel raises: OSQP (polishing on, eps 1e-9) on qp_backup gives status optimal, weights within 1e-6."""
    c = OptimizerConstraints(allow_shorts=shorts)
    inst = instance(2, n=30, shorts=shorts)
    _, best = solve(c, inst)
    real = opt_mod._solve

    def clarabel_down(problem: cp.Problem, solver: str, tol: float) -> None:
        if solver == "CLARABEL":
            raise cp.error.SolverError("clarabel down")
        real(problem, solver, tol)

    monkeypatch.setattr(opt_mod, "_solve", clarabel_down)
    optimizer, res = solve(c, inst)
    assert res.status == "optimal" and res.method == "qp/OSQP" and "clarabel down" in res.notes[0]
    assert np.abs(res.weights - best.weights).max() <= 1e-6
    assert independent_violations(res.weights, inst, c, 1e-7) == set()
    assert optimizer.last_problem.qp_backup.status == cp.OPTIMAL


def test_fallbacks_on_infeasible_start_report_turnover(monkeypatch: pytest.MonkeyPatch) -> None:
    """Solver down and w_prev over the sector cap: sequential keeps caps (1e-9) and reports turnover + conflicts."""
    n = 12
    inst = instance(9, n=n, shorts=False)
    w_prev = np.zeros(n)
    w_prev[:4] = 0.1
    inst.update(sectors=np.asarray(["TECH"] * 4 + ["FIN"] * 8), w_prev=w_prev, adv=np.full(n, 1e12))
    c = OptimizerConstraints()
    monkeypatch.setattr(cp.Problem, "solve", _failing_solve)
    res = PortfolioOptimizer(c).solve(**inst)
    assert res.status == "sequential"
    assert res.constraints_violated == ["turnover"]
    assert res.conflicts and "sector TECH" in " ".join(res.conflicts)
    assert independent_violations(res.weights, inst, c, 1e-9) == {"turnover"}


# --------------------------------------------------------------------------- property test


def min_turnover_lp(inst: dict[str, Any], c: OptimizerConstraints) -> float:
    """Smallest sum|w - w_prev| meeting every cap, by scipy HiGHS on x = (u, v, t), w = u - v."""
    w_prev, sectors = inst["w_prev"], np.asarray(inst["sectors"])
    n = w_prev.size
    cap = np.minimum(position_caps(inst["adv"], inst["nav"], c), c.single_name)
    eye, zero = np.eye(n), np.zeros((n, n))
    rows, rhs = [], []
    rows += [np.hstack([eye, -eye, -eye]), np.hstack([-eye, eye, -eye])]  # +-(u - v - w_prev) <= t
    rhs += [w_prev, -w_prev]
    ones = np.ones(n)
    rows.append(np.hstack([ones, ones, 0 * ones])[None])
    rhs.append([c.gross])
    rows.append(np.hstack([ones, 0 * ones, 0 * ones])[None])
    rhs.append([c.long])
    rows.append(np.hstack([0 * ones, ones, 0 * ones])[None])
    rhs.append([c.short if c.allow_shorts else 0.0])
    for s in set(sectors.tolist()):
        m = (sectors == s).astype(float)
        rows.append(np.hstack([m, m, 0 * m])[None])
        rhs.append([c.sector])
    rows.append(np.hstack([eye, eye, zero]))  # |w_i| <= u_i + v_i <= cap_i
    rhs.append(cap)
    out = linprog(
        np.concatenate([np.zeros(2 * n), ones]),
        A_ub=np.vstack(rows),
        b_ub=np.concatenate([np.ravel(r) for r in rhs]),
        bounds=[(0, None)] * (3 * n),
        method="highs",
    )
    assert out.status == 0
    return float(out.fun)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 14),
    n_sectors=st.integers(1, 6),
    shorts=st.booleans(),
    prev=st.sampled_from([0.0, 0.05, 0.2, 0.6]),
    turnover=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
    illiquid=st.booleans(),
    gross=st.sampled_from([1.0, 0.5]),
)
def test_property_constraints_hold_or_fallback_explains(
    seed: int, n: int, n_sectors: int, shorts: bool, prev: float, turnover: float, illiquid: bool, gross: float
) -> None:
    """Random mu, PSD Sigma, w_prev (may break caps), ADVs, sectors: every constraint holds within 1e-7,
    or the status is a documented fallback whose constraints_violated/conflicts say why. A fallback
    must be justified: the HiGHS min-turnover LP confirms turnover cannot reach the caps (1e-7)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n)) * rng.uniform(0.05, 0.4)
    cov = a @ a.T / n + np.diag(rng.uniform(0.0, 0.05, n))
    mu = rng.normal(0.05, rng.uniform(0.01, 0.5), n)
    w_prev = rng.uniform(-prev if shorts else 0.0, prev, n) * (rng.random(n) < 0.7)
    adv = rng.lognormal(math.log(2e7), 1.5, n)
    if illiquid:
        adv[rng.integers(0, n)] = rng.choice([0.0, np.nan])
    sectors = np.asarray(SECTORS)[rng.integers(0, n_sectors, n)]
    lam = float(rng.uniform(0.3, 5.0))
    c = OptimizerConstraints(allow_shorts=shorts, turnover=turnover, gross=gross, risk_aversion=lam)
    inst = {"mu": mu, "cov": cov, "w_prev": w_prev, "adv": adv, "nav": 1e8, "sectors": sectors}
    res = PortfolioOptimizer(c).solve(**inst)
    assert res.status in STATUSES and res.weights.shape == (n,) and np.isfinite(res.weights).all()
    broken = independent_violations(res.weights, inst, c, 1e-7)
    assert set(res.constraints_violated) == broken
    prev_broken = independent_violations(w_prev, inst, c, 1e-7) - {"turnover"}
    event(f"status={res.status}, w_prev breaks caps={bool(prev_broken)}")
    if not prev_broken:  # w_prev is feasible, so the QP must be solved exactly
        assert res.status == "optimal" and broken == set() and res.conflicts == []
        assert res.objective >= utility(w_prev, inst, c.risk_aversion) - 1e-9
        if np.abs(w_prev).sum() <= c.turnover:
            assert res.objective >= -1e-9  # w = 0 is feasible too
    elif res.status == "optimal":
        assert broken == set() and min_turnover_lp(inst, c) <= c.turnover + 1e-7
    else:
        assert res.status == "relaxed", res.notes
        assert broken <= {"turnover"} and res.conflicts and res.conflicts[0].startswith("turnover")
        needed = min_turnover_lp(inst, c)
        assert needed > c.turnover - 1e-7
        assert res.utilisation["turnover"].value <= needed + 2e-6
        assert all(name.split(":")[0] in " ".join(res.conflicts) for name in prev_broken)


# --------------------------------------------------------------------------- covariance


def test_ledoit_wolf_covariance_annualised_and_nan_policies() -> None:
    """Equals sklearn LedoitWolf x 252 on zero-filled / row-dropped data (1e-12 relative); PSD; inf rejected."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0005, 0.015, (300, 8))
    x[5, 2] = np.nan
    x[40, 7] = np.nan
    zero = np.where(np.isnan(x), 0.0, x)
    dropped = x[~np.isnan(x).any(axis=1)]
    got = ledoit_wolf_covariance(x)
    np.testing.assert_allclose(got, LedoitWolf().fit(zero).covariance_ * 252, rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        ledoit_wolf_covariance(x, nan_policy="drop"), LedoitWolf().fit(dropped).covariance_ * 252, rtol=1e-12
    )
    assert np.array_equal(got, got.T) and np.linalg.eigvalsh(got).min() > 0
    assert 0.015**2 * 252 * 0.8 < np.diag(got).mean() < 0.015**2 * 252 * 1.2  # annual variance, ~5.7%
    with pytest.raises(ValueError):
        ledoit_wolf_covariance(np.where(np.isnan(x), np.inf, x))
    with pytest.raises(ValueError):
        ledoit_wolf_covariance(x[:1])
    with pytest.raises(ValueError):
        ledoit_wolf_covariance(x, nan_policy="ffill")  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["zero", "drop"])
def test_ledoit_wolf_factor_form_is_exact(policy: str) -> None:
    """ledoit_wolf_factor(x).matrix() equals ledoit_wolf_covariance(x) within 1e-12 relative (T < N and T > N)."""
    rng = np.random.default_rng(1)
    for t, n in ((40, 60), (300, 8)):
        x = rng.normal(0.0, 0.02, (t, n))
        x[3, 1] = np.nan
        dense = ledoit_wolf_covariance(x, nan_policy=policy)  # type: ignore[arg-type]
        factor = ledoit_wolf_factor(x, nan_policy=policy)  # type: ignore[arg-type]
        assert factor.loadings.shape == (n, t - (policy == "drop"))
        np.testing.assert_allclose(factor.matrix(), dense, rtol=0, atol=1e-12 * np.abs(dense).max())
