"""README command 1's ``mqf run`` on a fresh runtime, timed per phase, then a second run for one new session.

Phases come from the Dagster event log of each run: *planning* (run created to its first step starting),
per step *compute* (step start to its first materialization event: the asset body) and *event writes*
(first materialization to step success: Dagster recording the materializations), and the *catalog* run.
The outputs of the last ``--compare-sessions`` sessions are compared, table by table, with content hashes
saved from the code before issue 14 (``--save-baseline`` on a lake made by that code).

    .venv/bin/python bench/first_run.py                      # fresh runtime under /tmp, both runs
    .venv/bin/python bench/first_run.py --save-baseline runtime_before/lake   # write the hash baseline
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, report
from bench.compare_lakes import PER_RUN_COLUMNS
from mqf_pipeline import calendar
from mqf_pipeline.storage.lake import Lake, content_hash

ROOT = Path(__file__).resolve().parent.parent
BASELINE = RESULTS / "first_run_baseline_hashes.json"
FIRST, SECOND = "2026-12-03", "2026-12-04"


def result_hashes(lake_root: Path, sessions: list[str]) -> dict[str, dict[str, str]]:
    """table -> session -> content hash without the per-run columns (run ids, wall clock, request counts)."""
    lake = Lake(str(lake_root))
    out: dict[str, dict[str, str]] = {}
    for table in sorted(p.name for p in lake_root.iterdir() if p.is_dir()):
        have = set(lake.partitions(table))
        out[table] = {}
        for s in sessions:
            if s in have:
                frame = lake.read(table, [s])
                out[table][s] = content_hash(frame.drop([c for c in frame.columns if c in PER_RUN_COLUMNS]))
    return out


def _mqf(config_dir: Path, date: str) -> float:
    began = time.monotonic()
    cmd = [sys.executable, "-m", "mqf_cli.main", "run", "--config-dir", str(config_dir), "--date", date]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"mqf run --date {date} failed (exit {done.returncode})")
    return time.monotonic() - began


def run_phases(dagster_home: Path) -> list[dict[str, Any]]:
    """One row per run and step: planning, compute and event-write seconds from the event log."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    rows: list[dict[str, Any]] = []
    for record in reversed(instance.get_run_records()):
        run = record.dagster_run
        events = [r.event_log_entry for r in instance.get_records_for_run(run.run_id, limit=1_000_000).records]
        starts = {e.step_key: e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_START}
        start = run.tags.get("dagster/asset_partition_range_start") or run.tags.get("dagster/partition", "")
        end = run.tags.get("dagster/asset_partition_range_end") or start
        label = f"{run.job_name} {start if start == end else f'{start}..{end}'}".strip()
        created = record.create_timestamp.timestamp()
        end = max(e.timestamp for e in events)
        rows.append({"run": label, "phase": "planning", "seconds": round(min(starts.values()) - created, 1)})
        for step, t0 in sorted(starts.items(), key=lambda kv: kv[1]):
            mats = [
                e.timestamp
                for e in events
                if e.step_key == step and e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
            ]
            done = [
                e.timestamp
                for e in events
                if e.step_key == step and e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS
            ]
            t1 = min(mats) if mats else (done[0] if done else end)
            t2 = done[0] if done else end
            rows.append({"run": label, "phase": f"compute {step}", "seconds": round(t1 - t0, 1)})
            rows.append({"run": label, "phase": f"event writes {step} ({len(mats)})", "seconds": round(t2 - t1, 1)})
        rows.append({"run": label, "phase": "run total", "seconds": round(end - created, 1)})
    return rows


def compare(now: dict[str, dict[str, str]], before: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for table in sorted(set(now) | set(before)):
        a, b = now.get(table, {}), before.get(table, {})
        keys = sorted(set(a) | set(b))
        rows.append(
            {
                "table": table,
                "sessions": len(keys),
                "equal": sum(a.get(k) == b.get(k) for k in keys),
                "differ": [k for k in keys if a.get(k) != b.get(k)][:3],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save-baseline", type=Path, help="a lake made by the old code at --date " + FIRST)
    parser.add_argument("--compare-sessions", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the temporary runtime")
    args = parser.parse_args()
    last = dt.date.fromisoformat(FIRST)
    first_compared = calendar.session_offset(last, 1 - args.compare_sessions)
    sessions = [s.isoformat() for s in calendar.sessions(first_compared, last)]
    if args.save_baseline:
        BASELINE.write_text(json.dumps(result_hashes(args.save_baseline, sessions), indent=1))
        print(f"wrote {BASELINE}")
        return
    work = Path(tempfile.mkdtemp(prefix="first_run_"))
    shutil.copytree(ROOT / "configs", work / "configs")
    first = _mqf(work / "configs", FIRST)
    hashes = result_hashes(work / "runtime" / "lake", sessions)
    second = _mqf(work / "configs", SECOND)
    phases = run_phases(work / "runtime" / "dagster")
    rows = [{"run": "mqf run (first, fresh runtime)", "phase": f"wall, --date {FIRST}", "seconds": round(first, 1)}]
    rows += [{"run": "mqf run (next session)", "phase": f"wall, --date {SECOND}", "seconds": round(second, 1)}]
    rows += phases
    before = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    same = compare(hashes, before)
    report("first_run", "first mqf run on a fresh runtime, then one new session", rows, {"outputs": same})
    report("first_run_outputs", f"last {args.compare_sessions} sessions vs the code before issue 14", same)
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
