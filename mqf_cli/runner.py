"""Start Dagster runs against the instance in ``$DAGSTER_HOME`` (runtime/dagster/)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from mqf_pipeline.config import Settings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def daily_cycle_job_def() -> dg.JobDefinition:
    from mqf_pipeline.definitions import defs

    return defs.resolve_job_def("daily_cycle_job")


def catalog_job_def() -> dg.JobDefinition:
    from mqf_pipeline.definitions import defs

    return defs.resolve_job_def("catalog_job")


def warm_up_job_def() -> dg.JobDefinition:
    from mqf_pipeline.definitions import defs

    return defs.resolve_job_def("warm_up_job")


JOBS = {"warm_up_job": warm_up_job_def, "daily_cycle_job": daily_cycle_job_def, "catalog_job": catalog_job_def}


@dataclass(frozen=True)
class RunOutcome:
    job: str
    run_id: str
    success: bool
    seconds: float
    partitions: str
    failed_steps: tuple[str, ...]


def prepare_instance(settings: Settings) -> dg.DagsterInstance:
    """Point DAGSTER_HOME at runtime/dagster/, install the shipped dagster.yaml, set the pool limit."""
    home = settings.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    shipped = settings.config_dir / "dagster.yaml"
    target = home / "dagster.yaml"
    if shipped.exists() and (not target.exists() or target.read_bytes() != shipped.read_bytes()):
        shutil.copyfile(shipped, target)
    os.environ["DAGSTER_HOME"] = str(home)
    # runs (and their step subprocesses) load the code location with these settings
    os.environ["MQF_CONFIG_DIR"] = str(settings.config_dir.resolve())
    instance = dg.DagsterInstance.get()
    instance.event_log_storage.set_concurrency_slots("duckdb_writer", 1)
    return instance


def run_job(
    instance: dg.DagsterInstance,
    job: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    in_process: bool = False,
    log_level: str = "INFO",
    extra_tags: dict[str, str] | None = None,
) -> RunOutcome:
    """Execute ``job`` (over sessions ``start``..``end`` if partitioned) and wait for it. ``log_level`` is the
    console logger's (the event log keeps everything); ``extra_tags`` are added to the run's tags."""
    tags: dict[str, str] = {"mqf/launched_by": "mqf-cli", **(extra_tags or {})}
    partitions = ""
    if start is not None and end is not None:
        if start == end:
            tags[PARTITION_TAG] = start.isoformat()
        else:
            tags[RANGE_START_TAG] = start.isoformat()
            tags[RANGE_END_TAG] = end.isoformat()
        partitions = start.isoformat() if start == end else f"{start}..{end}"
    executor = "in_process" if in_process else "multiprocess"
    # INFO keeps step starts/ends, progress and failures on the console; DEBUG events stay in the UI
    run_config = {
        "execution": {"config": {executor: {}}},
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }
    began = time.monotonic()
    result = dg.execute_job(
        dg.reconstructable(JOBS[job]), instance=instance, run_config=run_config, tags=tags, raise_on_error=False
    )
    failed = tuple(sorted({ev.step_key for ev in result.all_events if ev.is_step_failure and ev.step_key}))
    return RunOutcome(job, result.run_id, result.success, time.monotonic() - began, partitions, failed)


def dagster_executable() -> str:
    """The ``dagster`` CLI of this environment: beside the running interpreter (works without an activated
    venv, e.g. ``.venv/bin/mqf ui``), else on PATH."""
    beside = Path(sys.executable).parent / "dagster"
    if beside.exists():
        return str(beside)
    found = shutil.which("dagster")
    if found is None:
        raise FileNotFoundError("the dagster CLI is not installed in this environment (bash scripts/install.sh)")
    return found


def dagster_dev_command(workspace: Path, host: str, port: int) -> list[str]:
    return [dagster_executable(), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]
