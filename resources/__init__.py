"""Dagster resources: the outside world (settings, storage, market data, kill switch)."""

from resources.broker import BrokerResource
from resources.kill_switch import KillSwitchResource
from resources.market_data import MarketDataResource
from resources.settings import SettingsResource
from resources.storage import StorageResource

__all__ = ["BrokerResource", "KillSwitchResource", "MarketDataResource", "SettingsResource", "StorageResource"]
