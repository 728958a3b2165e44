"""Table specs derived from ``schema.sql``: polars dtypes, keys, and frame validation.

``schema.sql`` is the one declaration of every table; this module parses it with an
in-memory DuckDB so the polars schema can never drift from the SQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import duckdb
import polars as pl

#: Columns that record when a row was written: excluded from content hashes.
VOLATILE_COLUMNS: frozenset[str] = frozenset({"created_at", "ingestion_timestamp", "updated_at", "solve_time_ms"})
#: Columns the writer fills itself when a frame does not carry them.
GENERATED_COLUMNS: frozenset[str] = frozenset({"id", "created_at"})

_DUCKDB_TO_POLARS: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "DATE": pl.Date(),
    "DOUBLE": pl.Float64(),
    "BIGINT": pl.Int64(),
    "INTEGER": pl.Int32(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMP WITH TIME ZONE": pl.Datetime("us", "UTC"),
}


class SchemaError(ValueError):
    """A frame does not match its table's declared schema; the message names the column."""


@dataclass(frozen=True)
class TableSpec:
    """One table: ordered columns with polars dtypes, NOT NULL columns and the natural key."""

    name: str
    columns: dict[str, pl.DataType]
    sql_types: dict[str, str]
    not_null: frozenset[str]
    key: tuple[str, ...]

    @property
    def has_id(self) -> bool:
        return "id" in self.columns


def schema_sql() -> str:
    """The text of ``schema.sql``."""
    return resources.files("mqf_pipeline.storage").joinpath("schema.sql").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def table_specs() -> dict[str, TableSpec]:
    """Every declared table, by name."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(schema_sql())
        cols = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE database_name = 'memory' AND schema_name = 'main' ORDER BY table_name, column_index"
        ).fetchall()
        keys = con.execute(
            "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = 'memory' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        ).fetchall()
    finally:
        con.close()
    by_table: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, dtype, nullable in cols:
        by_table.setdefault(table, []).append((column, dtype, bool(nullable)))
    key_of: dict[str, tuple[str, ...]] = {}
    for table, kind, names in keys:
        # a multi-column UNIQUE / PRIMARY KEY is the natural key; a lone UNIQUE id-like column otherwise
        if table not in key_of or kind == "PRIMARY KEY" or len(names) > len(key_of[table]):
            key_of[table] = tuple(names)
    specs: dict[str, TableSpec] = {}
    for table, columns in by_table.items():
        unknown = [(c, t) for c, t, _ in columns if t not in _DUCKDB_TO_POLARS]
        if unknown:
            raise SchemaError(f"schema.sql: table {table!r} uses unsupported type(s) {unknown}")
        if table not in key_of:
            raise SchemaError(f"schema.sql: table {table!r} declares no natural key (UNIQUE or PRIMARY KEY)")
        key = key_of[table]
        specs[table] = TableSpec(
            name=table,
            columns={c: _DUCKDB_TO_POLARS[t] for c, t, _ in columns},
            sql_types={c: t for c, t, _ in columns},
            not_null=frozenset(c for c, _, nullable in columns if not nullable) | frozenset(key),
            key=key,
        )
    return specs


def table_spec(name: str) -> TableSpec:
    """The spec of table ``name``; a clear error names unknown tables."""
    specs = table_specs()
    if name not in specs:
        raise SchemaError(f"unknown table {name!r}; declared tables: {sorted(specs)}")
    return specs[name]


def stable_id(frame: pl.DataFrame, key: tuple[str, ...]) -> pl.Series:
    """A 63-bit id per row from the natural key, stable across runs, processes and versions."""
    joined = frame.select(
        pl.concat_str([pl.col(k).cast(pl.String).fill_null("\x00") for k in key], separator="\x1f")
    ).to_series()
    ids = [int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "big") >> 1 for v in joined]
    return pl.Series("id", ids, dtype=pl.Int64)


def conform(name: str, frame: pl.DataFrame, *, now: object | None = None) -> pl.DataFrame:
    """Validate ``frame`` against table ``name`` and return it in declared column order.

    Fills generated columns (``id`` from the natural key, ``created_at`` from ``now``) when
    absent. Raises :class:`SchemaError` naming the table and column on a missing column, an
    unexpected column, a wrong dtype, a null in a NOT NULL column, or a duplicated key.
    """
    spec = table_spec(name)
    extra = [c for c in frame.columns if c not in spec.columns]
    if extra:
        raise SchemaError(f"{name}: unexpected column(s) {extra}; declared: {list(spec.columns)}")
    if "id" in spec.columns and "id" not in frame.columns:
        frame = frame.with_columns(stable_id(frame, spec.key) if spec.key else pl.lit(None, pl.Int64))
    if "created_at" in spec.columns and "created_at" not in frame.columns:
        frame = frame.with_columns(pl.lit(now, dtype=spec.columns["created_at"]).alias("created_at"))
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {missing}")
    for column, dtype in spec.columns.items():
        got = frame.schema[column]
        if got == dtype:
            continue
        if got == pl.Null():
            frame = frame.with_columns(pl.col(column).cast(dtype))
            continue
        raise SchemaError(f"{name}: column {column!r} has dtype {got}, expected {dtype}")
    for column in sorted(spec.not_null):
        n_null = frame.get_column(column).null_count()
        if n_null:
            raise SchemaError(f"{name}: column {column!r} is NOT NULL but has {n_null} null value(s)")
    if spec.key and frame.height:
        dup = frame.group_by(list(spec.key)).len().filter(pl.col("len") > 1)
        if dup.height:
            first = dup.row(0, named=True)
            shown = {k: first[k] for k in spec.key}
            raise SchemaError(f"{name}: key {list(spec.key)} is duplicated, e.g. {shown} x{first['len']}")
    return frame.select(list(spec.columns))


def empty_frame(name: str) -> pl.DataFrame:
    """An empty frame with table ``name``'s schema."""
    return pl.DataFrame(schema=table_spec(name).columns)


def row_schema(name: str) -> dict[str, pl.DataType]:
    """Table ``name``'s columns a stage provides: all but the generated ones (``id``, ``created_at``)."""
    return {k: v for k, v in table_spec(name).columns.items() if k not in GENERATED_COLUMNS}
