"""Settings -> the frozen parameter objects the domain takes (mqf_pipeline/stages/params.py), and the risk book
and the execution policy driven by them."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from mqf_pipeline.config import load_settings
from mqf_pipeline.execution import policy
from mqf_pipeline.execution.strategies import Strategy
from mqf_pipeline.portfolio.rebalance import EMERGENCY, STRATEGIC, TACTICAL
from mqf_pipeline.risk import limits as lim
from mqf_pipeline.risk.book import ReturnsWindow, RiskParams, book_risk, cvar_function, limit_checks
from mqf_pipeline.stages import params

SHIPPED = load_settings("configs")


def _settings(**overrides):
    return load_settings("configs", **overrides)


def test_param_objects_are_frozen():
    for obj in (params.risk_params(SHIPPED), params.policy_params(SHIPPED)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.level = 0.5  # type: ignore[misc]


def test_risk_params_carry_the_var_settings_and_the_74_limits_table():
    p = params.risk_params(_settings(risk={"limits": {"var_95": 0.05, "single_name": 0.08, "allow_shorts": True}}))
    assert (p.level, p.hist_weight, p.evt_threshold_quantile, p.vol_window_sessions) == (0.95, 0.6, 0.90, 63)
    # the table keeps its seed rows and actions; the position rules are not rows of it
    assert [(item.name, item.action) for item in p.limits] == [(item.name, item.action) for item in lim.DEFAULT_LIMITS]
    assert p.limit("var_95") == 0.05 and p.limit("max_gross_leverage") == 1.0
    with pytest.raises(KeyError, match="single_name"):
        p.limit("single_name")


def test_shipped_risk_params_equal_the_defaults():
    """configs/risk.yaml holds the seed values: the builder gives RiskParams() exactly."""
    assert params.risk_params(SHIPPED) == RiskParams()


def test_meta_brain_and_optimizer_take_the_one_single_name_cap_and_shorts_switch():
    settings = _settings(risk={"limits": {"single_name": 0.07, "allow_shorts": True, "max_gross_leverage": 0.9}})
    mb = params.meta_brain_params(settings)
    assert (mb.max_position, mb.allow_shorts, mb.max_leverage) == (0.07, True, 0.9)
    for mode in (STRATEGIC, TACTICAL, EMERGENCY):
        c = params.constraints_for(settings, mode)
        assert (c.single_name, c.allow_shorts, c.gross, c.sector) == (0.07, True, 0.9, 0.15)
    assert params.allocator_caps(settings) == {"max_position": 0.07, "max_gross": 0.9, "allow_shorts": True}


def test_the_volatility_target_allocator_takes_the_breakers_target():
    settings = _settings(portfolio={"allocator": "volatility_target"}, risk={"breakers": {"vol_target_ann": 0.12}})
    assert params.allocator_params(settings) == {"target_vol": 0.12}
    assert params.breaker_params(settings).vol_target_ann == 0.12
    assert params.allocator_params(SHIPPED) == {}


def test_policy_params_from_execution_settings():
    p = params.policy_params(_settings(execution={"default_strategy": "TWAP", "max_estimated_slippage_bps": 40.0}))
    assert (p.default_strategy, p.twap_above_size_adv, p.max_estimated_slippage_bps) == (Strategy.TWAP, 0.25, 40.0)
    assert p.cost == params.cost_params(SHIPPED.execution)
    assert params.policy_params(SHIPPED) == policy.PolicyParams()


def _window(seed: int = 3, days: int = 300, names: int = 6) -> ReturnsWindow:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0003, 0.015, size=(days, names))
    return ReturnsWindow(tuple(f"S{i}" for i in range(names)), returns, returns.mean(axis=1))


def test_book_risk_and_limit_checks_from_risk_params():
    window = _window()
    book = {"S0": 0.3, "S1": 0.25, "S2": 0.2, "S3": -0.1}
    sectors = {"S0": "A", "S1": "A", "S2": "B", "S3": "C"}
    p = params.risk_params(SHIPPED)
    risk = book_risk(book, window, sectors, p)
    assert risk.gross == pytest.approx(0.85) and risk.n_positions == 4
    checks = limit_checks(risk, 0.05, p)
    assert [c["name"] for c in checks] == [item.name for item in lim.DEFAULT_LIMITS]
    sector = next(c for c in checks if c["name"] == "sector_exposure")
    assert sector["breached"] and sector["scale"] == pytest.approx(0.15 / 0.55)
    tighter = dataclasses.replace(p, limits=lim.with_values({"sector_exposure": 0.60}))
    assert not next(c for c in limit_checks(risk, 0.05, tighter) if c["name"] == "sector_exposure")["breached"]
    frame = pl.DataFrame(checks)
    assert frame.filter(pl.col("name") == "max_drawdown")["value"].item() == 0.05


def test_cvar_function_matches_the_book():
    window = _window()
    p = params.risk_params(SHIPPED)
    symbols = list(window.symbols)
    weights = np.array([0.2, 0.0, 0.1, 0.0, 0.15, 0.05])
    total, comps = cvar_function(window, symbols, p)(weights)
    risk = book_risk(dict(zip(symbols, weights, strict=True)), window, {}, p)
    assert total == pytest.approx(risk.cvar_evt, rel=1e-6)  # the same GPD fit, up to its round-off
    assert comps.sum() == pytest.approx(total, rel=1e-9) and comps[1] == comps[3] == 0.0


def test_learning_params_come_from_the_learning_settings():
    """signals.learning reaches the learner whole; the shipped defaults are the seed's (eta 0.1, 0.05/0.40, 21
    sessions, half-life 10) and the learner's own."""
    from mqf_pipeline.learning import WeightLearningParams
    from mqf_pipeline.stages.params import learning_params

    assert learning_params(load_settings("configs")) == WeightLearningParams()
    custom = load_settings("configs", signals={"learning": {"ts_share_stable": 0.5, "ts_min_trials": 4, "eta": 0.05}})
    got = learning_params(custom)
    assert (got.ts_share_stable, got.ts_min_trials, got.eta) == (0.5, 4.0, 0.05)
