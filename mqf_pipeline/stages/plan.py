"""Run planning: which sessions still need materializing, grouped into contiguous ranges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from mqf_pipeline import calendar
from mqf_pipeline.stages.registry import written_tables
from mqf_pipeline.storage.lake import Lake


def history_sessions(latest: dt.date, lookback: int, partitions_start: dt.date) -> list[dt.date]:
    """The ``lookback`` sessions ending at ``latest`` (inclusive), not before ``partitions_start``."""
    first = max(calendar.session_offset(latest, -(lookback - 1)), partitions_start)
    return calendar.sessions(first, latest)


def missing_sessions(lake: Lake, sessions: Sequence[dt.date], tables: Sequence[str] | None = None) -> list[dt.date]:
    """Sessions for which any of ``tables`` (default: every table a stage writes) lacks its lake partition."""
    if tables is None:
        tables = written_tables()
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
