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
import numbers
import time
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from mqf_pipeline.portfolio.covariance import FactorCovariance

STATUSES: tuple[str, ...] = ("optimal", "relaxed", "sequential", "greedy", "hold")
"""Values of :attr:`OptimizationResult.status`, best first."""

CONSTRAINT_NAMES: tuple[str, ...] = ("gross", "long", "short", "sector", "turnover", "liquidity", "single_name")
"""Aggregate constraint names used in reports and in ``constraints_violated``."""

BINDING_RTOL: float = 1e-6
"""A constraint binds when ``value >= limit - max(1e-9, BINDING_RTOL * limit)`` (and limit > 0)."""

RELAX_MARGIN: float = 1e-6
"""Turnover added on top of the minimal feasible turnover in the relaxed problem."""

_LIMIT_FIELDS = ("gross", "long", "short", "sector", "turnover", "adv_fraction", "single_name")


@dataclass(frozen=True)
class OptimizerConstraints:
    """Limits of seed 002 §4.2 as fractions of NAV, and the risk aversion.

    ``adv_fraction``: ``|w_i| <= adv_fraction * ADV_i / NAV`` (ADV in currency per day).
    ``allow_shorts=False`` adds ``w >= 0`` (the short limit is then moot). ``risk_aversion`` is
    lambda in ``mu'w - lambda w'Sigma w`` with annualised mu and Sigma; 1.0 penalises a 20%-vol
    portfolio by 4%/year of expected return. Limits must be finite and >= 0, lambda finite > 0;
    anything else raises ``ValueError`` naming the field.
    """

    gross: float = 1.0
    long: float = 0.6
    short: float = 0.4
    sector: float = 0.15
    turnover: float = 0.20
    adv_fraction: float = 0.02
    single_name: float = 0.10
    allow_shorts: bool = False
    risk_aversion: float = 1.0

    def __post_init__(self) -> None:
        for name in (*_LIMIT_FIELDS, "risk_aversion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"OptimizerConstraints.{name} must be a finite number, got {value!r}")
            if value < 0 or (name == "risk_aversion" and value == 0):
                bound = "> 0" if name == "risk_aversion" else ">= 0"
                raise ValueError(f"OptimizerConstraints.{name} must be {bound}, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.allow_shorts, bool | np.bool_):
            raise ValueError(f"OptimizerConstraints.allow_shorts must be a bool, got {self.allow_shorts!r}")
        object.__setattr__(self, "allow_shorts", bool(self.allow_shorts))


class ConstraintUsage(NamedTuple):
    """One constraint's limit and value (fractions of NAV), utilisation in percent, binding flag."""

    limit: float
    value: float
    utilisation_pct: float
    binding: bool


@dataclass(frozen=True)
class OptimizationResult:
    """Target weights and diagnostics of one :meth:`PortfolioOptimizer.solve` call.

    ``objective`` = ``mu'w - lambda w'Sigma w``, ``expected_return`` = ``mu'w`` and ``volatility``
    = ``sqrt(w'Sigma w)`` are annualised decimals; ``sharpe`` = ``(mu'w - rf) / volatility`` (0.0
    when the volatility is 0). ``constraints_violated`` lists the :data:`CONSTRAINT_NAMES` that the
    returned weights break by more than ``feas_tol`` (empty when all hold); ``conflicts`` explains
    in words why the full problem was infeasible; ``notes`` records solver failures and the
    fallback trail. ``utilisation`` maps each aggregate name and ``"sector:<label>"`` to a
    :class:`ConstraintUsage`; ``marginal_risk`` is ``(Sigma w)_i / volatility`` (zeros when 0), so
    ``w @ marginal_risk == volatility``. ``solve_time_ms`` is the wall time of the whole call.
    """

    weights: np.ndarray
    status: str
    method: str
    solve_time_ms: float
    objective: float
    expected_return: float
    volatility: float
    sharpe: float
    constraints_violated: list[str]
    conflicts: list[str]
    utilisation: dict[str, ConstraintUsage]
    marginal_risk: np.ndarray
    notes: list[str] = field(default_factory=list)


def position_caps(adv: np.ndarray, nav: float, constraints: OptimizerConstraints) -> np.ndarray:
    """Per-asset liquidity caps ``adv_fraction * ADV_i / NAV`` (fractions of NAV).

    A non-finite or non-positive ADV means no known liquidity and gives a cap of 0."""
    adv = np.asarray(adv, dtype=np.float64)
    nav = float(nav)
    if not (math.isfinite(nav) and nav > 0):
        raise ValueError(f"nav must be finite and > 0, got {nav!r}")
    good = np.isfinite(adv) & (adv > 0)
    return np.where(good, constraints.adv_fraction * np.where(good, adv, 0.0) / nav, 0.0)


def _sector_codes(sectors: Sequence[Hashable] | np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """Integer code per asset and the sorted sector labels (as strings)."""
    labels = np.asarray([str(s) for s in sectors])
    if labels.shape != (n,):
        raise ValueError(f"sectors must hold one label per asset ({n}), got {labels.shape[0]}")
    uniq, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64), [str(u) for u in uniq]


def _usage(limit: float, value: float) -> ConstraintUsage:
    pct = 100.0 * value / limit if limit > 0 else (0.0 if value <= 0 else math.inf)
    binding = limit > 0 and value >= limit - max(1e-9, BINDING_RTOL * limit)
    return ConstraintUsage(float(limit), float(value), float(pct), bool(binding))


def _report(
    w: np.ndarray,
    w_prev: np.ndarray,
    liq_cap: np.ndarray,
    codes: np.ndarray,
    labels: list[str],
    c: OptimizerConstraints,
) -> dict[str, ConstraintUsage]:
    """Usage of every constraint; per-asset and sector aggregates report their tightest member."""
    absw = np.abs(w)
    out = {
        "gross": _usage(c.gross, float(absw.sum())),
        "long": _usage(c.long, float(np.maximum(w, 0.0).sum())),
        "short": _usage(c.short if c.allow_shorts else 0.0, float(np.maximum(-w, 0.0).sum())),
        "turnover": _usage(c.turnover, float(np.abs(w - w_prev).sum())),
    }
    sector_gross = np.bincount(codes, weights=absw, minlength=len(labels))
    worst = int(np.argmax(sector_gross))
    out["sector"] = _usage(c.sector, float(sector_gross[worst]))
    i = int(np.argmax(absw - liq_cap))
    out["liquidity"] = _usage(float(liq_cap[i]), float(absw[i]))
    out["single_name"] = _usage(c.single_name, float(absw.max()))
    for label, g in zip(labels, sector_gross, strict=True):
        out[f"sector:{label}"] = _usage(c.sector, float(g))
    return out


def _violations(report: dict[str, ConstraintUsage], tol: float) -> list[str]:
    return [name for name in CONSTRAINT_NAMES if report[name].value > report[name].limit + tol]


def constraint_report(
    w: np.ndarray,
    w_prev: np.ndarray,
    adv: np.ndarray,
    nav: float,
    sectors: Sequence[Hashable] | np.ndarray,
    constraints: OptimizerConstraints,
) -> dict[str, ConstraintUsage]:
    """Limit, value, utilisation (%) and binding flag of every constraint for weights ``w``.

    Keys: :data:`CONSTRAINT_NAMES` plus ``"sector:<label>"`` per sector. ``sector``, ``liquidity``
    and ``single_name`` report the asset or sector with the largest excess over its cap (its own
    cap as ``limit``). Long-only constraints report ``short`` with limit 0. Binding needs a limit
    > 0 and ``value >= limit - max(1e-9, 1e-6 * limit)``.
    """
    w = np.asarray(w, dtype=np.float64)
    w_prev = np.asarray(w_prev, dtype=np.float64)
    n = w.shape[0]
    if w.shape != (n,) or w_prev.shape != (n,) or np.shape(adv) != (n,):
        raise ValueError("w, w_prev and adv must all have shape (n,)")
    codes, labels = _sector_codes(sectors, n)
    liq = position_caps(adv, nav, constraints)
    out = _report(w, w_prev, liq, codes, labels, constraints)
    return out


class MeanVarianceProblem:
    """The compiled DPP mean-variance problem for one structure, re-solved through Parameters.

    Structure (rebuild when it changes): ``n`` assets, the sector membership (a constant 0/1
    matrix from ``codes``), the covariance form and the shorts flag. Dense form
    (``diagonal=False``): ``factor`` is an ``(n, n)`` lower-triangular Parameter (a cvxpy sparse
    Parameter on the Cholesky pattern, so the solver sees half the entries); factor form
    (``diagonal=True``): ``factor`` is ``(n, n_factors)`` plus the ``diag`` Parameter. Parameters:
    ``mu``, ``factor`` (``sqrt(lambda)`` times the covariance factor), ``diag``, ``w_prev``,
    ``cap`` (per-asset ``|w_i|`` bound) and the scalar limits. ``qp`` is solved by the first
    solver, ``qp_backup`` (same expressions, its own compiled cache) by the others,
    ``min_turnover`` is the LP ``min sum|w - w_prev|`` over the caps. ``constraints`` names every
    cvxpy constraint of ``qp`` (their dual values are the KKT multipliers after a solve).
    """

    def __init__(
        self, n: int, codes: np.ndarray, n_sectors: int, n_factors: int, diagonal: bool, allow_shorts: bool
    ) -> None:
        self.n, self.n_factors, self.diagonal, self.allow_shorts = n, n_factors, diagonal, allow_shorts
        self.mu = cp.Parameter(n, name="mu")
        if diagonal:
            self.factor = cp.Parameter((n, n_factors), name="factor")
            self._tril: tuple[np.ndarray, np.ndarray] | None = None
        else:
            if n_factors != n:
                raise ValueError("the dense form needs an (n, n) Cholesky factor")
            self._tril = np.tril_indices(n)
            self.factor = cp.Parameter((n, n), name="factor", sparsity=self._tril)
        self.diag = cp.Parameter(n, nonneg=True, name="diag") if diagonal else None
        self.w_prev = cp.Parameter(n, name="w_prev")
        self.cap = cp.Parameter(n, nonneg=True, name="cap")
        self.gross = cp.Parameter(nonneg=True, name="gross")
        self.long = cp.Parameter(nonneg=True, name="long")
        self.short = cp.Parameter(nonneg=True, name="short")
        self.sector = cp.Parameter(nonneg=True, name="sector")
        self.turnover = cp.Parameter(nonneg=True, name="turnover")
        self.w = cp.Variable(n, name="w")
        self.a = cp.Variable(n, name="a")
        self.t = cp.Variable(n, name="t")
        w, a, t = self.w, self.a, self.t
        membership = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_sectors, n))
        cons: dict[str, cp.Constraint] = {
            "abs_pos": a >= w,
            "abs_neg": a >= -w,
            "cap": a <= self.cap,
            "gross": cp.sum(a) <= self.gross,
            "long": cp.sum(a + w) <= 2 * self.long,
            "sector": membership @ a <= self.sector,
            "turn_pos": t >= w - self.w_prev,
            "turn_neg": t >= self.w_prev - w,
            "turnover": cp.sum(t) <= self.turnover,
        }
        if allow_shorts:
            cons["short"] = cp.sum(a - w) <= 2 * self.short
        else:
            cons["long_only"] = w >= 0
        self.constraints = cons
        risk = cp.sum_squares(self.factor.T @ w)
        if self.diag is not None:
            risk = risk + cp.sum_squares(cp.multiply(self.diag, w))
        objective = cp.Maximize(self.mu @ w - risk)
        self.qp = cp.Problem(objective, list(cons.values()))
        self.qp_backup = cp.Problem(objective, list(cons.values()))
        caps_only = [con for name, con in cons.items() if name != "turnover"]
        self.min_turnover = cp.Problem(cp.Minimize(cp.sum(t)), caps_only)

    def set_values(
        self,
        mu: np.ndarray,
        factor: np.ndarray,
        diag: np.ndarray | None,
        w_prev: np.ndarray,
        cap: np.ndarray,
        c: OptimizerConstraints,
    ) -> None:
        """Load one instance's data into the Parameters (no recompilation)."""
        self.mu.value = mu
        if self._tril is None:
            self.factor.value = factor
        else:
            rows, cols = self._tril
            self.factor.value_sparse = sp.coo_array((factor[rows, cols], (rows, cols)), shape=factor.shape)
        if self.diag is not None:
            self.diag.value = diag
        self.w_prev.value = w_prev
        self.cap.value = cap
        self.gross.value = c.gross
        self.long.value = c.long
        self.short.value = c.short
        self.sector.value = c.sector
        self.turnover.value = c.turnover


