"""Settings -> the small frozen parameter objects the domain's pure functions take.

Built once per run in the stage layer: the domain packages never import :mod:`mqf_pipeline.config`.
"""

from __future__ import annotations

from mqf_pipeline.config import ExecutionSettings, Settings
from mqf_pipeline.decisions import meta_brain as mb
from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.execution.policy import PolicyParams
from mqf_pipeline.execution.strategies import Strategy
from mqf_pipeline.learning import WeightLearningParams
from mqf_pipeline.portfolio import optimizer
from mqf_pipeline.portfolio.emergency import EmergencyParams
from mqf_pipeline.portfolio.rebalance import EMERGENCY, STRATEGIC
from mqf_pipeline.risk import breakers
from mqf_pipeline.risk import limits as lim
from mqf_pipeline.risk.book import RiskParams
from mqf_pipeline.slippage.params import FeedbackParams, FillSpec, SlippageParams


def breaker_params(settings: Settings) -> breakers.BreakerParams:
    """Circuit-breaker parameters: configs/risk.yaml breakers + the VaR and drawdown limits."""
    b = settings.risk.breakers
    return breakers.BreakerParams(
        var_limit=settings.risk.limits.var_95,
        tier2_var_multiple=b.tier2_var_multiple,
        vol_target_ann=b.vol_target_ann,
        tier2_vol_multiple=b.tier2_vol_multiple,
        max_drawdown=settings.risk.limits.max_drawdown,
        kill_drawdown=b.kill_drawdown,
        tier3_vol_multiple=b.tier3_vol_multiple,
        defensive_sizing=b.defensive_sizing,
        cooldown_sessions=b.cooldown_sessions,
        recovery_steps=tuple(b.recovery_steps),
        recovery_step_sessions=b.recovery_step_sessions,
        recovery_vol_multiple=b.recovery_vol_multiple,
    )


def meta_brain_params(settings: Settings) -> mb.MetaBrainParams:
    """Meta-brain parameters: configs/risk.yaml meta_brain + the single-name cap, shorts, leverage and CVaR
    limits (``max_position`` is ``limits.single_name``)."""
    risk = settings.risk
    return mb.MetaBrainParams(
        **risk.meta_brain.model_dump(),
        max_position=risk.limits.single_name,
        allow_shorts=risk.limits.allow_shorts,
        max_leverage=risk.limits.max_gross_leverage,
        cvar_limit=risk.limits.cvar_95,
    )


def constraints_for(settings: Settings, mode: str) -> optimizer.OptimizerConstraints:
    """The optimizer's constraints for a session rebalanced in ``mode`` (its turnover budget); gross, sector,
    single-name and shorts are the risk engine's (configs/risk.yaml)."""
    cfg, risk = settings.portfolio, settings.risk
    turnover = {STRATEGIC: cfg.turnover_strategic, EMERGENCY: cfg.turnover_emergency}.get(mode, cfg.turnover_tactical)
    return optimizer.OptimizerConstraints(
        gross=risk.limits.max_gross_leverage,
        long=cfg.long,
        short=cfg.short,
        sector=risk.limits.sector_exposure,
        turnover=turnover,
        adv_fraction=cfg.adv_fraction,
        single_name=risk.limits.single_name,
        allow_shorts=risk.limits.allow_shorts,
        risk_aversion=cfg.risk_aversion,
    )


def allocator_caps(settings: Settings) -> dict[str, float | bool]:
    """The caps every allocator of :data:`portfolio.allocators.ALLOCATORS` applies (configs/risk.yaml)."""
    risk = settings.risk
    return {
        "max_position": risk.limits.single_name,
        "max_gross": risk.limits.max_gross_leverage,
        "allow_shorts": risk.limits.allow_shorts,
    }


def allocator_params(settings: Settings) -> dict[str, float]:
    """The configured allocator's own knobs: the volatility target for ``volatility_target``."""
    if settings.portfolio.allocator == "volatility_target":
        return {"target_vol": settings.risk.breakers.vol_target_ann}
    return {}


def risk_params(settings: Settings) -> RiskParams:
    """How the book's risk is measured and limited: configs/risk.yaml var (its ``model`` is the VaR of the
    var_95 limit) and the seed 000 section 7.4 limits table (``limits`` without the position rules single_name /
    allow_shorts, which the table does not check)."""
    v = settings.risk.var
    return RiskParams(
        level=v.level,
        hist_weight=v.hist_weight,
        evt_threshold_quantile=v.evt_threshold_quantile,
        vol_window_sessions=v.vol_window_sessions,
        limits=lim.with_values(settings.risk.limits.table_values()),
        var_model=v.model,
    )


def cost_params(execution: ExecutionSettings) -> sim.CostParams:
    """The paper broker's cost model from configs/execution.yaml."""
    return sim.CostParams(
        impact_coef=execution.impact_coef,
        commission_per_share=execution.commission_per_share,
        max_participation=execution.max_participation,
        limit_max_participation=execution.limit_max_participation,
        price_away_cancel=execution.price_away_cancel,
        volume_anomaly_ratio=execution.volume_anomaly_ratio,
    )


def policy_params(settings: Settings) -> PolicyParams:
    """The execution policy's knobs and cost model from configs/execution.yaml."""
    e = settings.execution
    return PolicyParams(
        default_strategy=Strategy(e.default_strategy),
        twap_above_size_adv=e.twap_above_size_adv,
        max_estimated_slippage_bps=e.max_estimated_slippage_bps,
        cost=cost_params(e),
    )


def emergency_params(settings: Settings) -> EmergencyParams:
    """The emergency rebalance's cut (configs/execution.yaml)."""
    return EmergencyParams(max_gross=settings.execution.emergency_max_gross)


def slippage_params(settings: Settings) -> SlippageParams:
    """The fitted slippage model (configs/execution.yaml ``slippage_model``); the static default it falls back
    on is the execution policy's own expected cost."""
    s = settings.execution.slippage_model
    return SlippageParams(
        shrinkage=s.shrinkage,
        min_fills=s.min_fills,
        min_pooled_fills=s.min_pooled_fills,
        lookback_days=s.lookback_days,
        fills=FillSpec(target=s.target),
        static=policy_params(settings),
    )


def feedback_params(settings: Settings) -> FeedbackParams:
    """Seed 002 section 5.5's feedback actions (configs/execution.yaml ``slippage_model``)."""
    s = settings.execution.slippage_model
    return FeedbackParams(
        threshold_bps=s.feedback_threshold_bps,
        pov_above_bps=s.feedback_pov_above_bps,
        hold_sessions=s.feedback_hold_sessions,
        fills=FillSpec(target=s.target),
    )


def learning_params(settings: Settings) -> WeightLearningParams:
    """The agent-weight learner (configs/signals.yaml ``learning``)."""
    s = settings.signals.learning
    return WeightLearningParams(
        eta=s.eta,
        floor=s.floor,
        cap=s.cap,
        lookback=s.lookback_sessions,
        half_life=s.half_life_sessions,
        risk_aversion=s.risk_aversion,
        min_sessions=s.min_sessions,
        ts_discount=s.ts_discount,
        ts_min_trials=s.ts_min_trials,
        ts_share_stable=s.ts_share_stable,
    )
