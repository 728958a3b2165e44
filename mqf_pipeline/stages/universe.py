"""The traded universe: symbols and sectors for the configured mode."""

from __future__ import annotations

import polars as pl

from mqf_pipeline.config import Settings
from mqf_pipeline.modes import Mode


def universe_frame(settings: Settings) -> pl.DataFrame:
    """Symbols (sorted) with their sector: the simulator's in simulated mode unless symbols are listed."""
    if settings.fund.mode is Mode.SIMULATED and not settings.universe.symbols:
        from mqf_pipeline.market.sim import MarketSimulator

        return MarketSimulator(settings.simulator).universe().select("symbol", "sector").sort("symbol")
    symbols = settings.universe.symbols
    sectors = settings.universe.sectors
    return pl.DataFrame(
        {"symbol": symbols, "sector": [sectors.get(s, "UNKNOWN") for s in symbols]},
        schema={"symbol": pl.String, "sector": pl.String},
    ).sort("symbol")
