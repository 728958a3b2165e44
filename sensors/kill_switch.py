"""Kill-switch sensor: records a switch file touched by hand, and reports the switch's state on every tick."""

import dagster as dg

from mqf_pipeline.kill_switch import KillSwitchAuditError
from resources import KillSwitchResource


@dg.sensor(
    name="kill_switch_sensor",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports the kill switch from its audited table kill_switch_events (the latest event wins) and the "
    "file runtime/KILL_SWITCH (present = engaged; the first tick that sees it unrecorded records a source=file "
    "event). While engaged every decision is REJECT (KILL_SWITCH) and no order is submitted; the tick shows who "
    "engaged it, when and why.",
)
def kill_switch_sensor(context: dg.SensorEvaluationContext, kill_switch: KillSwitchResource) -> dg.SensorResult:
    """Runs nothing: order-creating steps check the switch themselves before every submission. The state is
    read from the table and the file on every tick, never from the cursor, so a reset sensor (cursor None)
    still reports an engaged switch; the cursor only makes each engage/release log once (WARNING on engage)."""
    try:
        recorded = kill_switch.record_file()
    except KillSwitchAuditError as exc:
        context.log.error(f"kill switch file present but not recorded: {exc}")
        recorded = None
    if recorded is not None:
        context.log.warning(f"kill switch file {kill_switch.file()} recorded: {recorded.describe()}")
    state = kill_switch.status()
    signature = state.signature()
    if signature != context.cursor:
        if state.active:
            context.log.warning(state.describe())
        elif context.cursor:
            context.log.info(f"kill switch released: {state.describe()}")
    return dg.SensorResult(skip_reason=dg.SkipReason(state.describe()), cursor=signature)
