"""Dead runs end: a run whose worker process died (SIGKILL, out of memory, a reboot) is marked FAILURE.

Dagster's run monitoring (``run_monitoring`` in configs/dagster.yaml) asks the run launcher whether a run's
worker is healthy, but the default launcher cannot tell, so a run whose worker was killed stays STARTED
forever, holding a run slot (``max_concurrent_runs``) and possibly the ``duckdb_writer`` pool slot. This
sensor closes that gap on one machine: the worker's PID is in the run's first engine event; if no process
with that PID started by the run's start time exists, the run is reported failed through the instance
(with the reason, as an unexpected termination) and its pool slots are freed; rerunning it is the
operator's call (run retries are off: configs/dagster.yaml). Runs launched by a launcher that checks worker health
itself are left to Dagster.
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason  # no public path in 1.13

from mqf_pipeline import processes

#: How often the sensor looks (s): a dead run ends within this plus one tick of the daemon.
INTERVAL_SECONDS = 30


@dataclass(frozen=True)
class DeadRun:
    """A run reported failed because its worker is gone."""

    run_id: str
    job_name: str
    pid: int
    partitions: str
    reason: str


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The run worker's PID: the first engine event of the run that carries one (the executor's start)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=20).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None:
            return int(pid.value)
    return None


def run_partitions(run: dg.DagsterRun | None) -> str:
    """The run's partition or range, from its tags (``""`` for an unpartitioned run)."""
    if run is None:
        return ""
    tags = run.tags
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return f"{start}..{end}" if start and end else ""


def end_dead_runs(instance: dg.DagsterInstance) -> list[DeadRun]:
    """Report every STARTED run whose worker process is gone as failed, free its pool slots; return them."""
    if instance.run_launcher.supports_check_run_worker_health:
        return []  # Dagster's run monitoring checks these workers itself
    ended: list[DeadRun] = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = worker_pid(instance, run.run_id)
        if pid is None or processes.is_alive(pid, started_by=record.start_time):
            continue
        partitions = run_partitions(run) or "(unpartitioned)"
        started = dt.datetime.fromtimestamp(record.start_time or 0, tz=dt.UTC).isoformat(timespec="seconds")
        reason = (
            f"run worker (pid {pid}) is gone: killed, out of memory or the machine restarted while the run was "
            f"STARTED (since {started}); marked failed by dead_run_sensor. Rerun the failed partitions "
            f"({partitions}): stored partitions are rewritten only if they changed and orders are "
            "idempotent, so a rerun submits no duplicate."
        )
        latest = instance.get_run_by_id(run.run_id)
        if latest is None or latest.status != dg.DagsterRunStatus.STARTED:
            continue  # it ended by itself between the two reads
        instance.report_run_failed(
            latest, reason, JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        ended.append(DeadRun(run.run_id, run.job_name, pid, partitions, reason))
    return ended


@dg.sensor(
    name="dead_run_sensor",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Ends runs whose worker process died (kill -9, out of memory, reboot): marks them FAILURE with "
    "the reason and frees their run and duckdb_writer pool slots, so dead runs never block the cycle. "
    "Runs nothing itself.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext):
    """One pass of :func:`end_dead_runs`; the tick says what it ended."""
    ended = end_dead_runs(context.instance)
    for dead in ended:
        context.log.warning(f"run {dead.run_id} ({dead.job_name}, {dead.partitions}) marked failed: {dead.reason}")
    summary = f"ended {len(ended)} dead run(s): " + ", ".join(d.run_id[:8] for d in ended) if ended else "no dead run"
    return dg.SkipReason(summary)
