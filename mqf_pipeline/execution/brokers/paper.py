"""The paper broker: an order book in SQLite that fills through the simulator's cost model.

It behaves like a broker, not like a function: orders persist across processes (one SQLite file
under ``runtime/broker/``, every change in one transaction, so a process killed at any point leaves
either all of a change or none of it), a known ``client_order_id`` is never accepted twice, and
orders submitted for session D trade during the next session when :meth:`settle` is called for it
with that session's market (bars known after its close). Every submit attempt is logged, including
duplicates, so tests can prove the fund never tried to send one order twice.

Simulated here: MARKET and LIMIT orders, DAY and GTC (a GTC remainder trades again next session),
IOC and FOK (bucket 0 only; FOK fills in full or not at all), the schedules of
:mod:`mqf_pipeline.execution.strategies`. STOP and STOP_LIMIT orders are refused (not simulated).

This module takes orders in and answers reads; the order book's schema and row access are in
:mod:`paper_book`, the trading of a session's orders (fills, status after the session) in
:mod:`paper_settlement`. Their public names are importable from here.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.execution.brokers.base import AccountSnapshot, BrokerError, OrderRejectedError
from mqf_pipeline.execution.brokers.paper_book import (
    DDL,
    OPEN_STATUSES,
    broker_order_id,
    fetch,
    select_in,
    to_broker_order,
)
from mqf_pipeline.execution.brokers.paper_settlement import MARKET_COLUMNS, NEW_YORK, trade_session
from mqf_pipeline.execution.orders import BrokerOrder, Fill, OrderRequest, OrderStatus, OrderType, Side
from mqf_pipeline.execution.strategies import Strategy

__all__ = ["MARKET_COLUMNS", "NEW_YORK", "OPEN_STATUSES", "PaperBroker", "broker_order_id"]


class PaperBroker:
    """Broker over ``<directory>/paper.sqlite`` filling through :func:`simulator.execute`."""

    name = "paper"
    #: The paper broker accepts orders for past sessions (backtests); a real broker does not.
    accepts_historical = True

    def __init__(self, directory: str | Path, *, initial_cash: float, params: sim.CostParams, seed: int) -> None:
        self.path = Path(directory) / "paper.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.params = params
        self.seed = int(seed)
        self._con: sqlite3.Connection | None = None
        self._pid = -1
        self._connection().executescript(DDL)
        with self._tx() as con:
            con.execute("INSERT OR IGNORE INTO meta VALUES ('initial_cash', ?)", (repr(float(initial_cash)),))
        with self._tx() as con:
            self.initial_cash = float(con.execute("SELECT value FROM meta WHERE key = 'initial_cash'").fetchone()[0])

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One immediate (write-locking) transaction: committed whole or rolled back whole.

        WAL with synchronous=NORMAL: a killed process loses nothing committed (only a power loss could
        drop the last commits), which is the durability a paper broker needs, at ~0.1 ms a commit.
        """
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._con is None or self._pid != os.getpid():  # a forked child opens its own connection
            self._con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._pid = os.getpid()
        return self._con

    # ------------------------------------------------------------------ reads
    def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, BrokerOrder]:
        with self._tx() as con:
            rows = select_in(con, "SELECT * FROM orders WHERE client_order_id IN ({})", client_order_ids)
        return {r["client_order_id"]: to_broker_order(r) for r in rows}

    def fills(self, client_order_ids: Sequence[str]) -> list[Fill]:
        with self._tx() as con:
            rows = select_in(
                con, "SELECT * FROM fills WHERE client_order_id IN ({}) ORDER BY timestamp, fill_id", client_order_ids
            )
        return [
            Fill(
                r["client_order_id"],
                r["fill_id"],
                r["symbol"],
                Side(r["side"]),
                r["qty"],
                r["price"],
                r["timestamp"],
                r["commission"],
                r["mid"],
            )
            for r in rows
        ]

    def positions(self) -> dict[str, float]:
        """Signed shares now: the sum of the fills, each scaled by the splits after its session."""
        return self.positions_as_of(None)

    def positions_as_of(self, session: dt.date | None) -> dict[str, float]:
        """Signed shares after ``session`` traded (None: everything traded so far)."""
        upto = session.isoformat() if session else "9999-12-31"
        with self._tx() as con:
            fills = con.execute(
                "SELECT symbol, session, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) FROM fills "
                "WHERE session <= ? GROUP BY symbol, session",
                (upto,),
            ).fetchall()
            splits = con.execute("SELECT symbol, session, ratio FROM splits WHERE session <= ?", (upto,)).fetchall()
        held: dict[str, float] = {}
        for symbol, day, qty in fills:
            factor = math.prod(r for s, d, r in splits if s == symbol and d > day)
            held[symbol] = held.get(symbol, 0.0) + qty * factor
        return {s: q for s, q in held.items() if abs(q) > 1e-9}

    def account(self) -> AccountSnapshot:
        with self._tx() as con:
            flow = con.execute(
                "SELECT COALESCE(SUM(CASE side WHEN 'BUY' THEN -qty * price ELSE qty * price END - commission), 0) "
                "FROM fills"
            ).fetchone()[0]
        cash = self.initial_cash + float(flow)
        return AccountSnapshot(cash=cash, equity=cash, buying_power=cash)

    def submit_log(self) -> list[tuple[str, str]]:
        """Every submit attempt in order: (client_order_id, accepted | duplicate | rejected)."""
        with self._tx() as con:
            return [(r[0], r[1]) for r in con.execute("SELECT client_order_id, outcome FROM submit_log ORDER BY seq")]

    def settled_through(self) -> dt.date | None:
        with self._tx() as con:
            row = con.execute("SELECT MAX(session) FROM settled").fetchone()
        return dt.date.fromisoformat(row[0]) if row and row[0] else None

    # ------------------------------------------------------------------ writes
    def submit(self, order: OrderRequest, *, session: dt.date) -> BrokerOrder:
        """Accept ``order`` for trading in the session after ``session``; a known id returns the existing order.

        One transaction: two processes submitting the same id cannot both insert it."""
        cid = order.client_order_id
        with self._tx() as con:
            existing = fetch(con, "SELECT * FROM orders WHERE client_order_id = ?", (cid,))
            if existing:
                outcome, reason = "duplicate", None
            else:
                reason = _refusal(con, order, session)
                outcome = "rejected" if reason else "accepted"
            con.execute("INSERT INTO submit_log (client_order_id, outcome) VALUES (?, ?)", (cid, outcome))
            if outcome == "accepted":
                con.execute(
                    "INSERT INTO orders (client_order_id, broker_order_id, session, symbol, side, qty, order_type, "
                    "time_in_force, limit_price, stop_price, strategy, limit_offset_bps, pov_rate, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cid,
                        broker_order_id(cid),
                        session.isoformat(),
                        order.symbol,
                        order.side.value,
                        order.qty,
                        order.order_type.value,
                        order.time_in_force.value,
                        order.limit_price,
                        order.stop_price,
                        order.strategy,
                        order.limit_offset_bps,
                        order.pov_rate,
                        OrderStatus.SUBMITTED.value,
                    ),
                )
                existing = fetch(con, "SELECT * FROM orders WHERE client_order_id = ?", (cid,))
        if reason:
            raise OrderRejectedError(f"paper broker refused {order.side.value} {order.qty} {order.symbol}: {reason}")
        return to_broker_order(existing[0])

    def cancel(self, client_order_id: str) -> BrokerOrder:
        with self._tx() as con:
            rows = fetch(con, "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,))
            if not rows:
                raise BrokerError(f"paper broker: no order {client_order_id}")
            order = to_broker_order(rows[0])
            if order.status.terminal:
                return order
            new = order.with_status(OrderStatus.CANCELLED, reject_reason="CANCELLED_BY_CLIENT")
            con.execute(
                "UPDATE orders SET status = ?, reason = ? WHERE client_order_id = ?",
                (new.status.value, new.reject_reason, client_order_id),
            )
            return new

    def settle(self, session: dt.date, market: pl.DataFrame) -> int:
        """Trade every open order made before ``session`` through ``session`` (once; repeat calls are no-ops).

        ``market`` has one row per symbol: open and close (dollars), volume (shares), spread_bps, sigma
        (daily, decimal) and adv (shares, from sessions before), and optionally ``split_ratio`` (new shares
        per old share on this ex-date; positions held into it scale by it). Returns the number of fills booked.
        """
        missing = [c for c in MARKET_COLUMNS if c not in market.columns]
        if missing:
            raise ValueError(f"paper broker settle {session}: market frame lacks column(s) {missing}")
        with self._tx() as con:
            key = session.isoformat()
            if con.execute("SELECT 1 FROM settled WHERE session = ?", (key,)).fetchone():
                return 0
            later = con.execute("SELECT MAX(session) FROM settled").fetchone()[0]
            if later and later > key:
                raise BrokerError(f"paper broker: cannot settle {session}, sessions through {later} already traded")
            rows = fetch(
                con,
                f"SELECT * FROM orders WHERE session < ? AND status IN ({','.join('?' * len(OPEN_STATUSES))}) "
                "ORDER BY client_order_id",
                (key, *OPEN_STATUSES),
            )
            if "split_ratio" in market.columns:
                for symbol, ratio in (
                    market.filter(pl.col("split_ratio") != 1.0).select("symbol", "split_ratio").iter_rows()
                ):
                    con.execute("INSERT OR REPLACE INTO splits VALUES (?, ?, ?)", (key, symbol, float(ratio)))
            n = trade_session(con, session, rows, market, self.params, self.seed) if rows else 0
            con.execute("INSERT INTO settled VALUES (?)", (key,))
            return n


def _refusal(con: sqlite3.Connection, order: OrderRequest, session: dt.date) -> str | None:
    if order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        return f"{order.order_type.value} orders are not simulated by the paper broker"
    later = con.execute("SELECT MAX(session) FROM settled WHERE session > ?", (session.isoformat(),)).fetchone()[0]
    if later:
        return f"the session after {session} has already traded (settled through {later})"
    try:
        Strategy(order.strategy)
    except ValueError:
        return f"unknown execution strategy {order.strategy!r}"
    return None
