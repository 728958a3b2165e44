"""Settings -> the small frozen parameter objects the domain's pure functions take.

Built once per run in the stage layer: the domain packages never import :mod:`mqf_pipeline.config`.
"""

from __future__ import annotations

from mqf_pipeline.config import Settings
from mqf_pipeline.decisions import meta_brain as mb
from mqf_pipeline.portfolio import optimizer
from mqf_pipeline.portfolio.rebalance import EMERGENCY, STRATEGIC
from mqf_pipeline.risk import breakers


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
    """Meta-brain parameters: configs/risk.yaml meta_brain + the leverage and CVaR limits."""
    return mb.MetaBrainParams(
        **settings.risk.meta_brain.model_dump(),
        max_leverage=settings.risk.limits.max_gross_leverage,
        cvar_limit=settings.risk.limits.cvar_95,
    )


def constraints_for(settings: Settings, mode: str) -> optimizer.OptimizerConstraints:
    """The optimizer's constraints for a session rebalanced in ``mode`` (its turnover budget)."""
    cfg = settings.portfolio
    turnover = {STRATEGIC: cfg.turnover_strategic, EMERGENCY: cfg.turnover_emergency}.get(mode, cfg.turnover_tactical)
    return optimizer.OptimizerConstraints(
        gross=cfg.gross,
        long=cfg.long,
        short=cfg.short,
        sector=cfg.sector,
        turnover=turnover,
        adv_fraction=cfg.adv_fraction,
        single_name=cfg.single_name,
        allow_shorts=cfg.allow_shorts,
        risk_aversion=cfg.risk_aversion,
    )
