"""Factor attribution and PnL explainability (seed 002 Part 1): pure functions over polars frames.

Flow (each step uses data dated at or before its row's date only):

1. :func:`characteristics` (bars, fundamentals, splits) -> per (symbol, session) returns and
   characteristics at the close; :func:`factor_returns` -> ``factor_returns`` rows (market, five styles,
   ``sector:<name>``) and the diagnostics of omitted (date, factor) pairs.
2. :func:`exposures` -> ``security_factor_exposures`` rows (rolling OLS with Newey-West errors; the
   numpy kernel is :func:`rolling_ols`).
3. :func:`attribute_day` -> one ``portfolio_attribution`` row, per-symbol contributions and diagnostics;
   :func:`carino_link` links days into a period; :func:`agent_pnl` -> ``agent_pnl`` rows.

Parameters are the frozen :class:`FactorParams`, :class:`ExposureParams` and :class:`AttributionParams`.
Units: decimal returns (0.01 = 1%), daily unless named annual.
"""

from mqf_pipeline.attribution.agent_pnl import AgentPnl, agent_pnl
from mqf_pipeline.attribution.characteristics import CHARACTERISTICS, characteristics, returns_grid
from mqf_pipeline.attribution.decomposition import PARTS, DayAttribution, attribute_day, carino_factors, carino_link
from mqf_pipeline.attribution.exposures import exposures
from mqf_pipeline.attribution.factors import (
    FACTOR_RETURN_COLUMNS,
    FactorReturns,
    factor_returns,
    factor_returns_from_characteristics,
)
from mqf_pipeline.attribution.params import (
    EXPOSURE_FACTORS,
    MARKET,
    SECTOR,
    SECTOR_PREFIX,
    STYLES,
    AttributionParams,
    ExposureParams,
    FactorParams,
    newey_west_lags,
)
from mqf_pipeline.attribution.rolling import RollingFit, rolling_ols

__all__ = [
    "CHARACTERISTICS",
    "EXPOSURE_FACTORS",
    "FACTOR_RETURN_COLUMNS",
    "MARKET",
    "PARTS",
    "SECTOR",
    "SECTOR_PREFIX",
    "STYLES",
    "AgentPnl",
    "AttributionParams",
    "DayAttribution",
    "ExposureParams",
    "FactorParams",
    "FactorReturns",
    "RollingFit",
    "agent_pnl",
    "attribute_day",
    "carino_factors",
    "carino_link",
    "characteristics",
    "exposures",
    "factor_returns",
    "factor_returns_from_characteristics",
    "newey_west_lags",
    "returns_grid",
    "rolling_ols",
]
