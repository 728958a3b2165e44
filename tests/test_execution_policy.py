"""The execution policy's guards (seed 002 section 3.4) and the slippage-spike kill switch end to end."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bench.crash import build_lake
from mqf_pipeline.config import load_settings
from mqf_pipeline.execution.brokers.base import LiveTradingRefusedError
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.execution.policy import OrderState, choose
from mqf_pipeline.execution.strategies import Strategy
from mqf_pipeline.stages.base import run_stage
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.execution import ExecutionStage
from mqf_pipeline.stages.params import cost_params, policy_params
from mqf_pipeline.storage.lake import Lake
from resources import BrokerResource, SettingsResource
from tests.deployment import write_configs

SETTINGS = load_settings(Path(__file__).resolve().parents[1] / "configs")
CFG = SETTINGS.execution
POLICY = policy_params(SETTINGS)


def test_default_schedule_without_fallback() -> None:
    c = choose(OrderState(size_adv=0.01, sigma=0.02, spread_bps=5.0), POLICY, kill_switch=False)
    assert c.action is Strategy.VWAP and not c.used_fallback and c.fallback_reason is None
    # VWAP: half spread + Y sigma sqrt(Q/ADV) = 2.5 + 1e4 * 0.7 * 0.02 * 0.1 = 16.5 bps (1e-9)
    assert abs(c.expected_cost_bps - 16.5) < 1e-9


def test_kill_switch_falls_back_to_market_and_large_market_becomes_twap() -> None:
    small = choose(OrderState(size_adv=0.01, sigma=0.02, spread_bps=5.0), POLICY, kill_switch=True)
    assert small.action is Strategy.MARKET and small.fallback_reason == "SLIPPAGE_SPIKE"
    large = choose(OrderState(size_adv=0.30, sigma=0.001, spread_bps=1.0), POLICY, kill_switch=True)
    assert large.action is Strategy.TWAP and large.fallback_reason == "SLIPPAGE_SPIKE,SIZE_ADV"


def test_expensive_action_becomes_limit() -> None:
    c = choose(OrderState(size_adv=0.2, sigma=0.05, spread_bps=20.0), POLICY, kill_switch=False)
    assert c.action is Strategy.LIMIT and c.fallback_reason == "EXPECTED_COST" and c.used_fallback


def test_slippage_spike_engages_the_execution_kill_switch(tmp_path: Path) -> None:
    """Quoted spreads jump from 10 to 300 bps on the session the first orders trade: every fill costs ~150
    bps vs the mid (> 100) although the policy expected ~15, so the next session's orders go MARKET."""
    days = build_lake(tmp_path / "lake", symbols=20, sessions=4, spread_bps=10.0)
    lake = Lake(str(tmp_path / "lake"))
    bars = lake.read("price_history", [days[1]])
    lake.write("price_history", days[1], bars.with_columns(spread_bps=pl.lit(300.0)))
    broker = PaperBroker(tmp_path / "broker", initial_cash=1e6, params=cost_params(CFG), seed=3)
    stage = ExecutionStage(broker, latest_session=days[-1])
    results = [s.detail for s in run_stage(stage, run_context(lake, SETTINGS), days)]
    first, second = results[0], results[1]
    assert first.account["spike_sessions_left"] == 0 and second.account["spike_sessions_left"] == 5
    costs = second.outcomes.filter(pl.col("filled_qty") > 0)["market_impact_bps"] + 150.0
    assert (costs > 100.0).all()
    later = pl.concat([results[1].decisions, results[2].decisions])
    assert later.height and later["fallback_reason"].str.starts_with("SLIPPAGE_SPIKE").all()
    assert [r.account["spike_sessions_left"] for r in results[2:]] == [4, 3]


