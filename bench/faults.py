"""Fault drill: build a small fund, inject each fault of issue 21 in turn, record what the operator sees.

For each case: detected (the fault was reported, not silently absorbed), seconds to detection, the message
shown (one line), repaired (the command the README gives fixed it; null where no repair applies: a
refused command or config is fixed by the operator's edit), rows lost (rows of lake files that were there
before the case and are gone or shorter after it) and duplicate orders (more than one broker order for
one session, symbol, side and leg). Goal: every case detected, repaired where repair applies, 0 rows
lost, 0 duplicates, a dead run failed in <= 300 s.

    .venv/bin/python -m bench.faults            # ~10 min on 2 cores; writes bench/results/faults.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from bench.common import RESULTS, report
from bench.fault_drill import (
    Drill,
    broker_orders,
    duplicate_orders,
    lake_rows,
    reexecute_from_failure,
    rows_lost,
    stop,
)
from mqf_pipeline import calendar

#: The drill's sessions: the fund is built through FIRST, the dead run is SECOND, the switch case THIRD.
FIRST, SECOND, THIRD = dt.date(2026, 12, 2), dt.date(2026, 12, 3), dt.date(2026, 12, 4)
DEAD_RUN_LIMIT_SECONDS = 300
#: The drill's webserver (the UI's GraphQL endpoint) listens here on 127.0.0.1.
WEB_PORT = 3917


def case(name: str, detected: bool, message: str, seconds: float, repaired: bool | None, **damage: int) -> dict:
    return {
        "name": name,
        "detected": detected,
        "repaired": repaired,
        "rows_lost": damage.get("rows_lost", 0),
        "duplicate_orders": damage.get("duplicate_orders", 0),
        "seconds": round(seconds, 1),
        "message": message[:300],
    }


def _instance(drill: Drill) -> dg.DagsterInstance:
    os.environ["DAGSTER_HOME"] = drill.env["DAGSTER_HOME"]
    return dg.DagsterInstance.get()


def _wait(predicate: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


# ---------------------------------------------------------------------------------------------- cases
def killed_run_worker(drill: Drill) -> dict:
    """kill -9 of `mqf run` while its daily cycle runs; Dagster's daemon (dead_run_sensor) ends the run."""
    instance = _instance(drill)
    before = lake_rows(drill.lake)
    daemon = drill.daemon()
    # the kill lands after the daemon's first sensor tick, so detection waits for a steady-state tick (<= 30 s)
    log = drill.runtime / "daemon.log"
    if not _wait(lambda: "dead_run_sensor skipped" in log.read_text(errors="replace"), 300):
        stop(daemon)
        return case("kill -9 of a run worker", False, "the daemon never evaluated dead_run_sensor", 0, False)
    worker = drill.mqf_background("run", "--date", SECOND.isoformat(), "--no-backfill")

    def cycle_running() -> dg.DagsterRun | None:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="daily_cycle_job"), limit=1)
        if (
            runs
            and runs[0].status == dg.DagsterRunStatus.STARTED
            and runs[0].tags.get("dagster/partition") == str(SECOND)
        ):
            starts = instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START).records
            return runs[0] if starts else None
        return None

    try:
        run = _wait(cycle_running, 600, 0.5)
        if run is None:
            return case("kill -9 of a run worker", False, "the cycle run never started", 0, False)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
        killed = time.monotonic()
        ended = _wait(lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE, 420, 0.5)
        seconds = time.monotonic() - killed
    finally:
        stop(worker)
        stop(daemon)
    failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    message = failure[0].event_log_entry.dagster_event.message if failure else "run still STARTED"
    repaired = ended is not None and _reexecute_from_the_ui(drill, instance, run.run_id)
    return case(
        "kill -9 of a run worker",
        bool(ended) and seconds <= DEAD_RUN_LIMIT_SECONDS,
        message.split(". Rerun")[0],
        seconds,
        repaired,
        rows_lost=rows_lost(before, lake_rows(drill.lake)),
        duplicate_orders=duplicate_orders(drill.runtime),
    )


def _reexecute_from_the_ui(drill: Drill, instance: dg.DagsterInstance, run_id: str) -> bool:
    """Re-execute the dead run from failure as the UI does (GraphQL on the webserver, launched by the daemon's
    queue and the default run launcher); True when that run succeeds."""
    daemon, webserver = drill.daemon(), drill.webserver(WEB_PORT)
    try:
        child = reexecute_from_failure(WEB_PORT, run_id)
        done = _wait(lambda: instance.get_run_by_id(child).is_finished, 900, 2)
        return bool(done) and instance.get_run_by_id(child).status == dg.DagsterRunStatus.SUCCESS
    finally:
        stop(webserver)
        stop(daemon)


