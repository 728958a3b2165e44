"""The exact KL (Bregman) projection onto the capped simplex, and the exponentiated-gradient step.

Capped simplex: K = {w in R^N : floor <= w_i <= cap, sum_i w_i = 1}, non-empty iff
N * floor <= 1 <= N * cap (3 <= N <= 20 for floor 0.05, cap 0.40).

Projection of v >= 0 (any scale): argmin_{w in K} sum_i w_i ln(w_i / v_i). The KKT conditions give
w_i = clip(c * v_i, floor, cap) with the one scalar c > 0 making sum w = 1; sum_i clip(c v_i, floor, cap)
is continuous, non-decreasing and piecewise linear in c, so c is found exactly: evaluate it at the
breakpoints floor / v_i and cap / v_i, and solve the linear piece that crosses 1. Clip-then-renormalise is
not this projection and breaks the floor.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray


class InfeasibleWeightsError(ValueError):
    """The capped simplex is empty for this many agents (the message names the count and the range)."""


def feasible_range(floor: float, cap: float) -> tuple[int, int]:
    """The agent counts (min, max) for which the capped simplex is non-empty."""
    lo = math.ceil(1.0 / cap - 1e-12)
    hi = math.floor(1.0 / floor + 1e-12) if floor > 0 else 10**9
    return lo, hi


def check_feasible(n: int, floor: float, cap: float) -> None:
    """Raise :class:`InfeasibleWeightsError` naming ``n`` unless floor <= 1/n <= cap."""
    lo, hi = feasible_range(floor, cap)
    if not lo <= n <= hi:
        raise InfeasibleWeightsError(
            f"{n} agent(s): weights with floor {floor} and cap {cap} summing to 1 need {lo} <= N <= {hi} agents"
        )


def kl_project(v: ArrayLike, floor: float, cap: float) -> NDArray[np.float64]:
    """Exact KL projection of ``v`` (finite, >= 0, not all 0) onto the capped simplex (module docstring).

    Zero entries are the limit of ``v + eps`` as eps -> 0: at the floor when the positive entries can
    carry the rest of the mass within the cap, else the positive entries at the cap and the zero ones
    sharing what is left equally.
    """
    x = np.asarray(v, dtype=np.float64)
    check_feasible(x.size, floor, cap)
    if x.ndim != 1 or not np.all(np.isfinite(x)) or np.any(x < 0) or not np.any(x > 0):
        raise ValueError(f"kl_project: need a finite non-negative vector with a positive entry, got {x!r}")
    x = x / x.max()
    pos = x > 0
    if floor * (~pos).sum() + cap * pos.sum() < 1.0:
        return np.where(pos, cap, (1.0 - cap * pos.sum()) / (~pos).sum())
    xp = x[pos]
    breaks = np.unique(np.concatenate([floor / xp, cap / xp]))
    totals = np.clip(np.outer(breaks, x), floor, cap).sum(axis=1)
    k = int(np.searchsorted(totals, 1.0))  # first breakpoint with total >= 1 (exists: checked above)
    if totals[k] == 1.0 or k == 0:  # k == 0 only when N * floor == 1 (every weight at the floor)
        c = breaks[k]
    else:  # the linear piece (breaks[k-1], breaks[k]): fixed coordinates at floor or cap, the rest c * x
        cm = 0.5 * (breaks[k - 1] + breaks[k]) * x
        free = (cm > floor) & (cm < cap)
        fixed = floor * (cm <= floor).sum() + cap * (cm >= cap).sum()
        c = (1.0 - fixed) / x[free].sum()
    w = np.clip(c * x, floor, cap)
    free = (w > floor) & (w < cap)
    if free.any():  # remove the last ulps of the sum on the free coordinates (stays inside the bounds)
        w[free] = np.clip(w[free] * (1.0 - w[~free].sum()) / w[free].sum(), floor, cap)
    return w


def kl_divergence(w: ArrayLike, v: ArrayLike) -> float:
    """Generalised KL divergence sum_i w_i ln(w_i / v_i) - w_i + v_i (0 ln 0 = 0)."""
    a, b = np.asarray(w, dtype=np.float64), np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, a * np.log(a / b), 0.0)
    return float(terms.sum() - a.sum() + b.sum())


def eg_step(w: ArrayLike, gains: ArrayLike, eta: float, floor: float, cap: float) -> NDArray[np.float64]:
    """One exponentiated-gradient step: w' = Proj_K(w * exp(eta * g)) (``gains`` in [0, 1] per agent).

    With floor 0 and cap 1 the projection is the plain normalisation (Hedge). The gains are shifted by
    their max before exponentiating (the projection is scale-invariant, so this changes nothing).
    """
    g = np.asarray(gains, dtype=np.float64)
    if not np.all(np.isfinite(g)):
        raise ValueError(f"eg_step: gains must be finite, got {g!r}")
    return kl_project(np.asarray(w, dtype=np.float64) * np.exp(eta * (g - g.max())), floor, cap)


def best_fixed_in_capped_simplex(total_gains: ArrayLike, floor: float, cap: float) -> NDArray[np.float64]:
    """The point of the capped simplex maximising <u, G> (linear): every agent at the floor, then the
    remaining mass to the agents in decreasing order of G, each up to the cap (ties: lower index first)."""
    g = np.asarray(total_gains, dtype=np.float64)
    check_feasible(g.size, floor, cap)
    u = np.full(g.size, floor)
    left = 1.0 - u.sum()
    for i in np.argsort(-g, kind="stable"):
        add = min(cap - floor, left)
        u[i] += add
        left -= add
    return u


__all__ = [
    "InfeasibleWeightsError",
    "best_fixed_in_capped_simplex",
    "check_feasible",
    "eg_step",
    "feasible_range",
    "kl_divergence",
    "kl_project",
]
