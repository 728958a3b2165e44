"""The small fund the fault drill (bench/faults.py) breaks: its runtime, the `mqf` commands an operator
types, and the measures of damage (rows per lake file, duplicate orders at the broker).

Everything goes through the `mqf` command in a subprocess, as an operator would run it; the daemon the
drill starts is Dagster's own (`dagster-daemon run` over the project's workspace.yaml).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: A small fund: enough history to trade on the drill's sessions, small enough to build in a few minutes.
FUND_OVERRIDES = {
    "fund": {
        "calendar": {"first_run_sessions": 8},
        "history": {"warm_up_sessions": 300, "min_history_rows": 250},
    },
    "simulator": {"n_symbols": 40},
}


@dataclass(frozen=True)
class Command:
    """One `mqf` command: its exit code, what it printed (stdout + stderr) and how long it took (s)."""

    args: tuple[str, ...]
    returncode: int
    output: str
    seconds: float

    def line(self, *needles: str) -> str:
        """The first printed line containing every needle (whitespace folded), else the last non-empty one."""
        lines = [" ".join(raw.split()) for raw in self.output.splitlines() if raw.strip()]
        for text in lines:
            if all(n in text for n in needles):
                return text
        return lines[-1] if lines else ""


@dataclass
class Drill:
    """A runtime under ``root``: configs/ (the project's, made small) and runtime/."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path) -> Drill:
        configs = root / "configs"
        shutil.copytree(ROOT / "configs", configs)
        for section, values in {**FUND_OVERRIDES, "fund": _fund_section(root)}.items():
            path = configs / f"{section}.yaml"
            data = yaml.safe_load(path.read_text()) or {}
            _merge(data, values)
            path.write_text(yaml.safe_dump(data, sort_keys=False))
        env = {**os.environ, "DAGSTER_HOME": str(root / "runtime" / "dagster"), "MQF_CONFIG_DIR": str(configs)}
        for secret in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "MQF_LIVE_TRADING_CONFIRM"):
            env.pop(secret, None)
        return cls(root, env)

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def runtime(self) -> Path:
        return self.root / "runtime"

    @property
    def lake(self) -> Path:
        return self.runtime / "lake"

    def mqf(self, *args: str, config_dir: Path | None = None, timeout: float = 1800) -> Command:
        """Run ``mqf args --config-dir ...`` from the project root and wait for it."""
        cmd = [str(Path(sys.executable).parent / "mqf"), *args, "--config-dir", str(config_dir or self.configs)]
        began = time.monotonic()
        done = subprocess.run(cmd, check=False, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        return Command(tuple(args), done.returncode, done.stdout + done.stderr, time.monotonic() - began)

    def mqf_background(self, *args: str) -> subprocess.Popen:
        """Start ``mqf args`` in its own process group (so the drill can kill it and its steps at once)."""
        cmd = [str(Path(sys.executable).parent / "mqf"), *args, "--config-dir", str(self.configs)]
        return subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def daemon(self) -> subprocess.Popen:
        """Dagster's daemon over the project's workspace, on this runtime (it runs the sensors)."""
        exe = Path(sys.executable).parent / "dagster-daemon"
        log = (self.runtime / "daemon.log").open("w")
        return subprocess.Popen(
            [str(exe), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def webserver(self, port: int) -> subprocess.Popen:
        """Dagster's webserver over the project's workspace on 127.0.0.1:``port`` (what `mqf ui` serves)."""
        exe = Path(sys.executable).parent / "dagster-webserver"
        log = (self.runtime / "webserver.log").open("w")
        cmd = [str(exe), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
        return subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def dagster(self, *args: str) -> Command:
        """Run the ``dagster`` CLI on this runtime's instance and the project's workspace."""
        cmd = [str(Path(sys.executable).parent / "dagster"), *args, "-w", str(ROOT / "workspace.yaml")]
        began = time.monotonic()
        done = subprocess.run(cmd, check=False, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600)
        return Command(tuple(args), done.returncode, done.stdout + done.stderr, time.monotonic() - began)

    def config_copy(self, name: str) -> Path:
        """A copy of the configs to break without touching the drill's own."""
        target = self.root / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.configs, target)
        return target


def _fund_section(root: Path) -> dict:
    fund = dict(FUND_OVERRIDES["fund"])
    fund["paths"] = {"runtime": str(root / "runtime")}
    return fund


def _merge(target: dict, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def stop(process: subprocess.Popen) -> None:
    """Stop a background process group (TERM, then KILL)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


# ---------------------------------------------------------------------------------------------- damage
def lake_rows(lake: Path) -> dict[str, int]:
    """``table/partition`` -> rows, from each Parquet footer (an unreadable file counts -1)."""
    rows: dict[str, int] = {}
    for path in sorted(lake.glob("*/*.parquet")):
        try:
            rows[f"{path.parent.name}/{path.stem}"] = pq.read_metadata(path).num_rows
        except Exception:  # the drill damages files on purpose: any reader error means unreadable
            rows[f"{path.parent.name}/{path.stem}"] = -1
    return rows


def rows_lost(before: dict[str, int], after: dict[str, int]) -> int:
    """Rows of files present before that are missing or shorter after (a rewrite may only add rows)."""
    return sum(max(n - max(after.get(key, 0), 0), 0) for key, n in before.items() if n > 0)


def duplicate_orders(runtime: Path) -> int:
    """Trades sent twice to the broker: more than one broker order for one session, symbol, side and leg."""
    book_path = runtime / "broker" / "paper.sqlite"
    if not book_path.exists():
        return 0
    with sqlite3.connect(book_path) as con:
        book = pl.DataFrame(
            con.execute("SELECT client_order_id, session, symbol, side FROM orders").fetchall(),
            schema=["order_id", "session", "symbol", "side"],
            orient="row",
        )
    orders = pl.read_parquet(sorted((runtime / "lake" / "orders").glob("*.parquet")), columns=["order_id", "leg"])
    legs = book.join(orders, on="order_id", how="left")
    return legs.group_by("session", "symbol", "side", "leg").len().filter(pl.col("len") > 1).height


def broker_orders(runtime: Path) -> int:
    """Orders the paper broker holds."""
    book_path = runtime / "broker" / "paper.sqlite"
    if not book_path.exists():
        return 0
    with sqlite3.connect(book_path) as con:
        return int(con.execute("SELECT COUNT(*) FROM orders").fetchone()[0])


REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def reexecute_from_failure(port: int, run_id: str, timeout: float = 120) -> str:
    """What the UI's "Re-execute from failure" button sends: the new run's id (waits for the webserver)."""
    deadline = time.monotonic() + timeout
    body = {"query": REEXECUTE, "variables": {"params": {"parentRunId": run_id, "strategy": "FROM_FAILURE"}}}
    while True:
        try:
            answer = requests.post(f"http://127.0.0.1:{port}/graphql", json=body, timeout=30).json()
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    launched = answer["data"]["launchPipelineReexecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"re-execution refused: {launched}")
    return launched["run"]["runId"]
