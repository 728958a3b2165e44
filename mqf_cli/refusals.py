"""The CLI's early refusals: what cannot run is refused before anything runs, with what would be valid."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from mqf_pipeline import calendar
from mqf_pipeline.config import Settings
from mqf_pipeline.stages.plan import fund_inception, recorded_inception

console = Console(stderr=True, soft_wrap=True)


def today_new_york() -> dt.date:
    """Today's date in New York: the daily partitions end at its session (``end_offset=1``)."""
    return dt.datetime.now(ZoneInfo("America/New_York")).date()


def trading_allowed_or_exit(settings: Settings) -> None:
    """The live guard, checked before anything runs: a cycle in paper or live mode without its keys or opt-in
    is refused here, not at the execution step after every stage before it ran."""
    from mqf_pipeline.execution.brokers.base import LiveTradingRefusedError
    from mqf_pipeline.execution.live_guard import check_trading_allowed

    mode = settings.fund.mode
    try:
        check_trading_allowed(mode, settings.providers.priority.get(mode, []), broker=settings.broker_kind)
    except LiveTradingRefusedError as exc:
        console.print(f"refused before the first stage: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc


def valid_range(settings: Settings) -> str:
    """The daily partitions' range for refusals: the inception (if fixed) to today's session in New York."""
    auto = settings.fund.calendar.partitions_start == "auto"
    first = recorded_inception(settings) if auto else fund_inception(settings)
    today = today_new_york()
    last = today if calendar.is_session(today) else calendar.previous_session(today)
    start = first.isoformat() if first else "the inception the first `mqf run` fixes"
    return f"valid sessions: {start} .. {last}"


def session_or_exit(day: dt.date, name: str, settings: Settings) -> dt.date:
    if not calendar.is_session(day):
        console.print(f"[red]{name} {day} is not an XNYS trading session[/red]")
        raise typer.Exit(2)
    today = today_new_york()
    if day > today:
        # the daily partitions end at today's session (New York): a later one is no partition, and its bars
        # do not exist yet
        console.print(
            f"{name} {day} is after today's date in New York ({today}): no partition or bars yet; "
            f"{valid_range(settings)}",
            style="red",
            markup=False,
        )
        raise typer.Exit(2)
    return day
