"""Persist the router's provider metrics and bandit state as the ``provider_metrics`` table.

Each ingesting step writes one snapshot (cumulative counters and Beta posteriors) to
``provider_metrics/<run_id>-<step>.parquet``; the next router starts from the newest snapshot
per (provider, capability). Concurrent runs each continue from the last snapshot written
before they started, so their counts do not add up across parallel runs: the bandit state is
a running estimate, not a ledger (ingestion_audit is the ledger).
"""

from __future__ import annotations

import polars as pl

from mqf_pipeline.market.bandit import METRICS_SCHEMA
from mqf_pipeline.storage.lake import Lake, WriteResult

TABLE = "provider_metrics"


def save_provider_metrics(lake: Lake, metrics: pl.DataFrame, run_id: str, step: str) -> WriteResult | None:
    """Write the router's metrics frame as this step's snapshot; None when it holds no arm."""
    if metrics.height == 0:
        return None
    frame = metrics.with_columns(pl.lit(run_id).alias("run_id"), pl.lit(step).alias("source_step"))
    return lake.write(TABLE, f"{run_id}-{step}", frame)


def load_provider_metrics(lake: Lake) -> pl.DataFrame:
    """The newest snapshot row per (provider, capability), in the router's metrics schema."""
    stored = lake.read(TABLE)
    if stored.height == 0:
        return pl.DataFrame(schema=METRICS_SCHEMA)
    latest = stored.sort("updated_at").group_by("provider", "capability").last()
    return latest.select(list(METRICS_SCHEMA)).sort("capability", "provider")