def _solver_options(solver: str, tol: float) -> dict[str, float | int | bool]:
    if solver == "CLARABEL":
        return {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol, "max_iter": 200}
    if solver == "OSQP":
        return {"eps_abs": tol, "eps_rel": tol, "max_iter": 50_000, "polishing": True}
    if solver == "SCS":
        return {"eps_abs": tol, "eps_rel": tol, "max_iters": 100_000}
    return {}


def _solve(problem: cp.Problem, solver: str, tol: float) -> None:
    """``problem.solve`` with DPP enforced; hides cvxpy's notice about reading sparse Parameters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Reading from a sparse CVXPY expression", category=RuntimeWarning)
        problem.solve(solver=solver, enforce_dpp=True, **_solver_options(solver, tol))


def _cholesky(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """Lower-triangular ``L`` with ``L L' = cov + ridge I`` and the ridge (0 when ``cov`` is PD).

    A singular or slightly indefinite matrix (smallest eigenvalue >= -1e-8 x the largest) gets the
    smallest ridge from ``1e-12 x`` the largest eigenvalue up (x10 steps) that Cholesky accepts;
    a more indefinite one raises ``ValueError``.
    """
    try:
        return np.linalg.cholesky(cov), 0.0
    except np.linalg.LinAlgError:
        pass
    vals = np.linalg.eigvalsh(cov)
    top = max(float(vals.max()), 1e-300)
    if vals.min() < -1e-8 * top:
        raise ValueError(f"cov is not positive semidefinite (smallest eigenvalue {vals.min():.3g})")
    ridge = max(1e-12 * top, -2.0 * float(vals.min()))
    eye = np.eye(cov.shape[0])
    while True:
        try:
            return np.linalg.cholesky(cov + ridge * eye), ridge
        except np.linalg.LinAlgError:
            if ridge > 1e-6 * top:
                raise ValueError("cov is too ill-conditioned for a Cholesky factor") from None
            ridge *= 10.0


@dataclass
class _Inputs:
    """Validated arrays of one solve call."""

    mu: np.ndarray
    cov: np.ndarray | FactorCovariance
    w_prev: np.ndarray
    liq_cap: np.ndarray
    cap: np.ndarray
    codes: np.ndarray
    labels: list[str]
    names: list[str]
    _dense: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.mu.shape[0])

    def sigma(self) -> np.ndarray:
        """Dense covariance (formed once for the fallbacks)."""
        if self._dense is None:
            self._dense = self.cov.matrix() if isinstance(self.cov, FactorCovariance) else self.cov
        return self._dense

    def matvec(self, w: np.ndarray) -> np.ndarray:
        return self.cov.matvec(w) if isinstance(self.cov, FactorCovariance) else self.cov @ w


def _vector(x: np.ndarray, n: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or inf")
    return arr


class _Budget:
    """Running constraint sums for the coordinate methods; ``interval(i)`` keeps all of them."""

    def __init__(self, w: np.ndarray, inp: _Inputs, c: OptimizerConstraints, tau: float) -> None:
        self.w, self.inp, self.c, self.tau = w.copy(), inp, c, tau
        self.short_limit = c.short if c.allow_shorts else 0.0
        self.refresh()

    def refresh(self) -> None:
        w, p = self.w, self.inp.w_prev
        self.gross = float(np.abs(w).sum())
        self.long = float(np.maximum(w, 0).sum())
        self.short = float(np.maximum(-w, 0).sum())
        self.turn = float(np.abs(w - p).sum())
        self.sec = np.bincount(self.inp.codes, weights=np.abs(w), minlength=len(self.inp.labels))

    def interval(self, i: int) -> tuple[float, float]:
        wi, p, c = float(self.w[i]), float(self.inp.w_prev[i]), self.c
        ai = abs(wi)
        m = min(
            float(self.inp.cap[i]),
            max(c.gross - (self.gross - ai), 0.0),
            max(c.sector - (self.sec[self.inp.codes[i]] - ai), 0.0),
        )
        hi = min(m, max(c.long - (self.long - max(wi, 0.0)), 0.0))
        lo = max(-m, -max(self.short_limit - (self.short - max(-wi, 0.0)), 0.0))
        r = max(self.tau - (self.turn - abs(wi - p)), 0.0)
        return max(lo, p - r), min(hi, p + r)

    def move(self, i: int, x: float) -> None:
        wi, p = float(self.w[i]), float(self.inp.w_prev[i])
        self.gross += abs(x) - abs(wi)
        self.long += max(x, 0.0) - max(wi, 0.0)
        self.short += max(-x, 0.0) - max(-wi, 0.0)
        self.turn += abs(x - p) - abs(wi - p)
        self.sec[self.inp.codes[i]] += abs(x) - abs(wi)
        self.w[i] = x


def _hold(inp: _Inputs, c: OptimizerConstraints) -> np.ndarray:
    """``w_prev`` clipped to the caps: per-asset caps, then sectors, long, short and gross scaled."""
    w = np.clip(inp.w_prev, -inp.cap, inp.cap)
    if not c.allow_shorts:
        w = np.maximum(w, 0.0)
    sec = np.bincount(inp.codes, weights=np.abs(w), minlength=len(inp.labels))
    scale = np.where(sec > c.sector, c.sector / np.where(sec > 0, sec, 1.0), 1.0)
    w = w * scale[inp.codes]
    pos, neg = float(np.maximum(w, 0).sum()), float(np.maximum(-w, 0).sum())
    short_limit = c.short if c.allow_shorts else 0.0
    if pos > c.long:
        w = np.where(w > 0, w * (c.long / pos), w)
    if neg > short_limit:
        w = np.where(w < 0, w * (short_limit / neg), w)
    gross = float(np.abs(w).sum())
    if gross > c.gross:
        w = w * (c.gross / gross)
    return w


def _scores(inp: _Inputs, c: OptimizerConstraints) -> tuple[np.ndarray, np.ndarray]:
    """Single-asset target ``mu_i / (2 lambda sigma_i^2)`` and ranking score ``|mu_i| / sigma_i^2``."""
    var = np.diag(inp.sigma()).copy()
    safe = np.where(var > 0, var, 1.0)
    target = np.where(var > 0, inp.mu / (2 * c.risk_aversion * safe), np.sign(inp.mu) * np.inf)
    score = np.where(var > 0, np.abs(inp.mu) / safe, np.inf * (inp.mu != 0))
    return target, score


def _utility(w: np.ndarray, inp: _Inputs, c: OptimizerConstraints) -> float:
    """``mu'w - lambda w'Sigma w``."""
    return float(inp.mu @ w - c.risk_aversion * (w @ inp.matvec(w)))


def _greedy(inp: _Inputs, c: OptimizerConstraints, start: np.ndarray, tau: float) -> np.ndarray:
    """Greedy fill by ``|mu| / sigma^2``: release holdings beyond target worst-first, then fill."""
    target, score = _scores(inp, c)
    b = _Budget(start, inp, c, tau)
    for i in np.argsort(score, kind="stable"):
        wi = float(b.w[i])
        if wi == 0.0 or (wi * target[i] > 0 and abs(wi) <= abs(target[i])):
            continue
        lo, hi = b.interval(int(i))
        lo, hi = max(lo, min(wi, 0.0)), min(hi, max(wi, 0.0))
        if lo <= hi:
            b.move(int(i), float(np.clip(target[i], lo, hi)))
    for i in np.argsort(-score, kind="stable"):
        lo, hi = b.interval(int(i))
        if lo <= hi:
            b.move(int(i), float(np.clip(target[i], lo, hi)))
    return b.w


def _sequential(
    inp: _Inputs, c: OptimizerConstraints, start: np.ndarray, tau: float, max_sweeps: int = 50
) -> tuple[np.ndarray, int]:
    """Coordinate ascent from ``start``: each step maximises the objective in one weight exactly."""
    sigma = inp.sigma()
    lam, mu = c.risk_aversion, inp.mu
    var = np.diag(sigma)
    _, score = _scores(inp, c)
    order = [int(i) for i in np.argsort(-score, kind="stable")]
    b = _Budget(start, inp, c, tau)
    r = sigma @ b.w
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        biggest = 0.0
        for i in order:
            lo, hi = b.interval(i)
            if lo > hi:
                continue
            wi = float(b.w[i])
            slope = mu[i] - 2 * lam * (r[i] - var[i] * wi)
            x = slope / (2 * lam * var[i]) if var[i] > 0 else (hi if slope > 0 else lo)
            x = min(max(x, lo), hi)
            if x != wi:
                b.move(i, x)
                r += sigma[:, i] * (x - wi)
                biggest = max(biggest, abs(x - wi))
        b.refresh()
        if biggest < 1e-10:
            break
    return b.w, sweeps


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

    def _inputs(
        self,
        mu: np.ndarray,
        cov: np.ndarray | FactorCovariance,
        w_prev: np.ndarray,
        adv: np.ndarray,
        nav: float,
        sectors: Sequence[Hashable] | np.ndarray,
        names: Sequence[str] | None,
    ) -> _Inputs:
        mu_arr = np.asarray(mu, dtype=np.float64)
        if mu_arr.ndim != 1 or mu_arr.shape[0] == 0:
            raise ValueError(f"mu must be 1-D with at least one asset, got shape {mu_arr.shape}")
        n = mu_arr.shape[0]
        mu_arr = _vector(mu_arr, n, "mu")
        if isinstance(cov, FactorCovariance):
            if cov.n_assets != n:
                raise ValueError(f"cov has {cov.n_assets} assets, mu has {n}")
            cov_in: np.ndarray | FactorCovariance = cov
        else:
            arr = np.asarray(cov, dtype=np.float64)
            if arr.shape != (n, n) or not np.isfinite(arr).all():
                raise ValueError(f"cov must be a finite ({n}, {n}) matrix, got shape {arr.shape}")
            cov_in = (arr + arr.T) / 2.0
        w_prev_arr = _vector(w_prev, n, "w_prev")
        adv_arr = np.asarray(adv, dtype=np.float64)
        if adv_arr.shape != (n,):
            raise ValueError(f"adv must have shape ({n},), got {adv_arr.shape}")
        liq = position_caps(adv_arr, nav, self.constraints)
        codes, labels = _sector_codes(sectors, n)
        name_list = [str(x) for x in names] if names is not None else [f"asset {i}" for i in range(n)]
        if len(name_list) != n:
            raise ValueError(f"names must hold {n} entries, got {len(name_list)}")
        cap = np.minimum(liq, self.constraints.single_name)
        return _Inputs(mu_arr, cov_in, w_prev_arr, liq, cap, codes, labels, name_list)

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

    def _diagnose(
        self, prob: MeanVarianceProblem | None, inp: _Inputs, c: OptimizerConstraints, notes: list[str]
    ) -> tuple[float, list[str]]:
        """Smallest turnover that brings ``w_prev`` within every cap, and the conflicts in words."""
        prev = inp.w_prev
        absp = np.abs(prev)
        msgs: list[str] = []
        tol = self.feas_tol
        sector_gross = np.bincount(inp.codes, weights=absp, minlength=len(inp.labels))
        for label, g in zip(inp.labels, sector_gross, strict=True):
            if g > c.sector + tol:
                msgs.append(
                    f"sector {label}: previous weights hold {g:.4f} > cap {c.sector:.4f}; "
                    f"bringing it under needs turnover >= {g - c.sector:.4f}"
                )
        for name, caps, what in (
            ("liquidity", inp.liq_cap, f"{100 * c.adv_fraction:g}% of ADV / NAV"),
            ("single_name", np.full(inp.n, c.single_name), "the single-name cap"),
        ):
            excess = absp - caps
            over = np.flatnonzero(excess > tol)
            if over.size:
                i = int(over[np.argmax(excess[over])])
                msgs.append(
                    f"{name}: {over.size} previous position(s) exceed {what} (e.g. {inp.names[i]} holds "
                    f"{absp[i]:.4f} > cap {caps[i]:.4f}); cutting them needs turnover >= {excess[over].sum():.4f}"
                )
        short_limit = c.short if c.allow_shorts else 0.0
        for name, value, limit in (
            ("gross", float(absp.sum()), c.gross),
            ("long", float(np.maximum(prev, 0).sum()), c.long),
            ("short", float(np.maximum(-prev, 0).sum()), short_limit),
        ):
            if value > limit + tol:
                extra = "" if c.allow_shorts or name != "short" else " (shorts are not allowed)"
                msgs.append(
                    f"{name}: previous weights hold {value:.4f} > cap {limit:.4f}{extra}; "
                    f"needs turnover >= {value - limit:.4f}"
                )
        if not msgs:
            notes.append("previous weights satisfy every cap, so the problem is feasible: the failure is numerical")
            return 0.0, []
        tau_min = self._min_turnover(prob, notes)
        if tau_min is None:
            hold = _hold(inp, c)
            tau_min = float(np.abs(hold - prev).sum())
            notes.append(f"minimal turnover not solved; using the clipped hold's {tau_min:.4f} (an upper bound)")
        if tau_min <= c.turnover + tol:
            notes.append(f"previous weights break caps but turnover {c.turnover:.4f} suffices (minimal {tau_min:.4f})")
            return tau_min, []
        broken = sorted({m.split(" ")[0].rstrip(":") for m in msgs})
        head = (
            f"turnover: limit {c.turnover:.4f} but at least {tau_min:.4f} is needed to bring the previous "
            f"weights within the {', '.join(broken)} caps"
        )
        return tau_min, [head, *msgs]

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
        inp = self._inputs(mu, cov, w_prev, adv, nav, sectors, names)
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
                tau_min, conflicts = self._diagnose(prob, inp, c, notes)
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
