"""Allocators other than the mean-variance optimizer (seed 000 §8.1) and position management (§8.3).

Units, everywhere in this module:

* ``mu``: expected **excess** return over the risk-free rate, annualised decimal, shape ``(N,)``
  (callers subtract the risk-free rate first).
* ``cov``: covariance of returns, annualised decimal, shape ``(N, N)``, symmetric positive semi-definite
  (positive definite for Kelly).
* weights: fractions of NAV, shape ``(N,)``; gross is ``sum |w|``.

Caps (:data:`DEFAULT_CAPS`, seed 000 §8.2 / the meta-brain settings): single name ``|w_i| <= max_position``
(0.10), gross ``sum |w| <= max_gross`` (1.0), long-only unless ``allow_shorts``. :func:`apply_caps` enforces
them in one documented order, used by every allocator:

1. long-only (``allow_shorts=False``): negative weights are set to 0 (the allocators below never produce
   any in that case: risk parity is long-only by construction, Kelly solves the long-only problem);
2. gross: if ``sum |w| > max_gross`` the whole vector is scaled down by ``max_gross / sum |w|`` (for Kelly
   this is the same as a smaller Kelly fraction ``gamma``; risk contributions are unchanged);
3. single names: ``w_i`` is clipped to ``[-max_position, max_position]``. Clipping only lowers gross, so the
   result satisfies all three caps; the freed gross is **not** redistributed (that would change the
   allocator's risk shape), so the result may be below ``max_gross``.

Registry (:data:`ALLOCATORS`): every entry is an :class:`Allocator`,
``f(mu, cov, *, caps, prev=None, params=None) -> weights``, so the integrator calls any of them the same
way with the names chosen in config. ``caps`` is a mapping with keys of :data:`DEFAULT_CAPS` (missing keys
take the defaults, unknown keys raise ``ValueError``); ``params`` holds the allocator's own knobs (unknown
keys raise). ``prev`` (the current weights) is accepted for the common signature and validated; these
allocators do not depend on it. The name ``"mean_variance"`` is reserved for the optimizer
(``mqf_pipeline.portfolio.optimizer``) and is deliberately **not** in this dict: the integrator adds it
(e.g. ``{**ALLOCATORS, "mean_variance": ...}``) to avoid an import cycle and a second implementation.

* ``"risk_parity"``: equal risk contributions over the names with ``mu > 0`` and positive variance (names
  blocked upstream have ``mu = 0``), gross ``params["budget"]`` (default ``caps["max_gross"]``).
* ``"kelly"``: :func:`kelly_weights` with ``params["gamma"]`` (default 0.3) over the names with ``mu != 0``;
  the others get 0. Zeroing ``mu`` alone does not keep a name out of ``Sigma^-1 mu``: a correlated name with
  ``mu = 0`` gets a hedge weight, so blocked names (``mu = 0`` after
  ``risk_integration.apply_risk_limits``) are dropped from the solve instead.
* ``"volatility_target"``: inverse-volatility weights ``sign(mu_i) / sigma_i`` on the names with
  ``mu_i != 0`` (``mu_i > 0`` when long-only), scaled by :func:`volatility_target` to
  ``params["target_vol"]`` (default 0.10, annualised) within ``max_gross``, then capped (the single-name
  clip can only lower the ex-ante vol below the target).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import nnls

DEFAULT_CAPS: dict[str, float | bool] = {"max_position": 0.10, "max_gross": 1.0, "allow_shorts": False}
"""Seed 000 §8.2 single-name and gross caps (fractions of NAV) and the seed's long-only default."""

_RP_TOL = 1e-12
"""Largest relative error ``|w_i (Sigma w)_i - b_i| / b_i`` (after normalising ``w' Sigma w = 1``) accepted
from the risk-parity Newton solve; it normally ends near 1e-15."""


