"""The intraday step that works child orders during session D+1, and their booking at D+1's close.

Session D's cycle does not send a TWAP/VWAP/POV/WAIT order whole to a broker that works children
(``work_children``: Alpaca); its ``orders(D)`` row is SUBMITTED with reason ``CHILD_ORDERS: worked during
<D+1> by the intraday step`` and no broker_order_id. During D+1, every few minutes,
:func:`work_session_children` reads those rows from the lake, rebuilds each parent's
:class:`~mqf_pipeline.execution.child_orders.ChildPlan` deterministically and calls the broker's
``work_children``, which submits the children due and cancels on the guards (rerun-safe):

* arrival price (PRICE_AWAY reference, dollars): the session's opening price from the live quote once the
  session has traded, else D's close stored in the orders row;
* ADV (shares): the mean volume of the ``adv_window_sessions`` usable bars up to D, exactly the ADV that
  booking D+1 computes (:func:`~mqf_pipeline.stages.execution_inputs.session_market`).

A parent the guards or the kill switch stopped, or whose children the broker refused, has that reason
kept in ``<lake root>/_child_work/<D+1>.json`` (parent id -> reason; a later guard reason replaces an
earlier one, STOPPED only fills a gap). A parent a guard stopped is not worked again that session, even
when the guard found no open child to cancel (its report says STOPPED).

Booking D+1 (:func:`settle_children`) reads each parent's children ``<parent>-c01..c13`` and their
revisions at the broker, books their fills under the parent's id, and gives the parent one aggregate
order: FILLED, CANCELLED (with the recorded reason, else how much filled), or still open. The parent's
own id never reaches the broker and is not reconciled.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.config import Settings
from mqf_pipeline.config.trading import ExecutionSettings
from mqf_pipeline.execution.child_orders import (
    CHILD_ORDERS,
    NO_QUOTE,
    PRICE_AWAY,
    SESSION_CLOSED,
    STOPPED,
    VOLUME_ANOMALY,
    ChildPlan,
    ChildWork,
    LiveQuote,
    child_id,
    plan_children,
    revision_id,
    revision_number,
)
from mqf_pipeline.execution.orders import BrokerOrder, Fill, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from mqf_pipeline.execution.orders import round_qty as _round
from mqf_pipeline.execution.strategies import N_BUCKETS
from mqf_pipeline.stages.execution_inputs import session_market
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.stages.params import cost_params
from mqf_pipeline.storage.lake import Lake

NEW_YORK = ZoneInfo("America/New_York")
STOPS_DIR = "_child_work"
#: ChildWork reasons that are not stops (the parent goes on at the next run).
_TRANSIENT = frozenset({None, NO_QUOTE, SESSION_CLOSED})
logger = logging.getLogger("mqf_pipeline.stages.execution")

#: ``live_quotes(symbols, session)``: a live quote per symbol (missing symbols get none).
LiveQuotes = Callable[[Sequence[str], dt.date], Mapping[str, LiveQuote]]


@dataclass(frozen=True)
class ChildWorkRun:
    """One run of the intraday step: the ``session`` worked, the ``orders_session`` D whose parents it
    works, what the broker did per parent, parents that could not be planned (id, message), and a note."""

    session: dt.date
    orders_session: dt.date | None
    works: tuple[ChildWork, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    note: str | None = None

    @property
    def submitted(self) -> int:
        return sum(len(w.submitted) for w in self.works)

    @property
    def cancelled(self) -> int:
        return sum(len(w.cancelled) for w in self.works)


def child_parents(orders: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``orders`` worked by children: SUBMITTED, no broker_order_id, reason ``CHILD_ORDERS...``."""
    return orders.filter(
        (pl.col("status") == OrderStatus.SUBMITTED.value)
        & pl.col("broker_order_id").is_null()
        & pl.col("reason").str.starts_with(CHILD_ORDERS).fill_null(False)
    ).sort("order_id")


