"""Rebalance schedules (Friday 16:00 New York across DST), the rebalance mode, the emergency sensor."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._utils.schedules import cron_string_iterator  # the iterator Dagster's scheduler itself uses

from jobs.schedules import daily_tactical_rebalance, weekly_strategic_rebalance
from mqf_pipeline.portfolio.rebalance import EMERGENCY, STRATEGIC, TACTICAL, rebalance_mode, risk_breaches
from tests.deployment import definitions_for, write_configs

NY = ZoneInfo("America/New_York")


def _ticks(schedule: dg.ScheduleDefinition, start: dt.datetime, n: int) -> list[dt.datetime]:
    it = cron_string_iterator(start.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    return list(itertools.islice(it, n))


def test_weekly_ticks_are_fridays_1600_new_york_across_dst():
    """Ticks spanning 2024-03-10 (EST->EDT) and 2024-11-03 (EDT->EST): always Friday 16:00 local."""
    for start in (dt.datetime(2024, 2, 20, tzinfo=dt.UTC), dt.datetime(2024, 10, 15, tzinfo=dt.UTC)):
        ticks = _ticks(weekly_strategic_rebalance, start, 6)
        local = [t.astimezone(NY) for t in ticks]
        assert all(t.weekday() == 4 and (t.hour, t.minute) == (16, 0) for t in local), local
        utc_hours = {t.astimezone(dt.UTC).hour for t in ticks}
        assert utc_hours == {20, 21}  # the UTC hour moves with DST; the New York time does not


def test_daily_ticks_monday_to_thursday():
    ticks = [t.astimezone(NY) for t in _ticks(daily_tactical_rebalance, dt.datetime(2024, 3, 4, tzinfo=dt.UTC), 8)]
    assert {t.weekday() for t in ticks} == {0, 1, 2, 3} and all(t.hour == 16 for t in ticks)


def test_schedule_requests_the_session_partition_or_skips_a_holiday(tmp_path):
    """In a deployment whose partitions cover 2024 (the shipped one's start at its inception, set on first run)."""
    friday = dt.datetime(2024, 3, 15, 16, 0, tzinfo=NY)
    repo = definitions_for(write_configs(tmp_path)).get_repository_def()
    with dg.build_schedule_context(scheduled_execution_time=friday, repository_def=repo) as ctx:
        result = weekly_strategic_rebalance.evaluate_tick(ctx)
    (request,) = result.run_requests
    assert request.partition_key == "2024-03-15" and request.tags["mqf/schedule"] == "strategic"
    good_friday = dt.datetime(2024, 3, 29, 16, 0, tzinfo=NY)
    with dg.build_schedule_context(scheduled_execution_time=good_friday, repository_def=repo) as ctx:
        skipped = weekly_strategic_rebalance.evaluate_tick(ctx)
    assert not skipped.run_requests and "not an XNYS session" in skipped.skip_message


def test_rebalance_mode():
    calm = {"breaker_status": "NORMAL", "limits_json": json.dumps([{"name": "var_95", "breached": False}])}
    assert rebalance_mode(dt.date(2024, 3, 15), calm) == STRATEGIC  # a Friday
    assert rebalance_mode(dt.date(2024, 3, 28), calm) == STRATEGIC  # Thursday before Good Friday
    assert rebalance_mode(dt.date(2024, 3, 13), calm) == TACTICAL
    hot = {**calm, "breaker_status": "DEFENSIVE"}
    assert rebalance_mode(dt.date(2024, 3, 13), hot) == EMERGENCY
    breached = {
        "breaker_status": "NORMAL",
        "limits_json": json.dumps([{"name": "var_95", "value": 0.05, "limit": 0.04, "breached": True}]),
    }
    assert risk_breaches(breached) == ["limit var_95 0.0500 > 0.0400"]
    assert rebalance_mode(dt.date(2024, 3, 15), breached) == EMERGENCY
