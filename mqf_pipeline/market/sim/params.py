"""Calibration of the market simulator: one frozen, hashable pydantic model.

Units: returns and volatilities are decimal (0.01 = 1%); ``*_annual`` values are annualised
with 252 sessions a year; durations are in sessions; money is USD.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The four risk regimes of seed 000 §7.2, in the simulator's state order.
REGIMES: tuple[str, ...] = ("BULL_QUIET", "BULL_VOLATILE", "BEAR_QUIET", "BEAR_CRISIS")
#: GICS-like sector names; a universe with ``n_sectors`` < 11 uses the first ones.
SECTORS: tuple[str, ...] = (
    "Information Technology",
    "Health Care",
    "Financials",
    "Consumer Discretionary",
    "Industrials",
    "Communication Services",
    "Consumer Staples",
    "Energy",
    "Utilities",
    "Real Estate",
    "Materials",
)
#: Style factors with per-symbol loadings (besides the market and the sectors).
STYLE_FACTORS: tuple[str, ...] = ("momentum", "value", "size", "low_volatility", "liquidity")
SESSIONS_PER_YEAR = 252


class SimulatorParams(BaseModel):
    """Everything that determines a simulated market; equal params give identical data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(20240101, ge=0, description="Root seed of every random stream.")
    n_symbols: int = Field(500, ge=2, le=10_000, description="Universe size; symbols are S0000..S9999.")
    n_sectors: int = Field(11, ge=1, le=len(SECTORS), description="Number of GICS-like sectors.")
    epoch: dt.date = Field(dt.date(2006, 1, 3), description="First simulated session (or the next one).")

    # regimes (order: REGIMES)
    initial_regime: str = Field("BULL_QUIET", description="Regime of the first session.")
    regime_vol_annual: tuple[float, float, float, float] = Field(
        (0.10, 0.25, 0.13, 0.45), description="Market-factor volatility per regime, annualised decimal."
    )
    regime_drift_annual: tuple[float, float, float, float] = Field(
        (0.20, 0.10, -0.12, -0.45),
        description="Market-factor expected return per regime, annualised decimal.",
    )
    regime_duration_sessions: tuple[float, float, float, float] = Field(
        (150.0, 60.0, 70.0, 40.0), description="Expected stay in each regime, sessions (geometric)."
    )
    regime_exit_mix: tuple[tuple[float, float, float, float], ...] = Field(
        (
            (0.0, 0.72, 0.25, 0.03),
            (0.55, 0.0, 0.20, 0.25),
            (0.55, 0.25, 0.0, 0.20),
            (0.05, 0.50, 0.45, 0.0),
        ),
        description="Row r: where regime r goes when it ends (zero diagonal, rows sum to 1).",
    )

    # shocks and volatility clustering
    student_t_df: float = Field(5.0, gt=4.0, description="Degrees of freedom of the unit-variance t shocks.")
    market_garch: tuple[float, float] = Field(
        (0.03, 0.90), description="(alpha, beta) of the unit-mean GARCH(1,1) multiplier on market variance."
    )
    idio_garch: tuple[float, float] = Field(
        (0.07, 0.90),
        description="(alpha, beta) of the unit-mean GARCH(1,1) multiplier on idiosyncratic variance.",
    )
    factor_vol_annual: tuple[float, float, float, float, float] = Field(
        (0.07, 0.05, 0.05, 0.05, 0.03),
        description="Volatility of a unit loading on each style factor (STYLE_FACTORS order), annualised.",
    )
    sector_vol_annual: float = Field(0.12, gt=0, description="Sector factor volatility, annualised.")
    idio_vol_median_annual: float = Field(0.21, gt=0, description="Median idiosyncratic volatility, annualised.")
    regime_scaling_reference: float = Field(
        0.16, gt=0, description="Market vol (annualised) at which sector/style/idio vols equal their base."
    )

    # cross-section
    market_cap_median_usd: float = Field(5e9, gt=0, description="Median market cap at epoch, USD.")
    market_cap_log_sd: float = Field(1.2, gt=0, description="Std dev of log market cap at epoch.")
    price_median_usd: float = Field(45.0, gt=0, description="Median share price at epoch, USD.")
    price_range_usd: tuple[float, float] = Field(
        (10.0, 200.0), description="Open interval holding all epoch prices, USD."
    )
    turnover_median: float = Field(0.007, gt=0, description="Median daily volume / shares outstanding.")
    dividend_payer_fraction: float = Field(0.55, ge=0, le=1, description="Share of dividend payers.")
    split_threshold_usd: float = Field(450.0, gt=0, description="Median raw price that triggers a 2:1/3:1 split.")
    reverse_split_below_usd: float = Field(1.0, gt=0, description="Raw price under which a 1:10 reverse split follows.")

    # planted alpha: alpha = ic x (unit-variance rank score) x (cross-sectional RMS residual daily vol).
    # Against raw next-session returns the measured daily rank IC of each signal alone is ~0.6x ic
    # for momentum and value (the two are negatively correlated, as in real markets) and ~1x for news.
    ic_momentum: float = Field(0.036, ge=0, description="Planted IC of 12-1 momentum (measured ~0.022).")
    ic_value: float = Field(0.036, ge=0, description="Planted IC of book-to-price (measured ~0.021).")
    ic_news: float = Field(0.03, ge=0, description="Planted IC of news tone over the cross-section (~0.029).")
    news_rate: float = Field(
        0.16, gt=0, lt=1, description="Mean probability of news per symbol-session (more for big caps)."
    )
    news_jump: float = Field(1.0, ge=0, description="Same-day move per unit tone, in residual daily sigmas.")

    # macro
    short_rate_initial: float = Field(0.043, ge=0, le=0.08, description="Short rate at epoch, decimal annual.")
    short_rate_targets: tuple[float, float, float, float] = Field(
        (0.045, 0.035, 0.02, 0.003), description="Long-run short rate per regime, decimal annual."
    )

    @model_validator(mode="after")
    def _check(self) -> SimulatorParams:
        if self.initial_regime not in REGIMES:
            raise ValueError(f"initial_regime must be one of {REGIMES}, got {self.initial_regime!r}")
        if len(self.regime_exit_mix) != 4 or any(len(row) != 4 for row in self.regime_exit_mix):
            raise ValueError("regime_exit_mix must be 4 x 4")
        for r, row in enumerate(self.regime_exit_mix):
            if row[r] != 0 or min(row) < 0 or abs(sum(row) - 1) > 1e-9:
                raise ValueError(f"regime_exit_mix row {r} must have a zero diagonal, be >= 0 and sum to 1")
        if min(self.regime_duration_sessions) <= 1:
            raise ValueError("regime_duration_sessions must all exceed 1")
        if min(self.regime_vol_annual) <= 0:
            raise ValueError("regime_vol_annual must be positive")
        for name, (a, b) in (("market_garch", self.market_garch), ("idio_garch", self.idio_garch)):
            if a < 0 or b < 0 or a + b >= 1:
                raise ValueError(f"{name} needs alpha, beta >= 0 and alpha + beta < 1")
        lo, hi = self.price_range_usd
        if not 0 < lo < hi:
            raise ValueError("price_range_usd must be (low, high) with 0 < low < high")
        if self.n_symbols < self.n_sectors:
            raise ValueError("n_symbols must be at least n_sectors")
        return self
