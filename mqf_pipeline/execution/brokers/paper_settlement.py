"""The paper broker's settlement: a session's open orders traded through the execution simulator
(:func:`mqf_pipeline.execution.simulator.execute`) on that session's market, their fills booked in the order
book and their new status stored (filled; a GTC remainder stays open; anything else is cancelled with the
simulator's reason or EXPIRED). An order whose session lacks what its fill needs is not traded; a DAY order is
cancelled with what is missing (:func:`untradable_reason`): NO_BAR (no bar), NO_OHLC (no open to arrive at:
close-only data), NO_VOLUME (no volume or ADV), NO_CLOSE, NO_VOLATILITY (too few returns before the session)
or NO_SPREAD. Split from :mod:`paper` (order intake and reads) so the trading step reads on its own; it runs
inside the broker's settle transaction.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.execution.brokers.paper_book import update_order
from mqf_pipeline.execution.orders import QTY_DECIMALS, OrderStatus, OrderType, Side, TimeInForce, round_qty
from mqf_pipeline.execution.strategies import Strategy

NEW_YORK = ZoneInfo("America/New_York")
MARKET_COLUMNS = ("symbol", "open", "close", "volume", "spread_bps", "sigma", "adv")
NO_BAR = "NO_BAR"
NO_OHLC = "NO_OHLC"
NO_VOLUME = "NO_VOLUME"
NO_CLOSE = "NO_CLOSE"
NO_VOLATILITY = "NO_VOLATILITY"
NO_SPREAD = "NO_SPREAD"


def trade_session(
    con: sqlite3.Connection,
    session: dt.date,
    rows: list[dict],
    market: pl.DataFrame,
    params: sim.CostParams,
    seed: int,
) -> int:
    """Trade the open order ``rows`` through ``session`` on ``market`` (one row per symbol, see
    :meth:`PaperBroker.settle`); returns the number of fills booked. An order whose session cannot be traded
    on is cancelled with what is missing (:func:`untradable_reason`) unless it is GTC."""
    quotes = {r["symbol"]: r for r in market.select(MARKET_COLUMNS).iter_rows(named=True)}
    tradable = []
    for r in rows:
        missing = untradable_reason(quotes.get(r["symbol"]))
        if missing is None:
            tradable.append(r)
        elif r["time_in_force"] != TimeInForce.GTC.value:
            update_order(con, r, OrderStatus.CANCELLED, missing)  # a DAY order the session cannot fill expires
    if not tradable:
        return 0
    q = [quotes[r["symbol"]] for r in tradable]
    symbols = tuple(r["symbol"] for r in tradable)
    mkt = sim.SessionMarket(
        arrival=np.array([x["open"] for x in q], float),
        close=np.array([x["close"] for x in q], float),
        sigma=np.array([x["sigma"] for x in q], float),
        spread_bps=np.array([x["spread_bps"] for x in q], float),
        volume=np.array([x["volume"] for x in q], float),
        adv=np.array([x["adv"] for x in q], float),
        symbols=symbols,
    )
    strategies = [_strategy(r) for r in tradable]
    remaining = np.array([round_qty(r["qty"] - r["filled_qty"]) for r in tradable])
    res = sim.execute(
        strategies,
        np.array([Side(r["side"]).sign for r in tradable], float),
        remaining,
        mkt,
        params,
        sim.draws_for(seed, session, symbols),
        limit_offset_bps=np.array([r["limit_offset_bps"] for r in tradable], float),
        pov_rate=np.array([r["pov_rate"] for r in tradable], float),
    )
    n_fills = 0
    for i, r in enumerate(tradable):
        n_fills += _book_order(con, session, r, i, res, remaining, params)
    return n_fills


def _book_order(
    con: sqlite3.Connection,
    session: dt.date,
    r: dict,
    i: int,
    res: sim.ExecutionResult,
    remaining: np.ndarray,
    params: sim.CostParams,
) -> int:
    """Book the fills of order row ``r`` (row ``i`` of ``res``) and store its new status; returns its fill count."""
    n_fills = 0
    # child quantities in whole 1e-4 shares (the order's precision): round the running total
    cum = np.round(np.cumsum(np.nan_to_num(res.fill_qty[i])), QTY_DECIMALS)
    qtys, prices = np.diff(cum, prepend=0.0).round(QTY_DECIMALS), res.fill_price[i]
    buckets = [k for k in range(qtys.shape[0]) if qtys[k] > 0]
    if r["time_in_force"] == TimeInForce.FOK.value and not np.isclose(qtys.sum(), remaining[i]):
        buckets = []  # fill or kill: all of it or nothing
    filled, notional = r["filled_qty"], r["filled_notional"]
    for k in buckets:
        qty = float(qtys[k])
        ts = dt.datetime.combine(session, res.bucket_times[k], NEW_YORK).astimezone(dt.UTC)
        commission = qty * params.commission_per_share
        con.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"{r['broker_order_id']}:{session.isoformat()}:{k:02d}",
                r["client_order_id"],
                session.isoformat(),
                r["symbol"],
                r["side"],
                qty,
                float(prices[k]),
                float(res.mid[i, k]),
                commission,
                ts.isoformat(),
            ),
        )
        filled += qty
        notional += qty * float(prices[k])
        n_fills += 1
    booked = {**r, "filled_qty": filled, "filled_notional": notional}
    done = filled >= r["qty"] - 1e-9
    reason = res.cancel_reason[i]
    gtc = r["time_in_force"] == TimeInForce.GTC.value and reason is None
    if done:
        update_order(con, booked, OrderStatus.FILLED, None)
    elif gtc:
        update_order(con, booked, OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED, None)
    else:
        update_order(con, booked, OrderStatus.CANCELLED, reason or "EXPIRED")
    return n_fills


def _strategy(row: dict) -> Strategy:
    """The simulator schedule an order row follows: IOC and FOK trade at once (MARKET, or LIMIT for a limit
    order), other LIMIT orders post passively, the rest follow the order's own strategy."""
    if row["time_in_force"] in (TimeInForce.IOC.value, TimeInForce.FOK.value):
        return Strategy.MARKET if row["order_type"] == OrderType.MARKET.value else Strategy.LIMIT
    if row["order_type"] == OrderType.LIMIT.value:
        return Strategy.LIMIT
    return Strategy(row["strategy"])


def untradable_reason(q: dict | None) -> str | None:
    """Why a session's market row ``q`` cannot be traded on, first missing thing first, or None when it can:
    NO_BAR (no row), NO_OHLC (open missing or not positive: fills arrive at the open), NO_VOLUME (volume or ADV
    missing or not positive), NO_CLOSE, NO_VOLATILITY (sigma missing), NO_SPREAD (spread missing)."""
    if q is None:
        return NO_BAR
    checks = (
        (NO_OHLC, _positive(q["open"])),
        (NO_VOLUME, _positive(q["volume"]) and _positive(q["adv"])),
        (NO_CLOSE, _positive(q["close"])),
        (NO_VOLATILITY, _finite(q["sigma"])),
        (NO_SPREAD, _finite(q["spread_bps"])),
    )
    return next((reason for reason, ok in checks if not ok), None)


def _finite(v: float | None) -> bool:
    return v is not None and bool(np.isfinite(v))


def _positive(v: float | None) -> bool:
    return _finite(v) and v > 0
