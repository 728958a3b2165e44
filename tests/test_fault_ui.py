"""Fault drill: a UI that tells the truth.

(A) A run the ``mqf`` CLI starts is filed under the ``mqf_pipeline`` code location of workspace.yaml, so the
UI's overview timeline (which drops runs without a repository origin) and the job pages (which filter runs by
the repository label tag) show it: asked through the webserver's own GraphQL schema, over the workspace the
webserver loads. (B) The catalog file held by another process fails with one line naming the holder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import CODE_LOCATION_TAG, REPOSITORY_LABEL_TAG
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from mqf_cli.runner import LOCATION_NAME, prepare_instance, run_job
from mqf_pipeline.config import Settings, load_settings
from mqf_pipeline.storage import catalog
from mqf_pipeline.storage.catalog import CatalogLockedError, connect_with_retry, locked_error
from tests.deployment import write_configs

WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"

# the overview timeline's query for finished runs, as the webserver's UI bundle sends it
# (ui-core/src/runs/useRunsForTimeline.tsx: CompletedRunTimelineQuery with RunTimelineFragment)
TIMELINE_QUERY = """
query CompletedRunTimelineQuery($completedFilter: RunsFilter!, $limit: Int!, $cursor: String) {
  completed: runsOrError(filter: $completedFilter, limit: $limit, cursor: $cursor) {
    ... on Runs {
      results {
        id
        pipelineName
        externalJobSource
        tags { key value }
        repositoryOrigin { id repositoryName repositoryLocationName }
        status creationTime startTime endTime updateTime
      }
    }
  }
}
"""

# the timeline's rows for the workspace's jobs (its FutureTicksQuery), and the repository's own origin
WORKSPACE_QUERY = """
query {
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          ... on RepositoryLocation { name repositories { name origin { id } pipelines { name } } }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""

# a job page's runs: filtered by job name and the repository label tag
JOB_RUNS_QUERY = """
query JobRuns($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    ... on Pipeline { runs(limit: 20) { runId } }
    ... on PythonError { message }
  }
}
"""

#: Holds the file read-write until killed; its command line (newlines folded) starts with the marker.
MARKER = "mqf-lock-holder"
HOLDER = f"# {MARKER}\nimport duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\nprint('holding', flush=True)\n"
HOLDER += "time.sleep(120)"


@pytest.fixture
def fund(tmp_path: Path) -> Iterator[tuple[Settings, dg.DagsterInstance]]:
    """A small fund with its own runtime and the instance ``mqf`` uses (``prepare_instance``)."""
    saved = {var: os.environ.pop(var, None) for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR")}
    cfg = write_configs(tmp_path)
    (cfg / "dagster.yaml").write_text(Path("configs/dagster.yaml").read_text())
    sys.modules.pop("mqf_pipeline.definitions", None)  # the code location is built from MQF_CONFIG_DIR's settings
    settings = load_settings(cfg)
    instance = prepare_instance(settings)
    try:
        yield settings, instance
    finally:
        instance.dispose()
        sys.modules.pop("mqf_pipeline.definitions", None)
        for var, value in saved.items():
            os.environ.pop(var, None)
            if value is not None:
                os.environ[var] = value


@contextmanager
def held_open(path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``path`` open read-write, as a DuckDB CLI or notebook left open would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_fault_cli_run_is_on_the_timeline_and_job_page(fund):
    """A run started by run_job (as `mqf run` does) is in the timeline's query with the repository and location
    of the workspace's `mqf_pipeline` code location, and on its job page; its own tags are kept."""
    _, instance = fund
    began = time.time()
    outcome = run_job(instance, "catalog_job", in_process=True, log_level="CRITICAL", extra_tags={"mqf/progress": "x"})
    assert outcome.success
    run = instance.get_run_by_id(outcome.run_id)
    assert run is not None and run.remote_job_origin is not None
    assert run.tags["mqf/launched_by"] == "mqf-cli" and run.tags["mqf/progress"] == "x"
    assert run.tags[CODE_LOCATION_TAG] == LOCATION_NAME
    assert run.tags["dagster/max_retries"] == "0"  # rerunnable by the daemon now, but `mqf` reruns, not it
    # the label is a stored run tag (what job pages filter on), not one of the run's own tags
    labelled = dg.RunsFilter(job_name="catalog_job", tags={REPOSITORY_LABEL_TAG: f"__repository__@{LOCATION_NAME}"})
    assert [r.run_id for r in instance.get_runs(filters=labelled)] == [outcome.run_id]

    with define_out_of_process_context(str(WORKSPACE), None, instance) as context:
        window = {"statuses": ["FAILURE", "SUCCESS", "CANCELED"], "updatedAfter": began - 1, "updatedBefore": 4e9}
        found = execute_dagster_graphql(context, TIMELINE_QUERY, {"completedFilter": window, "limit": 500})
        [row] = [r for r in found.data["completed"]["results"] if r["id"] == outcome.run_id]
        # the timeline keeps a run only with a start time and a repository origin (saveRunInfo), keyed by
        # job name and repository@location like the workspace's jobs
        assert row["startTime"] is not None and row["pipelineName"] == "catalog_job"
        origin = row["repositoryOrigin"]
        assert origin is not None
        assert (origin["repositoryName"], origin["repositoryLocationName"]) == ("__repository__", LOCATION_NAME)
        assert {"key": "mqf/launched_by", "value": "mqf-cli"} in row["tags"]

        entries = execute_dagster_graphql(context, WORKSPACE_QUERY).data["workspaceOrError"]["locationEntries"]
        [location] = [e["locationOrLoadError"] for e in entries if e["name"] == LOCATION_NAME]
        assert "repositories" in location, location
        [repository] = [r for r in location["repositories"] if r["name"] == origin["repositoryName"]]
        assert "catalog_job" in {p["name"] for p in repository["pipelines"]}
        assert repository["origin"]["id"] == origin["id"]  # the very origin the webserver computes

        selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": "__repository__"}
        page = execute_dagster_graphql(
            context, JOB_RUNS_QUERY, {"selector": {**selector, "pipelineName": "catalog_job"}}
        )
        assert outcome.run_id in {r["runId"] for r in page.data["pipelineOrError"]["runs"]}


def test_fault_locked_catalog_names_the_holder(tmp_path):
    """Past the wait, opening a held catalog fails with one line: the path, the holder's PID and command line,
    and what to do; no DuckDB traceback is chained under it."""
    path = tmp_path / "runtime" / "mqf.duckdb"
    with held_open(path) as holder:
        began = time.monotonic()
        with pytest.raises(CatalogLockedError) as caught:
            connect_with_retry(path, timeout_s=0.5)
        waited = time.monotonic() - began
    error = caught.value
    message = str(error)
    assert message.startswith(f"{path} is open in process {holder.pid} (")
    assert message.endswith("); close it or wait") and "\n" not in message
    assert MARKER in message and "-c" in message and error.command is not None and MARKER in error.command
    assert error.pid == holder.pid and error.path == path
    assert error.__cause__ is None and error.__suppress_context__
    assert 0.5 <= waited < 10
    connect_with_retry(path, timeout_s=5).close()  # released: opens again


def test_fault_lock_message_without_a_holder():
    """A lock error that does not name its holder still says which file and what to do; other IO errors are
    not lock errors."""
    error = locked_error(Path("runtime/mqf.duckdb"), duckdb.IOException('IO Error: Could not set lock on file "x"'))
    assert str(error) == (
        'runtime/mqf.duckdb is locked by another process (IO Error: Could not set lock on file "x"); close it or wait'
    )
    assert error.pid is None


def test_fault_locked_catalog_fails_the_catalog_run_with_the_same_line(fund, monkeypatch):
    """The catalog asset's step failure in Dagster carries that line as its root cause (what `mqf` prints)."""
    settings, instance = fund
    monkeypatch.setattr(catalog, "LOCK_WAIT_SECONDS", 0.5)
    with held_open(settings.catalog_path) as holder:
        outcome = run_job(instance, "catalog_job", in_process=True, log_level="CRITICAL")
    assert not outcome.success and outcome.failed_steps == ("duckdb_catalog",)
    [failure] = instance.get_records_for_run(outcome.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    error = failure.event_log_entry.dagster_event.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    assert error.cls_name == "CatalogLockedError"
    qualified, message = error.message.strip().split(": ", 1)  # Dagster records ``module.Class: message``
    assert qualified == "mqf_pipeline.storage.catalog.CatalogLockedError"
    assert message.startswith(f"{settings.catalog_path} is open in process {holder.pid} (")
    assert message.endswith("); close it or wait") and MARKER in message and "\n" not in message
