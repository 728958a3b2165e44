"""The execution simulator's set-up at the open: the orders checked against the session's market and the
draws (one row each), and the session's plan (bucket volumes, each order's cumulative child schedule, the
mid path and the guards' thresholds). Split from :mod:`simulator` so the bucket loop reads on its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mqf_pipeline.execution.sim_inputs import CostParams, Draws, SessionMarket, as_rows, mid_path, volume_profile
from mqf_pipeline.execution.strategies import Strategy, child_schedules, parse_strategies


@dataclass(frozen=True)
class CheckedOrders:
    """The checked orders, one row per market row: ``sgn`` side, ``q`` shares, ``b`` limit offset
    (decimal), ``pov`` participation rate, and which rows are LIMIT / POV / aggressive."""

    strat: list[Strategy]
    sgn: np.ndarray
    q: np.ndarray
    b: np.ndarray
    pov: np.ndarray
    is_limit: np.ndarray
    is_pov: np.ndarray
    aggressive: np.ndarray


def checked_orders(
    strategy: Strategy | str | Sequence[Strategy | str],
    side: np.ndarray | Sequence[float],
    qty: np.ndarray | Sequence[float],
    market: SessionMarket,
    draws: Draws,
    limit_offset_bps: np.ndarray | float,
    pov_rate: np.ndarray | float,
    profile: np.ndarray | None,
) -> tuple[CheckedOrders, np.ndarray]:
    """The orders of :func:`execute`, checked against the market and the draws, and the volume profile."""
    n = len(market)
    strat = parse_strategies([strategy] * n if isinstance(strategy, str) else list(strategy))
    if len(strat) != n:
        raise ValueError(f"{len(strat)} strategies for {n} market rows")
    sgn = as_rows("side", side, n)
    q = as_rows("qty", qty, n)
    bad = np.flatnonzero((sgn != 1) & (sgn != -1))
    if bad.size:
        raise ValueError(f"side: {market.row_name(int(bad[0]))} must be +1 (buy) or -1 (sell), got {sgn[bad[0]]}")
    bad = np.flatnonzero(~(np.isfinite(q) & (q > 0)))
    if bad.size:
        raise ValueError(f"qty: {market.row_name(int(bad[0]))} must be a finite number of shares > 0, got {q[bad[0]]}")
    if draws.z.shape[0] != n:
        raise ValueError(f"draws have {draws.z.shape[0]} rows for {n} market rows")
    prof = volume_profile(profile, draws.z.shape[1])
    is_limit = np.array([s is Strategy.LIMIT for s in strat], dtype=bool)
    is_pov = np.array([s is Strategy.POV for s in strat], dtype=bool)
    b = np.broadcast_to(np.asarray(limit_offset_bps, dtype=float), (n,)) / 1e4
    bad = np.flatnonzero(is_limit & ~((b >= 0) & (b < 1)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"limit_offset_bps: {market.row_name(i)} must be in [0, 1e4) bps, got {b[i] * 1e4}")
    pov = np.broadcast_to(np.asarray(pov_rate, dtype=float), (n,))
    bad = np.flatnonzero(is_pov & ~((pov > 0) & (pov <= 1)))
    if bad.size:
        raise ValueError(f"pov_rate: {market.row_name(int(bad[0]))} must be in (0, 1], got {pov[bad[0]]}")
    return CheckedOrders(strat, sgn, q, b, pov, is_limit, is_pov, ~is_limit), prof


@dataclass(frozen=True)
class SessionPlan:
    """What is fixed at the open: bucket volumes (actual and expected, shares), each order's cumulative
    child schedule, the mid path and its logs, the bucket variance ``s2``, the half spread (decimal),
    the cumulative volumes the volume guard compares, and the limit's log distance ``d_start``."""

    volume: np.ndarray
    plan_cum: np.ndarray
    path: np.ndarray
    logp: np.ndarray
    s2: np.ndarray
    half: np.ndarray
    cum_actual: np.ndarray
    cum_limit: np.ndarray
    d_start: np.ndarray


def session_plan(
    orders: CheckedOrders, market: SessionMarket, params: CostParams, draws: Draws, prof: np.ndarray
) -> SessionPlan:
    """The session's plan at the open (:class:`SessionPlan`)."""
    n_buckets = draws.z.shape[1]
    volume = market.volume[:, None] * prof  # actual bucket volume, shares (n, N)
    expected = market.adv[:, None] * prof
    plan_volume = np.where(orders.is_pov[:, None], volume, expected)
    plan_cum = np.cumsum(child_schedules(orders.strat, orders.q, plan_volume, orders.pov), axis=1)
    path = mid_path(market, draws.z)
    logp = np.log(path)
    s2 = market.sigma**2 / n_buckets
    half = market.spread_bps / 2e4
    cum_actual = np.cumsum(volume, axis=1)
    cum_limit = params.volume_anomaly_ratio * np.cumsum(expected, axis=1)
    # passive crossing: distance of the limit below (buy) / above (sell) the bucket's start, log space
    d_start = -orders.sgn * np.log1p(-orders.sgn * orders.b)
    return SessionPlan(volume, plan_cum, path, logp, s2, half, cum_actual, cum_limit, d_start)