def damaged_file(drill: Drill, name: str, table: str, day: dt.date, damage: Callable[[Path], None]) -> dict:
    """A damaged lake file: `mqf lake verify` names it, `--repair` rematerializes exactly that partition."""
    path = drill.lake / table / f"{day}.parquet"
    before = lake_rows(drill.lake)
    damage(path)
    found = drill.mqf("lake", "verify")
    repair = drill.mqf("lake", "verify", "--repair")
    clean = drill.mqf("lake", "verify")
    return case(
        name,
        found.returncode == 1 and str(path) in found.output,
        found.line(table, str(day)),
        found.seconds,
        repair.returncode == 0 and clean.returncode == 0,
        rows_lost=rows_lost(before, lake_rows(drill.lake)),
        duplicate_orders=duplicate_orders(drill.runtime),
    )


def garbage(path: Path) -> None:
    path.write_bytes(b"this is not parquet" * 64)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def orphan_temp_file(drill: Drill) -> dict:
    """A writer killed mid-write left a temp file two hours ago: verify removes it."""
    orphan = drill.lake / "price_history" / f"{FIRST}.parquet.tmp-drill"
    orphan.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    found = drill.mqf("lake", "verify")
    return case(
        "orphan tmp file",
        "tmp" in found.output and orphan.name in found.output.replace("\n", ""),
        found.line("tmp"),
        found.seconds,
        not orphan.exists(),
    )


def deleted_previous_orders(drill: Drill) -> dict:
    """The orders of D-1 deleted: rerunning D names them; rerunning D-1 then D repairs with no duplicate."""
    before = lake_rows(drill.lake)
    (drill.lake / "orders" / f"{FIRST}.parquet").unlink()
    failed = drill.mqf("backfill", "--start", SECOND.isoformat(), "--end", SECOND.isoformat())
    repair = drill.mqf("backfill", "--start", FIRST.isoformat(), "--end", SECOND.isoformat())
    after = lake_rows(drill.lake)
    return case(
        "deleted D-1 orders",
        failed.returncode == 1 and f"orders of {FIRST}" in " ".join(failed.output.split()),
        failed.line("cause:"),
        failed.seconds,
        repair.returncode == 0,
        rows_lost=rows_lost(before, after),
        duplicate_orders=duplicate_orders(drill.runtime),
    )


def config_fault(drill: Drill, name: str, breaker: Callable[[Path], None], needle: str) -> dict:
    """A broken config dir: `mqf config check` (and any command) refuses it, naming file and key."""
    configs = drill.config_copy(f"configs_{name.replace(' ', '_')}")
    breaker(configs)
    check = drill.mqf("config", "check", config_dir=configs)
    run = drill.mqf("run", "--date", THIRD.isoformat(), config_dir=configs)
    text = " ".join(check.output.split())
    detected = check.returncode == 2 and run.returncode == 2 and needle in text
    return case(name, detected, check.line(needle), check.seconds, None)


def misspelt_file(configs: Path) -> None:
    (configs / "risk.yaml").rename(configs / "rsik.yaml")


def duplicate_key(configs: Path) -> None:
    path = configs / "portfolio.yaml"
    path.write_text(path.read_text() + "\nmax_turnover: 0.5\nmax_turnover: 0.7\n")


def unknown_key(configs: Path) -> None:
    path = configs / "risk.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    data["initial_navv"] = 1_000_000
    path.write_text(yaml.safe_dump(data))


def future_date(drill: Drill) -> dict:
    future = calendar.session_offset(calendar.latest_closed_session(), 10)
    out = drill.mqf("run", "--date", future.isoformat())
    return case(
        "future date", out.returncode == 2 and "valid sessions" in out.output, out.line(str(future)), out.seconds, None
    )


