"""The kill switch (seed 000 section 12.2): while engaged, nothing creates orders.

Its state lives in the audited, append-only table ``kill_switch_events`` of the lake: one row per
``engaged`` / ``released`` event with when (UTC), who (actor, host, pid), how (``source``: ``cli``,
``file``, ``api`` or ``pipeline``) and why. Each event is its own lake file (partition = the event id, a
UTC timestamp then a random suffix, so the names sort in time), written atomically without the DuckDB
catalog's lock, so concurrent writers never lose one; the catalog shows the table as a view. The latest
event wins, so an engaged switch survives a sensor reset, a restart and a lost file.

The file (``runtime/KILL_SWITCH``, ``fund.paths.kill_switch``) stays the emergency path: an operator may
``touch`` it without the CLI, and a present file engages the switch whatever the table says. The sensor
records such a file as a ``source=file`` engaged event the first time it sees it unrecorded (so does
:func:`release`). ``mqf kill-switch on`` appends an engaged event and writes the file (a JSON record of
who and why); ``mqf kill-switch off`` removes the file, then appends a released event. Removing the file
by hand does not release a recorded switch.

Engaging while engaged and releasing while off are recorded as such (``was_engaged`` holds the state before
the event): the audit shows every operator action. The check is made when a step executes (before every
order submission), not when a run is launched, so a switch engaged mid-run stops that run's later orders.
If the table cannot be read, the switch reads as engaged (fail closed). Without a lake (``lake=None``) only
the file is consulted (tests, tools without a lake).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from mqf_pipeline.storage.lake import UNREADABLE, Lake
from mqf_pipeline.storage.schema import table_spec

#: The audited table of engage / release events.
EVENTS_TABLE = "kill_switch_events"
ENGAGED, RELEASED = "engaged", "released"
#: Where an event came from: the CLI, a file seen by the sensor, a Python caller, the pipeline itself.
SOURCES = ("cli", "file", "api", "pipeline")


class KillSwitchEngagedError(RuntimeError):
    """Raised by :func:`require_off` when an action that would create orders meets the kill switch."""


class KillSwitchAuditError(RuntimeError):
    """An event could not be written to ``kill_switch_events``; the message says what state the switch is in."""


@dataclass(frozen=True)
class KillSwitchEvent:
    """One row of ``kill_switch_events``."""

    event_id: str
    event_time: dt.datetime
    action: str
    was_engaged: bool
    reason: str
    actor: str
    source: str
    host: str
    pid: int
    file_path: str | None = None
    file_mtime: dt.datetime | None = None

    def describe(self) -> str:
        """One line: when, what, who (where, how) and why."""
        why = f": {self.reason}" if self.reason else ""
        again = " (already engaged)" if self.action == ENGAGED and self.was_engaged else ""
        again = " (was not engaged)" if self.action == RELEASED and not self.was_engaged else again
        when = self.event_time.isoformat(timespec="seconds")
        return f"{when} {self.action}{again} by {self.actor}@{self.host} via {self.source}{why}"


@dataclass(frozen=True)
class KillSwitchStatus:
    """The switch's state: engaged or not, since when (UTC), who set it, how and why, and the latest event."""

    active: bool
    path: Path
    since: dt.datetime | None = None
    reason: str = ""
    by: str = ""
    source: str = ""
    event_id: str = ""
    file_present: bool = False

    @property
    def engaged_by(self) -> str:
        """Who engaged the switch ("" while off)."""
        return self.by if self.active else ""

    def describe(self) -> str:
        """One line for logs, the UI and the CLI."""
        since = self.since.isoformat(timespec="seconds") if self.since else "unknown time"
        who = f" by {self.by}" if self.by else ""
        why = f": {self.reason}" if self.reason else ""
        file = f"{self.path} {'present' if self.file_present else 'absent'}"
        if not self.active:
            last = f"released {since}{who}{why}; " if self.event_id else ""
            return f"kill switch OFF ({last}{file})"
        via = f"via {self.source}; " if self.source else ""
        return f"kill switch ENGAGED since {since}{who}{why} ({via}{file})"

    def signature(self) -> str:
        """A cursor value that changes whenever the switch is engaged, re-engaged or released."""
        if not self.active:
            return "off"
        return f"on:{self.event_id}" if self.event_id else f"on:{self.since.timestamp() if self.since else 0}"


