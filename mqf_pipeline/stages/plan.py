"""Run planning: the fund's inception and warm-up history, which sessions still need materializing, and
contiguous ranges of them.

The fund's sessions come in two parts (ARCHITECTURE "Inception and warm-up"):

* the **warm-up**: ``history.warm_up_sessions`` sessions before the inception, the look-back of features,
  regimes, agents and governance Phase 0, materialized once as one range (asset ``fund_history``);
* the **daily partitions**, from the **inception** (``calendar.partitions_start``) on: the fund's cycles.

With ``partitions_start: auto`` the inception is fixed by the first run (``first_run_sessions`` sessions
ending at the session it runs) and recorded in ``runtime/inception.json``, so it never moves afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mqf_pipeline import calendar
from mqf_pipeline.stages.registry import written_tables
from mqf_pipeline.storage.lake import Lake

INCEPTION_FILE = "inception.json"


class InceptionError(ValueError):
    """A session outside the fund's daily partitions, or an unreadable inception record."""


def default_session(settings: Any) -> dt.date:
    """The session a run targets by default: the latest closed XNYS session; for a fund on files alone, the
    last session the files hold (they cannot hold today's)."""
    closed = calendar.latest_closed_session()
    if settings.providers.priority.get(settings.fund.mode) != ["files"] or not settings.providers.files_root:
        return closed
    from mqf_pipeline.market.providers.files_scan import scan_folder

    last = scan_folder(Path(settings.providers.files_root).expanduser()).last_date
    if last is None:
        return closed
    end = min(last, closed)
    return calendar.sessions(end - dt.timedelta(days=15), end)[-1]


def inception_path(settings: Any) -> Path:
    return settings.runtime_dir / INCEPTION_FILE


def recorded_inception(settings: Any) -> dt.date | None:
    """The inception recorded by the first run (``runtime/inception.json``), if any."""
    path = inception_path(settings)
    if not path.exists():
        return None
    try:
        return dt.date.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["inception"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InceptionError(
            f"{path}: unreadable inception record ({exc}); it fixes the fund's first daily partition: restore it, "
            "or set calendar.partitions_start in configs/fund.yaml to the first session in the lake"
        ) from exc


def fund_inception(settings: Any, session: dt.date | None = None, *, record: bool = False) -> dt.date:
    """The fund's inception: its first daily partition (module docstring).

    ``calendar.partitions_start`` when it is a date; with ``auto``, the recorded inception, else the first of
    ``first_run_sessions`` sessions ending at ``session`` (default :func:`default_session`), recorded when
    ``record`` (the first run fixes it; loading the code location only reads).
    """
    start = settings.fund.calendar.partitions_start
    if start != "auto":
        return start
    recorded = recorded_inception(settings)
    if recorded is not None:
        return recorded
    day = session or default_session(settings)
    inception = calendar.session_offset(day, -(settings.fund.calendar.first_run_sessions - 1))
    if record:
        _write_inception(inception_path(settings), inception, day)
    return inception


def _write_inception(path: Path, inception: dt.date, first_session: dt.date) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "inception": inception.isoformat(),
        "first_run_session": first_session.isoformat(),
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "why": "calendar.partitions_start is 'auto': the first run fixed the fund's first daily partition",
    }
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def warm_up_days(settings: Any, inception: dt.date) -> list[dt.date]:
    """The ``history.warm_up_sessions`` sessions before ``inception`` (empty when 0)."""
    n = settings.fund.history.warm_up_sessions
    if n == 0:
        return []
    return calendar.sessions(calendar.session_offset(inception, -n), calendar.session_offset(inception, -1))


def daily_sessions(inception: dt.date, latest: dt.date) -> list[dt.date]:
    """The daily partitions from ``inception`` to ``latest``; a session before the inception is refused."""
    if latest < inception:
        raise InceptionError(
            f"{latest} is before the fund's inception {inception} (its first daily partition); the sessions "
            "before it are warm-up history (asset fund_history), not daily cycles"
        )
    return calendar.sessions(inception, latest)


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
