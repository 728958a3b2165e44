"""Partition definitions: XNYS trading days (holidays from exchange-calendars)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from mqf_pipeline import calendar
from mqf_pipeline.config import load_settings

NEW_YORK = "America/New_York"


def trading_day_partitions(start: dt.date) -> dg.DailyPartitionsDefinition:
    """Daily partitions on XNYS sessions from ``start``: weekends and exchange holidays excluded."""
    tz = ZoneInfo(NEW_YORK)
    last = calendar.xnys().last_session.date()
    holidays = [dt.datetime.combine(d, dt.time(), tzinfo=tz) for d in calendar.weekday_holidays(start, last)]
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
        timezone=NEW_YORK,
        exclusions=["0 0 * * 6", "0 0 * * 0", *holidays],
    )


TRADING_DAYS = trading_day_partitions(load_settings().fund.calendar.partitions_start)
