"""Emergency rebalance (seed 002 section 4.5): a risk_state materialization that breaches triggers one."""

import dagster as dg

from jobs import portfolio_job
from mqf_pipeline.portfolio.rebalance import BREACH_STATUSES


@dg.asset_sensor(
    asset_key=dg.AssetKey("risk_state"),
    job=portfolio_job,
    name="emergency_rebalance_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When risk_state is materialized in breach (breaker DEFENSIVE or FREEZE, or a seed 000 section "
    "7.4 limit breached), re-run the portfolio for that session: its targets then use the emergency turnover "
    "budget.",
)
def emergency_rebalance_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """One run per breaching materialization (run key = partition + event time), none otherwise."""
    mat = asset_event.asset_materialization
    if mat is None or mat.partition is None:
        return dg.SkipReason("risk_state materialization without a partition")
    # structured keys written by the decide_and_check_risk step (never a parse of the display string)
    status_entry = mat.metadata.get("breaker_status")
    status = str(status_entry.value) if status_entry is not None else ""
    breaker = str(mat.metadata["breaker"].value) if "breaker" in mat.metadata else status
    breached = mat.metadata.get("limits_breached")
    n_breached = int(breached.value) if breached is not None else 0
    if status not in BREACH_STATUSES and n_breached == 0:
        return dg.SkipReason(f"risk_state {mat.partition}: {breaker or 'no breaker'}, no limit breached")
    context.log.warning(f"risk_state {mat.partition} breaches ({breaker}, {n_breached} limit(s)): emergency rebalance")
    return dg.RunRequest(
        run_key=f"emergency-{mat.partition}-{asset_event.timestamp}",
        partition_key=mat.partition,
        tags={"mqf/schedule": "emergency"},
    )
