"""A small, fast deployment for tests: its own configs and runtime under a temp directory."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import yaml

from mqf_pipeline.config import Settings, load_settings
from mqf_pipeline.stages.base import Stage, materialize
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.storage.lake import Lake

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def write_configs(root: Path, *, n_symbols: int = 20, min_history_rows: int = 10, **sections: dict[str, Any]) -> Path:
    """configs/*.yaml for a test deployment with its runtime under ``root / 'runtime'``."""
    config_dir = root / "configs"
    config_dir.mkdir(parents=True, exist_ok=True)
    base: dict[str, dict[str, Any]] = {
        "fund": {
            "mode": "simulated",
            "paths": {"runtime": str(root / "runtime")},
            "calendar": {"partitions_start": "2016-01-04"},
            "history": {"warm_up_sessions": 30, "min_history_rows": min_history_rows},
        },
        "simulator": {"n_symbols": n_symbols, "seed": 7, "epoch": "2022-01-03"},
        "quality": {},
        "providers": {},
        "universe": {},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    for name, values in base.items():
        (config_dir / f"{name}.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    return config_dir


def settings_for(config_dir: Path) -> Settings:
    return load_settings(config_dir)


def definitions_for(config_dir: Path) -> dg.Definitions:
    """The code location of a test deployment: partitions from its own settings, its own resources."""
    from assets.partitions import trading_day_partitions
    from mqf_pipeline.definitions import JOBS, build_assets, build_resources
    from mqf_pipeline.stages.plan import fund_inception

    partitions = trading_day_partitions(fund_inception(load_settings(config_dir)))
    return dg.Definitions(assets=build_assets(partitions), jobs=JOBS, resources=build_resources(str(config_dir)))


def run_market_data(
    config_dir: Path,
    start: dt.date,
    end: dt.date,
    instance: dg.DagsterInstance | None = None,
    job_name: str = "daily_cycle_job",
) -> dg.ExecuteInProcessResult:
    """Execute the daily cycle job over sessions start..end in one run (like a single-run backfill)."""
    defs = definitions_for(config_dir)
    job = defs.resolve_job_def(job_name)
    tags = (
        {"dagster/partition": start.isoformat()}
        if start == end
        else {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}
    )
    return job.execute_in_process(instance=instance or dg.DagsterInstance.ephemeral(), tags=tags, raise_on_error=False)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, list[dg.AssetMaterialization]]:
    out: dict[str, list[dg.AssetMaterialization]] = {}
    for mat in result.get_asset_materialization_events():
        m = mat.materialization
        out.setdefault(m.asset_key.to_user_string(), []).append(m)
    return out


def rerun_after_changing_later_data(
    settings: Settings,
    lake_copy: Path,
    stage: Stage,
    day: dt.date,
    table: str,
    change: Callable[[pl.DataFrame], pl.DataFrame],
) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    """Copy the deployment's lake to ``lake_copy``, apply ``change`` to every partition of ``table`` after ``day``,
    rematerialize ``day`` alone with ``stage``: per table the stage writes, its rows of ``day`` before and after
    (``id`` and ``created_at`` dropped). Equal pairs show a session alone equals the session in its range and
    that data after it moves nothing."""
    shutil.copytree(settings.lake_root, lake_copy)
    lake = Lake(str(lake_copy))
    volatile = ["id", "created_at"]
    before = {t: lake.read(t, [day]).drop(volatile, strict=False) for t in stage.WRITES}
    for p in [p for p in lake.partitions(table) if p > day.isoformat()]:
        lake.write(table, p, change(lake.read(table, [p])))
    materialize(stage, run_context(lake, settings), [day])
    return {t: (rows, lake.read(t, [day]).drop(volatile, strict=False)) for t, rows in before.items()}
