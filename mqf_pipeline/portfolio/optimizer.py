"""Mean-variance portfolio optimizer (seed 002 Part 4, seed 000 §8.2) with a fallback chain.

Units: ``mu`` is the annualised expected simple return per asset (decimal, 0.08 = 8%/year), the
covariance is annualised (variance 0.09 = 30% volatility), weights are fractions of NAV (signed,
shorts negative), ADV and NAV are in the same currency. Keep these annual units: daily decimal
inputs (variances ~1e-4) are badly scaled for the interior-point solver (shared NUMERICS.md).

Problem (seed 002 §4.2), with lambda = ``risk_aversion`` (default 1.0 in these units)::

    maximise    mu'w - lambda w'Sigma w
    subject to  sum_i |w_i|                  <= gross        (1.0)
                sum_i max(w_i, 0)            <= long         (0.6)
                sum_i max(-w_i, 0)           <= short        (0.4; w >= 0 when shorts are off)
                sum_{i in s} |w_i|           <= sector       (0.15, every sector s)
                sum_i |w_i - w_prev_i|       <= turnover     (0.20)
                |w_i| <= min(single_name, adv_fraction ADV_i / NAV)   (0.10, 2% of ADV)

Formulation: variables ``w`` (weights), ``a >= |w|`` and ``t >= |w - w_prev|``; the gross, sector
and cap rows bound ``a``, long/short bound ``(a + w) / 2`` and ``(a - w) / 2``, turnover bounds
``sum t``. Any slack in ``a`` or ``t`` only tightens the true constraints, so the model is exact.
The quadratic term is ``||F' w||^2 (+ ||d * w||^2)`` with ``F F' + diag(d^2) = lambda Sigma``
(a lower-triangular Cholesky factor, held in a sparse cvxpy Parameter on the triangle, for a
dense matrix, with a ~1e-12 relative ridge if it is singular; the loadings for a
:class:`FactorCovariance`), so the problem is DPP: it is compiled once per structure (asset
count, sector membership, covariance form and width, shorts flag) and re-solved by updating
cvxpy Parameters. Clarabel solves it first, then the next installed solver (OSQP, then SCS).
Cost per interior-point iteration: O(N^3) for a dense covariance, O(N K^2) in factor form, which
is much faster at 500+ assets (bench/optimizer.py).

Fallback chain (seed 002 §4.4); :meth:`PortfolioOptimizer.solve` never raises once its inputs are
valid (invalid inputs raise ``ValueError``):

1. ``optimal``: the full QP, accepted only if the weights satisfy every constraint within
   ``feas_tol``.
2. ``relaxed``: the same compiled QP with the turnover limit raised to the smallest turnover that
   brings ``w_prev`` within every cap (an LP), plus 1e-6. Turnover is the only constraint that
   can conflict: ``w = 0`` satisfies all the others, and ``w_prev`` satisfies turnover, so the
   problem is infeasible exactly when ``w_prev`` breaks caps by more than the turnover limit can
   fix. ``conflicts`` says which caps and by how much.
3. ``sequential``: coordinate ascent, one asset at a time, from the better of the greedy and
   hold points; each step is the exact 1-D maximiser of the objective over the interval that keeps
   every constraint (turnover relaxed to what the hold point already needs): monotone (never below
   the hold point's objective), feasible, approximate (it can stall where budgets couple assets).
4. ``greedy``: rank by ``|mu_i| / sigma_i^2``, release holdings beyond their single-asset target
   worst-first, then fill each asset towards ``mu_i / (2 lambda sigma_i^2)`` best-first within the
   remaining budgets.
5. ``hold``: ``w_prev`` clipped to the caps (per-asset caps, then each sector, long, short and
   gross scaled down), which may exceed the turnover limit.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence

import cvxpy as cp
import numpy as np

from mqf_pipeline.portfolio.covariance import FactorCovariance

# The optimizer is split over optimizer_report (limits, result types, usage report), optimizer_problem
# (the compiled QP and its solver calls) and optimizer_fallbacks (diagnosis and heuristic fallbacks).
# PortfolioOptimizer calls _solve, _greedy, _sequential and _hold through this module's globals, so
# tests can patch them here (``monkeypatch.setattr(optimizer, "_solve", ...)``).
from mqf_pipeline.portfolio.optimizer_fallbacks import (
    RELAX_MARGIN,
    _diagnose,
    _greedy,
    _hold,
    _sequential,
    _utility,
)
from mqf_pipeline.portfolio.optimizer_problem import (
    MeanVarianceProblem,
    _build_inputs,
    _cholesky,
    _Inputs,
    _solve,
)
from mqf_pipeline.portfolio.optimizer_report import (
    BINDING_RTOL,
    CONSTRAINT_NAMES,
    STATUSES,
    ConstraintUsage,
    OptimizationResult,
    OptimizerConstraints,
    _report,
    _violations,
    constraint_report,
    position_caps,
)

__all__ = [
    "BINDING_RTOL",
    "CONSTRAINT_NAMES",
    "RELAX_MARGIN",
    "STATUSES",
    "ConstraintUsage",
    "MeanVarianceProblem",
    "OptimizationResult",
    "OptimizerConstraints",
    "PortfolioOptimizer",
    "constraint_report",
    "position_caps",
]


class PortfolioOptimizer:
    """Mean-variance optimizer with compiled-problem caching and the seed 002 §4.4 fallback chain.

    ``tol`` is the interior-point tolerance (gap and feasibility); ``feas_tol`` is the largest
    constraint excess (fractions of NAV) a solver answer may have and still be accepted, and the
    threshold for ``constraints_violated``. Solvers are tried in order (those installed of
    ``solvers``). Up to ``max_cached`` compiled problems are kept (least recently used dropped).
    ``last_problem`` is the :class:`MeanVarianceProblem` used by the last call.
    """

    def __init__(
        self,
        constraints: OptimizerConstraints | None = None,
        *,
        tol: float = 1e-9,
        feas_tol: float = 1e-7,
        solvers: Sequence[str] = ("CLARABEL", "OSQP", "SCS"),
        max_cached: int = 8,
    ) -> None:
        self.constraints = constraints if constraints is not None else OptimizerConstraints()
        self.tol, self.feas_tol, self.max_cached = float(tol), float(feas_tol), int(max_cached)
        installed = set(cp.installed_solvers())
        self.solvers = tuple(s for s in solvers if s in installed)
        self._cache: OrderedDict[tuple[object, ...], MeanVarianceProblem] = OrderedDict()
        self.last_problem: MeanVarianceProblem | None = None

    @property
    def cache_size(self) -> int:
        """Number of compiled problems kept."""
        return len(self._cache)

    def _problem(self, inp: _Inputs, n_factors: int, diagonal: bool) -> MeanVarianceProblem:
        shorts = self.constraints.allow_shorts
        key = (inp.n, n_factors, diagonal, shorts, len(inp.labels), inp.codes.tobytes())
        prob = self._cache.get(key)
        if prob is None:
            prob = MeanVarianceProblem(inp.n, inp.codes, len(inp.labels), n_factors, diagonal, shorts)
            self._cache[key] = prob
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        self.last_problem = prob
        return prob

    def _accept(self, w: np.ndarray | None, inp: _Inputs, c: OptimizerConstraints) -> list[str] | None:
        """Violated constraint names of a candidate (``None`` if not finite)."""
        if w is None or w.shape != (inp.n,) or not np.isfinite(w).all():
            return None
        return _violations(_report(w, inp.w_prev, inp.liq_cap, inp.codes, inp.labels, c), self.feas_tol)

    def _run_qp(
        self, prob: MeanVarianceProblem, inp: _Inputs, c: OptimizerConstraints, notes: list[str], tag: str
    ) -> tuple[np.ndarray | None, str, bool]:
        """Solve ``prob`` with each solver in turn: (weights or None, solver, proven infeasible)."""
        for k, solver in enumerate(self.solvers):
            problem = prob.qp if k == 0 else prob.qp_backup
            try:
                _solve(problem, solver, self.tol)
            except Exception as exc:
                notes.append(f"{tag}/{solver}: {type(exc).__name__}: {exc}")
                continue
            status = problem.status
            if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
                notes.append(f"{tag}/{solver}: {status}")
                return None, solver, True
            if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
                notes.append(f"{tag}/{solver}: status {status}")
                continue
            w = None if prob.w.value is None else np.asarray(prob.w.value, dtype=np.float64).copy()
            bad = self._accept(w, inp, c)
            if w is None or bad is None or bad:
                notes.append(f"{tag}/{solver}: {status} but the weights break {bad or 'finiteness'}")
                continue
            if status == cp.OPTIMAL_INACCURATE:
                notes.append(f"{tag}/{solver}: optimal_inaccurate, constraints verified within {self.feas_tol:g}")
            return w, solver, False
        return None, "", False

    def _min_turnover(self, prob: MeanVarianceProblem | None, notes: list[str]) -> float | None:
        if prob is None:
            return None
        for solver in self.solvers:
            try:
                _solve(prob.min_turnover, solver, self.tol)
            except Exception as exc:
                notes.append(f"min-turnover LP/{solver}: {type(exc).__name__}: {exc}")
                continue
            if prob.min_turnover.status == cp.OPTIMAL and prob.min_turnover.value is not None:
                return max(float(prob.min_turnover.value), 0.0)
            notes.append(f"min-turnover LP/{solver}: status {prob.min_turnover.status}")
        return None

    def solve(
        self,
        mu: np.ndarray,
        cov: np.ndarray | FactorCovariance,
        w_prev: np.ndarray,
        adv: np.ndarray,
        nav: float,
        sectors: Sequence[Hashable] | np.ndarray,
        *,
        risk_free_rate: float = 0.0,
        names: Sequence[str] | None = None,
    ) -> OptimizationResult:
        """Target weights for annualised ``mu`` (N,) and ``cov`` ((N, N) or factor form).

        ``w_prev`` (N,) current weights (fractions of NAV), ``adv`` (N,) average daily traded value
        and ``nav`` in the same currency, ``sectors`` one label per asset, ``risk_free_rate``
        annual decimal (for the Sharpe ratio only), ``names`` for messages. Raises ``ValueError``
        for malformed inputs only; solver trouble goes down the fallback chain.
        """
        t0 = time.perf_counter()
        c = self.constraints
        inp = _build_inputs(c, mu, cov, w_prev, adv, nav, sectors, names)
        notes: list[str] = []
        conflicts: list[str] = []
        w: np.ndarray | None = None
        status = method = ""
        prob: MeanVarianceProblem | None = None
        infeasible = False
        lam = c.risk_aversion
        if isinstance(inp.cov, FactorCovariance):
            factor, diag = np.sqrt(lam) * inp.cov.loadings, np.sqrt(lam * inp.cov.specific_var)
        else:
            chol, ridge = _cholesky(inp.cov)
            factor, diag = np.sqrt(lam) * chol, None
            if ridge > 0:
                notes.append(f"cov is singular: solved with cov + {ridge:.3g} I")
        try:
            prob = self._problem(inp, factor.shape[1], diag is not None)
            prob.set_values(inp.mu, factor, diag, inp.w_prev, inp.cap, c)
            w, solver, infeasible = self._run_qp(prob, inp, c, notes, "qp")
            if w is not None:
                status, method = "optimal", f"qp/{solver}"
        except Exception as exc:
            notes.append(f"qp: {type(exc).__name__}: {exc}")
        if w is None:
            try:
                tau_min, conflicts = _diagnose(inp, c, self.feas_tol, notes, lambda: self._min_turnover(prob, notes))
            except Exception as exc:
                tau_min, conflicts = c.turnover, []
                notes.append(f"diagnosis: {type(exc).__name__}: {exc}")
            tau = max(c.turnover, tau_min) + RELAX_MARGIN
            if prob is not None:
                try:
                    prob.turnover.value = tau
                    relaxed_c = dataclasses.replace(c, turnover=tau)
                    w, solver, _ = self._run_qp(prob, inp, relaxed_c, notes, "relaxed-qp")
                    if w is not None:
                        status = "relaxed"
                        method = f"relaxed-qp/{solver}: turnover limit {c.turnover:.4f} -> {tau:.6f}"
                except Exception as exc:
                    notes.append(f"relaxed-qp: {type(exc).__name__}: {exc}")
                finally:
                    prob.turnover.value = c.turnover
            if infeasible and not conflicts:
                notes.append("solver reported infeasible although the caps analysis finds a feasible point")
        if w is None:
            w, status, method = self._fallbacks(inp, c, notes)
        if not c.allow_shorts:
            w = np.maximum(w, 0.0)  # removes solver noise below feas_tol; never breaks a cap
        return self._result(w, status, method, inp, c, conflicts, notes, risk_free_rate, t0)

    def _fallbacks(self, inp: _Inputs, c: OptimizerConstraints, notes: list[str]) -> tuple[np.ndarray, str, str]:
        """Sequential, then greedy, then hold; each answer must be finite."""
        try:
            start = _hold(inp, c)
        except Exception as exc:
            notes.append(f"hold: {type(exc).__name__}: {exc}")
            start = np.zeros(inp.n)
        tau = max(c.turnover, float(np.abs(start - inp.w_prev).sum()))
        try:
            greedy = _greedy(inp, c, start, tau)
            better = greedy if _utility(greedy, inp, c) >= _utility(start, inp, c) else start
            w, sweeps = _sequential(inp, c, better, tau)
            if np.isfinite(w).all():
                return (
                    w,
                    "sequential",
                    f"sequential: coordinate ascent from the better of greedy/hold, {sweeps} sweep(s)",
                )
            notes.append("sequential: non-finite weights")
        except Exception as exc:
            notes.append(f"sequential: {type(exc).__name__}: {exc}")
        try:
            w = _greedy(inp, c, start, tau)
            if np.isfinite(w).all():
                return w, "greedy", "greedy: |mu|/sigma^2 ranking, release then fill"
            notes.append("greedy: non-finite weights")
        except Exception as exc:
            notes.append(f"greedy: {type(exc).__name__}: {exc}")
        return start, "hold", "hold: previous weights clipped to the caps"

    def _result(
        self,
        w: np.ndarray,
        status: str,
        method: str,
        inp: _Inputs,
        c: OptimizerConstraints,
        conflicts: list[str],
        notes: list[str],
        rf: float,
        t0: float,
    ) -> OptimizationResult:
        report = _report(w, inp.w_prev, inp.liq_cap, inp.codes, inp.labels, c)
        sw = inp.matvec(w)
        var = max(float(w @ sw), 0.0)
        vol = math.sqrt(var)
        er = float(inp.mu @ w)
        return OptimizationResult(
            weights=w,
            status=status,
            method=method,
            solve_time_ms=1000.0 * (time.perf_counter() - t0),
            objective=er - c.risk_aversion * var,
            expected_return=er,
            volatility=vol,
            sharpe=(er - float(rf)) / vol if vol > 0 else 0.0,
            constraints_violated=_violations(report, self.feas_tol),
            conflicts=conflicts,
            utilisation=report,
            marginal_risk=sw / vol if vol > 0 else np.zeros(inp.n),
            notes=notes,
        )