#: Latest-event files already read, by (lake root, event id): event files are never rewritten.
_EVENT_CACHE: dict[tuple[str, str], KillSwitchEvent] = {}


# ---------------------------------------------------------------------------------------------- events
def new_event_id(now: dt.datetime) -> str:
    """``20250102T143000123456Z-<12 hex>``: sorts in time, unique across concurrent writers."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:12]}"


def append_event(
    lake: Lake,
    action: str,
    *,
    reason: str,
    source: str,
    was_engaged: bool,
    actor: str | None = None,
    path: Path | None = None,
    file_mtime: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> KillSwitchEvent:
    """Write one event as its own lake file; :class:`KillSwitchAuditError` if it cannot be written."""
    if action not in (ENGAGED, RELEASED) or source not in SOURCES:
        raise ValueError(f"kill-switch event: action {action!r} / source {source!r} (known: {SOURCES})")
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    event = KillSwitchEvent(
        event_id=new_event_id(when),
        event_time=when,
        action=action,
        was_engaged=was_engaged,
        reason=reason.strip(),
        actor=actor or _user(),
        source=source,
        host=socket.gethostname(),
        pid=os.getpid(),
        file_path=str(path) if path is not None else None,
        file_mtime=file_mtime,
    )
    frame = pl.DataFrame([asdict(event)], schema=table_spec(EVENTS_TABLE).columns)
    try:
        lake.write(EVENTS_TABLE, event.event_id, frame)
    except (OSError, ValueError) as exc:
        raise KillSwitchAuditError(f"cannot record kill-switch {action} event in {lake.root}: {exc}") from exc
    return event


def latest_event(lake: Lake) -> KillSwitchEvent | None:
    """The newest event (a fresh listing each call; only a new event's file is read)."""
    keys = lake.partitions(EVENTS_TABLE)
    if not keys:
        return None
    cache_key = (lake.root, keys[-1])
    if cache_key not in _EVENT_CACHE:
        rows = lake.read(EVENTS_TABLE, [keys[-1]]).to_dicts()
        if not rows:
            raise ValueError(f"{EVENTS_TABLE} partition {keys[-1]} holds no event")
        if len(_EVENT_CACHE) > 256:
            _EVENT_CACHE.clear()
        _EVENT_CACHE[cache_key] = KillSwitchEvent(**rows[0])
    return _EVENT_CACHE[cache_key]


def events(lake: Lake, last: int | None = None) -> pl.DataFrame:
    """Every recorded event (or the ``last`` ones), oldest first."""
    keys = lake.partitions(EVENTS_TABLE)
    frame = lake.read(EVENTS_TABLE, keys[-last:] if last else keys)
    return frame.sort("event_id").select(list(table_spec(EVENTS_TABLE).columns))


# ---------------------------------------------------------------------------------------------- state
def status(path: Path, lake: Lake | None = None) -> KillSwitchStatus:
    """The switch's state from the latest event of ``lake`` and the file at ``path`` (a present file engages)."""
    present = path.exists()
    if lake is not None:
        try:
            last = latest_event(lake)
        except (*UNREADABLE, ValueError) as exc:
            reason = f"{EVENTS_TABLE} unreadable, failing closed ({type(exc).__name__}: {exc})"
            return KillSwitchStatus(True, path, reason=reason, source="error", file_present=present)
        if last is not None and (last.action == ENGAGED or not present):
            return KillSwitchStatus(
                active=last.action == ENGAGED,
                path=path,
                since=last.event_time,
                reason=last.reason,
                by=f"{last.actor}@{last.host}",
                source=last.source,
                event_id=last.event_id,
                file_present=present,
            )
    return _file_status(path) if present else KillSwitchStatus(active=False, path=path)


def _file_status(path: Path) -> KillSwitchStatus:
    """A present file: since its mtime, who and why from its JSON record when it holds one."""
    try:
        since = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
    except FileNotFoundError:  # removed since it was seen
        return KillSwitchStatus(active=False, path=path)
    reason, who = "", ""
    try:
        record = json.loads(path.read_text(encoding="utf-8") or "{}")
        if isinstance(record, dict):
            reason, who = str(record.get("reason", "")), str(record.get("engaged_by", ""))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        reason = "(file present; content not a kill-switch record)"
    return KillSwitchStatus(True, path, since=since, reason=reason, by=who, source="file", file_present=True)


def require_off(path: Path, action: str, lake: Lake | None = None) -> None:
    """Raise :class:`KillSwitchEngagedError` naming ``action`` if the switch is engaged."""
    state = status(path, lake)
    if state.active:
        raise KillSwitchEngagedError(f"refusing to {action}: {state.describe()}; release it with `mqf kill-switch off`")


# ---------------------------------------------------------------------------------------------- actions
def engage(
    path: Path,
    reason: str,
    engaged_by: str | None = None,
    *,
    lake: Lake | None = None,
    source: str = "api",
) -> KillSwitchStatus:
    """Record an engaged event (with ``lake``), then write the switch file; the file is written even if the
    event cannot be (then :class:`KillSwitchAuditError` is raised: engaged, but not audited)."""
    if not reason.strip():
        raise ValueError("a kill-switch reason is required (it is shown to everyone the switch stops)")
    actor = engaged_by or _user()
    failure: KillSwitchAuditError | None = None
    if lake is not None:
        try:
            was = status(path, lake).active
            append_event(lake, ENGAGED, reason=reason, source=source, was_engaged=was, actor=actor, path=path)
        except KillSwitchAuditError as exc:
            failure = exc
    _write_file(path, reason.strip(), actor)
    if failure is not None:
        raise KillSwitchAuditError(f"kill switch ENGAGED by its file {path}, but not audited: {failure}")
    return status(path, lake)


def release(
    path: Path,
    *,
    lake: Lake | None = None,
    released_by: str | None = None,
    reason: str = "",
    source: str = "api",
) -> bool:
    """Remove the switch file, then record a released event (with ``lake``); True if it was engaged.

    A file never recorded is first recorded as a ``source=file`` engagement, so the audit shows it."""
    if lake is None:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
    record_file(path, lake)
    was = status(path, lake).active
    path.unlink(missing_ok=True)
    append_event(lake, RELEASED, reason=reason, source=source, was_engaged=was, actor=released_by, path=path)
    return was


def record_file(path: Path, lake: Lake) -> KillSwitchEvent | None:
    """Record a present switch file as a ``source=file`` engaged event unless the latest event is already an
    engagement; the event recorded, or None. The sensor calls this on every tick."""
    state = status(path, lake)
    if not state.active or state.event_id or state.source != "file":
        return None
    mtime = state.since
    reason = state.reason or f"switch file {path} created"
    owner = state.by or _owner(path)
    return append_event(
        lake, ENGAGED, reason=reason, source="file", was_engaged=False, actor=owner, path=path, file_mtime=mtime
    )


# ---------------------------------------------------------------------------------------------- helpers
def _write_file(path: Path, reason: str, actor: str) -> None:
    """The switch file, atomically, with a JSON record of why and by whom."""
    path.parent.mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record = {"reason": reason, "engaged_by": actor, "engaged_at": when}
    fd, tmp = tempfile.mkstemp(prefix=".kill_switch.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)


def _owner(path: Path) -> str:
    """The file's owner (who touched it), else the current user."""
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return _user()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
