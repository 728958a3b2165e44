"""The DuckDB catalog: ``runtime/mqf.duckdb`` with one view per declared table over the lake.

Only one process may hold a DuckDB file read-write, and even read-only opens fail while one
does, so the catalog is written by a single step (the ``duckdb_writer`` pool, limit 1) and
runs read the lake through polars or an in-memory DuckDB instead. Views read
``read_parquet(<glob>)`` at query time, so new partitions appear without a refresh; a
refresh is needed only when a table gets its first file or the schema changes.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import polars as pl

from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_specs


class CatalogLockedError(RuntimeError):
    """Another process holds the catalog file; the message says what to close."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def view_sql(lake: Lake, table: str) -> str:
    """``CREATE OR REPLACE VIEW`` for one table: over its files, or typed and empty if none."""
    spec = table_specs()[table]
    cols = ", ".join(f"CAST({_quote(c)} AS {t}) AS {_quote(c)}" for c, t in spec.sql_types.items())
    if lake.partitions(table):
        source = f"read_parquet('{lake.url(table)}', union_by_name = true)"
        return f"CREATE OR REPLACE VIEW {_quote(table)} AS SELECT {cols} FROM {source}"
    empty = ", ".join(f"CAST(NULL AS {t}) AS {_quote(c)}" for c, t in spec.sql_types.items())
    return f"CREATE OR REPLACE VIEW {_quote(table)} AS SELECT {empty} WHERE false"


def connect_with_retry(path: Path, *, read_only: bool = False, timeout_s: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting up to ``timeout_s`` for another process to release it."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise CatalogLockedError(
                    f"cannot open {path}: {exc}. Another process holds it (a DuckDB CLI or notebook left "
                    "open on the file?); close it and rerun."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def refresh_catalog(lake: Lake, path: Path, *, timeout_s: float = 30.0) -> dict[str, int]:
    """Create or replace every view in the catalog file; returns row counts per table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = connect_with_retry(path, timeout_s=timeout_s)
    try:
        con.execute("BEGIN TRANSACTION")
        for table in sorted(table_specs()):
            con.execute(view_sql(lake, table))
        con.execute("COMMIT")
        return {t: int(con.execute(f"SELECT count(*) FROM {_quote(t)}").fetchone()[0]) for t in sorted(table_specs())}
    finally:
        con.close()


def query(lake: Lake, sql: str) -> pl.DataFrame:
    """Run ``sql`` against the lake in an in-memory DuckDB (safe during runs: no file lock)."""
    con = duckdb.connect(":memory:")
    try:
        for table in table_specs():
            con.execute(view_sql(lake, table))
        return con.sql(sql).pl()
    finally:
        con.close()
