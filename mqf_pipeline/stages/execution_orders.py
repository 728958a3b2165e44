"""The orders of a session: planned from the positions and the session's targets (each with its
schedule from the execution policy), reconciled with what the broker already knows, then submitted
unless blocked. Rows describe each order as the cycle made it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.execution import policy
from mqf_pipeline.execution.brokers.base import Broker, OrderRejectedError
from mqf_pipeline.execution.child_orders import child_orders_reason, policy_request, worked_by_children
from mqf_pipeline.execution.ledger import Ledger
from mqf_pipeline.execution.orders import (
    BrokerOrder,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    client_order_id,
    round_qty,
)
from mqf_pipeline.stages.execution_costs import SessionCosts
from mqf_pipeline.stages.execution_gates import OrderBlocker
from mqf_pipeline.storage.schema import row_schema

logger = logging.getLogger("mqf_pipeline.stages.execution")


def frame(table: str, rows: list[dict]) -> pl.DataFrame:
    """``rows`` as a frame with ``table``'s columns (id and created_at are the lake's)."""
    cols = row_schema(table)
    return pl.DataFrame(rows, schema=cols) if rows else pl.DataFrame(schema=cols)


def plan_orders(
    day: dt.date,
    cid: str,
    ledger: Ledger,
    nav: float,
    targets: pl.DataFrame,
    quotes: dict[str, dict],
    cfg,
    policy_params: policy.PolicyParams,
    spike: bool,
    costs: SessionCosts | None = None,
) -> list[dict]:
    """Orders moving each position to target_weight x NAV / close; a trade crossing zero is two legs.

    The policy prices the session's spread as the market rows carry it (quoted, EDGE-estimated or the
    default: :func:`~mqf_pipeline.stages.execution_inputs.session_market`), the spread the paper broker fills at.
    """
    want = dict(zip(targets["symbol"].to_list(), targets["target_weight"].to_list(), strict=True))
    out: list[dict] = []
    for symbol in sorted(set(want) | set(ledger.open_positions())):
        q = quotes.get(symbol)
        if q is None or not q["close"] or not q["adv"] or q["sigma"] is None or q.get("spread_bps") is None:
            logger.warning("%s: no usable bar, ADV, volatility or spread on %s; no order", symbol, day)
            continue
        weight = float(want.get(symbol, 0.0))
        current = ledger.qty(symbol)
        desired = weight * nav / q["close"]
        if abs(desired) * q["close"] < cfg.min_order_notional:
            desired = 0.0  # a target worth less than one minimum order (solver dust) closes the position
        if desired == current or (desired != 0 and abs(desired - current) * q["close"] < cfg.min_order_notional):
            continue
        legs = [desired - current]
        if current != 0 and desired != 0 and (current > 0) != (desired > 0):
            legs = [-current, desired]
        for leg, delta in enumerate(legs):
            qty = round_qty(abs(delta))
            if qty <= 0:
                continue
            side = Side.BUY if delta > 0 else Side.SELL
            size_adv, sigma, spread = qty / q["adv"], float(q["sigma"]), float(q["spread_bps"])
            fitted = costs.fitted_bps(symbol, size_adv, sigma, spread) if costs is not None else None
            state = policy.OrderState(size_adv=size_adv, sigma=sigma, spread_bps=spread, fitted_cost_bps=fitted)
            preferred = costs.preferred.get(symbol) if costs is not None else None
            choice = policy.choose(state, policy_params, kill_switch=spike, preferred=preferred)
            out.append(
                {
                    # a LIMIT schedule goes out as a limit order at limit_offset_bps through the last close
                    "request": policy_request(
                        OrderRequest(
                            client_order_id=client_order_id(cid, symbol, side, leg),
                            symbol=symbol,
                            side=side,
                            qty=qty,
                            order_type=OrderType.MARKET,
                            time_in_force=TimeInForce.DAY,
                            strategy=choice.action.value,
                            limit_offset_bps=cfg.limit_offset_bps,
                            pov_rate=cfg.pov_rate,
                        ),
                        float(q["close"]),
                    ),
                    "cycle_id": cid,
                    "leg": leg,
                    "price": float(q["close"]),
                    "target_weight": weight,
                    "state": state,
                    "choice": choice,
                    "policy": f"{policy.POLICY}; cost: {costs.label}" if costs is not None else policy.POLICY,
                }
            )
    return out


def submit_orders(
    day: dt.date,
    planned: list[dict],
    broker: Broker,
    blocker: OrderBlocker,
    kill_switch: Callable[[], str | None],
) -> tuple[pl.DataFrame, pl.DataFrame, int, int]:
    """Reconcile, then submit what the broker does not know yet; rows describe each order as made.

    ``kill_switch`` is asked again before every submission, so a switch engaged mid-cycle stops the rest;
    ``blocker`` refuses the orders that add risk when a gate forbids it (the reason is stored per order).
    A broker that works child orders (``work_children``, Alpaca) is not sent a TWAP/VWAP/POV/WAIT order
    whole: its row is SUBMITTED with reason ``CHILD_ORDERS: worked during <D+1> by the intraday step`` and no
    broker_order_id (:mod:`mqf_pipeline.stages.child_work` sends the children), so a rerun sends nothing.
    Returns (orders rows, execution_decisions rows, orders submitted now, orders the broker already had).
    """
    known = broker.get_orders([p["request"].client_order_id for p in planned]) if planned else {}
    by_children = getattr(broker, "work_children", None) is not None
    rows, decisions, submitted = [], [], 0
    for p in planned:
        req: OrderRequest = p["request"]
        order: BrokerOrder | None = known.get(req.client_order_id)
        reason, child = None, False
        if order is None:
            reason = kill_switch() or blocker.reason(req, p["leg"])
            if reason is None and by_children and worked_by_children(req.strategy):
                child, reason = True, child_orders_reason(calendar.session_offset(day, 1))
            elif reason is None:
                try:
                    order = broker.submit(req, session=day)
                    submitted += 1
                except OrderRejectedError as exc:
                    reason = f"BROKER_REJECTED: {exc}"
        elif order.qty != req.qty or order.symbol != req.symbol:
            logger.warning(
                "%s: broker holds order %s as %s %g; the cycle now asks %g (broker kept)",
                req.symbol,
                req.client_order_id,
                order.side.value,
                order.qty,
                req.qty,
            )
        refused = order is None or order.status is OrderStatus.REJECTED
        status = OrderStatus.REJECTED if refused and not child else OrderStatus.SUBMITTED
        if order is not None and order.status is OrderStatus.REJECTED:
            reason = f"BROKER_REJECTED: {order.reject_reason}"
        rows.append(_order_row(day, p, order, status, reason, broker.name))
        decisions.append(_decision_row(day, p))
    already = sum(1 for p in planned if p["request"].client_order_id in known)
    return frame("orders", rows), frame("execution_decisions", decisions), submitted, already


def _order_row(
    day: dt.date, p: dict, order: BrokerOrder | None, status: OrderStatus, reason: str | None, broker: str
) -> dict:
    """The orders row of planned order ``p`` as the cycle left it."""
    req: OrderRequest = p["request"]
    return {
        "order_id": req.client_order_id,
        "cycle_id": p["cycle_id"],
        "symbol": req.symbol,
        "side": req.side.value,
        "qty": order.qty if order is not None else req.qty,
        "price": p["price"],
        "order_type": req.order_type.value,
        "time_in_force": req.time_in_force.value,
        "status": status.value,
        "commission": None,
        "slippage": None,
        "date": day,
        "leg": p["leg"],
        "strategy": req.strategy,
        "limit_price": req.limit_price,
        "stop_price": req.stop_price,
        "target_weight": p["target_weight"],
        "broker": broker,
        "broker_order_id": order.broker_order_id if status is OrderStatus.SUBMITTED and order else None,
        "reason": reason,
    }


def _decision_row(day: dt.date, p: dict) -> dict:
    """The execution_decisions row of planned order ``p``: the policy's state and choice."""
    req: OrderRequest = p["request"]
    st, ch = p["state"], p["choice"]
    return {
        "order_id": req.client_order_id,
        "cycle_id": p["cycle_id"],
        "symbol": req.symbol,
        "side": req.side.value,
        "quantity": req.qty,
        "size_adv": st.size_adv,
        "volatility": st.sigma,
        "spread_bps": st.spread_bps,
        "imbalance": None,
        "time_remaining": st.time_remaining,
        "action": ch.action.value,
        "confidence": None,
        "q_values_json": None,
        "used_fallback": ch.used_fallback,
        "fallback_reason": ch.fallback_reason,
        "date": day,
        "expected_cost_bps": ch.expected_cost_bps,
        "policy": p.get("policy", policy.POLICY),
    }
