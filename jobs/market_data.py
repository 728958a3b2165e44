"""Asset jobs for the data layer."""

from __future__ import annotations

import dagster as dg

market_data_job = dg.define_asset_job(
    "market_data_job",
    selection=dg.AssetSelection.groups("market_data", "signals"),
    description="Ingest bars, corporate actions, fundamentals, headlines and macro series, score quality, "
    "gate eligibility, then compute features, regimes and agent signals.",
)

catalog_job = dg.define_asset_job(
    "catalog_job",
    selection=dg.AssetSelection.assets("duckdb_catalog"),
    description="Refresh the DuckDB catalog views over the lake (pool duckdb_writer).",
)
