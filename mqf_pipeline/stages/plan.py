"""Run planning: which sessions still need materializing, grouped into contiguous ranges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from mqf_pipeline import calendar
from mqf_pipeline.storage.lake import Lake

#: Tables the market-data job writes one partition per session of, and the asset writing each.
TABLE_ASSETS: dict[str, str] = {
    "price_history": "price_history",
    "corporate_actions": "corporate_actions",
    "fundamentals": "fundamentals",
    "news_headlines": "news_headlines",
    "ingestion_audit": "ingestion_audit",
    "backfill_failures": "backfill_failures",
    "macro_series": "macro_series",
    "data_quality": "data_quality",
    "trading_eligibility": "trading_eligibility",
    "features": "features",
    "regime_history": "regime",
    "model_outputs": "agent_signals",
    "decisions": "decisions",
    "audit_log": "audit_log",
    "governance_gates": "governance_gates",
    "risk_contributions": "risk_contributions",
    "risk_state": "risk_state",
    "portfolio_targets": "portfolio_targets",
    "portfolio_constraints": "portfolio_constraints",
    "optimization_results": "optimization_results",
    "execution_outcomes": "execution_outcomes",
    "execution_feedback": "execution_feedback",
    "positions": "positions",
    "account": "account",
    "orders": "orders",
    "execution_decisions": "execution_decisions",
}
MARKET_DATA_TABLES: tuple[str, ...] = tuple(TABLE_ASSETS)


def history_sessions(latest: dt.date, lookback: int, partitions_start: dt.date) -> list[dt.date]:
    """The ``lookback`` sessions ending at ``latest`` (inclusive), not before ``partitions_start``."""
    first = max(calendar.session_offset(latest, -(lookback - 1)), partitions_start)
    return calendar.sessions(first, latest)


def missing_sessions(
    lake: Lake, sessions: Sequence[dt.date], tables: Sequence[str] = MARKET_DATA_TABLES
) -> list[dt.date]:
    """Sessions for which any of ``tables`` lacks its lake partition."""
    present = [set(lake.partitions(t)) for t in tables]
    return [d for d in sessions if any(d.isoformat() not in p for p in present)]


def contiguous_ranges(
    sessions: Sequence[dt.date], wanted: Sequence[dt.date], max_len: int
) -> list[tuple[dt.date, dt.date]]:
    """Group ``wanted`` into runs of consecutive entries of ``sessions``, at most ``max_len`` long."""
    if max_len < 1:
        raise ValueError("max_len must be >= 1")
    index = {d: i for i, d in enumerate(sessions)}
    unknown = [d for d in wanted if d not in index]
    if unknown:
        raise ValueError(f"{unknown[0]} is not an XNYS session in the planned range")
    ranges: list[tuple[dt.date, dt.date]] = []
    start = prev = None
    count = 0
    for d in sorted(wanted, key=index.__getitem__):
        if start is not None and index[d] == index[prev] + 1 and count < max_len:
            prev, count = d, count + 1
            continue
        if start is not None:
            ranges.append((start, prev))
        start, prev, count = d, d, 1
    if start is not None:
        ranges.append((start, prev))
    return ranges