def live_without_keys(drill: Drill) -> dict:
    configs = drill.config_copy("configs_live")
    fund = yaml.safe_load((configs / "fund.yaml").read_text())
    fund["mode"] = "live"
    (configs / "fund.yaml").write_text(yaml.safe_dump(fund))
    universe = yaml.safe_load((configs / "universe.yaml").read_text()) or {}
    universe["symbols"] = ["AAPL", "MSFT"]
    (configs / "universe.yaml").write_text(yaml.safe_dump(universe))
    before = broker_orders(drill.runtime)
    out = drill.mqf("run", "--date", THIRD.isoformat(), config_dir=configs)
    detected = out.returncode == 2 and "refused before the first stage" in " ".join(out.output.split())
    return case(
        "live without keys", detected and broker_orders(drill.runtime) == before, out.line("refused"), out.seconds, None
    )


def held_duckdb_lock(drill: Drill) -> dict:
    """Another process holds runtime/mqf.duckdb: the catalog run says which one, then succeeds once closed."""
    catalog = drill.runtime / "mqf.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(catalog)!r}); print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        out = drill.mqf("status")
    finally:
        stop(holder)
    after = drill.mqf("status")
    text = " ".join(out.output.split())
    detected = out.returncode != 0 and str(catalog) in text and f"process {holder.pid}" in text
    return case("held DuckDB lock", detected, out.line(str(catalog)), out.seconds, after.returncode == 0)


def sensor_reset_with_switch_engaged(drill: Drill) -> dict:
    """The kill switch engaged, then the sensor's cursor deleted (a reset): the sensor still reports it engaged
    and the next cycle sends nothing to the broker."""
    drill.mqf("kill-switch", "on", "--reason", "fault drill")
    reset = drill.dagster("sensor", "cursor", "kill_switch_sensor", "--delete")
    preview = drill.dagster("sensor", "preview", "kill_switch_sensor")
    sent_before = broker_orders(drill.runtime)
    run = drill.mqf("run", "--date", THIRD.isoformat(), "--no-backfill")
    sent_after = broker_orders(drill.runtime)
    drill.mqf("kill-switch", "off", "--reason", "fault drill over")
    detected = reset.returncode == 0 and "ENGAGED" in preview.output and run.returncode == 0
    return case(
        "sensor reset with the switch engaged",
        detected and sent_after == sent_before,
        preview.line("ENGAGED"),
        preview.seconds,
        None,
        duplicate_orders=duplicate_orders(drill.runtime),
    )


def drill_all(root: Path) -> tuple[list[dict], float]:
    drill = Drill.create(root)
    began = time.monotonic()
    built = drill.mqf("run", "--date", FIRST.isoformat())
    if built.returncode != 0:
        raise SystemExit(f"the drill's fund did not build:\n{built.output[-3000:]}")
    build_seconds = time.monotonic() - began
    steps: list[Callable[[], dict]] = [
        lambda: killed_run_worker(drill),
        lambda: damaged_file(drill, "corrupt Parquet", "price_history", FIRST, garbage),
        lambda: damaged_file(drill, "truncated file", "features", calendar.session_offset(FIRST, -1), truncate),
        lambda: orphan_temp_file(drill),
        lambda: deleted_previous_orders(drill),
        lambda: config_fault(drill, "misspelt config file", misspelt_file, "rsik.yaml"),
        lambda: config_fault(drill, "duplicate key", duplicate_key, "max_turnover"),
        lambda: config_fault(drill, "unknown key", unknown_key, "initial_navv"),
        lambda: future_date(drill),
        lambda: live_without_keys(drill),
        lambda: held_duckdb_lock(drill),
        lambda: sensor_reset_with_switch_engaged(drill),
    ]
    cases = []
    for step in steps:
        cases.append(step())
        print(json.dumps(cases[-1]), flush=True)
    return cases, build_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="work directory (default: a new temp dir)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="mqf_faults_"))
    cases, build_seconds = drill_all(root)
    rows = [
        {k: c[k] for k in ("name", "detected", "repaired", "rows_lost", "duplicate_orders", "seconds")} for c in cases
    ]
    report("faults_table", "fault drill (issue 21)", rows)
    (RESULTS / "faults_table.json").unlink(missing_ok=True)
    goal = all(
        c["detected"] and c["repaired"] is not False and not c["rows_lost"] and not c["duplicate_orders"] for c in cases
    )
    payload = {"cases": cases, "fund_build_seconds": round(build_seconds, 1), "goal_met": goal, "root": str(root)}
    (RESULTS / "faults.json").write_text(json.dumps(payload, indent=2))
    for c in cases:
        print(f"{c['name']}: {c['message']}")
    print(f"goal met: {goal}; wrote {RESULTS / 'faults.json'}")


if __name__ == "__main__":
    main()
