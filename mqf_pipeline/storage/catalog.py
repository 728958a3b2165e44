"""The DuckDB catalog: ``runtime/mqf.duckdb`` with one view per declared table over the lake.

Only one process may hold a DuckDB file read-write, and even read-only opens fail while one
does, so the catalog is written by a single step (the ``duckdb_writer`` pool, limit 1) and
runs read the lake through polars or an in-memory DuckDB instead. Views read
``read_parquet(<glob>)`` at query time, so new partitions appear without a refresh; a
refresh is needed only when a table gets its first file or the schema changes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb
import polars as pl

from mqf_pipeline import processes
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_specs

#: DuckDB names the holder of a conflicting lock: ``... Conflicting lock is held in <exe> (PID <n>) ...``
_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")
_MAX_COMMAND_CHARS = 200
#: How long an open waits for another process to release the catalog file (s).
LOCK_WAIT_SECONDS = 30.0


class CatalogLockedError(TimeoutError):
    """Another process held the catalog file past the wait; the message names it and what to do."""

    def __init__(
        self, message: str, path: Path | None = None, pid: int | None = None, command: str | None = None
    ) -> None:
        super().__init__(message)
        self.path, self.pid, self.command = path, pid, command


def process_command(pid: int) -> str | None:
    """The command line of process ``pid`` on one line, shortened; None if it cannot be read."""
    command = processes.command_line(pid)
    if command.startswith("("):  # "(process gone)" / "(unknown)"
        return None
    return command if len(command) <= _MAX_COMMAND_CHARS else command[: _MAX_COMMAND_CHARS - 3] + "..."


def locked_error(path: Path, exc: Exception) -> CatalogLockedError:
    """The clear error for DuckDB's lock conflict ``exc`` on ``path``: the holder's PID and command line."""
    found = _HOLDER.search(str(exc))
    if found is None:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CatalogLockedError(f"{path} is locked by another process ({detail}); close it or wait", path)
    pid = int(found["pid"])
    command = process_command(pid) or found["exe"] or None
    holder = f"process {pid} ({command})" if command else f"process {pid}"
    return CatalogLockedError(f"{path} is open in {holder}; close it or wait", path, pid, command)


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


def connect_with_retry(
    path: Path, *, read_only: bool = False, timeout_s: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting up to ``timeout_s`` (default :data:`LOCK_WAIT_SECONDS`) for another process to
    release it; past that, :class:`CatalogLockedError` names the process holding it. Other IO errors propagate."""
    deadline = time.monotonic() + (LOCK_WAIT_SECONDS if timeout_s is None else timeout_s)
    delay = 0.1
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                # the message is the whole story: no DuckDB traceback chained under it (the CLI and the UI show
                # the innermost error of a failed step)
                raise locked_error(path, exc) from None
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, 2.0)


def refresh_catalog(lake: Lake, path: Path, *, timeout_s: float | None = None) -> dict[str, int]:
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
