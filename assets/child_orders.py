"""The intraday child-order op: one rerun-safe pass of :func:`mqf_pipeline.stages.child_work.work_session_children`
(submit the children due, cancel on the guards) for the session in progress. Nothing here computes."""

import datetime as dt

import dagster as dg

from mqf_pipeline.stages.base import KillSwitch
from mqf_pipeline.stages.child_work import alpaca_live_quotes, work_session_children
from resources import BrokerResource, KillSwitchResource, SettingsResource, StorageResource


@dg.op(
    description="Work the child orders of the previous session's TWAP/VWAP/POV/WAIT orders at the broker "
    "(Alpaca): submit the children due now, cancel on PRICE_AWAY / VOLUME_ANOMALY. Rerun-safe.",
)
def work_child_orders(
    context: dg.OpExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    broker: BrokerResource,
    kill_switch: KillSwitchResource,
) -> dg.Output:
    """One pass at the current time (UTC); the kill switch (file and events table) is read before every
    submission."""
    switch = KillSwitch(kill_switch.file(), kill_switch.lake())

    def blocked() -> str | None:
        reason = switch.reason()
        return f"KILL_SWITCH: {reason}" if reason else None

    run = work_session_children(
        storage.lake(),
        broker.broker(),
        settings.get().execution,
        now=dt.datetime.now(dt.UTC),
        live_quotes=alpaca_live_quotes(settings.get()),
        kill_switch=blocked,
    )
    if run.note:
        context.log.info(f"child orders {run.session}: {run.note}")
    for oid, message in run.skipped:
        context.log.error(f"child orders {run.session}: order {oid} not worked: {message}")
    stops = {w.parent_id: w.reason for w in run.works if w.reason}
    metadata = {
        "session": str(run.session),
        "orders_session": str(run.orders_session),
        "parents": len(run.works),
        "submitted": run.submitted,
        "cancelled": run.cancelled,
        "skipped": len(run.skipped),
        "stops": dg.MetadataValue.json(stops),
    }
    return dg.Output(None, metadata=metadata)
