"""configs/portfolio.yaml and execution.yaml: the allocator and the optimizer's constraints, and how
orders are scheduled and what the paper broker's cost model charges."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from mqf_pipeline.config.base import Section, did_you_mean


class SlippageModelSettings(Section):
    """execution.slippage_model: the fitted slippage model of seed 002 Part 5 and its feedback actions
    (:mod:`mqf_pipeline.slippage`)."""

    target: str = Field(
        "cost_vs_mid", description="cost_vs_mid (impact + half spread) | slippage_bps (vs the open) | total_cost_bps"
    )
    shrinkage: float = Field(10.0, ge=0.0, description="k: the pooled fit counts as k pseudo-fills per symbol")
    min_fills: int = Field(2, ge=1, description="fewer fills than this and a symbol uses the pooled coefficients")
    min_pooled_fills: int = Field(20, ge=1, description="fewer usable fills in all: nothing fitted, static default")
    lookback_days: int | None = Field(None, ge=1, description="calendar days of fills behind a fit (null: all)")
    refit_min_new_fills: int = Field(
        50, ge=1, description="slippage_refit_sensor: new fills since the last refit that request a refit"
    )
    feedback_threshold_bps: float = Field(25.0, description="a session's slippage above this triggers the actions")
    feedback_pov_above_bps: float = Field(50.0, description="above this the preferred schedule is POV, else TWAP")
    feedback_hold_sessions: int = Field(5, ge=1, description="sessions the feedback actions stay in force")

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        return _one_of(value, "slippage target", ("cost_vs_mid", "slippage_bps", "total_cost_bps"))


class ExecutionSettings(Section):
    """configs/execution.yaml: orders from target weights, the execution policy and its guards (seed 002
    section 3.4), and the paper broker's cost model."""

    default_strategy: str = Field("VWAP", description="MARKET | LIMIT | TWAP | POV | VWAP | WAIT")
    limit_offset_bps: float = Field(5.0, ge=0.0, description="LIMIT: passive offset from the mid, bps")
    pov_rate: float = Field(0.10, gt=0.0, le=1.0, description="POV: share of each bucket's volume")
    twap_above_size_adv: float = Field(0.25, gt=0.0, description="a MARKET order above this size/ADV becomes TWAP")
    max_estimated_slippage_bps: float = Field(
        50.0, gt=0.0, description="an action whose expected cost exceeds this becomes LIMIT (seed 002 section 3.4)"
    )
    slippage_spike_bps: float = Field(
        100.0, gt=0.0, description="a fill costing more than this vs the mid engages the execution kill switch"
    )
    spike_cooldown_sessions: int = Field(5, ge=1, description="sessions the execution kill switch stays engaged")
    slippage_spike_action: str = Field(
        "fallback", description="fallback: orders go MARKET for the cooldown | halt: also engage the fund kill switch"
    )
    price_away_cancel: float = Field(0.05, gt=0.0, description="cancel the rest once the mid is this far from arrival")
    volume_anomaly_ratio: float = Field(3.0, gt=1.0, description="abort once session volume exceeds this x ADV")
    min_order_notional: float = Field(100.0, ge=0.0, description="dollars; smaller trades are not sent")
    adv_window_sessions: int = Field(
        20, ge=1, description="sessions behind ADV (shares for orders, traded value for the optimizer's ADV cap)"
    )
    vol_window_sessions: int = Field(20, ge=2, description="sessions behind the daily volatility")
    default_spread_bps: float = Field(
        10.0,
        ge=0.0,
        description="bid-ask spread (bps of mid) of a session whose bars quote none and whose OHLC gives no EDGE "
        "estimate (close-only data, short history)",
    )
    impact_coef: float = Field(0.7, gt=0.0, description="Y in the square-root impact Y sigma sqrt(Q/V)")
    commission_per_share: float = Field(0.0035, ge=0.0, description="paper broker commission, dollars per share")
    max_participation: float = Field(0.25, gt=0.0, le=1.0, description="an aggressive child's share of bucket volume")
    limit_max_participation: float = Field(0.10, gt=0.0, le=1.0, description="a passive child's share")
    emergency_max_gross: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="emergency rebalance: on a DEFENSIVE/FREEZE breaker (or a breach no limit scale cures) the held "
        "book is cut greedily to at most this gross, fraction of NAV",
    )
    kill_switch_action: str = Field(
        "halt",
        description="halt: while the kill switch is engaged no order is sent | derisk: the switch is a breach, "
        "the emergency cut (reductions only, to emergency_max_gross) is sent and nothing else",
    )
    slippage_model: SlippageModelSettings = Field(default_factory=SlippageModelSettings)
    alpaca_url_override: str | None = Field(None, description="Alpaca trading base URL (tests, proxies)")
    broker: str = Field(
        "auto",
        description="where orders go: auto (simulated mode: local, paper/live: alpaca) | local (the built-in paper "
        "broker, filling through the cost model: your own data, no keys) | alpaca",
    )

    @field_validator("default_strategy", "broker", "slippage_spike_action", "kill_switch_action")
    @classmethod
    def _known_choice(cls, value: str, info: ValidationInfo) -> str:
        return _one_of(value, *_EXECUTION_CHOICES[info.field_name or ""])