# --------------------------------------------------------------------------------------------- helpers
def _vector(x: np.ndarray, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n}, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _cov(cov: np.ndarray, n: int | None = None) -> np.ndarray:
    mat = np.asarray(cov, dtype=float)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"cov must be a square matrix, got shape {mat.shape}")
    if n is not None and mat.shape[0] != n:
        raise ValueError(f"cov must be {n}x{n}, got {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise ValueError("cov must be finite")
    scale = max(float(np.max(np.abs(mat))), 1e-300) if mat.size else 1.0
    if not np.allclose(mat, mat.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError("cov must be symmetric")
    if np.any(np.diag(mat) < 0):
        raise ValueError("cov must have a non-negative diagonal")
    return 0.5 * (mat + mat.T)


def _check_caps(max_position: float, max_gross: float) -> None:
    for name, value in (("max_position", max_position), ("max_gross", max_gross)):
        if math.isnan(value) or value <= 0:
            raise ValueError(f"{name} must be > 0 (inf allowed), got {value!r}")


def apply_caps(
    weights: np.ndarray, *, max_position: float = 0.10, max_gross: float = 1.0, allow_shorts: bool = False
) -> np.ndarray:
    """Enforce the caps in the module's order: no shorts (if disabled), scale down to gross, clip single names.

    ``max_position`` and ``max_gross`` are fractions of NAV (``inf`` disables a cap). Returns a new array.
    """
    _check_caps(max_position, max_gross)
    w = _vector(weights, "weights").copy()
    if not allow_shorts:
        w = np.maximum(w, 0.0)
    gross = float(np.abs(w).sum())
    if gross > max_gross:
        w *= max_gross / gross
    return np.clip(w, -max_position, max_position)


# ------------------------------------------------------------------------------------------ risk parity
def _erc_newton(cov: np.ndarray, b: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """``argmin_{y > 0} 0.5 y' S y - b' log y`` by damped Newton (strictly convex); ``y_i (S y)_i = b_i``."""
    k = float(np.mean(np.diag(cov)))
    s = cov / k  # unit mean variance: better conditioned, same weights after normalisation
    x = np.sqrt(b / np.diag(s))
    y = x / math.sqrt(float(x @ s @ x))

    def objective(v: np.ndarray) -> float:
        return 0.5 * float(v @ s @ v) - float(b @ np.log(v))

    for _ in range(max_iter):
        sy = s @ y
        grad = sy - b / y
        hess = s + np.diag(b / y**2)
        step = -cho_solve(cho_factor(hess), grad)
        decrement = -float(grad @ step)  # Newton decrement squared, >= 0
        if decrement < 1e-28:
            break
        neg = step < 0
        t = min(1.0, 0.99 * float(np.min(-y[neg] / step[neg]))) if np.any(neg) else 1.0
        if decrement > 1e-12:  # Armijo backtracking far from the optimum; full steps in the quadratic region
            f0 = objective(y)
            while objective(y + t * step) > f0 - 0.25 * t * decrement and t > 1e-16:
                t *= 0.5
        y = y + t * step
    residual = np.max(np.abs(y * (s @ y) - b) / b)
    if not residual <= _RP_TOL:
        raise RuntimeError(f"risk parity did not converge (relative residual {residual:.3g}); is cov PSD?")
    return y


def risk_parity(
    cov: np.ndarray,
    budget: float = 1.0,
    risk_budgets: np.ndarray | None = None,
    *,
    max_position: float = 0.10,
    max_gross: float = 1.0,
) -> np.ndarray:
    """Long-only risk-budgeting weights: risk contributions ``w_i (Sigma w)_i / w' Sigma w = b_i``.

    ``cov`` annualised (the weights do not depend on its scale); ``budget`` the gross (sum of weights,
    fraction of NAV) before caps; ``risk_budgets`` ``b >= 0`` (normalised to sum 1; default equal). Names
    with ``b_i = 0`` get weight 0 and are left out of the solve; every name with ``b_i > 0`` needs a
    positive variance. Solved as the convex log-barrier problem ``min 0.5 y' Sigma y - b' log y`` (its
    optimum has ``y_i (Sigma y)_i = b_i``) by damped Newton, then ``w = budget * y / sum y``, then
    :func:`apply_caps` (long-only; a binding single-name cap breaks the equal contributions).
    """
    sigma = _cov(cov)
    n = sigma.shape[0]
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be finite and > 0, got {budget!r}")
    b = np.ones(n) if risk_budgets is None else _vector(risk_budgets, "risk_budgets", n)
    if np.any(b < 0) or not np.any(b > 0):
        raise ValueError("risk_budgets must be >= 0 with at least one > 0")
    active = b > 0
    if np.any(np.diag(sigma)[active] <= 0):
        raise ValueError("every name with a positive risk budget needs a positive variance")
    sub = sigma[np.ix_(active, active)]
    y = _erc_newton(sub, b[active] / b[active].sum())
    w = np.zeros(n)
    w[active] = budget * y / y.sum()
    return apply_caps(w, max_position=max_position, max_gross=max_gross, allow_shorts=False)


def risk_contributions(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Relative risk contributions ``w_i (Sigma w)_i / w' Sigma w`` (sum to 1; needs ``w' Sigma w > 0``)."""
    sigma = _cov(cov)
    w = _vector(weights, "weights", sigma.shape[0])
    var = float(w @ sigma @ w)
    if not var > 0:
        raise ValueError("risk contributions need a positive portfolio variance")
    return w * (sigma @ w) / var


# ---------------------------------------------------------------------------------------------- Kelly
def kelly_weights(
    mu: np.ndarray,
    cov: np.ndarray,
    gamma: float = 0.3,
    *,
    max_position: float = 0.10,
    max_gross: float = 1.0,
    allow_shorts: bool = False,
) -> np.ndarray:
    """Multi-asset fractional Kelly ``f = gamma * solve(Sigma, mu)``, then the caps.

    ``mu`` annualised excess return, ``cov`` annualised and positive definite (``f`` is the same on any
    horizon: ``Sigma^-1 mu`` is invariant to scaling both by the period length). ``gamma`` in (0, 1] is
    the Kelly fraction. ``gamma * Sigma^-1 mu`` maximises the second-order growth
    ``f' mu - f' Sigma f / (2 gamma)``; it is within ~1% of the exact ``argmax E log(1 + f' R)`` for daily
    magnitudes (see the tests). Long-only (``allow_shorts=False``): when the unconstrained ``f`` has a
    negative entry, the long-only problem ``max_{f >= 0} f' mu - f' Sigma f / (2 gamma)`` is solved exactly
    (non-negative least squares on the Cholesky factor: ``f = gamma * argmin_{g >= 0} ||L' g - L^-1 mu||``
    with ``Sigma = L L'``), not clipped. Then :func:`apply_caps`: scale the whole vector down to
    ``max_gross``, then clip single names to ``max_position``.
    """
    m = _vector(mu, "mu")
    sigma = _cov(cov, m.shape[0])
    if not (math.isfinite(gamma) and 0 < gamma <= 1):
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    try:
        factor = cho_factor(sigma, lower=True)
    except np.linalg.LinAlgError as exc:
        raise ValueError("Kelly needs a positive definite cov") from exc
    f = gamma * np.linalg.solve(sigma, m)
    if not allow_shorts and np.any(f < 0):
        lower = np.tril(factor[0])
        c = solve_triangular(lower, m, lower=True)
        g, _ = nnls(lower.T, c, maxiter=50 * max(m.shape[0], 1))
        f = gamma * g
    return apply_caps(f, max_position=max_position, max_gross=max_gross, allow_shorts=allow_shorts)


# -------------------------------------------------------------------------------- volatility targeting
def volatility_target(
    weights: np.ndarray, cov: np.ndarray, target_vol: float = 0.10, max_gross: float = 1.0
) -> tuple[np.ndarray, float]:
    """Scale ``weights`` so the ex-ante annualised vol ``sqrt(w' Sigma w)`` equals ``target_vol``.

    ``cov`` annualised, ``target_vol`` annualised decimal (0.10 = 10%/year). The scale is
    ``min(target_vol / vol, max_gross / gross)``: it may lever up or down, but never above ``max_gross``
    gross (then the vol ends below target). A book with zero vol but positive gross is scaled to
    ``max_gross``; an all-zero book is returned unchanged with scale 1.0. Returns ``(weights * scale, scale)``.
    """
    sigma = _cov(cov)
    w = _vector(weights, "weights", sigma.shape[0])
    if not (math.isfinite(target_vol) and target_vol > 0):
        raise ValueError(f"target_vol must be finite and > 0, got {target_vol!r}")
    _check_caps(1.0, max_gross)
    gross = float(np.abs(w).sum())
    if gross == 0:
        return w.copy(), 1.0
    vol = math.sqrt(max(float(w @ sigma @ w), 0.0))
    scale = max_gross / gross if vol == 0 else min(target_vol / vol, max_gross / gross)
    return w * scale, scale


# ------------------------------------------------------------------------------------------- registry
class Allocator(Protocol):
    """The common signature of :data:`ALLOCATORS` entries (see the module docstring)."""

    def __call__(
        self,
        mu: np.ndarray,
        cov: np.ndarray,
        *,
        caps: Mapping[str, float | bool],
        prev: np.ndarray | None = None,
        params: Mapping[str, float] | None = None,
    ) -> np.ndarray: ...


def _resolve(
    mu: np.ndarray,
    cov: np.ndarray,
    caps: Mapping[str, float | bool],
    prev: np.ndarray | None,
    params: Mapping[str, float] | None,
    known_params: set[str],
) -> tuple[np.ndarray, np.ndarray, dict[str, float | bool], dict[str, float]]:
    m = _vector(mu, "mu")
    sigma = _cov(cov, m.shape[0])
    unknown = sorted(set(caps) - set(DEFAULT_CAPS))
    if unknown:
        raise ValueError(f"unknown caps {unknown}; known: {sorted(DEFAULT_CAPS)}")
    merged = {**DEFAULT_CAPS, **caps}
    _check_caps(float(merged["max_position"]), float(merged["max_gross"]))
    p = dict(params or {})
    unknown = sorted(set(p) - known_params)
    if unknown:
        raise ValueError(f"unknown params {unknown}; known: {sorted(known_params)}")
    if prev is not None:
        _vector(prev, "prev", m.shape[0])
    return m, sigma, merged, p


def _risk_parity_allocator(
    mu: np.ndarray,
    cov: np.ndarray,
    *,
    caps: Mapping[str, float | bool],
    prev: np.ndarray | None = None,
    params: Mapping[str, float] | None = None,
) -> np.ndarray:
    m, sigma, c, p = _resolve(mu, cov, caps, prev, params, {"budget"})
    eligible = (m > 0) & (np.diag(sigma) > 0)
    if not np.any(eligible):
        return np.zeros_like(m)
    return risk_parity(
        sigma,
        budget=float(p.get("budget", c["max_gross"])),
        risk_budgets=eligible.astype(float),
        max_position=float(c["max_position"]),
        max_gross=float(c["max_gross"]),
    )


def _kelly_allocator(
    mu: np.ndarray,
    cov: np.ndarray,
    *,
    caps: Mapping[str, float | bool],
    prev: np.ndarray | None = None,
    params: Mapping[str, float] | None = None,
) -> np.ndarray:
    m, sigma, c, p = _resolve(mu, cov, caps, prev, params, {"gamma"})
    active = m != 0
    out = np.zeros_like(m)
    if np.any(active):
        out[active] = kelly_weights(
            m[active],
            sigma[np.ix_(active, active)],
            gamma=float(p.get("gamma", 0.3)),
            max_position=float(c["max_position"]),
            max_gross=float(c["max_gross"]),
            allow_shorts=bool(c["allow_shorts"]),
        )
    return out


def _volatility_target_allocator(
    mu: np.ndarray,
    cov: np.ndarray,
    *,
    caps: Mapping[str, float | bool],
    prev: np.ndarray | None = None,
    params: Mapping[str, float] | None = None,
) -> np.ndarray:
    m, sigma, c, p = _resolve(mu, cov, caps, prev, params, {"target_vol"})
    sd = np.sqrt(np.diag(sigma))
    direction = np.sign(m) if c["allow_shorts"] else (m > 0).astype(float)
    base = np.zeros_like(m)
    ok = (direction != 0) & (sd > 0)
    base[ok] = direction[ok] / sd[ok]
    scaled, _ = volatility_target(base, sigma, float(p.get("target_vol", 0.10)), float(c["max_gross"]))
    return apply_caps(
        scaled,
        max_position=float(c["max_position"]),
        max_gross=float(c["max_gross"]),
        allow_shorts=bool(c["allow_shorts"]),
    )


ALLOCATORS: dict[str, Allocator] = {
    "risk_parity": _risk_parity_allocator,
    "kelly": _kelly_allocator,
    "volatility_target": _volatility_target_allocator,
}
"""Allocators by config name; ``"mean_variance"`` is added by the integrator (see the module docstring)."""


# -------------------------------------------------------------------------------- position management
def manage_positions(
    targets: Mapping[str, float], current: Mapping[str, float], signals: Mapping[str, float]
) -> dict[str, float]:
    """Seed 000 §8.3: reconcile allocator targets with held positions and today's signals.

    Weights are fractions of NAV; a missing target or current weight is 0; a missing, zero or NaN signal is
    "no signal". Per symbol in ``targets`` or ``current``, with ``t`` the target and ``c`` the current weight:

    * no signal and a position (``c != 0``): hold, ``c`` (no signal, no trade);
    * no signal and no position: 0 (nothing is opened without a signal);
    * signal in the direction of the position (positive + long, negative + short): add, ``t`` (the target
      as sized by the allocator and risk scaling, so it can still be below ``c`` if risk shrank the book);
    * negative signal + long: reduce or close, ``min(t, c)`` (never adds against the signal);
      positive signal + short, symmetrically ``max(t, c)``;
    * a signal and no position: open in the signal's direction only, ``max(t, 0)`` or ``min(t, 0)``.
    """
    out: dict[str, float] = {}
    for sym in dict.fromkeys([*targets, *current]):
        t = float(targets.get(sym, 0.0))
        c = float(current.get(sym, 0.0))
        s = float(signals.get(sym, 0.0))
        if not (math.isfinite(t) and math.isfinite(c)):
            raise ValueError(f"{sym}: target and current weights must be finite, got {t!r}, {c!r}")
        if math.isnan(s) or s == 0.0:
            out[sym] = c
        elif (s > 0 and c > 0) or (s < 0 and c < 0):
            out[sym] = t
        elif s > 0:
            out[sym] = max(t, c)
        else:
            out[sym] = min(t, c)
    return out
