"""Parallel backfill bench: 60 partitions as concurrent runs under the multiprocess executor.

Starts `dagster dev` (UI + daemon) on 127.0.0.1 with a temporary DAGSTER_HOME that uses the
shipped configs/dagster.yaml (queued runs, 4 at a time; pool duckdb_writer at 1), launches a
partition backfill of market_data_job over 60 sessions through the GraphQL API (one run per
partition, each with the multiprocess executor) and, while it runs, catalog_job runs that
write runtime/mqf.duckdb. Then counts failed runs and every event mentioning a lock.
Goal: 0 lock errors, 0 failed runs. Writes bench/results/parallel_backfill.json.

    .venv/bin/python bench/parallel_backfill.py [--partitions 60] [--symbols 100] [--catalog-runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from mqf_pipeline import calendar  # noqa: E402
from tests.deployment import write_configs  # noqa: E402

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on PartitionSetNotFoundError { message }
  }
}"""
LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions }
  }
}"""
RUNS = """
query($tag: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $tag}]}) {
    ... on Runs { results { runId status } }
  }
}"""
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GraphQL:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"

    def __call__(self, query: str, **variables: object) -> dict:
        resp = requests.post(self.url, json={"query": query, "variables": variables}, timeout=60)
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]


def _wait_up(gql: GraphQL, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dagster dev exited early")
        try:
            gql("{ version }")
            return
        except (requests.RequestException, RuntimeError):
            time.sleep(1)
    raise TimeoutError("dagster dev did not come up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=60)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--catalog-runs", type=int, default=5)
    parser.add_argument("--end", default="2026-11-20")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds to wait for the backfill")
    args = parser.parse_args()
    end = dt.date.fromisoformat(args.end)
    keys = [d.isoformat() for d in calendar.sessions(calendar.session_offset(end, -(args.partitions - 1)), end)]
    tmp = Path(tempfile.mkdtemp(prefix="mqf-parallel-"))
    config_dir = write_configs(tmp, n_symbols=args.symbols, min_history_rows=10)
    (config_dir / "simulator.yaml").write_text(f"n_symbols: {args.symbols}\n")
    home = tmp / "dagster"
    home.mkdir()
    shutil.copyfile(ROOT / "configs" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MQF_CONFIG_DIR": str(config_dir)}
    port = _free_port()
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    log = (tmp / "dagster_dev.log").open("w")
    proc = subprocess.Popen(
        [dagster, "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    gql = GraphQL(port)
    began = time.monotonic()
    try:
        _wait_up(gql, proc)
        subprocess.run(
            [dagster, "instance", "concurrency", "set", "duckdb_writer", "1"], env=env, check=True, capture_output=True
        )
        repo = {"repositoryLocationName": "mqf_pipeline", "repositoryName": "__repository__"}
        launched = gql(
            LAUNCH_BACKFILL,
            params={
                "selector": {"partitionSetName": "market_data_job_partition_set", "repositorySelector": repo},
                "partitionNames": keys,
            },
        )["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {launched}")
        backfill_id = launched["backfillId"]
        print(f"backfill {backfill_id}: {len(keys)} partitions {keys[0]}..{keys[-1]}")
        catalog_ids = []
        for _ in range(args.catalog_runs):
            out = gql(
                LAUNCH_RUN,
                params={"selector": {**repo, "jobName": "catalog_job"}, "runConfigData": {}, "mode": "default"},
            )["launchRun"]
            if out["__typename"] != "LaunchRunSuccess":
                raise RuntimeError(f"catalog run not launched: {out}")
            catalog_ids.append(out["run"]["runId"])
        deadline = began + args.timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            status = gql(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]
            runs = gql(RUNS, tag=backfill_id)["runsOrError"]["results"]
            done = sum(r["status"] in TERMINAL for r in runs)
            print(f"  t={time.monotonic() - began:5.0f}s backfill {status.get('status')}: {done}/{len(keys)} runs done")
            if status.get("status") in {
                "COMPLETED",
                "COMPLETED_SUCCESS",
                "COMPLETED_FAILED",
                "FAILED",
                "CANCELED",
            } and done == len(keys):
                break
            time.sleep(10)
        wall = time.monotonic() - began
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    instance = dg.DagsterInstance.get()
    run_ids = [r["runId"] for r in runs] + catalog_ids
    statuses = {rid: instance.get_run_by_id(rid).status.value for rid in run_ids}
    lock_events = []
    for rid in run_ids:
        for entry in instance.all_logs(rid):
            text = (entry.user_message or "") + str(getattr(entry.dagster_event, "event_specific_data", "") or "")
            if "lock" in text.lower() and ("could not set lock" in text.lower() or "conflicting lock" in text.lower()):
                lock_events.append((rid, text[:200]))
    backfill_runs = [statuses[r["runId"]] for r in runs]
    catalog_runs = [statuses[r] for r in catalog_ids]
    rows = [
        {"item": "partitions", "value": len(keys)},
        {"item": "backfill runs", "value": len(backfill_runs)},
        {"item": "backfill runs succeeded", "value": backfill_runs.count("SUCCESS")},
        {"item": "backfill runs failed", "value": len(backfill_runs) - backfill_runs.count("SUCCESS")},
        {"item": "catalog runs succeeded", "value": f"{catalog_runs.count('SUCCESS')}/{len(catalog_runs)}"},
        {"item": "lock errors", "value": len(lock_events)},
        {"item": "wall seconds", "value": round(wall, 1)},
    ]
    ok = (
        not lock_events
        and backfill_runs.count("SUCCESS") == len(keys)
        and catalog_runs.count("SUCCESS") == len(catalog_runs)
    )
    report(
        "parallel_backfill",
        f"parallel backfill - {'PASS' if ok else 'FAIL'}",
        rows,
        extra={
            "symbols": args.symbols,
            "executor": "multiprocess",
            "max_concurrent_runs": 4,
            "lock_events": lock_events,
            "passed": ok,
        },
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
