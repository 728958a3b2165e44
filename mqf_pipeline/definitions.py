"""The Dagster code location: one ``Definitions`` composed from assets, jobs and resources.

The only module of ``mqf_pipeline`` that imports Dagster; it holds no logic.
"""

from __future__ import annotations

import dagster as dg

from assets import attribution, learning, market_data, signals, slippage, trading_cycle
from assets.catalog import duckdb_catalog
from assets.partitions import trading_day_partitions
from assets.warm_up import fund_history
from jobs import (
    catalog_job,
    child_orders_job,
    daily_attribution_job,
    daily_cycle_job,
    market_data_job,
    research_cycle_job,
    slippage_refit_job,
    warm_up_job,
)
from jobs.schedules import SCHEDULES
from mqf_pipeline.config import load_settings
from mqf_pipeline.stages.plan import fund_inception
from resources import BrokerResource, KillSwitchResource, MarketDataResource, SettingsResource, StorageResource
from sensors import dead_run_sensor, kill_switch_sensor, slippage_refit_sensor


def build_resources(config_dir: str = "") -> dict[str, dg.ConfigurableResource]:
    """Resources of a deployment whose configs live in ``config_dir`` (empty: $MQF_CONFIG_DIR or ./configs)."""
    settings = SettingsResource(config_dir=config_dir)
    return {
        "settings": settings,
        "storage": StorageResource(settings=settings),
        "market_data": MarketDataResource(settings=settings),
        "kill_switch": KillSwitchResource(settings=settings),
        "broker": BrokerResource(settings=settings),
    }


def build_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """Every asset, in pipeline order, over the trading-day partitions ``partitions_def``."""
    return [
        fund_history,
        *market_data.build(partitions_def),
        *signals.build(partitions_def),
        *learning.build(partitions_def),
        *trading_cycle.build(partitions_def),
        *slippage.build(partitions_def),
        *attribution.build(partitions_def),
        duckdb_catalog,
    ]


# the fund's inception (its first daily partition): from configs/fund.yaml, or recorded by the first run
TRADING_DAYS = trading_day_partitions(fund_inception(load_settings()))
ASSETS = build_assets(TRADING_DAYS)
JOBS = [
    warm_up_job,
    daily_cycle_job,
    research_cycle_job,
    market_data_job,
    catalog_job,
    child_orders_job,
    daily_attribution_job,
    slippage_refit_job,
]

SENSORS = [kill_switch_sensor, dead_run_sensor, slippage_refit_sensor]

defs = dg.Definitions(assets=ASSETS, jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS, resources=build_resources())
