"""configs/risk.yaml: risk measurement, the seed 000 section 7.4 limits and the book's position rules, the
meta-brain and the circuit breakers."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mqf_pipeline.config.base import Section
from mqf_pipeline.risk.book import VarModel


class VarSettings(Section):
    """How VaR/CVaR are measured (seed 000 section 7.3): 1-day, on the last ``window_sessions`` returns.

    ``model`` picks the VaR the "var_95" limit and the breakers see: ``fhs_evt`` (default; conditional,
    EWMA-filtered historical simulation with a GPD tail, passes Kupiec and Christoffersen at 95% and 99% in
    bench/var_calibration.py) or ``hybrid`` (the seed's unconditional 60/40 VaR, under-covers at 99%)."""

    level: float = Field(0.95, gt=0.5, lt=1.0, description="VaR/CVaR confidence level")
    window_sessions: int = Field(252, ge=60, description="sessions of returns behind VaR/CVaR")
    hist_weight: float = Field(0.6, ge=0.0, le=1.0, description="hybrid VaR: historical share (rest parametric)")
    evt_threshold_quantile: float = Field(0.90, gt=0.5, lt=1.0, description="GPD peaks-over-threshold quantile")
    vol_window_sessions: int = Field(63, ge=20, description="sessions behind the book's ex-ante volatility")
    model: VarModel = Field(
        "fhs_evt", description="VaR for the var_95 limit and breakers: fhs_evt (conditional) | hybrid (seed)"
    )


class LimitsSettings(Section):
    """The book's limits, one home for every cap the risk engine, the meta-brain and the optimizer share.

    The seed 000 section 7.4 table (values as fractions of NAV; the actions SCALE / REJECT are the seed's):
    ``max_gross_leverage`` to ``correlation_shock``; the gross and sector caps are also the optimizer's.
    The position rules (seed 000 section 8.2), not checked by the 7.4 table: ``single_name`` (the
    meta-brain's ``max_position`` and the optimizer's and allocators' single-name cap) and ``allow_shorts``.
    """

    max_gross_leverage: float = Field(1.0, gt=0.0, description="sum |w| (SCALE); also the optimizer's gross cap")
    max_drawdown: float = Field(0.18, gt=0.0, lt=1.0, description="peak-to-trough NAV loss (REJECT)")
    var_95: float = Field(0.04, gt=0.0, description="1-day 95% VaR (SCALE)")
    cvar_95: float = Field(0.06, gt=0.0, description="1-day 95% CVaR (SCALE)")
    stress_loss: float = Field(0.25, gt=0.0, description="worst historical stress scenario loss (REJECT)")
    sector_exposure: float = Field(
        0.15, gt=0.0, le=1.0, description="gross exposure per sector (SCALE); also the optimizer's sector cap"
    )
    correlation_shock: float = Field(0.70, gt=0.0, le=1.0, description="average pairwise correlation (SCALE)")
    single_name: float = Field(
        0.10, gt=0.0, le=1.0, description="max |weight| of one name: the meta-brain's targets and the optimizer's cap"
    )
    allow_shorts: bool = Field(False, description="short positions, for the meta-brain and the optimizer (seed: off)")

    #: The fields that are position rules, not rows of the seed 000 section 7.4 limits table.
    POSITION_RULES: ClassVar[tuple[str, ...]] = ("single_name", "allow_shorts")

    def table_values(self) -> dict[str, float]:
        """The seed 000 section 7.4 limits table: every limit's value by name (the position rules left out)."""
        return self.model_dump(exclude=set(self.POSITION_RULES))


class MetaBrainSettings(Section):
    """Seed 000 sections 3.1 and 6: ensemble, disagreement penalty, Kelly and the decision rules."""

    beta: float = Field(0.5, ge=0.0, description="disagreement penalty strength (on standardised views)")
    gamma: float = Field(0.3, gt=0.0, le=1.0, description="fractional Kelly factor")
    risk_free_annual: float = Field(0.02, ge=0.0, lt=1.0, description="annual risk-free rate (decimal)")
    periods_per_year: int = Field(252, ge=1, description="sessions per year (risk-free per period)")
    z_entry: float = Field(1.0, ge=0.0, description="robust z needed to open or increase a position")
    min_trade: float = Field(0.0025, ge=0.0, description="smallest weight change worth an order")
    cost_bps: float = Field(10.0, ge=0.0, description="round-trip cost the expected edge must beat (bps)")
    cost_horizon_days: int = Field(21, ge=1, description="sessions over which the edge must beat the cost")
    max_marginal_cvar: float = Field(0.01, gt=0.0, description="per-position component CVaR limit (fraction of NAV)")
    stop_atr_multiple: float = Field(2.0, gt=0.0, description="stop loss distance in ATR(14)")


class BreakerSettings(Section):
    """Seed 000 sections 7.5-7.6: circuit breakers and the recovery protocol after a freeze."""

    vol_target_ann: float = Field(
        0.10, gt=0.0, description="the book's annualised volatility target; also the volatility_target allocator's"
    )
    tier2_var_multiple: float = Field(1.5, gt=1.0, description="Tier 2 when VaR > this x the VaR limit")
    tier2_vol_multiple: float = Field(2.0, gt=1.0, description="Tier 2 when vol > this x target")
    tier3_vol_multiple: float = Field(1.0, gt=0.0, description="Tier 3 needs drawdown > limit and vol > this x target")
    kill_drawdown: float = Field(0.25, gt=0.0, lt=1.0, description="drawdown that freezes regardless of vol")
    defensive_sizing: float = Field(0.25, gt=0.0, le=1.0, description="Tier 2 sizing")
    cooldown_sessions: int = Field(10, ge=0, description="sessions frozen before recovery may start")
    recovery_steps: list[float] = Field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8, 1.0])
    recovery_step_sessions: int = Field(5, ge=1, description="calm sessions per recovery step")
    recovery_vol_multiple: float = Field(1.5, gt=0.0, description="recovery needs vol below this x target")


class RiskSettings(Section):
    """configs/risk.yaml: decisions (meta-brain), risk measurement, limits and circuit breakers."""

    initial_nav: float = Field(1_000_000.0, gt=0.0, description="starting NAV of the book (account currency)")
    var: VarSettings = VarSettings()
    limits: LimitsSettings = LimitsSettings()
    meta_brain: MetaBrainSettings = MetaBrainSettings()
    breakers: BreakerSettings = BreakerSettings()
