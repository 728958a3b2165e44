"""Partition definitions: XNYS trading days (holidays from exchange-calendars), built from the settings
when the Definitions are built (nothing is read at import time)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from mqf_pipeline import calendar

NEW_YORK = "America/New_York"


def trading_day_partitions(start: dt.date) -> dg.DailyPartitionsDefinition:
    """Daily partitions on XNYS sessions from ``start``: weekends and exchange holidays excluded.

    ``end_offset=1``: today's session is a partition from midnight New York, so the 16:00 rebalance
    schedules can request the session that just closed (without it, a day's partition only exists
    after that day ends).
    """
    tz = ZoneInfo(NEW_YORK)
    last = calendar.xnys().last_session.date()
    holidays = [dt.datetime.combine(d, dt.time(), tzinfo=tz) for d in calendar.weekday_holidays(start, last)]
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
        timezone=NEW_YORK,
        exclusions=["0 0 * * 6", "0 0 * * 0", *holidays],
        end_offset=1,
    )
