"""One execution cycle per session D, in order: settle, book, reconcile, then order.

1. The broker trades the orders of D-1 during D (the paper broker through the simulator, on D's bar).
2. Corporate actions of D, then the fills of D-1's orders, go into the positions ledger; positions are
   marked at D's close -> ``positions(D)``, ``account(D)``, ``execution_outcomes(D)`` and
   ``execution_feedback(D)`` (keyed by the session the orders traded in).
3. The ledger is reconciled with the broker's positions; a difference stops the cycle before anything
   is submitted.
4. Orders for D move the positions to ``portfolio_targets(D)`` x NAV(D); each gets its schedule from
   the policy. Reconciliation first: an order whose deterministic ``client_order_id`` the broker
   already knows is never submitted again (a retry or a rerun after a crash finds it there). The kill
   switch (checked before every submission) and a FREEZE breaker block submission; blocked orders are
   stored REJECTED with the reason. ``orders(D)`` records each order's state when the cycle made it
   (SUBMITTED or REJECTED); its final state is in ``execution_outcomes(D+1)``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from mqf_pipeline import calendar, kill_switch
from mqf_pipeline.config import Settings
from mqf_pipeline.decisions.audit import cycle_id as make_cycle_id
from mqf_pipeline.execution import policy
from mqf_pipeline.execution.brokers.base import Broker, OrderRejectedError
from mqf_pipeline.execution.ledger import POSITION_SCHEMA, Ledger
from mqf_pipeline.execution.orders import (
    BrokerOrder,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    client_order_id,
    round_qty,
)
from mqf_pipeline.stages.base import previous_partition
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.storage.lake import Lake, WriteResult
from mqf_pipeline.storage.schema import table_spec

CODE_VERSION = "execution-1"
NEW_YORK = ZoneInfo("America/New_York")
logger = logging.getLogger(__name__)


class ExecutionStateError(RuntimeError):
    """The cycle cannot continue the stored execution state (a gap, or the broker disagrees)."""


class ReconciliationError(ExecutionStateError):
    """The ledger and the broker disagree on positions: nothing is submitted until it is resolved."""


@dataclass
class Carried:
    """What session D continues from D-1."""

    ledger: Ledger
    orders: pl.DataFrame  # orders(D-1)
    decisions: pl.DataFrame  # execution_decisions(D-1)
    spike_sessions_left: int = 0


@dataclass
class SessionResult:
    day: dt.date
    outcomes: pl.DataFrame
    feedback: pl.DataFrame
    positions: pl.DataFrame
    account: dict
    orders: pl.DataFrame
    decisions: pl.DataFrame
    blocked_reason: str | None = None
    submitted: int = 0
    already_at_broker: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExecutionInputs:
    market: pl.DataFrame  # date, symbol, open, close, volume, spread_bps, sigma, adv (sigma, adv known before date)
    targets: pl.DataFrame
    risk: pl.DataFrame
    actions: pl.DataFrame
    regimes: pl.DataFrame

    @cached_property
    def _by_day(self) -> dict[str, dict[dt.date, pl.DataFrame]]:
        """Each date-keyed frame split by session once (a range run would otherwise filter it every session)."""
        names = ("market", "targets", "risk", "actions", "regimes")
        return {n: {k[0]: v for k, v in getattr(self, n).partition_by("date", as_dict=True).items()} for n in names}

    def on(self, name: str, day: dt.date) -> pl.DataFrame:
        """Rows of frame ``name`` for session ``day`` (empty with its schema when there are none)."""
        part = self._by_day[name].get(day)
        return part if part is not None else getattr(self, name).clear()


# ---------------------------------------------------------------------------------------------- inputs
def load_inputs(lake: Lake, settings: Settings, days: Sequence[dt.date]) -> ExecutionInputs:
    first, last = days[0], days[-1]
    cfg = settings.execution
    back = calendar.session_offset(first, -(max(cfg.adv_window_sessions, cfg.vol_window_sessions) + 2))
    bars = usable_bars(lake, back, last)
    return ExecutionInputs(
        market=session_market(bars, cfg.adv_window_sessions, cfg.vol_window_sessions).filter(pl.col("date") >= first),
        targets=lake.read_range("portfolio_targets", first, last).select("date", "symbol", "target_weight"),
        risk=lake.read_range("risk_state", first, last).select("date", "breaker_status", "kill_switch"),
        actions=lake.read_range("corporate_actions", first, last),
        regimes=lake.read_range("regime_history", calendar.session_offset(first, -1), last).select(
            "date", "regime", "volatility_percentile"
        ),
    )


def session_market(bars: pl.DataFrame, adv_window: int, vol_window: int) -> pl.DataFrame:
    """Per (date, symbol): the session's open, close, volume and spread, and ADV (mean shares) and daily
    volatility (std of adjusted close-to-close returns) over the windows *before* the session.

    Each window is computed on its own values (numpy sliding windows), not by a running update, so a
    session's ADV and volatility are bit-identical whatever range of history was loaded with it.
    """
    frames = []
    for (_symbol,), part in bars.sort("symbol", "date").group_by("symbol", maintain_order=True):
        volume = part["volume"].cast(pl.Float64).to_numpy()
        adj = part["adjusted_close"].cast(pl.Float64).to_numpy()
        ret = np.full(adj.shape, np.nan)
        ret[1:] = adj[1:] / adj[:-1] - 1.0
        frames.append(
            part.select(
                "date", "symbol", "open", "close", pl.col("volume").cast(pl.Float64), "spread_bps"
            ).with_columns(
                adv=pl.Series(_trailing(volume, adv_window, 1, np.nanmean)),
                sigma=pl.Series(_trailing(ret, vol_window, 2, lambda w, axis: np.nanstd(w, axis=axis, ddof=1))),
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "date": pl.Date,
                "symbol": pl.String,
                "open": pl.Float64,
                "close": pl.Float64,
                "volume": pl.Float64,
                "spread_bps": pl.Float64,
                "adv": pl.Float64,
                "sigma": pl.Float64,
            }
        )
    return pl.concat(frames).with_columns(pl.col("adv", "sigma").fill_nan(None))


def _trailing(values: np.ndarray, window: int, min_samples: int, stat) -> np.ndarray:
    """stat over the (up to) ``window`` finite values strictly before each row; nan with fewer than ``min_samples``."""
    padded = np.concatenate([np.full(window, np.nan), values[:-1]]) if values.size else values
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)[: values.size]
    counts = np.isfinite(windows).sum(axis=1)
    out = np.full(values.shape, np.nan)
    ok = counts >= min_samples
    if ok.any():
        with np.errstate(all="ignore"):
            out[ok] = stat(windows[ok], axis=1)
    return out


def load_carried(lake: Lake, day: dt.date, initial_cash: float) -> Carried:
    """positions/account/orders of the session before ``day``; none stored before it -> start in cash."""
    prev = previous_partition(
        lake, "account", day, error=ExecutionStateError, what="the execution assets", state="the positions"
    )
    if prev is None:
        return Carried(Ledger(cash=initial_cash), _empty("orders"), _empty("execution_decisions"))
    account = lake.read("account", [prev]).row(0, named=True)
    ledger = Ledger.from_rows(
        float(account["cash"]), float(account["realized_pnl"]), lake.read("positions", [prev]).iter_rows(named=True)
    )
    return Carried(
        ledger,
        lake.read("orders", [prev]),
        lake.read("execution_decisions", [prev]),
        int(account["spike_sessions_left"]),
    )


def _empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=table_spec(table).columns)


# ---------------------------------------------------------------------------------------------- one session
def run_session(
    day: dt.date,
    carried: Carried,
    inputs: ExecutionInputs,
    settings: Settings,
    broker: Broker,
    *,
    kill_switch_path: Path | None,
    latest_session: dt.date,
) -> tuple[SessionResult, Carried]:
    cfg = settings.execution
    cid = make_cycle_id(settings.fund.strategy, day)
    market = inputs.on("market", day)
    quotes = {r["symbol"]: r for r in market.iter_rows(named=True)}

    # 1. the broker trades D-1's orders during D
    settle = getattr(broker, "settle", None)
    if settle is not None:
        actions = inputs.on("actions", day)
        splits = actions.filter(pl.col("action_type") == "SPLIT").select("symbol", pl.col("value").alias("split_ratio"))
        settle(day, market.join(splits, on="symbol", how="left").with_columns(pl.col("split_ratio").fill_null(1.0)))
    sent = carried.orders.filter(pl.col("broker_order_id").is_not_null()).sort("order_id")
    ids = sent["order_id"].to_list()
    broker_orders = broker.get_orders(ids) if ids else {}
    missing = sorted(set(ids) - set(broker_orders))
    if missing:
        raise ReconciliationError(
            f"{day}: {len(missing)} order(s) of {calendar.session_offset(day, -1)} that were submitted are unknown "
            f"to broker {broker.name}: {missing[:5]}"
        )
    fills = broker.fills(ids) if ids else []

    # 2. corporate actions, fills, marks
    ledger = carried.ledger.copy()
    dividends = ledger.apply_corporate_actions(inputs.on("actions", day))
    for f in sorted(fills, key=lambda f: (f.timestamp, f.fill_id)):
        ledger.apply_fill(f)
    closes = {s: q["close"] for s, q in quotes.items() if q["close"] is not None}
    _carry_missing_marks(ledger, closes, carried, day)
    positions = ledger.position_rows(day, closes)
    nav = ledger.nav(closes)
    regime = inputs.on("regimes", day)
    regime_name = regime["regime"][0] if regime.height else None
    outcomes, feedback, spike = _outcomes(
        day, sent, carried.decisions, broker_orders, fills, quotes, regime_name, inputs.regimes, settings
    )
    spike_left = cfg.spike_cooldown_sessions if spike else max(carried.spike_sessions_left - 1, 0)
    if spike and cfg.slippage_spike_action == "halt" and kill_switch_path is not None:
        kill_switch.engage(
            kill_switch_path,
            f"slippage spike: a fill of {calendar.session_offset(day, -1)}'s orders cost more than "
            f"{cfg.slippage_spike_bps:g} bps vs the mid on {day}",
            "execution",
        )

    # 3. reconcile positions with the broker before any submission
    _reconcile(day, ledger, broker, latest_session)

    # 4. orders for D
    blocked = _blocked(inputs.on("risk", day), kill_switch_path)
    if not getattr(broker, "accepts_historical", False) and day < latest_session:
        planned: list[dict] = []
        notes = [f"{day} is before the latest session {latest_session}: broker {broker.name} is not sent past orders"]
    else:
        planned, notes = (
            _plan(day, cid, ledger, nav, inputs.on("targets", day), quotes, settings, spike_left > 0),
            [],
        )
    orders, decisions, submitted, known = _submit(day, planned, broker, blocked, kill_switch_path)
    account = {
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
        "broker": broker.name,
        "spike_sessions_left": spike_left,
    }
    result = SessionResult(
        day, outcomes, feedback, positions, account, orders, decisions, blocked, submitted, known, notes
    )
    return result, Carried(ledger, orders, decisions, spike_left)


def _carry_missing_marks(ledger: Ledger, closes: dict[str, float], carried: Carried, day: dt.date) -> None:
    """A held symbol without a usable bar on ``day`` keeps its last mark (its average cost if never marked)."""
    for symbol, pos in ledger.positions.items():
        if symbol not in closes:
            logger.warning("%s: no usable close on %s; position marked at its last known price", symbol, day)
            closes[symbol] = pos.avg_price


def _reconcile(day: dt.date, ledger: Ledger, broker: Broker, latest: dt.date) -> None:
    """Ledger vs broker positions after ``day`` traded. A broker that can say what it held at a past
    session (the paper broker) is checked on every session; a real broker only on the latest one."""
    as_of = getattr(broker, "positions_as_of", None)
    if as_of is not None:
        theirs = as_of(day)
    elif day >= latest:
        theirs = broker.positions()
    else:
        return
    ours = ledger.open_positions()
    diffs = {
        s: (ours.get(s, 0.0), theirs.get(s, 0.0))
        for s in sorted(set(ours) | set(theirs))
        if not math.isclose(ours.get(s, 0.0), theirs.get(s, 0.0), rel_tol=1e-9, abs_tol=1e-6)
    }
    if diffs:
        shown = ", ".join(f"{s}: ledger {a:g} vs broker {b:g}" for s, (a, b) in list(diffs.items())[:5])
        raise ReconciliationError(
            f"{day}: positions differ from broker {broker.name} for {len(diffs)} symbol(s) ({shown}); "
            "nothing was submitted"
        )


def _blocked(risk: pl.DataFrame, path: Path | None) -> str | None:
    """Why no order of the session may be submitted: the kill switch, or the session's FREEZE breaker."""
    reason = _kill_switch_reason(path)
    if reason:
        return reason
    if risk.height and risk["breaker_status"][0] == "FREEZE":
        return "BREAKER_FREEZE: the risk engine's circuit breaker is at FREEZE"
    return None


