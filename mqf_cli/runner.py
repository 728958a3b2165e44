"""Start Dagster runs against the instance in ``$DAGSTER_HOME`` (runtime/dagster/)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

# no public API in 1.13 creates a run with a remote job origin and executes it in this process
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import CodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.workspace.load import location_origin_from_module_name, location_origins_from_yaml_paths

from mqf_pipeline.config import Settings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
MAX_RETRIES_TAG = "dagster/max_retries"


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

#: The code location workspace.yaml declares (its ``python_module`` entry): the UI lists runs under it.
LOCATION_NAME = "mqf_pipeline"
DEFINITIONS_MODULE = "mqf_pipeline.definitions"


def workspace_file() -> Path | None:
    """The workspace.yaml `mqf ui` serves: the working directory's (the one it passes), else the project's."""
    for candidate in (Path("workspace.yaml"), Path(__file__).resolve().parents[1] / "workspace.yaml"):
        if candidate.is_file():
            return candidate
    return None


def code_location_origin() -> CodeLocationOrigin:
    """The ``mqf_pipeline`` code location's origin as the webserver computes it from workspace.yaml (else the
    same entry built here: module, working directory ``.``, location name)."""
    path = workspace_file()
    if path is not None:
        for origin in location_origins_from_yaml_paths([str(path)]):
            if origin.location_name == LOCATION_NAME:
                return origin
    return location_origin_from_module_name(DEFINITIONS_MODULE, None, ".", LOCATION_NAME)


def remote_job_origin(job: str) -> RemoteJobOrigin:
    """Where the UI files a run of ``job``: the repository of the ``mqf_pipeline`` code location. Without it a
    run is shown on no job page and not on the overview timeline, and run retries cannot relaunch it."""
    from mqf_pipeline.definitions import defs

    repository = RemoteRepositoryOrigin(code_location_origin(), defs.get_repository_def().name)
    return repository.get_job_origin(job)


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
    asset_selection: Sequence[str] | None = None,
) -> RunOutcome:
    """Execute ``job`` (over sessions ``start``..``end`` if partitioned) and wait for it. ``log_level`` is the
    console logger's (the event log keeps everything); ``extra_tags`` are added to the run's tags;
    ``asset_selection`` (asset keys) runs only those assets of the job (a repair of one table's partition)."""
    # the daemon never reruns a CLI run (it could now: the run has a job origin): `mqf` reports the failure and
    # its next `mqf run` plans what is missing; a run stopped with Ctrl-C is not restarted behind the user's back
    tags: dict[str, str] = {"mqf/launched_by": "mqf-cli", MAX_RETRIES_TAG: "0", **(extra_tags or {})}
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
    selection = [dg.AssetKey(k) for k in asset_selection] if asset_selection else None
    result = execute_in_workspace(instance, job, run_config=run_config, tags=tags, asset_selection=selection)
    failed = tuple(sorted({ev.step_key for ev in result.all_events if ev.is_step_failure and ev.step_key}))
    return RunOutcome(job, result.run_id, result.success, time.monotonic() - began, partitions, failed)


def execute_in_workspace(
    instance: dg.DagsterInstance,
    job: str,
    *,
    run_config: dict,
    tags: dict[str, str],
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> dg.JobExecutionResult:
    """``dg.execute_job`` in this process (its executor from ``run_config``), but the run is created with the
    ``mqf_pipeline`` code location's job origin (:func:`remote_job_origin`), as the UI's own launches are: the
    overview timeline and the job pages list runs by repository and location, and drop runs without one."""
    recon = dg.reconstructable(JOBS[job])
    load_data = recon.repository.get_definition().repository_load_data
    recon = recon.with_repository_load_data(load_data)
    job_def = recon.get_definition()
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags={**job_def.run_tags, **tags},
        asset_selection=frozenset(asset_selection) if asset_selection else None,
        remote_job_origin=remote_job_origin(job),
        job_code_origin=recon.get_python_origin(),
        repository_load_data=load_data,
    )
    return execute_run(recon, run, instance, raise_on_error=False)


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