class PortfolioSettings(Section):
    """configs/portfolio.yaml: the allocator, the optimizer's constraints (seed 002 section 4.2) and rebalancing.

    The caps shared with the risk engine live in configs/risk.yaml: gross (``limits.max_gross_leverage``),
    sector (``limits.sector_exposure``), single name (``limits.single_name``), shorts (``limits.allow_shorts``),
    the volatility target (``breakers.vol_target_ann``); the ADV window is ``execution.adv_window_sessions``.
    The old keys of this file (``gross``, ``sector``, ``single_name``, ``allow_shorts``, ``vol_target_ann``,
    ``adv_window_sessions``) still work for one release (:data:`mqf_pipeline.config.deprecations.RENAMED`).
    """

    allocator: str = Field("mean_variance", description="mean_variance | risk_parity | kelly | volatility_target")
    risk_aversion: float = Field(1.0, gt=0.0, description="lambda in mu'w - lambda w'Sigma w (annualised units)")
    long: float = Field(0.6, ge=0.0, description="sum of long weights")
    short: float = Field(0.4, ge=0.0, description="sum of |short weights|")
    adv_fraction: float = Field(0.02, gt=0.0, description="|w_i| <= adv_fraction x ADV_i / NAV")
    turnover_strategic: float = Field(0.20, gt=0.0, description="turnover budget of the weekly (Friday) rebalance")
    turnover_tactical: float = Field(0.10, gt=0.0, description="turnover budget of the daily rebalance")
    turnover_emergency: float = Field(1.0, gt=0.0, description="turnover budget of an emergency (risk) rebalance")
    covariance: str = Field("factor", description="factor (statistical, top principal components) | ledoit_wolf")
    n_factors: int = Field(20, ge=1, description="factor covariance: principal components kept")
    cov_window_sessions: int = Field(252, ge=30, description="sessions of returns behind the covariance")

    @field_validator("allocator", "covariance")
    @classmethod
    def _known_choice(cls, value: str, info: ValidationInfo) -> str:
        return _one_of(value, *_PORTFOLIO_CHOICES[info.field_name or ""])


#: field -> (what it names in an error, its allowed values)
_EXECUTION_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "default_strategy": ("execution strategy", ("MARKET", "LIMIT", "TWAP", "POV", "VWAP", "WAIT")),
    "broker": ("broker", ("auto", "local", "alpaca")),
    "slippage_spike_action": ("slippage_spike_action", ("fallback", "halt")),
    "kill_switch_action": ("kill_switch_action", ("halt", "derisk")),
}
_PORTFOLIO_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "allocator": ("allocator", ("mean_variance", "risk_parity", "kelly", "volatility_target")),
    "covariance": ("covariance", ("factor", "ledoit_wolf")),
}


def _one_of(value: str, what: str, known: tuple[str, ...]) -> str:
    """``value`` if it is one of ``known``, else a ValueError naming the allowed values and the closest one."""
    if value not in known:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(known)}{did_you_mean(value, known)}")
    return value
