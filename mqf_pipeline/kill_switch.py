"""The kill switch (seed 000 section 12.2): a file whose presence stops all order creation.

Operators engage it with ``mqf kill-switch on --reason "..."`` or simply by creating the file
(``runtime/KILL_SWITCH`` by default, ``fund.paths.kill_switch`` in configs/fund.yaml); removing
it (``mqf kill-switch off``) resumes trading. The check is made when a step executes, not when a
run is launched, so a switch engaged while a run is in flight stops that run's later steps.

The file's content, when written by :func:`engage`, is a small JSON record (reason, who, when);
any other content (an empty file from ``touch``) still engages the switch.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class KillSwitchEngagedError(RuntimeError):
    """Raised by :func:`require_off` when an action that would create orders meets the kill switch."""


@dataclass(frozen=True)
class KillSwitchStatus:
    """Whether the switch is engaged, since when (file mtime, UTC), why and by whom (if recorded)."""

    active: bool
    path: Path
    since: dt.datetime | None = None
    reason: str = ""
    engaged_by: str = ""

    def describe(self) -> str:
        """One line for logs, the UI and the CLI."""
        if not self.active:
            return f"kill switch OFF ({self.path} absent)"
        since = self.since.isoformat(timespec="seconds") if self.since else "unknown time"
        who = f" by {self.engaged_by}" if self.engaged_by else ""
        why = f": {self.reason}" if self.reason else ""
        return f"kill switch ENGAGED since {since}{who}{why} ({self.path})"

    def signature(self) -> str:
        """A cursor value that changes whenever the switch is engaged, re-engaged or released."""
        return f"on:{self.since.timestamp() if self.since else 0}" if self.active else "off"


def status(path: Path) -> KillSwitchStatus:
    """The switch's state as recorded by the file at ``path``."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return KillSwitchStatus(active=False, path=path)
    since = dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)
    reason, who = "", ""
    try:
        record = json.loads(path.read_text(encoding="utf-8") or "{}")
        if isinstance(record, dict):
            reason, who = str(record.get("reason", "")), str(record.get("engaged_by", ""))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        reason = "(file present; content not a kill-switch record)"
    return KillSwitchStatus(active=True, path=path, since=since, reason=reason, engaged_by=who)


def engage(path: Path, reason: str, engaged_by: str | None = None) -> KillSwitchStatus:
    """Create the switch file atomically with a JSON record of why and by whom."""
    if not reason.strip():
        raise ValueError("a kill-switch reason is required (it is shown to everyone the switch stops)")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "reason": reason.strip(),
        "engaged_by": engaged_by or _user(),
        "engaged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(prefix=".kill_switch.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)
    return status(path)


def release(path: Path) -> bool:
    """Remove the switch file; True if it was engaged."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def require_off(path: Path, action: str) -> None:
    """Raise :class:`KillSwitchEngagedError` naming ``action`` if the switch is engaged."""
    state = status(path)
    if state.active:
        raise KillSwitchEngagedError(f"refusing to {action}: {state.describe()}; release it with `mqf kill-switch off`")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
