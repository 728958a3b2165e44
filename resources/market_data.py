"""Market-data resource: the provider router for this deployment's mode."""

import dagster as dg
from pydantic import PrivateAttr

from mqf_pipeline.market.metrics_store import load_provider_metrics
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.stages.providers import build_router
from mqf_pipeline.storage.lake import Lake
from resources.settings import SettingsResource


class MarketDataResource(dg.ConfigurableResource):
    """Builds the router once per process from settings (providers, keys from the environment),
    starting its bandit and counters from the newest ``provider_metrics`` snapshot."""

    settings: SettingsResource
    _router: DataRouter | None = PrivateAttr(default=None)

    def router(self) -> DataRouter:
        if self._router is None:
            settings = self.settings.get()
            router = build_router(settings)
            router.load_metrics(load_provider_metrics(Lake(settings.lake_root)))
            self._router = router
        return self._router
