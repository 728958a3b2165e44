"""XNYS trading sessions, from exchange-calendars (offline rules, no network)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
#: Earliest date the calendar is built from; histories older than ~20 years need an explicit start.
CALENDAR_START = dt.date(1990, 1, 2)


@lru_cache(maxsize=4)
def xnys(start: dt.date = CALENDAR_START) -> xcals.ExchangeCalendar:
    """The XNYS calendar covering ``start`` to about a year past today."""
    return xcals.get_calendar("XNYS", start=pd.Timestamp(start))


def _check_range(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise ValueError(f"session range is empty: end {end} is before start {start}")
    cal = xnys()
    if start < cal.first_session.date():
        raise ValueError(f"date {start} is before the calendar's first session {cal.first_session.date()}")
    if end > cal.last_session.date():
        raise ValueError(f"date {end} is after the calendar's last session {cal.last_session.date()}")


@lru_cache(maxsize=256)
def _sessions_tuple(start: dt.date, end: dt.date) -> tuple[dt.date, ...]:
    _check_range(start, end)
    return tuple(d.date() for d in xnys().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end)))


def sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """XNYS sessions from ``start`` to ``end``, both inclusive."""
    return list(_sessions_tuple(start, end))


def is_session(day: dt.date) -> bool:
    """True if ``day`` is an XNYS trading session."""
    return bool(xnys().is_session(pd.Timestamp(day)))


def weekday_holidays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Weekdays between ``start`` and ``end`` (inclusive) on which XNYS is closed."""
    open_days = set(sessions(start, end))
    days = pd.bdate_range(start, end)
    return [d.date() for d in days if d.date() not in open_days]


def previous_session(day: dt.date) -> dt.date:
    """The last session strictly before ``day``."""
    return xnys().date_to_session(pd.Timestamp(day) - pd.Timedelta(days=1), direction="previous").date()


def session_offset(day: dt.date, n: int) -> dt.date:
    """The session ``n`` sessions away from session ``day`` (negative = earlier)."""
    cal = xnys()
    if not is_session(day):
        raise ValueError(f"{day} is not an XNYS session")
    return cal.session_offset(pd.Timestamp(day), n).date()


def latest_closed_session(now: dt.datetime | None = None) -> dt.date:
    """The most recent session whose regular close has passed at ``now`` (default: the clock)."""
    now = now or dt.datetime.now(tz=NEW_YORK)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cal = xnys()
    ts = pd.Timestamp(now).tz_convert("UTC")
    today = ts.tz_convert(NEW_YORK).date()
    candidate = cal.date_to_session(pd.Timestamp(today), direction="previous")
    if cal.session_close(candidate) > ts:
        candidate = cal.previous_session(candidate)
    return candidate.date()