def parent_request(row: dict, cfg: ExecutionSettings) -> OrderRequest:
    """The parent :class:`OrderRequest` of an orders row (LIMIT offset and POV rate from ``cfg``)."""
    return OrderRequest(
        client_order_id=row["order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        qty=float(row["qty"]),
        order_type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        strategy=row["strategy"],
        limit_offset_bps=cfg.limit_offset_bps,
        pov_rate=cfg.pov_rate,
    )


def next_session_adv(lake: Lake, day: dt.date, cfg: ExecutionSettings) -> dict[str, float]:
    """ADV (shares) per symbol for the session after ``day`` from the usable bars up to ``day``: the value
    booking that session computes (same look-back, same :func:`session_market`)."""
    session = calendar.session_offset(day, 1)
    back = calendar.session_offset(session, -(max(cfg.adv_window_sessions, cfg.vol_window_sessions) + 2))
    bars = usable_bars(lake, back, day)
    if bars.is_empty():
        return {}
    empty = {c: pl.lit(None, dtype=bars.schema[c]) for c in ("open", "close", "volume", "adjusted_close")}
    # a row per symbol dated D+1 with no prices: session_market's windows end strictly before each row, so
    # its ADV is the one known at D+1's open, computed by the same code booking uses
    next_session = bars.filter(pl.col("date") == day).with_columns(date=pl.lit(session), **empty)
    market = session_market(pl.concat([bars, next_session]), cfg.adv_window_sessions, cfg.vol_window_sessions)
    rows = market.filter((pl.col("date") == session) & pl.col("adv").is_not_null()).select("symbol", "adv")
    return dict(rows.iter_rows())


def session_plans(
    parents: pl.DataFrame,
    session: dt.date,
    adv: Mapping[str, float],
    quotes: Mapping[str, LiveQuote],
    cfg: ExecutionSettings,
) -> tuple[list[ChildPlan], list[tuple[str, str]]]:
    """Each parent's plan over ``session`` (arrival: the live open, else the stored close), and the parents
    that cannot be planned as (order id, message naming the symbol and order)."""
    plans, skipped = [], []
    for row in parents.iter_rows(named=True):
        quote = quotes.get(row["symbol"])
        arrival = quote.open if quote is not None and quote.open is not None else row["price"]
        try:
            a = adv.get(row["symbol"])
            if a is None:
                raise ValueError(f"{row['symbol']} order {row['order_id']}: no ADV from the bars before {session}")
            plans.append(plan_children(parent_request(row, cfg), session, arrival_price=float(arrival), adv=a))
        except ValueError as e:
            logger.error("child orders of %s: %s", session, e)
            skipped.append((row["order_id"], str(e)))
    return plans, skipped


def work_session_children(
    lake: Lake,
    broker: object,
    cfg: ExecutionSettings,
    *,
    now: dt.datetime,
    live_quotes: LiveQuotes,
    kill_switch: Callable[[], str | None] | None = None,
) -> ChildWorkRun:
    """One rerun-safe pass at ``now`` (timezone-aware) over the child-worked parents of the session before
    ``now``'s New York session (module docstring): quotes from ``live_quotes``, guards from ``cfg``
    (``price_away_cancel``, ``volume_anomaly_ratio``), ``kill_switch`` asked before every submission."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now}")
    session = now.astimezone(NEW_YORK).date()
    if not calendar.is_session(session):
        return ChildWorkRun(session, None, note=f"{session} is not an XNYS session")
    work = getattr(broker, "work_children", None)
    if work is None:
        return ChildWorkRun(session, None, note=f"broker {getattr(broker, 'name', broker)} works no child orders")
    day = calendar.previous_session(session)
    if not lake.exists("orders", day):
        return ChildWorkRun(session, day, note=f"no orders stored for {day}")
    parents = child_parents(lake.read("orders", [day]))
    if parents.is_empty():
        return ChildWorkRun(session, day, note=f"no order of {day} is worked by children")
    stops = stop_reasons(lake, session)
    guarded = [r for r in parents.iter_rows(named=True) if stops.get(r["order_id"]) in (PRICE_AWAY, VOLUME_ANOMALY)]
    parents = parents.filter(~pl.col("order_id").is_in([r["order_id"] for r in guarded]))
    quotes = dict(live_quotes(sorted(set(parents["symbol"].to_list())), session)) if parents.height else {}
    plans, skipped = session_plans(parents, session, next_session_adv(lake, day, cfg), quotes, cfg)
    works = tuple(work(plans, now=now, quotes=quotes, params=cost_params(cfg), kill_switch=kill_switch))
    record_stops(lake, session, works)
    held = tuple(ChildWork(r["order_id"], r["symbol"], STOPPED) for r in guarded)  # a guard stopped it earlier
    return ChildWorkRun(session, day, works + held, tuple(skipped))


def _stops_path(lake: Lake, session: dt.date) -> str:
    return f"{lake.root}/{STOPS_DIR}/{session.isoformat()}.json"


def stop_reasons(lake: Lake, session: dt.date) -> dict[str, str]:
    """Parent id -> why its children were stopped during ``session`` (empty when none was)."""
    path = _stops_path(lake, session)
    if not lake.fs.exists(path):
        return {}
    with lake.fs.open(path, "r") as fh:
        return dict(json.load(fh))


def record_stops(lake: Lake, session: dt.date, works: Sequence[ChildWork]) -> None:
    """Keep each parent's stop reason (guard, kill switch, STOPPED, broker refusal) of ``session``."""
    stops = stop_reasons(lake, session)
    new = dict(stops)
    for w in works:
        reason = w.reason
        if reason in _TRANSIENT and w.rejected:
            reason = f"BROKER_REJECTED: {w.rejected[0][1]}"
        if reason in _TRANSIENT or (reason == STOPPED and w.parent_id in new):
            continue
        if w.parent_id in new and new[w.parent_id] in (PRICE_AWAY, VOLUME_ANOMALY):
            continue  # the guard that stopped it stays its reason
        new[w.parent_id] = str(reason)
    if new == stops:
        return
    path = _stops_path(lake, session)
    lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"  # written whole, then renamed: a reader never sees half a file
    lake.fs.pipe_file(tmp, json.dumps(new, sort_keys=True).encode())
    lake.fs.mv(tmp, path)


def settle_children(
    broker: object, lake: Lake, orders: pl.DataFrame, day: dt.date
) -> tuple[pl.DataFrame, dict[str, BrokerOrder], list[Fill]]:
    """The child-worked parents of ``orders`` (D-1's) as traded during ``day``: their rows, one aggregate
    :class:`BrokerOrder` per parent (keyed by parent id) and their children's fills, booked under the
    parent's id (each child and revision keeps its own ``fill_id``)."""
    parents = child_parents(orders)
    if parents.is_empty():
        return parents, {}, []
    stops = stop_reasons(lake, day)
    out: dict[str, BrokerOrder] = {}
    fills: list[Fill] = []
    for row in parents.iter_rows(named=True):
        pid = row["order_id"]
        live = broker.live_orders([child_id(pid, k) for k in range(N_BUCKETS)])  # type: ignore[attr-defined]
        ids = [revision_id(c, k) for c, o in live.items() for k in range(revision_number(o.client_order_id) + 1)]
        mine = [replace(f, client_order_id=pid) for f in broker.fills(ids)] if ids else []  # type: ignore[attr-defined]
        fills += mine
        out[pid] = parent_order(row, live, mine, stops.get(pid))
    return parents, out, fills


def parent_order(row: dict, live: Mapping[str, BrokerOrder], fills: Sequence[Fill], stop: str | None) -> BrokerOrder:
    """A parent's aggregate order from its children: filled shares and average price (dollars) of their
    fills; FILLED when done, open while a child is open, else CANCELLED with ``stop`` or what filled."""
    qty, filled = float(row["qty"]), _round(sum(f.qty for f in fills))
    avg = sum(f.qty * f.price for f in fills) / filled if filled > 0 else None
    reason = None
    if filled >= _round(qty):
        status = OrderStatus.FILLED
    elif any(not o.status.terminal for o in live.values()):
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    else:
        status = OrderStatus.CANCELLED
        reason = stop or (
            f"{CHILD_ORDERS}: {row['symbol']} order {row['order_id']}: {filled:g} of {qty:g} shares filled "
            f"by the close ({len(live)} child order(s) reached the broker)"
        )
    return BrokerOrder(
        client_order_id=row["order_id"],
        broker_order_id="",
        symbol=row["symbol"],
        side=Side(row["side"]),
        qty=qty,
        order_type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        status=status,
        filled_qty=filled,
        filled_avg_price=avg,
        limit_price=row["limit_price"],
        reject_reason=reason,
    )


def alpaca_live_quotes(settings: Settings) -> LiveQuotes:
    """Live quotes from Alpaca's market-data snapshots (keys from the environment, URL and feed from
    ``configs/providers.yaml``)."""
    from mqf_pipeline.market.providers.alpaca import AlpacaProvider

    p = settings.providers
    return AlpacaProvider(url_override=p.alpaca_url_override, feed=p.alpaca_feed).live_quotes
