"""The risk limits of seed 000 §7.4 and the sector / correlation-shock checks.

Metrics compared with the limits (all fractions of NAV unless noted):

* ``max_gross_leverage``: ``sum |w|``.
* ``max_drawdown``: current drawdown from peak NAV.
* ``var_95`` / ``cvar_95``: 1-day 95% VaR / CVaR, positive loss fractions.
* ``stress_loss``: the worst historical-scenario loss (:func:`mqf_pipeline.risk.stress.stress_losses`).
* ``sector_exposure``: the largest gross sector exposure (:func:`sector_exposures`).
* ``correlation_shock``: the weight-averaged pairwise correlation of the held names
  (:func:`average_correlation`, dimensionless); the limit 0.70 is also the default ``rho`` of
  :func:`correlation_shock_vol`, the book's vol if every pairwise correlation jumped to that level.

A metric above its limit (strictly) breaches it. SCALE limits give ``scale = min(1, limit / value)``: VaR,
CVaR, leverage and sector exposure are homogeneous of degree 1 in the weights, so scaling the book by the
smallest of them (:func:`combined_scale`) satisfies all of those at once. REJECT limits do not scale
(``scale = 1``): a breach means the proposed book must be rejected (:func:`rejections`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

Action = Literal["SCALE", "REJECT"]


@dataclass(frozen=True)
class Limit:
    """A named limit: ``value`` in the metric's units (see the module docstring) and the action on breach."""

    name: str
    value: float
    action: Action

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")
        if not (isinstance(self.value, int | float) and math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"limit {self.name}: value must be a finite number > 0, got {self.value!r}")
        if self.action not in ("SCALE", "REJECT"):
            raise ValueError(f"limit {self.name}: action must be SCALE or REJECT, got {self.action!r}")


DEFAULT_LIMITS: tuple[Limit, ...] = (
    Limit("max_gross_leverage", 1.0, "SCALE"),
    Limit("max_drawdown", 0.18, "REJECT"),
    Limit("var_95", 0.04, "SCALE"),
    Limit("cvar_95", 0.06, "SCALE"),
    Limit("stress_loss", 0.25, "REJECT"),
    Limit("sector_exposure", 0.15, "SCALE"),
    Limit("correlation_shock", 0.70, "SCALE"),
)


def with_values(values: Mapping[str, float], limits: Sequence[Limit] = DEFAULT_LIMITS) -> tuple[Limit, ...]:
    """``limits`` with the values of ``values`` (e.g. from configs); unknown names raise ValueError."""
    known = {lim.name for lim in limits}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown limits {unknown}; known: {sorted(known)}")
    return tuple(replace(lim, value=float(values[lim.name])) if lim.name in values else lim for lim in limits)


@dataclass(frozen=True)
class LimitCheck:
    """One metric against one limit; ``scale`` is ``min(1, limit / value)`` for SCALE limits, else 1."""

    name: str
    value: float
    limit: float
    breached: bool
    action: Action
    scale: float


def check_limits(metrics: Mapping[str, float], limits: Sequence[Limit] = DEFAULT_LIMITS) -> list[LimitCheck]:
    """Check every limit whose metric is in ``metrics`` (others are skipped; metrics without a limit are ignored).

    A NaN metric is treated as breached with ``scale = 0`` (fail safe); a metric at or below 0 never breaches.
    """
    out = []
    for lim in limits:
        if lim.name not in metrics:
            continue
        value = float(metrics[lim.name])
        if math.isnan(value):
            breached, scale = True, 0.0
        else:
            breached = value > lim.value
            scale = min(1.0, lim.value / value) if value > 0 else 1.0
        if lim.action != "SCALE":
            scale = 1.0
        out.append(LimitCheck(lim.name, value, lim.value, breached, lim.action, scale))
    return out


def combined_scale(checks: Iterable[LimitCheck]) -> float:
    """The smallest SCALE factor (1.0 without SCALE checks); REJECT breaches are reported by :func:`rejections`."""
    return min((c.scale for c in checks if c.action == "SCALE"), default=1.0)


def rejections(checks: Iterable[LimitCheck]) -> list[LimitCheck]:
    """The breached REJECT checks: the proposed book must not be traded if this is not empty."""
    return [c for c in checks if c.action == "REJECT" and c.breached]


