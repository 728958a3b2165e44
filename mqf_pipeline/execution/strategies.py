"""Child-order schedules: how an order's shares are spread over the session's 30-minute buckets.

The session 09:30-16:00 New York is cut into :data:`N_BUCKETS` buckets of 30 minutes. A schedule is the
planned child quantity per bucket in shares; the paper broker's simulator
(:mod:`mqf_pipeline.execution.simulator`) trades it against the bucket's volume, carries whatever the
participation cap leaves over to the next bucket, and leaves what is left at the close unfilled.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

#: 30-minute buckets in a regular 09:30-16:00 New York session.
N_BUCKETS = 13
#: U-shaped intraday volume: weight 1 + OPEN_CLOSE_CURVATURE x^2 - OPEN_TILT x at the bucket's mid time
#: x in (-1, 1) (x = -1 the open, +1 the close), giving the open bucket ~2.4x and the close bucket ~2.0x
#: the midday bucket with 13 buckets, the classic intraday volume "smile".
OPEN_CLOSE_CURVATURE = 1.4
OPEN_TILT = 0.25


class Strategy(StrEnum):
    """The execution schedules the paper broker simulates."""

    MARKET = "MARKET"  # everything at the open (aggressive)
    LIMIT = "LIMIT"  # the remainder posted passively every bucket at an offset from the mid
    TWAP = "TWAP"  # equal slices over the session
    POV = "POV"  # a fixed share of each bucket's volume until done (may not complete)
    VWAP = "VWAP"  # proportional to the expected volume profile
    WAIT = "WAIT"  # delay: TWAP over the second half of the session only


def u_shaped_profile(n_buckets: int = N_BUCKETS) -> np.ndarray:
    """Expected share of the day's volume per bucket (sums to 1, all > 0): the quadratic
    ``w(x) = 1 + 1.4 x^2 - 0.25 x`` at each bucket's mid time ``x`` in (-1, 1), normalised.

    High at the open and the close, lowest around midday (w >= 0.99, so every share is > 0)."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    x = 2.0 * (np.arange(n_buckets) + 0.5) / n_buckets - 1.0
    w = 1.0 + OPEN_CLOSE_CURVATURE * x**2 - OPEN_TILT * x
    return w / w.sum()


def child_schedule(
    strategy: Strategy | str, qty: float, expected_bucket_volume: np.ndarray, *, pov_rate: float = 0.1
) -> np.ndarray:
    """Planned child quantity per bucket (shares, float) for one order of ``qty`` shares.

    MARKET: all in bucket 0. TWAP: ``qty / n`` each bucket. VWAP: proportional to
    ``expected_bucket_volume`` (shares). POV: ``pov_rate`` x the bucket's volume each bucket, the
    cumulative sum capped at ``qty`` (it may not complete). WAIT: TWAP over buckets ``n // 2 .. n - 1``.
    LIMIT: ``qty`` in bucket 0 -- the simulator re-posts the whole unfilled remainder every bucket, so
    the plan only says "all of it, from the open".
    """
    vol = np.asarray(expected_bucket_volume, dtype=float)
    if vol.ndim != 1:
        raise ValueError(f"expected_bucket_volume must be 1-d (one value per bucket), got shape {vol.shape}")
    return child_schedules([strategy], np.array([qty], float), vol[None, :], np.array([pov_rate], float))[0]


def child_schedules(
    strategies: Sequence[Strategy | str],
    qty: np.ndarray,
    expected_bucket_volume: np.ndarray,
    pov_rate: np.ndarray | float = 0.1,
) -> np.ndarray:
    """Vectorised :func:`child_schedule`: ``(n, N)`` planned shares for ``n`` orders (mixed strategies).

    ``qty`` (n,) shares > 0; ``expected_bucket_volume`` (n, N) shares >= 0; ``pov_rate`` scalar or (n,)
    in (0, 1], checked only on POV orders (other schedules ignore it)."""
    strat = parse_strategies(strategies)
    n = len(strat)
    q = np.asarray(qty, dtype=float)
    vol = np.asarray(expected_bucket_volume, dtype=float)
    if q.shape != (n,):
        raise ValueError(f"qty must have shape ({n},), got {q.shape}")
    if vol.ndim != 2 or vol.shape[0] != n or vol.shape[1] == 0:
        raise ValueError(f"expected_bucket_volume must have shape ({n}, n_buckets >= 1), got {vol.shape}")
    bad = np.flatnonzero(~(np.isfinite(q) & (q > 0)))
    if bad.size:
        raise ValueError(f"order {bad[0]}: qty must be a finite number of shares > 0, got {q[bad[0]]}")
    bad = np.flatnonzero(~(np.isfinite(vol) & (vol >= 0)).all(axis=1))
    if bad.size:
        raise ValueError(f"order {bad[0]}: expected bucket volumes must be finite and >= 0 shares")
    pov = np.broadcast_to(np.asarray(pov_rate, dtype=float), (n,))
    is_pov = np.array([s is Strategy.POV for s in strat], dtype=bool)
    bad = np.flatnonzero(is_pov & ~((pov > 0) & (pov <= 1)))
    if bad.size:
        raise ValueError(f"order {bad[0]}: pov_rate must be in (0, 1], got {pov[bad[0]]}")
    is_vwap = np.array([s is Strategy.VWAP for s in strat], dtype=bool)
    total = vol.sum(axis=1)
    bad = np.flatnonzero(is_vwap & (total <= 0))
    if bad.size:
        raise ValueError(f"order {bad[0]}: VWAP needs a positive expected volume in some bucket")

    n_buckets = vol.shape[1]
    plan = np.zeros((n, n_buckets))
    half = n_buckets // 2
    for s in Strategy:
        rows = np.array([x is s for x in strat], dtype=bool)
        if not rows.any():
            continue
        qs = q[rows]
        if s in (Strategy.MARKET, Strategy.LIMIT):
            plan[rows, 0] = qs
        elif s is Strategy.TWAP:
            plan[rows] = qs[:, None] / n_buckets
        elif s is Strategy.WAIT:
            plan[rows, half:] = qs[:, None] / (n_buckets - half)
        elif s is Strategy.VWAP:
            plan[rows] = qs[:, None] * vol[rows] / total[rows, None]
        else:  # POV
            cum = np.minimum(np.cumsum(pov[rows, None] * vol[rows], axis=1), qs[:, None])
            plan[rows] = np.diff(cum, axis=1, prepend=0.0)
    return plan


def parse_strategies(strategies: Sequence[Strategy | str]) -> list[Strategy]:
    """Each item as a :class:`Strategy`; a ValueError names the first unknown one and its position."""
    out = []
    for i, s in enumerate(strategies):
        try:
            out.append(Strategy(s))
        except ValueError:
            known = [x.value for x in Strategy]
            raise ValueError(f"order {i}: unknown execution strategy {s!r}; known: {known}") from None
    return out
