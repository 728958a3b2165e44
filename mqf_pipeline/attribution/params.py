"""Frozen parameter objects and names of the attribution package (seed 002 Part 1).

Units everywhere: returns are decimal (0.01 = 1%) and daily unless a name says ``annual``; windows
and lags are counted in sessions of the input's calendar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

#: The market factor's name (``factor_returns.factor_name``, ``beta_market``).
MARKET = "market"
#: The five style factors, in the order of ``security_factor_exposures``' beta columns.
STYLES: tuple[str, ...] = ("momentum", "value", "volatility", "size", "liquidity")
#: Regressors shared by every symbol in the exposure regression (the intercept comes first, as ``alpha``).
EXPOSURE_FACTORS: tuple[str, ...] = (MARKET, *STYLES)
#: Prefix of a sector factor's name: ``sector:<sector name>``.
SECTOR_PREFIX = "sector:"
#: The own-sector regressor's short name (column ``beta_sector``).
SECTOR = "sector"


def newey_west_lags(n_obs: int) -> int:
    """The Newey-West (1994) rule ``L = floor(4 (T / 100)^(2/9))``; 4 at T = 252."""
    if n_obs < 1:
        raise ValueError(f"n_obs must be >= 1, got {n_obs}")
    return math.floor(4.0 * (n_obs / 100.0) ** (2.0 / 9.0))


@dataclass(frozen=True)
class FactorParams:
    """How the daily long-short factor returns are built (see :mod:`.factors`).

    ``min_names``: fewest names with a characteristic and a return for a cross-section (else the row is
    omitted and a diagnostic given); ``quantile``: share of the ranked names in each leg (0.3: top 30%
    long, bottom 30% short); momentum is the return from ``momentum_lookback`` to ``momentum_skip``
    sessions before the measurement date; ``vol_window``: sessions of the realized-volatility estimate;
    liquidity is mean volume over ``liquidity_window`` sessions over mean volume (ADV) over ``adv_window``
    sessions; ``market_weighting``: ``cap`` (market cap at the previous close) or ``equal``;
    ``size_measure``: ``market_cap`` (needs reported shares) or ``dollar_volume`` (mean close x volume
    over ``adv_window``, the proxy when no shares are known); ``min_sector_names``: fewest names in a
    sector for its factor.
    """

    min_names: int = 10
    quantile: float = 0.3
    momentum_lookback: int = 252
    momentum_skip: int = 21
    vol_window: int = 63
    liquidity_window: int = 5
    adv_window: int = 63
    market_weighting: Literal["cap", "equal"] = "cap"
    size_measure: Literal["market_cap", "dollar_volume"] = "market_cap"
    min_sector_names: int = 3

    def __post_init__(self) -> None:
        if self.min_names < 3:
            raise ValueError(f"min_names must be >= 3 (a regression needs n - 2 > 0), got {self.min_names}")
        if not 0.0 < self.quantile <= 0.5:
            raise ValueError(f"quantile must be in (0, 0.5], got {self.quantile}")
        if not 0 < self.momentum_skip < self.momentum_lookback:
            raise ValueError("need 0 < momentum_skip < momentum_lookback")
        if self.vol_window < 2 or self.liquidity_window < 1 or self.adv_window < self.liquidity_window:
            raise ValueError("need vol_window >= 2 and 1 <= liquidity_window <= adv_window")
        if self.market_weighting not in ("cap", "equal"):
            raise ValueError(f"market_weighting must be 'cap' or 'equal', got {self.market_weighting!r}")
        if self.size_measure not in ("market_cap", "dollar_volume"):
            raise ValueError(f"size_measure must be 'market_cap' or 'dollar_volume', got {self.size_measure!r}")
        if self.min_sector_names < 2:
            raise ValueError(f"min_sector_names must be >= 2, got {self.min_sector_names}")


@dataclass(frozen=True)
class ExposureParams:
    """Rolling time-series regressions of each symbol's return on the factor returns (:mod:`.exposures`).

    ``window``: sessions per regression (the row dated t uses sessions t - window + 1 .. t); ``min_obs``:
    fewest valid observations in a window (None: the whole window); ``hac_lags``: Newey-West lags (None:
    :func:`newey_west_lags` of ``window``); ``hac``: compute HAC standard errors; ``include_sector``: add
    the symbol's own sector factor as a regressor (``beta_sector``); ``singular_tol``: a regressor whose
    within-window variance is below ``singular_tol`` x its mean square is constant, and one with
    ``1 - R^2`` on the other regressors below ``singular_tol`` is collinear (the window is then null).
    """

    window: int = 252
    min_obs: int | None = None
    hac_lags: int | None = None
    hac: bool = True
    include_sector: bool = True
    singular_tol: float = 1e-10

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"window must be >= 3, got {self.window}")
        if self.min_obs is not None and not 3 <= self.min_obs <= self.window:
            raise ValueError(f"min_obs must be in [3, window], got {self.min_obs}")
        if self.hac_lags is not None and not 0 <= self.hac_lags < self.window:
            raise ValueError(f"hac_lags must be in [0, window), got {self.hac_lags}")
        if not 0.0 < self.singular_tol < 1.0:
            raise ValueError(f"singular_tol must be in (0, 1), got {self.singular_tol}")

    @property
    def effective_min_obs(self) -> int:
        return self.window if self.min_obs is None else self.min_obs

    @property
    def effective_lags(self) -> int:
        return newey_west_lags(self.window) if self.hac_lags is None else self.hac_lags


@dataclass(frozen=True)
class AttributionParams:
    """Portfolio risk statistics of the daily attribution (:mod:`.decomposition`).

    ``risk_window``: sessions (ending at the attributed day, inclusive) over which the held weights'
    volatility, tracking error and information ratio are measured; ``periods_per_year``: annualisation
    (sqrt for volatilities, linear for mean returns).
    """

    risk_window: int = 63
    periods_per_year: int = 252

    def __post_init__(self) -> None:
        if self.risk_window < 2:
            raise ValueError(f"risk_window must be >= 2, got {self.risk_window}")
        if self.periods_per_year < 1:
            raise ValueError(f"periods_per_year must be >= 1, got {self.periods_per_year}")
