"""The DuckDB catalog asset: views named after the seed tables over the Parquet lake."""

import dagster as dg
import polars as pl

from assets.common import md_table
from mqf_pipeline.stages.registry import asset_key, written_tables
from mqf_pipeline.storage.catalog import refresh_catalog
from resources import StorageResource

CATALOG_VERSION = "1"


@dg.asset(
    deps=sorted({asset_key(t) for t in written_tables()}),
    group_name="catalog",
    code_version=CATALOG_VERSION,
    pool="duckdb_writer",
    kinds={"duckdb"},
)
def duckdb_catalog(storage: StorageResource) -> dg.MaterializeResult:
    """Create or replace one view per declared table in runtime/mqf.duckdb (pool duckdb_writer, limit 1)."""
    lake = storage.lake()
    leftovers = lake.remove_stale_temp_files()  # what killed writers left: never a partition, only clutter
    counts = refresh_catalog(lake, storage.catalog_path())
    frame = pl.DataFrame({"table": list(counts), "rows": list(counts.values())})
    return dg.MaterializeResult(
        metadata={
            "path": str(storage.catalog_path()),
            "tables": len(counts),
            "stale_temp_files_removed": len(leftovers),
            "dagster/row_count": sum(counts.values()),
            "row_counts": dg.MetadataValue.md(md_table(frame, max_rows=len(counts))),
        }
    )
