"""Rebalance schedules (seed 002 section 4.5): weekly strategic on Fridays 16:00 New York, daily tactical;
and the intraday child-order pass every 5 minutes of the regular session (paper and live modes only).

Both run the daily cycle for the session that just closed; which rebalance a session gets is decided
by the session itself (:mod:`mqf_pipeline.portfolio.rebalance`), so the two schedules never disagree.
They start RUNNING: the fund runs itself once `mqf ui` (dagster dev, with its daemon) is up.
"""

from zoneinfo import ZoneInfo

import dagster as dg

from jobs.asset_jobs import daily_attribution_job, daily_cycle_job, slippage_refit_job
from jobs.child_orders import child_orders_job
from mqf_pipeline import calendar
from mqf_pipeline.config import load_settings
from mqf_pipeline.execution.child_orders import session_bounds

NEW_YORK = "America/New_York"
_NY = ZoneInfo(NEW_YORK)


def _cycle_request(context: dg.ScheduleEvaluationContext, kind: str):
    day = context.scheduled_execution_time.astimezone(_NY).date()
    if not calendar.is_session(day):
        return dg.SkipReason(f"{day} is not an XNYS session: no {kind} rebalance")
    return dg.RunRequest(
        run_key=f"{kind}-{day.isoformat()}", partition_key=day.isoformat(), tags={"mqf/schedule": kind}
    )


@dg.schedule(
    job=daily_cycle_job,
    cron_schedule="0 16 * * 5",
    execution_timezone=NEW_YORK,
    name="weekly_strategic_rebalance",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Fridays 16:00 New York: the cycle of the week's last session, a strategic rebalance "
    "(turnover budget portfolio.turnover_strategic).",
)
def weekly_strategic_rebalance(context: dg.ScheduleEvaluationContext):
    return _cycle_request(context, "strategic")


@dg.schedule(
    job=daily_cycle_job,
    cron_schedule="0 16 * * 1-4",
    execution_timezone=NEW_YORK,
    name="daily_tactical_rebalance",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monday-Thursday 16:00 New York: the session's cycle with a tactical rebalance (tighter "
    "turnover budget portfolio.turnover_tactical; strategic when it is the week's last session).",
)
def daily_tactical_rebalance(context: dg.ScheduleEvaluationContext):
    return _cycle_request(context, "tactical")


@dg.schedule(
    job=child_orders_job,
    cron_schedule="*/5 9-15 * * 1-5",
    execution_timezone=NEW_YORK,
    name="intraday_child_orders",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes of the regular session (New York): work the previous session's TWAP/VWAP/"
    "POV/WAIT orders as child orders at Alpaca. Skipped outside the session and with the local paper broker "
    "(simulated mode, or execution.broker: local), which simulates the schedules itself.",
)
def intraday_child_orders(context: dg.ScheduleEvaluationContext):
    at = context.scheduled_execution_time.astimezone(_NY)
    if not calendar.is_session(at.date()):
        return dg.SkipReason(f"{at.date()} is not an XNYS session: no child orders")
    opens_at, closes_at = session_bounds(at.date())
    if not (opens_at <= at < closes_at):
        return dg.SkipReason(f"{at:%H:%M} New York is outside the regular session of {at.date()}")
    if load_settings().broker_kind == "local":
        return dg.SkipReason("the local paper broker simulates child orders itself")
    return dg.RunRequest(run_key=f"children-{at.isoformat()}", tags={"mqf/schedule": "intraday_child_orders"})


@dg.schedule(
    job=slippage_refit_job,
    cron_schedule="0 6 * * 6",
    execution_timezone=NEW_YORK,
    name="slippage_weekly_refit",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Saturdays 06:00 New York: refit the slippage model on every fill up to the week's last session. "
    "STOPPED by default: the daily cycle refits at every session and slippage_refit_sensor catches fills booked "
    "outside it; start it where the slippage group is not part of the daily runs.",
)
def slippage_weekly_refit(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.astimezone(_NY).date()
    session = day if calendar.is_session(day) else calendar.previous_session(day)
    return dg.RunRequest(run_key=f"slippage-weekly-{session.isoformat()}", partition_key=session.isoformat())


@dg.schedule(
    job=daily_attribution_job,
    cron_schedule="30 18 * * 1-5",
    execution_timezone=NEW_YORK,
    name="daily_attribution",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="XNYS sessions, 18:30 New York: attribute the session that closed (factor returns, exposures, "
    "the book's attribution, the agents' PnL shares). STOPPED by default: the daily cycle (16:00) attributes its "
    "session itself; start it where the cycle runs without the attribution group.",
)
def daily_attribution(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.astimezone(_NY).date()
    if not calendar.is_session(day):
        return dg.SkipReason(f"{day} is not an XNYS session: nothing to attribute")
    return dg.RunRequest(run_key=f"attribution-{day.isoformat()}", partition_key=day.isoformat())


SCHEDULES = [
    weekly_strategic_rebalance,
    daily_tactical_rebalance,
    intraday_child_orders,
    slippage_weekly_refit,
    daily_attribution,
]
__all__ = ["SCHEDULES", "daily_tactical_rebalance", "intraday_child_orders", "weekly_strategic_rebalance"]
