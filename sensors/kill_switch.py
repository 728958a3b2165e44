"""Kill-switch sensor: notices the switch being engaged or released and says so on every tick."""

import dagster as dg

from resources import KillSwitchResource


@dg.sensor(
    name="kill_switch_sensor",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the kill-switch file (runtime/KILL_SWITCH). While it exists every decision is REJECT "
    "(KILL_SWITCH) and any step that would create orders refuses; the tick shows who engaged it, when and why.",
)
def kill_switch_sensor(context: dg.SensorEvaluationContext, kill_switch: KillSwitchResource):
    """Runs nothing: order-creating steps check the switch themselves when they execute. The cursor is
    the switch's signature, so each engage/release is logged once (WARNING on engage)."""
    state = kill_switch.status()
    signature = state.signature()
    if signature != context.cursor:
        if state.active:
            context.log.warning(state.describe())
        elif context.cursor:
            context.log.info(f"kill switch released: {state.describe()}")
    return dg.SensorResult(skip_reason=dg.SkipReason(state.describe()), cursor=signature)
