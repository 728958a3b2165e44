"""The execution simulator's fill model, one bucket at a time: the intraday guards (PRICE_AWAY,
VOLUME_ANOMALY) checked at the bucket's start, then the aggressive children's fills (participation cap,
half spread plus square-root impact) and the passive LIMIT fills (the bridge crossing the limit). The
model is described in :mod:`mqf_pipeline.execution.simulator`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqf_pipeline.execution.sim_inputs import CostParams, Draws, SessionMarket
from mqf_pipeline.execution.sim_plan import CheckedOrders, SessionPlan


@dataclass
class Fills:
    """The running state of the bucket loop: per bucket fills and costs, per order shares filled so far,
    whether it still trades and why it stopped."""

    fill_qty: np.ndarray
    fill_price: np.ndarray
    impact: np.ndarray
    spread_paid: np.ndarray
    filled: np.ndarray
    active: np.ndarray
    reasons: list[str | None]


def apply_guards(
    k: int, orders: CheckedOrders, plan: SessionPlan, market: SessionMarket, params: CostParams, fills: Fills
) -> None:
    """At bucket ``k``'s start, stop the orders the price-away or volume-anomaly guard hits."""
    mid_k = plan.path[:, k]
    guards = [("PRICE_AWAY", np.abs(mid_k / market.arrival - 1) > params.price_away_cancel)]
    if k > 0:
        guards.append(("VOLUME_ANOMALY", plan.cum_actual[:, k - 1] > plan.cum_limit[:, k - 1]))
    for reason, hit in guards:
        stop = fills.active & hit
        for i in np.flatnonzero(stop & (fills.filled < orders.q)):
            fills.reasons[i] = reason
        fills.active &= ~stop


def trade_bucket(
    k: int,
    orders: CheckedOrders,
    plan: SessionPlan,
    market: SessionMarket,
    params: CostParams,
    draws: Draws,
    fills: Fills,
) -> None:
    """Bucket ``k``'s aggressive and passive fills, recorded in ``fills``."""
    sgn, q, b, volume, filled, active = orders.sgn, orders.q, orders.b, plan.volume, fills.filled, fills.active
    mid_k = plan.path[:, k]
    # aggressive: owed = planned so far - filled, capped by the participation limit
    target = np.minimum(np.minimum(plan.plan_cum[:, k], q), filled + params.max_participation * volume[:, k])
    take = active & orders.aggressive & (target > filled)
    qa = np.where(take, target - filled, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        imp = np.where(take, params.impact_coef * market.sigma * np.sqrt(qa / volume[:, k]), 0.0)
    # passive: did the bridge cross the limit inside the bucket?
    d_start, s2 = plan.d_start, plan.s2
    d_end = np.maximum(sgn * (plan.logp[:, k + 1] - plan.logp[:, k]) + d_start, 0.0)
    num = 2.0 * d_start * d_end
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p_cross = np.where(num <= 0, 1.0, np.where(s2 > 0, np.exp(-num / np.where(s2 > 0, s2, 1.0)), 0.0))
    lim_target = np.minimum(q, filled + params.limit_max_participation * volume[:, k])
    hit = active & orders.is_limit & (draws.u[:, k] < p_cross) & (lim_target > filled)
    qp = np.where(hit, lim_target - filled, 0.0)

    fills.fill_qty[:, k] = qa + qp
    fills.fill_price[take, k] = (mid_k * (1 + sgn * (plan.half + imp)))[take]
    fills.fill_price[hit, k] = (mid_k * (1 - sgn * b))[hit]
    fills.impact[:, k] = imp * 1e4
    fills.spread_paid[take, k] = market.spread_bps[take] / 2
    fills.filled = np.where(take, target, np.where(hit, lim_target, filled))
