"""A small, fast deployment for tests: its own configs and runtime under a temp directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from mqf_pipeline.config import Settings, load_settings

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
