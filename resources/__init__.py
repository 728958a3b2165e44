"""Dagster resources: the outside world (settings, storage, market data, kill switch)."""

from resources.kill_switch import KillSwitchResource
from resources.market_data import MarketDataResource
from resources.settings import SettingsResource
from resources.storage import StorageResource

__all__ = ["KillSwitchResource", "MarketDataResource", "SettingsResource", "StorageResource"]
