"""The compiled DPP mean-variance problem, its solver calls and the validated inputs of one solve.

See :mod:`mqf_pipeline.portfolio.optimizer` for the formulation and units. :class:`MeanVarianceProblem`
is compiled once per structure and re-solved through cvxpy Parameters; :func:`_solve` runs one solver
with the project's tolerances; :func:`_cholesky` gives the dense covariance factor; :func:`_build_inputs`
validates the arrays of one call into :class:`_Inputs`.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from mqf_pipeline.portfolio.covariance import FactorCovariance
from mqf_pipeline.portfolio.optimizer_report import OptimizerConstraints, _sector_codes, position_caps


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


def _build_inputs(
    constraints: OptimizerConstraints,
    mu: np.ndarray,
    cov: np.ndarray | FactorCovariance,
    w_prev: np.ndarray,
    adv: np.ndarray,
    nav: float,
    sectors: Sequence[Hashable] | np.ndarray,
    names: Sequence[str] | None,
) -> _Inputs:
    """Validate one solve call's arrays (``ValueError`` on malformed input) into :class:`_Inputs`."""
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
    liq = position_caps(adv_arr, nav, constraints)
    codes, labels = _sector_codes(sectors, n)
    name_list = [str(x) for x in names] if names is not None else [f"asset {i}" for i in range(n)]
    if len(name_list) != n:
        raise ValueError(f"names must hold {n} entries, got {len(name_list)}")
    cap = np.minimum(liq, constraints.single_name)
    return _Inputs(mu_arr, cov_in, w_prev_arr, liq, cap, codes, labels, name_list)
