"""The Dagster code location: one ``Definitions`` composed from assets, jobs and resources.

The only module of ``mqf_pipeline`` that imports Dagster; it holds no logic.
"""

from __future__ import annotations

import dagster as dg

from assets import market_data, signals, trading_cycle
from assets.catalog import duckdb_catalog
from assets.partitions import trading_day_partitions
from jobs import catalog_job, child_orders_job, daily_cycle_job, market_data_job, research_cycle_job
from jobs.schedules import SCHEDULES
from mqf_pipeline.config import load_settings
from resources import BrokerResource, KillSwitchResource, MarketDataResource, SettingsResource, StorageResource
from sensors import kill_switch_sensor


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
        *market_data.build(partitions_def),
        *signals.build(partitions_def),
        *trading_cycle.build(partitions_def),
        duckdb_catalog,
    ]


TRADING_DAYS = trading_day_partitions(load_settings().fund.calendar.partitions_start)
ASSETS = build_assets(TRADING_DAYS)
JOBS = [daily_cycle_job, research_cycle_job, market_data_job, catalog_job, child_orders_job]

SENSORS = [kill_switch_sensor]

defs = dg.Definitions(assets=ASSETS, jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS, resources=build_resources())
