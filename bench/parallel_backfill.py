"""Parallel backfill bench: 60 partitions as concurrent runs under the multiprocess executor.

Starts `dagster dev` (UI + daemon) on 127.0.0.1 with a temporary DAGSTER_HOME that uses the
shipped configs/dagster.yaml (queued runs, 4 at a time; pool duckdb_writer at 1), launches a
one run per partition of market_data_job (the data layer) over 60 sessions through the GraphQL API (one run per
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

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
RUNS_STATUS = """
query($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    ... on Runs { results { runId status } }
  }
}"""
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
LOCK_MESSAGES = ("could not set lock", "conflicting lock", "catalogLockedError".lower())


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


def _launch(gql: GraphQL, repo: dict[str, str], job: str, tags: dict[str, str]) -> str:
    params = {
        "selector": {**repo, "jobName": job},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }
    out = gql(LAUNCH_RUN, params=params)["launchRun"]
    if out["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"{job} run not launched: {out}")
    return out["run"]["runId"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=60)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--catalog-runs", type=int, default=5)
    parser.add_argument("--end", default="2026-11-20")
    parser.add_argument("--timeout", type=float, default=2400.0, help="seconds to wait for every run")
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
    run_ids: list[str] = []
    catalog_ids: list[str] = []
    try:
        _wait_up(gql, proc)
        subprocess.run(
            [dagster, "instance", "concurrency", "set", "duckdb_writer", "1"], env=env, check=True, capture_output=True
        )
        repo = {"repositoryLocationName": "mqf_pipeline", "repositoryName": "__repository__"}
        every = max(len(keys) // max(args.catalog_runs, 1), 1)
        for i, key in enumerate(keys, start=1):
            run_ids.append(_launch(gql, repo, "market_data_job", {"dagster/partition": key, "mqf/bench": "parallel"}))
            if i % every == 0 and len(catalog_ids) < args.catalog_runs:
                catalog_ids.append(_launch(gql, repo, "catalog_job", {"mqf/bench": "parallel"}))
        print(f"launched {len(run_ids)} partition runs {keys[0]}..{keys[-1]} and {len(catalog_ids)} catalog runs")
        deadline = began + args.timeout
        while time.monotonic() < deadline:
            statuses = gql(RUNS_STATUS, ids=run_ids + catalog_ids)["runsOrError"]["results"]
            done = sum(r["status"] in TERMINAL for r in statuses)
            running = sum(r["status"] == "STARTED" for r in statuses)
            print(
                f"  t={time.monotonic() - began:5.0f}s {done}/{len(statuses)} runs done, {running} running", flush=True
            )
            if done == len(statuses):
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
    statuses = {rid: instance.get_run_by_id(rid).status.value for rid in run_ids + catalog_ids}
    lock_events = []
    for rid in run_ids + catalog_ids:
        for entry in instance.all_logs(rid):
            text = (
                (entry.user_message or "") + str(getattr(entry.dagster_event, "event_specific_data", "") or "")
            ).lower()
            if any(m in text for m in LOCK_MESSAGES):
                lock_events.append((rid, text[:200]))
    partition_runs = [statuses[r] for r in run_ids]
    catalog_runs = [statuses[r] for r in catalog_ids]
    rows = [
        {"item": "partitions (one run each, multiprocess executor)", "value": len(keys)},
        {"item": "partition runs succeeded", "value": partition_runs.count("SUCCESS")},
        {"item": "partition runs failed", "value": len(partition_runs) - partition_runs.count("SUCCESS")},
        {"item": "catalog runs succeeded", "value": f"{catalog_runs.count('SUCCESS')}/{len(catalog_runs)}"},
        {"item": "lock errors", "value": len(lock_events)},
        {"item": "wall seconds", "value": round(wall, 1)},
    ]
    ok = (
        not lock_events
        and partition_runs.count("SUCCESS") == len(keys)
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
