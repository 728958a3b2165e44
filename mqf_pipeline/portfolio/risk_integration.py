"""Integration of the portfolio step with the risk engine (seed 002 §4.7).

The seed's flow, with the pieces here:

1. **before** the optimizer, :func:`apply_risk_limits` zeroes the expected returns of blocked names
   (REJECT decisions, not eligible, frozen) and scales the rest by the risk engine's sizing multiplier;
2. the optimizer or an allocator (``mqf_pipeline.portfolio.optimizer`` / ``allocators.ALLOCATORS``) runs;
3. **after** it, :func:`pre_trade_check` checks the proposed book (daily parametric VaR, gross, optional
   vol cap) and, when it fails, :func:`scale_weights` shrinks it by ``check.scale_factor``.

Units: ``mu`` annualised excess return (decimal), ``cov`` annualised, weights fractions of NAV, VaR a
positive one-day loss fraction of NAV. The daily VaR is normal with zero mean:
``VaR = z_level * sqrt(w' Sigma w / periods_per_year)`` (``z_0.95 = 1.6449``); the mean is left out on
purpose (a conservative, mean-free risk number: daily means are noise-sized).

VaR, gross and vol are all homogeneous of degree 1 in the weights, so one factor
``min(1, var_limit / VaR, max_gross / gross, vol_target / vol)`` brings every breached metric to its limit
at once and leaves the others within theirs (the same reasoning as ``mqf_pipeline.risk.limits``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import overload

import numpy as np
from scipy.stats import norm

from mqf_pipeline.portfolio.allocators import _cov, _vector


def apply_risk_limits(mu: np.ndarray, *, blocked: np.ndarray, sizing_multiplier: float) -> np.ndarray:
    """Expected returns for the optimizer: ``mu * sizing_multiplier`` with blocked names set to 0.

    ``mu`` annualised excess returns, shape ``(N,)``; ``blocked`` a boolean mask of shape ``(N,)`` (True:
    REJECT decision, not eligible or otherwise barred; an integer index array is refused so it cannot be
    misread as a mask); ``sizing_multiplier`` in [0, 1] from the risk engine (breakers x regime x
    drawdown).

    Why scaling ``mu`` scales risk appetite: for the objective ``mu' w - lambda w' Sigma w`` and any
    ``s > 0``, ``(s mu)' w - lambda w' Sigma w = s (mu' w - (lambda / s) w' Sigma w)``, so the maximiser with
    ``s mu`` is the maximiser with the original ``mu`` and risk aversion ``lambda / s`` under **any**
    constraint set; unconstrained ``w* = Sigma^-1 mu / (2 lambda)`` is scaled by exactly ``s``. With
    ``s = 0`` every expected return is 0 and a mean-variance optimizer without a budget equality holds
    nothing. (Kelly ``gamma Sigma^-1 mu`` is linear in ``mu`` too; risk parity only uses the sign of ``mu``.)

    Zeroing ``mu`` does **not** by itself keep a blocked name out of a mean-variance or Kelly book: through
    the correlations ``Sigma^-1 mu`` gives it a hedge weight. The optimizer must also bound blocked names to
    0 (the allocators in ``allocators.ALLOCATORS`` drop every name with ``mu == 0`` from their solve).
    """
    m = _vector(mu, "mu")
    mask = np.asarray(blocked)
    if mask.dtype != np.bool_:
        raise TypeError(f"blocked must be a boolean mask, got dtype {mask.dtype}")
    if mask.shape != m.shape:
        raise ValueError(f"blocked must have shape {m.shape}, got {mask.shape}")
    if not (math.isfinite(sizing_multiplier) and 0.0 <= sizing_multiplier <= 1.0):
        raise ValueError(f"sizing_multiplier must be in [0, 1], got {sizing_multiplier!r}")
    return np.where(mask, 0.0, m * sizing_multiplier)


@dataclass(frozen=True)
class PreTradeCheck:
    """Result of :func:`pre_trade_check`.

    ``ok``: every metric within its limit (then ``scale_factor == 1``); ``scale_factor`` in (0, 1]: multiply
    the weights by it to meet every limit; ``var_daily``: one-day parametric VaR (loss fraction of NAV);
    ``vol_annual``: ``sqrt(w' Sigma w)``; ``gross``: ``sum |w|``; ``reasons``: one line per breached limit.
    """

    ok: bool
    scale_factor: float
    var_daily: float
    vol_annual: float
    gross: float
    reasons: list[str]


def parametric_var_daily(
    weights: np.ndarray, cov: np.ndarray, level: float = 0.95, periods_per_year: int = 252
) -> float:
    """Zero-mean normal one-day VaR ``z_level * sqrt(w' Sigma w / periods_per_year)`` (cov annualised)."""
    sigma = _cov(cov)
    w = _vector(weights, "weights", sigma.shape[0])
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must be in (0.5, 1), got {level!r}")
    if periods_per_year < 1:
        raise ValueError(f"periods_per_year must be >= 1, got {periods_per_year!r}")
    return float(norm.ppf(level)) * math.sqrt(max(float(w @ sigma @ w), 0.0) / periods_per_year)


def pre_trade_check(
    weights: np.ndarray,
    cov: np.ndarray,
    *,
    var_limit_daily: float = 0.04,
    level: float = 0.95,
    max_gross: float = 1.0,
    vol_target: float | None = None,
    periods_per_year: int = 252,
) -> PreTradeCheck:
    """Check a proposed book against the risk limits (seed 002 §4.7 step 3; limits from seed 000 §7.4).

    ``weights`` fractions of NAV, ``cov`` annualised; ``var_limit_daily`` the one-day VaR limit (loss fraction
    of NAV, 0.04); ``max_gross`` the gross cap; ``vol_target`` (annualised) if given is a cap on the ex-ante
    vol (a check never levers up: that is ``allocators.volatility_target``'s job). A metric equal to its limit
    passes. ``scale_factor = min(1, var_limit / VaR, max_gross / gross, vol_target / vol)``.
    """
    sigma = _cov(cov)
    w = _vector(weights, "weights", sigma.shape[0])
    limits = {"var_limit_daily": var_limit_daily, "max_gross": max_gross}
    if vol_target is not None:
        limits["vol_target"] = vol_target
    for name, value in limits.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    var = parametric_var_daily(w, sigma, level, periods_per_year)
    vol = math.sqrt(max(float(w @ sigma @ w), 0.0))
    gross = float(np.abs(w).sum())
    metrics = [("var_daily", var, var_limit_daily), ("gross", gross, max_gross)]
    if vol_target is not None:
        metrics.append(("vol_annual", vol, vol_target))
    scale, reasons = 1.0, []
    for name, value, limit in metrics:
        if value > limit:
            scale = min(scale, limit / value)
            reasons.append(f"{name} {value:.6g} > limit {limit:.6g}")
    return PreTradeCheck(not reasons, scale, var, vol, gross, reasons)


@overload
def scale_weights(weights: np.ndarray, factor: float) -> np.ndarray: ...
@overload
def scale_weights(weights: Mapping[str, float], factor: float) -> dict[str, float]: ...
def scale_weights(weights: np.ndarray | Mapping[str, float], factor: float) -> np.ndarray | dict[str, float]:
    """``weights * factor`` for an array or a symbol -> weight mapping; ``factor`` in [0, 1] (risk reduction only)."""
    if not (math.isfinite(factor) and 0.0 <= factor <= 1.0):
        raise ValueError(f"factor must be in [0, 1], got {factor!r}")
    if isinstance(weights, Mapping):
        return {sym: float(w) * factor for sym, w in weights.items()}
    return _vector(weights, "weights") * factor
