"""The paper broker's intraday execution cost model, vectorised over many orders at once.

Each order's session is cut into ``N`` buckets (:data:`strategies.N_BUCKETS`, 30 minutes each). The mid
follows a log-price Brownian bridge from the arrival price (the open) to the session's close, with the
daily volatility spread evenly over the session (bucket variance ``sigma^2 / N``). The bucket's actual
volume is ``V_k = volume * profile_k`` (shares).

Aggressive children (MARKET, TWAP, VWAP, POV, WAIT) take at most ``max_participation * V_k`` shares in
bucket k (the rest carries to the next bucket; what is left at the close is unfilled) and fill at
``mid_k * (1 + side * (half_spread + Y * sigma * sqrt(q_k / V_k)))``, ``mid_k`` the mid at the bucket's
start. For a VWAP schedule ``q_k / V_k = Q / V`` in every bucket, so its cost is the half spread plus
``Y sigma sqrt(Q / V)``: the square-root law. TWAP trades the same shares in thin midday buckets as in the
busy open and close, and because sqrt is concave that costs more under a U-shaped profile (Jensen).

A LIMIT order posts its whole remainder every bucket at ``mid_k * (1 - side * b / 1e4)``; it fills (at
most ``limit_max_participation * V_k`` shares, at the limit price, no spread or impact) when the bridge's
exact minimum (buy) or maximum (sell) inside the bucket crosses the limit: given the bucket's two log
endpoints ``a, c`` and level ``m`` beyond both, ``P(crossed) = exp(-2 (a - m)(c - m) / s^2)``, sampled
with one uniform per bucket.

Guards (seed 002 section 3.4), checked at each bucket's start: once the mid is more than
``price_away_cancel`` from the arrival price the remaining children are cancelled (PRICE_AWAY); once the
session's cumulative volume exceeds ``volume_anomaly_ratio * ADV *`` the cumulative expected profile the
remaining children are aborted (VOLUME_ANOMALY; volume is known when a bucket ends, so bucket 0 trades).

Layout: the inputs (cost parameters, market, draws, mid path) are in :mod:`sim_inputs`, the set-up at the
open (checked orders, child schedules) in :mod:`sim_plan`, the guards and fills of one bucket in
:mod:`sim_fills`. This module runs the bucket loop, sums the fills up, and gives the closed-form expected
cost and limit fill probability the execution policy plans with. Every name is importable from here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mqf_pipeline.execution.sim_fills import Fills, apply_guards, trade_bucket
from mqf_pipeline.execution.sim_inputs import (
    OPEN_MINUTE,
    SESSION_MINUTES,
    CostParams,
    Draws,
    SessionMarket,
    bucket_times,
    draws_for,
    mid_path,
    volume_profile,
)
from mqf_pipeline.execution.sim_plan import CheckedOrders, SessionPlan, checked_orders, session_plan
from mqf_pipeline.execution.strategies import N_BUCKETS, Strategy, child_schedules, u_shaped_profile

__all__ = [
    "AGGRESSIVE",
    "OPEN_MINUTE",
    "SESSION_MINUTES",
    "CostParams",
    "Draws",
    "ExecutionResult",
    "SessionMarket",
    "bucket_times",
    "draws_for",
    "execute",
    "expected_cost_bps",
    "limit_fill_probability",
    "mid_path",
    "u_shaped_profile",
]

AGGRESSIVE = frozenset({Strategy.MARKET, Strategy.TWAP, Strategy.VWAP, Strategy.POV, Strategy.WAIT})


@dataclass(frozen=True)
class ExecutionResult:
    """What :func:`execute` did. Per bucket (n, N): ``fill_qty`` shares, ``fill_price`` dollars (nan where
    nothing filled), ``mid`` dollars at the bucket's start, ``impact_bps`` and ``half_spread_bps`` paid on
    the bucket's fill (0 where nothing filled or the fill was passive). Per order (n,): ``filled_qty``
    shares, ``avg_price`` dollars (nan if nothing filled), ``commission`` dollars, ``shortfall_bps``
    ``side * (avg_price / arrival - 1) * 1e4`` (nan if nothing filled), ``cancel_reason`` None,
    "PRICE_AWAY" or "VOLUME_ANOMALY". ``bucket_times`` the New York clock time of each bucket's start."""

    fill_qty: np.ndarray
    fill_price: np.ndarray
    mid: np.ndarray
    impact_bps: np.ndarray
    half_spread_bps: np.ndarray
    filled_qty: np.ndarray
    avg_price: np.ndarray
    commission: np.ndarray
    shortfall_bps: np.ndarray
    cancel_reason: tuple[str | None, ...]
    bucket_times: tuple[dt.time, ...]


