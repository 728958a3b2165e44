"""The paper broker's order book in SQLite: its schema, the broker's deterministic order ids, and row
access (rows as dicts, large ``IN`` lists in chunks, status updates checked against the order state
machine)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

from mqf_pipeline.execution.orders import BrokerOrder, OrderStatus, OrderType, Side, TimeInForce

OPEN_STATUSES = (OrderStatus.SUBMITTED.value, OrderStatus.PARTIALLY_FILLED.value)


DDL = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    broker_order_id TEXT NOT NULL UNIQUE,
    session TEXT NOT NULL,             -- the cycle's session; the order trades from the next one
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    order_type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    limit_price REAL,
    stop_price REAL,
    strategy TEXT NOT NULL,
    limit_offset_bps REAL NOT NULL,
    pov_rate REAL NOT NULL,
    status TEXT NOT NULL,
    filled_qty REAL NOT NULL DEFAULT 0,
    filled_notional REAL NOT NULL DEFAULT 0,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
    session TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL,
    mid REAL NOT NULL,
    commission REAL NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settled (session TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS splits (session TEXT NOT NULL, symbol TEXT NOT NULL, ratio REAL NOT NULL,
                                   PRIMARY KEY (session, symbol));
CREATE TABLE IF NOT EXISTS submit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL,
    outcome TEXT NOT NULL              -- accepted | duplicate | rejected
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# ---------------------------------------------------------------------------------------------- helpers
def broker_order_id(client_order_id: str) -> str:
    """The paper broker's own id: deterministic, so a fresh rerun reproduces every stored row."""
    return "paper-" + hashlib.sha256(client_order_id.encode()).hexdigest()[:20]


def update_order(con: sqlite3.Connection, row: dict, status: OrderStatus, reason: str | None) -> None:
    """Store a new status (and fills) of an order row; an illegal transition raises before anything is written."""
    to_broker_order(row).with_status(status)  # validates the transition
    con.execute(
        "UPDATE orders SET status = ?, filled_qty = ?, filled_notional = ?, reason = ? WHERE client_order_id = ?",
        (status.value, row["filled_qty"], row["filled_notional"], reason, row["client_order_id"]),
    )


def fetch(con: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> list[dict]:
    """Rows as dicts keyed by the cursor's column names."""
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def select_in(con: sqlite3.Connection, sql: str, ids: Sequence[str]) -> list[dict]:
    """``sql`` (with one ``IN ({})``) over ``ids`` in chunks of 500 (below SQLite's bound-parameter limit)."""
    out: list[dict] = []
    ids = list(ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        out += fetch(con, sql.format(",".join("?" * len(chunk))), chunk)
    return out


def to_broker_order(r: dict) -> BrokerOrder:
    """An order-book row as the broker-neutral :class:`BrokerOrder`."""
    filled = float(r["filled_qty"])
    return BrokerOrder(
        client_order_id=r["client_order_id"],
        broker_order_id=r["broker_order_id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        qty=float(r["qty"]),
        order_type=OrderType(r["order_type"]),
        time_in_force=TimeInForce(r["time_in_force"]),
        status=OrderStatus(r["status"]),
        filled_qty=filled,
        filled_avg_price=float(r["filled_notional"]) / filled if filled > 0 else None,
        limit_price=r["limit_price"],
        stop_price=r["stop_price"],
        reject_reason=r["reason"],
    )
