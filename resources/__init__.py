"""Dagster resources: the outside world (settings, storage, market data)."""

from resources.market_data import MarketDataResource
from resources.settings import SettingsResource
from resources.storage import StorageResource

__all__ = ["MarketDataResource", "SettingsResource", "StorageResource"]
