"""The built-in market simulator (re-export of :mod:`mqf_pipeline.market.sim`)."""

from mqf_pipeline.market.sim import (
    ALPHA_COLUMNS,
    REGIMES,
    SECTORS,
    STYLE_FACTORS,
    MarketSimulator,
    SimulatorParams,
    SimulatorTruth,
)

__all__ = [
    "ALPHA_COLUMNS",
    "REGIMES",
    "SECTORS",
    "STYLE_FACTORS",
    "MarketSimulator",
    "SimulatorParams",
    "SimulatorTruth",
]