def test_broker_resource_refuses_live_without_confirmation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mode live with keys but no confirmation: the resource (and so the execution step) refuses."""
    monkeypatch.setenv("APCA_API_KEY_ID", "AKTESTKEY123")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "never-print-this-secret")
    monkeypatch.delenv("MQF_LIVE_TRADING_CONFIRM", raising=False)
    config_dir = write_configs(
        tmp_path,
        fund={"mode": "live", "paths": {"runtime": str(tmp_path / "runtime")}},
        universe={"symbols": ["AAA", "BBB"], "sectors": {"AAA": "TECH", "BBB": "ENERGY"}},
    )
    resource = BrokerResource(settings=SettingsResource(config_dir=str(config_dir)))
    with pytest.raises(LiveTradingRefusedError, match="MQF_LIVE_TRADING_CONFIRM") as info:
        resource.broker()
    assert "never-print-this-secret" not in str(info.value) and "AKTESTKEY123" not in str(info.value)


def test_slippage_spike_can_halt_the_fund(tmp_path: Path) -> None:
    """slippage_spike_action: halt engages the fund kill switch: the spike session's orders are all blocked."""
    from mqf_pipeline import kill_switch

    days = build_lake(tmp_path / "lake", symbols=20, sessions=3, spread_bps=10.0)
    lake = Lake(str(tmp_path / "lake"))
    bars = lake.read("price_history", [days[1]])
    lake.write("price_history", days[1], bars.with_columns(spread_bps=pl.lit(300.0)))
    halting = SETTINGS.model_copy(update={"execution": CFG.model_copy(update={"slippage_spike_action": "halt"})})
    broker = PaperBroker(tmp_path / "broker", initial_cash=1e6, params=cost_params(CFG), seed=3)
    switch = tmp_path / "KILL_SWITCH"
    stage = ExecutionStage(broker, latest_session=days[-1])
    results = [s.detail for s in run_stage(stage, run_context(lake, halting, kill_switch_path=switch), days)]
    state = kill_switch.status(switch)
    assert state.active and "slippage spike" in state.reason and state.engaged_by == "execution"
    blocked = pl.concat([results[1].orders, results[2].orders])
    assert blocked.height and (blocked["status"] == "REJECTED").all()
    assert blocked["reason"].str.starts_with("KILL_SWITCH").all()


def test_a_limit_schedule_goes_out_as_a_limit_order_at_its_offset() -> None:
    """An order the policy sends LIMIT carries its limit price: limit_offset_bps through the last close, on
    the passive side (a buy below, a sell above), rounded away from the market to the cent; other schedules
    stay MARKET."""
    import datetime as dt
    import math

    from mqf_pipeline.execution.ledger import Ledger
    from mqf_pipeline.execution.orders import OrderType, Side
    from mqf_pipeline.execution.policy import PolicyParams
    from mqf_pipeline.stages.execution_orders import plan_orders

    day = dt.date(2024, 3, 1)
    quotes = {
        "AAA": {"close": 100.0, "adv": 1e6, "sigma": 0.02, "spread_bps": 5.0},
        "BBB": {"close": 50.0, "adv": 1e6, "sigma": 0.02, "spread_bps": 5.0},
    }
    ledger = Ledger(cash=1e6)
    targets = pl.DataFrame({"symbol": ["AAA", "BBB"], "target_weight": [0.05, 0.02]})
    limit = PolicyParams(default_strategy=Strategy.LIMIT)
    planned = plan_orders(day, "cyc", ledger, 1e6, targets, quotes, CFG, limit, False)
    assert len(planned) == 2
    for p in planned:
        req = p["request"]
        assert req.order_type is OrderType.LIMIT and req.side is Side.BUY
        close = quotes[req.symbol]["close"]
        passive = math.floor(round(close * (1 - CFG.limit_offset_bps / 1e4) * 100, 6)) / 100  # down to the cent
        assert req.limit_price == pytest.approx(passive, abs=1e-9)  # 99.95 and 49.97 (49.975 floored)
    vwap = plan_orders(day, "cyc", ledger, 1e6, targets, quotes, CFG, POLICY, False)
    assert all(p["request"].order_type is OrderType.MARKET and p["request"].limit_price is None for p in vwap)
