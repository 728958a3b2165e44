"""Build the provider router for a deployment from its settings."""

from __future__ import annotations

import logging

from mqf_pipeline.config import Settings
from mqf_pipeline.market.providers.base import MarketDataProvider
from mqf_pipeline.market.router import DataRouter

logger = logging.getLogger(__name__)


def build_provider(name: str, settings: Settings) -> MarketDataProvider:
    """One provider by name, configured from settings (keys come from the environment)."""
    p = settings.providers
    if name == "simulated":
        from mqf_pipeline.market.providers.simulated import SimulatedProvider

        return SimulatedProvider(settings.simulator)
    if name == "files":
        from mqf_pipeline.market.providers.files import FilesProvider

        if not p.files_root:
            raise ValueError("provider 'files' needs files_root in configs/providers.yaml")
        return FilesProvider(p.files_root)
    if name == "yahoo":
        from mqf_pipeline.market.providers.yahoo import YahooProvider

        return YahooProvider()
    if name == "alpaca":
        from mqf_pipeline.market.providers.alpaca import AlpacaProvider

        return AlpacaProvider(url_override=p.alpaca_url_override, feed=p.alpaca_feed)
    if name == "fred":
        from mqf_pipeline.market.providers.fred import FredProvider

        return FredProvider(root_url=p.fred_root_url)
    raise ValueError(f"unknown provider {name!r}")


def build_router(settings: Settings) -> DataRouter:
    """The router over the mode's bar and macro providers, in configured priority order.

    Bars, corporate actions, fundamentals and headlines are asked only of the ``priority`` list, macro
    series only of the ``macro_priority`` list: a provider in one list never serves the other's data (in a
    files run the simulator cannot fill in a symbol or a macro series the files lack).
    """
    mode = settings.fund.mode
    bar_names = list(settings.providers.priority.get(mode, []))
    macro_names = list(settings.providers.macro_priority.get(mode, []))
    if not settings.providers.files_root:
        for names in (bar_names, macro_names):
            if "files" in names:
                # the shipped paper/live lists end with files as the user's own fallback: unset, it is skipped
                logger.warning("provider 'files' is listed for mode %s but files_root is not set: skipped", mode.value)
                names.remove("files")
    names = list(dict.fromkeys([*bar_names, *macro_names]))
    if not bar_names:
        raise ValueError(f"no bar providers configured for mode {mode.value!r} (configs/providers.yaml priority)")
    routes = {kind: tuple(bar_names) for kind in ("bars", "corporate_actions", "fundamentals", "headlines")}
    routes["macro"] = tuple(macro_names)
    router_settings = settings.providers.router.model_copy(update={"priority": tuple(names), "routes": routes})
    return DataRouter([build_provider(n, settings) for n in names], router_settings, rng_seed=settings.simulator.seed)