def _plan(
    day: dt.date,
    cid: str,
    ledger: Ledger,
    nav: float,
    targets: pl.DataFrame,
    quotes: dict[str, dict],
    settings: Settings,
    spike: bool,
) -> list[dict]:
    """Orders moving each position to target_weight x NAV / close; a trade crossing zero is two legs."""
    cfg = settings.execution
    want = dict(zip(targets["symbol"].to_list(), targets["target_weight"].to_list(), strict=True))
    out: list[dict] = []
    for symbol in sorted(set(want) | set(ledger.open_positions())):
        q = quotes.get(symbol)
        if q is None or not q["close"] or not q["adv"] or q["sigma"] is None:
            logger.warning("%s: no usable bar, ADV or volatility on %s; no order", symbol, day)
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
            state = policy.OrderState(
                size_adv=qty / q["adv"], sigma=float(q["sigma"]), spread_bps=float(q["spread_bps"] or 0.0)
            )
            choice = policy.choose(state, cfg, kill_switch=spike)
            out.append(
                {
                    "request": OrderRequest(
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
                    "cycle_id": cid,
                    "leg": leg,
                    "price": float(q["close"]),
                    "target_weight": weight,
                    "state": state,
                    "choice": choice,
                }
            )
    return out


def _submit(
    day: dt.date, planned: list[dict], broker: Broker, blocked: str | None, path: Path | None
) -> tuple[pl.DataFrame, pl.DataFrame, int, int]:
    """Reconcile, then submit what the broker does not know yet; rows describe each order as made."""
    known = broker.get_orders([p["request"].client_order_id for p in planned]) if planned else {}
    rows, decisions, submitted = [], [], 0
    for p in planned:
        req: OrderRequest = p["request"]
        order: BrokerOrder | None = known.get(req.client_order_id)
        reason = None
        if order is None:
            reason = blocked or _kill_switch_reason(path)
            if reason is None:
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
        status = (
            OrderStatus.REJECTED if order is None or order.status is OrderStatus.REJECTED else OrderStatus.SUBMITTED
        )
        if order is not None and order.status is OrderStatus.REJECTED:
            reason = f"BROKER_REJECTED: {order.reject_reason}"
        rows.append(
            {
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
                "broker": broker.name,
                "broker_order_id": order.broker_order_id if status is OrderStatus.SUBMITTED and order else None,
                "reason": reason,
            }
        )
        st, ch = p["state"], p["choice"]
        decisions.append(
            {
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
                "policy": policy.POLICY,
            }
        )
    already = sum(1 for p in planned if p["request"].client_order_id in known)
    return _frame("orders", rows), _frame("execution_decisions", decisions), submitted, already


def _kill_switch_reason(path: Path | None) -> str | None:
    """``KILL_SWITCH: ...`` while engaged. Read at the cycle's start and again before every submission,
    so engaging it mid-cycle stops the rest."""
    if path is None:
        return None
    st = kill_switch.status(path)
    return f"KILL_SWITCH: {st.describe()}" if st.active else None


def _frame(table: str, rows: list[dict]) -> pl.DataFrame:
    cols = {k: v for k, v in table_spec(table).columns.items() if k not in ("id", "created_at")}
    return pl.DataFrame(rows, schema=cols) if rows else pl.DataFrame(schema=cols)


def _outcomes(
    day: dt.date,
    sent: pl.DataFrame,
    decisions: pl.DataFrame,
    broker_orders: dict[str, BrokerOrder],
    fills: list[Fill],
    quotes: dict[str, dict],
    regime: str | None,
    regimes: pl.DataFrame,
    settings: Settings,
) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """execution_outcomes and execution_feedback rows for D-1's submitted orders; whether a fill spiked."""
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
        fs = by_order.get(oid, [])
        side = Side(o["side"]).sign
        arrival = q.get("open")
        filled = sum(f.qty for f in fs)
        notional = sum(f.qty * f.price for f in fs)
        commission = sum(f.commission for f in fs)
        avg = notional / filled if filled > 0 else None
        slip = side * (avg / arrival - 1.0) * 1e4 if avg and arrival else None
        with_mid = [f for f in fs if f.mid]
        vs_mid = (
            sum(f.qty * side * (f.price / f.mid - 1.0) for f in with_mid) / sum(f.qty for f in with_mid) * 1e4
            if with_mid
            else None
        )
        half_spread = (q.get("spread_bps") or 0.0) / 2.0
        impact = vs_mid - half_spread if vs_mid is not None else None
        total = slip + commission / notional * 1e4 if slip is not None and notional else None
        model = expected.get(oid)
        if vs_mid is not None and vs_mid > settings.execution.slippage_spike_bps:
            spike = True
            logger.warning(
                "%s: order %s cost %.1f bps vs the mid (> %.0f): execution kill switch engaged",
                o["symbol"],
                oid,
                vs_mid,
                settings.execution.slippage_spike_bps,
            )
        first_fill = min((f.timestamp for f in fs), default=None)
        fill_time = dt.datetime.fromisoformat(first_fill) if first_fill else None
        adv = q.get("adv")
        row = {
            "order_id": oid,
            "expected_price": arrival,
            "fill_price": avg,
            "fill_time": fill_time,
            "slippage_bps": slip,
            "market_impact_bps": impact,
            "commission": commission,
            "total_cost_bps": total,
        }
        outcomes.append(
            {
                **row,
                "adv": adv,
                "adv_dollar": adv * arrival if adv and arrival else None,
                "vol_regime": vol_regime,
                "bid_ask_spread": q.get("spread_bps"),
                "model_estimated_cost": model,
                "cost_error_bps": total - model if total is not None and model is not None else None,
                "date": day,
                "cycle_id": o["cycle_id"],
                "symbol": o["symbol"],
                "side": o["side"],
                "status": bo.status.value,
                "ordered_qty": bo.qty,
                "filled_qty": filled,
                "cancel_reason": bo.reject_reason if bo.status is OrderStatus.CANCELLED else None,
            }
        )
        if filled > 0:
            conditions = {
                "sigma": q.get("sigma"),
                "spread_bps": q.get("spread_bps"),
                "volume": q.get("volume"),
                "adv": adv,
                "vol_regime": vol_regime,
                "strategy": o["strategy"],
            }
            feedback.append(
                {
                    **row,
                    "market_conditions_json": json.dumps(conditions, sort_keys=True),
                    "symbol": o["symbol"],
                    "side": o["side"],
                    "quantity": filled,
                    "adv": adv,
                    "adv_dollar": adv * arrival if adv and arrival else None,
                    "volatility": q.get("sigma"),
                    "spread_bps": q.get("spread_bps"),
                    "time_of_day": fill_time.astimezone(NEW_YORK).strftime("%H:%M") if fill_time else None,
                    "regime": regime,
                    "date": day,
                    "cycle_id": o["cycle_id"],
                }
            )
    return _frame("execution_outcomes", outcomes), _frame("execution_feedback", feedback), spike


# ---------------------------------------------------------------------------------------------- many sessions
def run_execution(
    lake: Lake,
    settings: Settings,
    days: Sequence[dt.date],
    broker: Broker,
    *,
    kill_switch_path: Path | None,
    latest_session: dt.date | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[SessionResult]:
    """Run ``days`` in order from the stored state before the first one."""
    days = sorted(days)
    inputs = load_inputs(lake, settings, days)
    carried = load_carried(lake, days[0], settings.risk.initial_nav)
    latest = latest_session or calendar.latest_closed_session()
    results = []
    for i, day in enumerate(days):
        result, carried = run_session(
            day, carried, inputs, settings, broker, kill_switch_path=kill_switch_path, latest_session=latest
        )
        results.append(result)
        if progress and (i % 50 == 0 or i == len(days) - 1):
            progress(
                f"execution {day}: NAV {result.account['nav']:,.0f}, {result.orders.height} orders, "
                f"{result.account['n_fills']} fills, {result.positions.height} positions"
            )
    return results


def write_results(
    lake: Lake, results: Sequence[SessionResult], now: dt.datetime | None = None
) -> dict[str, list[WriteResult]]:
    """Write every execution table's partitions of ``results`` (one atomic file per table and session)."""
    days = [r.day for r in results]
    now = now or dt.datetime.now(dt.UTC)

    def concat(attr: str, schema: dict | None = None) -> pl.DataFrame:
        frames = [getattr(r, attr) for r in results]
        return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=schema)

    return {
        "execution_outcomes": lake.write_many("execution_outcomes", concat("outcomes"), days, now=now),
        "execution_feedback": lake.write_many("execution_feedback", concat("feedback"), days, now=now),
        "positions": lake.write_many("positions", concat("positions", POSITION_SCHEMA), days, now=now),
        "account": lake.write_many("account", _frame("account", [r.account for r in results]), days, now=now),
        "orders": lake.write_many("orders", concat("orders"), days, now=now),
        "execution_decisions": lake.write_many("execution_decisions", concat("decisions"), days, now=now),
    }