def execute(
    strategy: Strategy | str | Sequence[Strategy | str],
    side: np.ndarray | Sequence[float],
    qty: np.ndarray | Sequence[float],
    market: SessionMarket,
    params: CostParams,
    draws: Draws,
    *,
    limit_offset_bps: np.ndarray | float = 0.0,
    pov_rate: np.ndarray | float = 0.1,
    profile: np.ndarray | None = None,
) -> ExecutionResult:
    """Trade ``n`` orders (one per market row) through the session, bucket by bucket.

    ``strategy`` one for all or one per order; ``side`` +1 buy / -1 sell; ``qty`` shares > 0;
    ``limit_offset_bps`` (LIMIT, >= 0 bps) and ``pov_rate`` (POV, in (0, 1]) scalars or per order;
    ``profile`` the expected volume share per bucket (default :func:`u_shaped_profile`), which is also
    how the session's actual volume is spread. VWAP/TWAP/WAIT plans are fixed at the open from
    ``ADV x profile``; POV follows the bucket's actual volume.

    Steps: check the orders (:func:`checked_orders`), plan the session (:func:`session_plan`), then per
    bucket the guards (:func:`apply_guards`) and the fills (:func:`trade_bucket`), and sum up
    (:func:`_result`).
    """
    orders, prof = checked_orders(strategy, side, qty, market, draws, limit_offset_bps, pov_rate, profile)
    plan = session_plan(orders, market, params, draws, prof)
    n, n_buckets = len(market), draws.z.shape[1]
    fills = Fills(
        fill_qty=np.zeros((n, n_buckets)),
        fill_price=np.full((n, n_buckets), np.nan),
        impact=np.zeros((n, n_buckets)),
        spread_paid=np.zeros((n, n_buckets)),
        filled=np.zeros(n),
        active=np.ones(n, dtype=bool),
        reasons=[None] * n,
    )
    for k in range(n_buckets):
        apply_guards(k, orders, plan, market, params, fills)
        trade_bucket(k, orders, plan, market, params, draws, fills)
    return _result(orders, plan, market, params, fills, n_buckets)


def _result(
    orders: CheckedOrders, plan: SessionPlan, market: SessionMarket, params: CostParams, fills: Fills, n_buckets: int
) -> ExecutionResult:
    """Per-order totals (shares, average price, commission, shortfall) and the per-bucket arrays."""
    filled, fill_qty, fill_price = fills.filled, fills.fill_qty, fills.fill_price
    notional = np.where(fill_qty > 0, fill_qty * np.nan_to_num(fill_price), 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(filled > 0, notional / np.where(filled > 0, filled, 1.0), np.nan)
    return ExecutionResult(
        fill_qty=fill_qty,
        fill_price=fill_price,
        mid=plan.path[:, :n_buckets],
        impact_bps=fills.impact,
        half_spread_bps=fills.spread_paid,
        filled_qty=filled,
        avg_price=avg,
        commission=filled * params.commission_per_share,
        shortfall_bps=orders.sgn * (avg / market.arrival - 1) * 1e4,
        cancel_reason=tuple(fills.reasons),
        bucket_times=bucket_times(n_buckets),
    )


def expected_cost_bps(
    strategy: Strategy | str,
    q_over_adv: float,
    sigma: float,
    spread_bps: float,
    params: CostParams,
    profile: np.ndarray | None = None,
    *,
    pov_rate: float = 0.1,
) -> float:
    """Expected implementation shortfall vs the arrival mid (bps of the filled shares) of an aggressive
    schedule, for a martingale mid, session volume = ADV and no participation cap binding:
    ``sum_k x_k (spread_bps / 2 + 1e4 Y sigma sqrt(q_k / V_k))``, ``x_k`` the schedule's fractions.

    ``q_over_adv`` order shares / ADV shares; ``sigma`` daily, decimal. LIMIT pays no spread or impact;
    its risk is not filling, see :func:`limit_fill_probability`."""
    strat = Strategy(strategy)
    if strat is Strategy.LIMIT:
        raise ValueError("LIMIT has no expected cost in this model; use limit_fill_probability")
    if not (math.isfinite(q_over_adv) and q_over_adv > 0):
        raise ValueError(f"q_over_adv must be > 0, got {q_over_adv}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite decimal >= 0, got {sigma}")
    if not (math.isfinite(spread_bps) and spread_bps >= 0):
        raise ValueError(f"spread_bps must be a finite number of bps >= 0, got {spread_bps}")
    prof = volume_profile(profile, N_BUCKETS if profile is None else len(profile))
    plan = child_schedules([strat], np.array([q_over_adv]), prof[None, :], pov_rate)[0]
    x = plan / plan.sum()
    impact = 1e4 * params.impact_coef * sigma * np.sqrt(plan / prof)
    return float(np.sum(x * (spread_bps / 2 + impact)))


def limit_fill_probability(
    offset_bps: float, sigma: float, n_buckets_elapsed: int = 1, n_buckets: int = N_BUCKETS
) -> float:
    """Probability that a limit ``offset_bps`` through the arrival mid is touched within the first
    ``n_buckets_elapsed`` buckets: ``2 Phi(-b / (sigma sqrt(k / N)))``, the first passage of a driftless
    Brownian motion (reflection principle) with ``b = offset_bps / 1e4``.

    Approximations: the log-price distance ``|log(1 -/+ b)|`` is taken as ``b`` (relative error ~b/2)
    and the mid's drift is ignored. The simulator re-posts at each bucket's mid, so over k > 1 buckets its
    fill rate is at least this fixed-level probability."""
    if not (math.isfinite(offset_bps) and offset_bps >= 0):
        raise ValueError(f"offset_bps must be a finite number of bps >= 0, got {offset_bps}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite decimal >= 0, got {sigma}")
    if not 1 <= n_buckets_elapsed <= n_buckets:
        raise ValueError(f"n_buckets_elapsed must be in [1, {n_buckets}], got {n_buckets_elapsed}")
    if offset_bps == 0:
        return 1.0
    scale = sigma * math.sqrt(n_buckets_elapsed / n_buckets)
    if scale == 0:
        return 0.0
    return math.erfc(offset_bps / 1e4 / scale / math.sqrt(2))
