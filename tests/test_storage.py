"""schema.sql declares every seed table with the seeds' columns; the lake writes atomically and
validates frames; the catalog exposes one view per table."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

from mqf_pipeline.storage.catalog import refresh_catalog
from mqf_pipeline.storage.lake import Lake, content_hash
from mqf_pipeline.storage.schema import SchemaError, conform, stable_id, table_specs

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SEED_000_SUPPORTING = {
    "cycle_meta",
    "positions",
    "model_outputs",
    "features",
    "corporate_actions",
    "data_quality",
    "ingestion_audit",
    "provider_metrics",
    "backfill_failures",
    "trading_eligibility",
}
NOW = dt.datetime(2024, 1, 2, 21, 0, tzinfo=dt.UTC)


def _seed_tables() -> dict[str, list[str]]:
    """Column names of every CREATE TABLE in the seeds (the last declaration wins: appendix A)."""
    tables: dict[str, list[str]] = {}
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for name, body in re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+) \((.*?)\n\);", text, flags=re.S):
            cols = []
            for line in body.splitlines():
                token = re.split(r"[ (]", line.strip(), maxsplit=1)[0].rstrip(",")
                if token and token.upper() not in {"PRIMARY", "UNIQUE", "FOREIGN"} and not token.startswith("--"):
                    cols.append(token)
            tables[name] = cols
    return tables


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds not beside the checkout")
def test_every_seed_table_is_declared_with_its_columns():
    specs = table_specs()
    seed = _seed_tables()
    assert len(seed) >= 20
    for name, cols in seed.items():
        assert name in specs, f"seed table {name} is not declared in schema.sql"
        missing = [c for c in cols if c not in specs[name].columns]
        assert not missing, f"{name}: seed columns {missing} missing from schema.sql"
        assert list(specs[name].columns)[: len(cols)] == cols, f"{name}: seed columns out of order"
    assert set(specs) >= SEED_000_SUPPORTING


def test_every_table_has_a_natural_key():
    for name, spec in table_specs().items():
        assert spec.key, name
        assert set(spec.key) <= set(spec.columns), name


def _macro(value: float = 12.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [dt.date(2024, 1, 2)],
            "series_id": ["VIX"],
            "value": [value],
            "provider": ["simulated"],
            "raw_hash": ["a" * 64],
            "ingestion_timestamp": [NOW],
        }
    )


def test_conform_names_the_wrong_column():
    with pytest.raises(SchemaError, match=r"macro_series: column 'value' has dtype Int64, expected Float64"):
        conform("macro_series", _macro().with_columns(pl.col("value").cast(pl.Int64)))
    with pytest.raises(SchemaError, match=r"macro_series: missing column\(s\) \['provider'\]"):
        conform("macro_series", _macro().drop("provider"))
    with pytest.raises(SchemaError, match=r"unexpected column\(s\) \['extra'\]"):
        conform("macro_series", _macro().with_columns(pl.lit(1).alias("extra")))
    with pytest.raises(SchemaError, match=r"column 'series_id' is NOT NULL but has 1 null"):
        conform("macro_series", _macro().with_columns(pl.lit(None, pl.String).alias("series_id")))
    with pytest.raises(SchemaError, match=r"key \['date', 'series_id'\] is duplicated"):
        conform("macro_series", pl.concat([_macro(), _macro(13.0)]))


def test_stable_id_is_deterministic_and_distinct():
    frame = pl.DataFrame({"cycle_id": ["a", "a", "b"], "symbol": ["X", "Y", "X"]})
    ids = stable_id(frame, ("cycle_id", "symbol"))
    assert ids.to_list() == stable_id(frame, ("cycle_id", "symbol")).to_list()
    assert ids.n_unique() == 3 and (ids >= 0).all()


def test_write_is_atomic_and_idempotent(tmp_path):
    lake = Lake(str(tmp_path))
    first = lake.write("macro_series", "2024-01-02", _macro(), now=NOW)
    assert first.written and first.rows == 1
    later = _macro().with_columns(pl.lit(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)).alias("ingestion_timestamp"))
    again = lake.write("macro_series", "2024-01-02", later)
    assert not again.written and again.content_hash == first.content_hash  # write time is not content
    assert lake.read("macro_series").get_column("ingestion_timestamp").to_list() == [NOW]
    changed = lake.write("macro_series", "2024-01-02", _macro(13.0))
    assert changed.written and changed.content_hash != first.content_hash
    assert not list(tmp_path.rglob("*.tmp-*"))  # no temp files left behind


def test_failed_write_keeps_previous_partition(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write("macro_series", "2024-01-02", _macro(), now=NOW)
    with pytest.raises(SchemaError):
        lake.write("macro_series", "2024-01-02", _macro().with_columns(pl.col("value").cast(pl.String)))
    assert lake.read("macro_series").get_column("value").to_list() == [12.0]


def test_write_many_writes_empty_partitions_and_refuses_stray_rows(tmp_path):
    lake = Lake(str(tmp_path))
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    results = lake.write_many("macro_series", _macro(), days, now=NOW)
    assert [r.rows for r in results] == [1, 0]
    assert lake.partitions("macro_series") == ["2024-01-02", "2024-01-03"]
    with pytest.raises(ValueError, match="outside"):
        lake.write_many("macro_series", _macro(), [dt.date(2024, 1, 3)], now=NOW)


def test_content_hash_ignores_write_time_but_not_values():
    a = _macro()
    b = a.with_columns(pl.lit(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)).alias("ingestion_timestamp"))
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(_macro(12.000001))


def test_catalog_has_a_typed_view_per_table(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write("macro_series", "2024-01-02", _macro(), now=NOW)
    path = tmp_path / "mqf.duckdb"
    counts = refresh_catalog(lake, path)
    assert set(counts) == set(table_specs())
    assert counts["macro_series"] == 1 and counts["price_history"] == 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'price_history'"
            ).fetchall()
        )
    finally:
        con.close()
    assert types["date"] == "DATE" and types["volume"] == "BIGINT" and types["close"] == "DOUBLE"
