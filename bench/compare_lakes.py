"""Compare two lakes table by table over a session range: the behaviour-unchanged check of a refactor.

Each partition's stored content hash is compared; for a partition that differs, the columns whose
values differ are named (rows compared after sorting on every column), so a difference confined to
per-run columns (``ingestion_audit.run_id`` and its timestamps) is told apart from a changed result.

    .venv/bin/python bench/compare_lakes.py runtime_before/lake runtime/lake 2026-09-11 2026-12-04
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import polars as pl

from bench.common import report
from mqf_pipeline.storage.lake import Lake

#: Columns describing the run rather than its results, expected to differ between two runs: its id, the wall
#: clock, and the request telemetry ingestion_audit puts on a run window's first session (requests, retries,
#: fallbacks and latency depend on how the range was split into runs).
PER_RUN_COLUMNS = {
    "run_id",
    "created_at",
    "ingestion_timestamp",
    "latency_ms",
    "n_requests",
    "n_retries",
    "n_fallbacks",
}


def differing_columns(a: pl.DataFrame, b: pl.DataFrame) -> list[str]:
    """Columns whose sorted values differ between two versions of one partition."""
    if a.columns != b.columns or a.height != b.height:
        return sorted(set(a.columns) ^ set(b.columns)) or ["<row count>"]
    return [c for c in a.columns if not a.select(c).sort(c).equals(b.select(c).sort(c))]


def compare(root_a: Path, root_b: Path, start: str, end: str) -> list[dict[str, Any]]:
    """One row per table: partitions in range, how many differ, and which columns."""
    a, b = Lake(str(root_a)), Lake(str(root_b))
    rows = []
    for table in sorted(p.name for p in root_a.iterdir() if p.is_dir()):
        parts = [p for p in a.partitions(table) if start <= p <= end]
        bad = [p for p in parts if a.stored_hash(table, p) != b.stored_hash(table, p)]
        columns: set[str] = set()
        for p in bad:
            columns |= set(differing_columns(a.read(table, [p]), b.read(table, [p])))
        rows.append(
            {
                "table": table,
                "partitions": len(parts),
                "differ": len(bad),
                "columns": ", ".join(sorted(columns)) or "-",
                "only_per_run_columns": bool(bad) and columns <= PER_RUN_COLUMNS,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_a", type=Path)
    parser.add_argument("lake_b", type=Path)
    parser.add_argument("start")
    parser.add_argument("end")
    args = parser.parse_args()
    rows = compare(args.lake_a, args.lake_b, args.start, args.end)
    equal = sum(r["partitions"] - r["differ"] for r in rows)
    real = [r["table"] for r in rows if r["differ"] and not r["only_per_run_columns"]]
    report(
        "compare_lakes",
        f"{args.lake_a} vs {args.lake_b}, {args.start} .. {args.end}",
        rows,
        {"equal_partitions": equal, "tables_with_result_differences": real},
    )
    print(f"equal partitions: {equal}; tables differing beyond per-run columns: {real or 'none'}")
    raise SystemExit(1 if real else 0)


if __name__ == "__main__":
    main()