def _arrays(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray, sectors: Mapping[str, str] | Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    if isinstance(weights, Mapping):
        syms = list(weights)
        w = np.array([weights[s] for s in syms], dtype=float)
        if isinstance(sectors, Mapping):
            missing = [s for s in syms if s not in sectors]
            if missing:
                raise ValueError(f"sectors lacks symbols {missing[:5]}")
            secs = [str(sectors[s]) for s in syms]
        else:
            secs = [str(s) for s in sectors]
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if isinstance(sectors, Mapping):
            raise ValueError("sectors must be a sequence when weights is an array")
        secs = [str(s) for s in sectors]
    if len(secs) != w.size:
        raise ValueError(f"{len(secs)} sectors for {w.size} weights")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    return w, secs


def sector_exposures(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray, sectors: Mapping[str, str] | Sequence[str]
) -> dict[str, float]:
    """Gross exposure ``sum |w|`` per sector (fractions of NAV), sectors in first-seen order."""
    w, secs = _arrays(weights, sectors)
    out: dict[str, float] = {}
    for wi, s in zip(w, secs, strict=True):
        out[s] = out.get(s, 0.0) + abs(float(wi))
    return out


def sector_scale(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray,
    sectors: Mapping[str, str] | Sequence[str],
    cap: float = 0.15,
) -> np.ndarray:
    """Per-position factor in (0, 1] (weights order) bringing each sector over ``cap`` gross down to ``cap``
    proportionally; positions of sectors at or under the cap get 1.
    """
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(f"cap must be a finite number > 0, got {cap!r}")
    w, secs = _arrays(weights, sectors)
    gross = sector_exposures(w, secs)
    factor = {s: (cap / g if g > cap else 1.0) for s, g in gross.items()}
    return np.array([factor[s] for s in secs], dtype=float)


def average_correlation(returns: np.ndarray, weights: np.ndarray) -> float:
    """Weight-averaged pairwise correlation of the held names: ``sum_{i!=j} |w_i w_j| rho_ij / sum_{i!=j}
    |w_i w_j|`` over names with ``w != 0``, from the rows of ``returns`` (T, N) where all of them are finite.

    Returns 0.0 with fewer than two held names; a name with constant returns correlates 0 with every other.
    """
    r = np.asarray(returns, dtype=float)
    w = np.asarray(weights, dtype=float).reshape(-1)
    if r.ndim != 2 or r.shape[1] != w.size:
        raise ValueError(f"returns {r.shape} do not align with {w.size} weights")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    held = np.flatnonzero(w != 0)
    if held.size < 2:
        return 0.0
    x = r[:, held]
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] < 2:
        raise ValueError("need at least 2 rows where every held name has a finite return")
    x = x - x.mean(axis=0)
    sd = np.sqrt((x * x).sum(axis=0))
    live = sd > 0
    z = np.zeros_like(x)
    z[:, live] = x[:, live] / sd[live]
    corr = z.T @ z
    a = np.abs(w[held])
    a = a / a.max()  # the average only depends on relative weights; avoids underflow of |w_i w_j|
    pair = np.outer(a, a)
    np.fill_diagonal(pair, 0.0)
    return float((pair * corr).sum() / pair.sum())


def correlation_shock_vol(weights: np.ndarray, vols: np.ndarray, rho: float = 0.70) -> float:
    """Book vol (units of ``vols``, e.g. annualised) if every pairwise correlation were ``rho``:
    ``sqrt((1 - rho) * sum (w_i s_i)^2 + rho * (sum w_i s_i)^2)``.
    """
    w = np.asarray(weights, dtype=float).reshape(-1)
    s = np.asarray(vols, dtype=float).reshape(-1)
    if w.size != s.size:
        raise ValueError(f"{w.size} weights for {s.size} vols")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(s)) and np.all(s >= 0)):
        raise ValueError("weights must be finite and vols finite and >= 0")
    if not -1 <= rho <= 1:
        raise ValueError(f"rho must be in [-1, 1], got {rho!r}")
    ws = w * s
    var = (1.0 - rho) * float(ws @ ws) + rho * float(ws.sum()) ** 2
    return math.sqrt(max(var, 0.0))
