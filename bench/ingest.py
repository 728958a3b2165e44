"""Ingest bench: 500 symbols x 5 years from the simulator into the lake and catalog in one run.

Runs the market-data job as one single-run backfill over 1,260 sessions (ingest, macro,
quality, eligibility) in process, then refreshes the DuckDB catalog; reports wall time and
rows/s per step, and the router's cached vs uncached read of the same request (seed 000 claims
100x). Goal: <= 60 s wall for the run plus the catalog. Writes bench/results/ingest.json.

    .venv/bin/python bench/ingest.py [--symbols 500] [--sessions 1260]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from bench.common import report  # noqa: E402
from mqf_pipeline import calendar  # noqa: E402
from mqf_pipeline.market.providers.base import BarsRequest  # noqa: E402
from mqf_pipeline.stages.providers import build_router  # noqa: E402
from mqf_pipeline.storage.catalog import refresh_catalog  # noqa: E402
from mqf_pipeline.storage.lake import Lake  # noqa: E402
from tests.deployment import run_market_data, settings_for, write_configs  # noqa: E402

GOAL_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=1260)
    parser.add_argument("--end", default="2026-11-20")
    args = parser.parse_args()
    end = dt.date.fromisoformat(args.end)
    start = calendar.session_offset(end, -(args.sessions - 1))
    n_sessions = len(calendar.sessions(start, end))
    with tempfile.TemporaryDirectory(prefix="mqf-bench-") as tmp:
        config_dir = write_configs(Path(tmp), n_symbols=args.symbols, min_history_rows=1260)
        (config_dir / "simulator.yaml").write_text(f"n_symbols: {args.symbols}\n")  # default seed and epoch
        settings = settings_for(config_dir)
        t0 = time.perf_counter()
        result = run_market_data(config_dir, start, end, dg.DagsterInstance.ephemeral(), job_name="market_data_job")
        run_s = time.perf_counter() - t0
        if not result.success:
            print("market_data_job failed", file=sys.stderr)
            return 1
        t1 = time.perf_counter()
        counts = refresh_catalog(Lake(settings.lake_root), settings.catalog_path)
        catalog_s = time.perf_counter() - t1
        steps = {
            ev.step_key: ev.event_specific_data.duration_ms / 1000.0
            for ev in result.all_events
            if ev.event_type_value == "STEP_SUCCESS"
        }
        bars = counts["price_history"]
        rows = [
            {
                "stage": f"step {k}",
                "seconds": v,
                "rows": bars if k == "ingest_market_data" else None,
                "rows_per_s": bars / v if k == "ingest_market_data" else None,
            }
            for k, v in steps.items()
        ]
        rows.append(
            {"stage": "catalog refresh", "seconds": catalog_s, "rows": sum(counts.values()), "rows_per_s": None}
        )
        total = run_s + catalog_s
        rows.append({"stage": "total (run + catalog)", "seconds": total, "rows": bars, "rows_per_s": bars / total})
        router = build_router(settings)
        request = BarsRequest(tuple(f"S{i:04d}" for i in range(args.symbols)), start, end)
        t2 = time.perf_counter()
        router.get_bars(request)
        cold_s = time.perf_counter() - t2
        t3 = time.perf_counter()
        router.get_bars(request)
        warm_s = time.perf_counter() - t3
        rows.append({"stage": "router get_bars uncached", "seconds": cold_s, "rows": bars, "rows_per_s": bars / cold_s})
        rows.append({"stage": "router get_bars cached", "seconds": warm_s, "rows": bars, "rows_per_s": bars / warm_s})
        verdict = "PASS" if total <= GOAL_S else "MISS"
        path = report(
            "ingest",
            f"ingest bench: {args.symbols} symbols x {n_sessions} sessions - {verdict} (goal <= {GOAL_S:.0f} s)",
            [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
            extra={
                "symbols": args.symbols,
                "sessions": n_sessions,
                "start": str(start),
                "end": str(end),
                "total_seconds": total,
                "goal_seconds": GOAL_S,
                "passed": total <= GOAL_S,
                "cache_speedup": cold_s / warm_s if warm_s > 0 else None,
            },
        )
        print(f"cache speed-up x{cold_s / warm_s:,.0f}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
