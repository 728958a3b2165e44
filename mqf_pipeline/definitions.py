"""The Dagster code location: one ``Definitions`` composed from assets, jobs and resources.

The only module of ``mqf_pipeline`` that imports Dagster; it holds no logic.
"""

from __future__ import annotations

import dagster as dg

from assets.catalog import duckdb_catalog
from assets.decisions import decide_and_check_risk
from assets.execution import execute_orders
from assets.market_data import data_quality, ingest_market_data, macro_series, trading_eligibility
from assets.portfolio import optimize_portfolio
from assets.signals import agent_signals, features, regime
from jobs import catalog_job, daily_cycle_job, market_data_job, portfolio_job
from jobs.schedules import SCHEDULES
from resources import BrokerResource, KillSwitchResource, MarketDataResource, SettingsResource, StorageResource
from sensors import emergency_rebalance_sensor, kill_switch_sensor


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


ASSETS = [
    ingest_market_data,
    macro_series,
    data_quality,
    trading_eligibility,
    features,
    regime,
    agent_signals,
    decide_and_check_risk,
    optimize_portfolio,
    execute_orders,
    duckdb_catalog,
]
JOBS = [daily_cycle_job, market_data_job, catalog_job, portfolio_job]

SENSORS = [kill_switch_sensor, emergency_rebalance_sensor]

defs = dg.Definitions(assets=ASSETS, jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS, resources=build_resources())
