"""Market-data resource: the provider router for this deployment's mode."""

import dagster as dg
from pydantic import PrivateAttr

from mqf_pipeline.market.factory import build_router
from mqf_pipeline.market.router import DataRouter
from resources.settings import SettingsResource


class MarketDataResource(dg.ConfigurableResource):
    """Builds the router once per process from settings (providers, keys from the environment)."""

    settings: SettingsResource
    _router: DataRouter | None = PrivateAttr(default=None)

    def router(self) -> DataRouter:
        if self._router is None:
            self._router = build_router(self.settings.get())
        return self._router
