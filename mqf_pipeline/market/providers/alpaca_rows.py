"""Alpaca's JSON answers as rows: daily bars, news items dated to sessions (headlines), live quotes.

Used by :class:`~mqf_pipeline.market.providers.alpaca.AlpacaProvider`; the module docstring there
describes the session dating of headlines (no lookahead).
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.execution.child_orders import LiveQuote
from mqf_pipeline.market.providers.base import HEADLINES_SCHEMA, empty_frame

logger = logging.getLogger("mqf_pipeline.market.providers.alpaca")  # the provider's logger name

NEW_YORK = ZoneInfo("America/New_York")

SessionCloses = list[tuple[dt.date, dt.datetime]]


def session_closes(start: dt.date, end: dt.date) -> SessionCloses:
    """(session, close in UTC) for the session before the first one in ``start..end`` through the last.

    Empty if the range holds no session. Raises ``ValueError`` outside the calendar's range.
    """
    days = calendar.sessions(start, end)
    if not days:
        return []
    first = calendar.previous_session(days[0])
    closes = calendar.xnys().closes.loc[pd.Timestamp(first) : pd.Timestamp(days[-1])]
    out = [(ts.date(), close.to_pydatetime()) for ts, close in closes.items()]
    if [d for d, _ in out] != [first, *days]:
        raise ValueError(f"calendar closes do not match the sessions {first}..{days[-1]}")
    return out


def headline_session(published: dt.datetime, closes: SessionCloses) -> dt.date | None:
    """The first session of ``closes`` whose close is strictly after ``published``.

    None if ``published`` is at or after the last close, or before the first close (it belongs to
    the first listed session or earlier, which is outside the window). Naive times are taken as UTC.
    """
    if published.tzinfo is None:
        published = published.replace(tzinfo=dt.UTC)
    i = bisect.bisect_right([c for _, c in closes], published)
    if i == 0 or i >= len(closes):
        return None
    return closes[i][0]


def _parse_time(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str) and value.strip():
        try:
            t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def headline_rows(
    items: Sequence[dict[str, Any]],
    symbols: Sequence[str],
    closes: SessionCloses,
    start: dt.date,
    end: dt.date,
    provider: str,
) -> pl.DataFrame:
    """Rows with :data:`HEADLINES_SCHEMA` from raw Alpaca news items (see module docstring).

    Items without a headline or a parseable ``created_at`` are skipped (logged); a repeated item id
    counts once.
    """
    wanted = {s.upper(): s for s in symbols}
    seen: set[object] = set()
    rows: list[tuple[dt.date, str, dt.datetime, str]] = []
    skipped = 0
    for item in items:
        item_id = item.get("id")
        if item_id is not None:
            if item_id in seen:
                continue
            seen.add(item_id)
        headline = str(item.get("headline") or "").strip()
        created = _parse_time(item.get("created_at"))
        if not headline or created is None:
            skipped += 1
            continue
        day = headline_session(created, closes)
        if day is None or not start <= day <= end:
            continue
        mentioned = dict.fromkeys(str(s).upper() for s in item.get("symbols") or [])
        rows.extend((day, wanted[sym], created, headline) for sym in mentioned if sym in wanted)
    if skipped:
        logger.warning("%s: skipped %d news item(s) without a headline or created_at", provider, skipped)
    rows.sort(key=lambda r: r[:3])
    data = [{"date": d, "symbol": sym, "headline": h, "provider": provider} for d, sym, _, h in rows]
    return pl.DataFrame(data, schema=HEADLINES_SCHEMA) if data else empty_frame(HEADLINES_SCHEMA)


def _bars_frame(data: dict[str, list[dict[str, Any]]], adjusted: bool) -> pl.DataFrame:
    """One ``get_stock_bars`` answer (``{symbol: [bar, ...]}``) as rows dated to New York sessions."""
    rows: list[dict[str, Any]] = []
    for symbol, bars in data.items():
        for b in bars:
            t = dt.datetime.fromisoformat(str(b["t"]).replace("Z", "+00:00")).astimezone(NEW_YORK)
            if adjusted:
                rows.append({"date": t.date(), "symbol": symbol, "adjusted_close": b.get("c")})
            else:
                rows.append(
                    {
                        "date": t.date(),
                        "symbol": symbol,
                        "open": b.get("o"),
                        "high": b.get("h"),
                        "low": b.get("l"),
                        "close": b.get("c"),
                        "volume": b.get("v"),
                    }
                )
    if adjusted:
        schema: dict[str, Any] = {"date": pl.Date, "symbol": pl.String, "adjusted_close": pl.Float64}
    else:
        schema = {
            "date": pl.Date,
            "symbol": pl.String,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Int64,
        }
    return pl.DataFrame(rows, schema=schema, strict=False)


def snapshot_quotes(data: object, symbols: Sequence[str], session: dt.date) -> dict[str, LiveQuote]:
    """Alpaca snapshots (raw JSON keyed by symbol) as live quotes during ``session``: ``latestTrade.p`` ->
    ``last`` (dollars); when ``dailyBar`` is the session's own bar (its ``t`` is that New York date), its
    ``v`` -> ``volume`` (shares) and ``o`` -> ``open`` (dollars), else 0 shares and no open (the session has
    not traded yet). A symbol without a snapshot or a positive last trade price is absent."""
    out: dict[str, LiveQuote] = {}
    snaps = data if isinstance(data, dict) else {}
    for symbol in symbols:
        snap = snaps.get(symbol)
        trade = snap.get("latestTrade") if isinstance(snap, dict) else None
        price = trade.get("p") if isinstance(trade, dict) else None
        if not isinstance(price, int | float) or not price > 0:
            logger.warning("alpaca snapshot: no last trade price for %s during %s", symbol, session)
            continue
        bar = snap.get("dailyBar") if isinstance(snap, dict) else None
        bar = bar if isinstance(bar, dict) else {}
        t = _parse_time(bar.get("t"))
        today = t is not None and t.astimezone(NEW_YORK).date() == session
        volume = float(bar.get("v") or 0.0) if today else 0.0
        opening = float(bar["o"]) if today and isinstance(bar.get("o"), int | float) and bar["o"] > 0 else None
        out[symbol] = LiveQuote(last=float(price), volume=volume, open=opening)
    return out
