"""What the orders of D-1 became during D: execution_outcomes rows (every submitted order, with its
costs in bps against the arrival price and the mid) and execution_feedback rows (every filled order,
with the market conditions it met: the slippage model's refit input). Both record the session's spread
with its ``spread_source`` (quoted, estimated_edge or default: :mod:`mqf_pipeline.execution.spread_estimate`),
so a refit can tell quoted spreads from estimated ones."""

from __future__ import annotations

import datetime as dt
import json
import logging
from zoneinfo import ZoneInfo

import polars as pl

from mqf_pipeline.execution.ledger import Ledger
from mqf_pipeline.execution.orders import BrokerOrder, Fill, OrderStatus, Side
from mqf_pipeline.stages.execution_orders import frame

NEW_YORK = ZoneInfo("America/New_York")
logger = logging.getLogger("mqf_pipeline.stages.execution")


def order_costs(o: dict, fills: list[Fill], q: dict) -> dict:
    """Costs of one order from its fills: arrival (the session open) and average fill price, slippage vs
    arrival, cost vs the mid, impact (vs the mid beyond half the spread) and total cost, all in bps."""
    side = Side(o["side"]).sign
    arrival = q.get("open")
    filled = sum(f.qty for f in fills)
    notional = sum(f.qty * f.price for f in fills)
    commission = sum(f.commission for f in fills)
    avg = notional / filled if filled > 0 else None
    slip = side * (avg / arrival - 1.0) * 1e4 if avg and arrival else None
    with_mid = [f for f in fills if f.mid]
    vs_mid = (
        sum(f.qty * side * (f.price / f.mid - 1.0) for f in with_mid) / sum(f.qty for f in with_mid) * 1e4
        if with_mid
        else None
    )
    half_spread = (q.get("spread_bps") or 0.0) / 2.0
    impact = vs_mid - half_spread if vs_mid is not None else None
    total = slip + commission / notional * 1e4 if slip is not None and notional else None
    first_fill = min((f.timestamp for f in fills), default=None)
    return {
        "arrival": arrival,
        "filled": filled,
        "avg": avg,
        "slip": slip,
        "vs_mid": vs_mid,
        "impact": impact,
        "commission": commission,
        "total": total,
        "fill_time": dt.datetime.fromisoformat(first_fill) if first_fill else None,
    }


def outcome_rows(
    day: dt.date,
    sent: pl.DataFrame,
    decisions: pl.DataFrame,
    broker_orders: dict[str, BrokerOrder],
    fills: list[Fill],
    quotes: dict[str, dict],
    regime: str | None,
    regimes: pl.DataFrame,
    spike_bps: float,
) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """execution_outcomes and execution_feedback rows for D-1's submitted orders; whether a fill cost more
    than ``spike_bps`` against the mid (a slippage spike)."""
    by_order: dict[str, list[Fill]] = {}
    for f in fills:
        by_order.setdefault(f.client_order_id, []).append(f)
    expected = dict(zip(decisions["order_id"].to_list(), decisions["expected_cost_bps"].to_list(), strict=True))
    prev = regimes.filter(pl.col("date") < day).sort("date")
    vol_regime = (
        float(prev["volatility_percentile"][-1])
        if prev.height and prev["volatility_percentile"][-1] is not None
        else None
    )
    outcomes, feedback, spike = [], [], False
    for o in sent.iter_rows(named=True):
        oid, q = o["order_id"], quotes.get(o["symbol"], {})
        bo = broker_orders[oid]
        c = order_costs(o, by_order.get(oid, []), q)
        if c["vs_mid"] is not None and c["vs_mid"] > spike_bps:
            spike = True
            logger.warning(
                "%s: order %s cost %.1f bps vs the mid (> %.0f): execution kill switch engaged",
                o["symbol"],
                oid,
                c["vs_mid"],
                spike_bps,
            )
        arrival, adv, model = c["arrival"], q.get("adv"), expected.get(oid)
        row = {
            "order_id": oid,
            "expected_price": arrival,
            "fill_price": c["avg"],
            "fill_time": c["fill_time"],
            "slippage_bps": c["slip"],
            "market_impact_bps": c["impact"],
            "commission": c["commission"],
            "total_cost_bps": c["total"],
        }
        outcomes.append(
            {
                **row,
                "adv": adv,
                "adv_dollar": adv * arrival if adv and arrival else None,
                "vol_regime": vol_regime,
                "bid_ask_spread": q.get("spread_bps"),
                "spread_source": q.get("spread_source"),
                "model_estimated_cost": model,
                "cost_error_bps": c["total"] - model if c["total"] is not None and model is not None else None,
                "date": day,
                "cycle_id": o["cycle_id"],
                "symbol": o["symbol"],
                "side": o["side"],
                "status": bo.status.value,
                "ordered_qty": bo.qty,
                "filled_qty": c["filled"],
                "cancel_reason": bo.reject_reason if bo.status is OrderStatus.CANCELLED else None,
            }
        )
        if c["filled"] > 0:
            feedback.append(_feedback_row(day, o, q, row, c, vol_regime, regime))
    return frame("execution_outcomes", outcomes), frame("execution_feedback", feedback), spike


def _feedback_row(
    day: dt.date, o: dict, q: dict, row: dict, c: dict, vol_regime: float | None, regime: str | None
) -> dict:
    """The execution_feedback row of a filled order: its costs with the market conditions it met."""
    adv, arrival, fill_time = q.get("adv"), c["arrival"], c["fill_time"]
    conditions = {
        "sigma": q.get("sigma"),
        "spread_bps": q.get("spread_bps"),
        "spread_source": q.get("spread_source"),
        "volume": q.get("volume"),
        "adv": adv,
        "vol_regime": vol_regime,
        "strategy": o["strategy"],
    }
    return {
        **row,
        "market_conditions_json": json.dumps(conditions, sort_keys=True),
        "symbol": o["symbol"],
        "side": o["side"],
        "quantity": c["filled"],
        "adv": adv,
        "adv_dollar": adv * arrival if adv and arrival else None,
        "volatility": q.get("sigma"),
        "spread_bps": q.get("spread_bps"),
        "spread_source": q.get("spread_source"),
        "time_of_day": fill_time.astimezone(NEW_YORK).strftime("%H:%M") if fill_time else None,
        "regime": regime,
        "date": day,
        "cycle_id": o["cycle_id"],
    }


def account_row(
    day: dt.date,
    ledger: Ledger,
    positions: pl.DataFrame,
    nav: float,
    fills: list[Fill],
    dividends: float,
    broker: str,
    spike_left: int,
) -> dict:
    """The account row after the session: cash, NAV, exposures, commissions and dividends."""
    return {
        "date": day,
        "cash": ledger.cash,
        "positions_value": nav - ledger.cash,
        "nav": nav,
        "gross_exposure": float(positions["market_value"].abs().sum()) / nav if nav else 0.0,
        "net_exposure": float(positions["market_value"].sum()) / nav if nav else 0.0,
        "n_positions": positions.height,
        "realized_pnl": ledger.realized_pnl,
        "commission": float(sum(f.commission for f in fills)),
        "dividends": float(dividends),
        "n_fills": len(fills),
        "broker": broker,
        "spike_sessions_left": spike_left,
    }
