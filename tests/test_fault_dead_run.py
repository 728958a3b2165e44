"""Fault drill: a run whose worker is killed (kill -9) ends as FAILURE and frees its run and pool slots.

The worker is a real process running a real Dagster run against a temporary instance; the dead-run sensor
is evaluated with ``build_sensor_context`` on that instance, as the daemon would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from sensors.dead_runs import dead_run_sensor, end_dead_runs, worker_pid

WORKER = textwrap.dedent(
    """
    import time, dagster as dg

    @dg.op(pool="duckdb_writer")
    def hold_the_writer_slot():
        time.sleep(120)

    @dg.job
    def long_job():
        hold_the_writer_slot()

    if __name__ == "__main__":
        instance = dg.DagsterInstance.get()
        dg.execute_job(
            dg.reconstructable(long_job), instance=instance,
            run_config={"execution": {"config": {"in_process": {}}}},
            tags={"dagster/partition": "2026-12-03"},
        )
    """
)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as inst:
        inst.event_log_storage.set_concurrency_slots("duckdb_writer", 1)
        yield inst


def _start_worker(tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "worker_job.py"
    script.write_text(WORKER)
    return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=os.environ.copy())


def _wait_for_step(instance: dg.DagsterInstance, timeout: float = 60.0) -> dg.DagsterRun:
    """The run once its step holds the pool slot."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if runs and runs[0].status == dg.DagsterRunStatus.STARTED:
            info = instance.event_log_storage.get_concurrency_info("duckdb_writer")
            if info.claimed_slots:
                return runs[0]
        time.sleep(0.2)
    raise AssertionError("the worker's run did not start its step in time")


@pytest.mark.slow
def test_fault_killed_run_worker_is_marked_failed_and_frees_its_slots(instance, tmp_path: Path) -> None:
    worker = _start_worker(tmp_path)
    try:
        run = _wait_for_step(instance)
        assert worker_pid(instance, run.run_id) == worker.pid
        assert end_dead_runs(instance) == []  # alive: left alone
        began = time.monotonic()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # what Dagster alone leaves
        result = dead_run_sensor(dg.build_sensor_context(instance=instance))
        seconds = time.monotonic() - began
    finally:
        if worker.poll() is None:
            worker.kill()
    after = instance.get_run_by_id(run.run_id)
    assert after.status == dg.DagsterRunStatus.FAILURE
    failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    message = failure[0].event_log_entry.dagster_event.message
    assert f"pid {worker.pid}" in message and "2026-12-03" in message and "duplicate" in message
    assert instance.event_log_storage.get_concurrency_info("duckdb_writer").claimed_slots == []
    assert "ended 1 dead run" in result.skip_message
    assert seconds < 300
    assert end_dead_runs(instance) == []  # nothing STARTED is left to end


def test_fault_run_without_a_recorded_worker_is_left_alone(instance) -> None:
    """A STARTED run with no engine event yet (its worker is starting) is not judged."""
    run = instance.create_run_for_job(dg.GraphDefinition("noop", node_defs=[]).to_job(), run_id=None)
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name="noop"),
        )
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    assert end_dead_runs(instance) == []
