"""The emergency rebalance: a breach in the session's risk state cuts the held book greedily (largest risk
first) with its own client order ids; in the simulator the broker's gross falls and a rerun sends nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given, settings

from bench.crash import build_lake
from mqf_pipeline.config import load_settings
from mqf_pipeline.decisions.audit import cycle_id as make_cycle_id
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.execution.orders import Side, client_order_id
from mqf_pipeline.portfolio.emergency import (
    EmergencyParams,
    derisk,
    emergency_targets,
    gross,
    liquidation_order,
    target_gross,
)
from mqf_pipeline.stages.base import run_stage
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.execution import EMERGENCY_SUFFIX, ExecutionStage, load_carried, load_inputs
from mqf_pipeline.stages.params import cost_params
from mqf_pipeline.storage.lake import Lake

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = load_settings(ROOT / "configs")
NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PARAMS = EmergencyParams(max_gross=0.5)

books = st.dictionaries(
    st.sampled_from([f"S{i:02d}" for i in range(12)]),
    st.floats(-0.2, 0.2, allow_nan=False).filter(lambda w: abs(w) > 1e-6),
    min_size=1,
)


@settings(max_examples=200, deadline=None)
@given(book=books, share=st.floats(0.0, 1.0))
def test_greedy_cut_reaches_the_cap_and_only_reduces(book, share) -> None:
    cap = share * gross(book)
    sigma = {s: 0.01 + 0.001 * i for i, s in enumerate(sorted(book))}
    cut = derisk(book, cap, liquidation_order(book, sigma))
    assert gross(cut) <= cap + 1e-12  # the cap is reached (to float rounding of the running excess)
    assert gross(book) - gross(cut) <= gross(book) - cap + 1e-12  # and not overshot
    for s, w in book.items():
        assert abs(cut[s]) <= abs(w) + 1e-15 and cut[s] * w >= 0  # no position grows or crosses zero


def test_liquidation_goes_largest_risk_first() -> None:
    book = {"A": 0.10, "B": -0.05, "C": 0.02}
    sigma = {"A": 0.01, "B": 0.04, "C": 0.01}
    assert liquidation_order(book, sigma) == ["B", "A", "C"]  # 0.002, 0.001, 0.0002
    cut = derisk(book, 0.12, ["B", "A", "C"])  # gross 0.17 -> 0.12: B (0.05) closes first
    assert cut == {"A": 0.10, "B": 0.0, "C": 0.02}
    cut = derisk(book, 0.05, ["B", "A", "C"])  # then A gives 0.07 of its 0.10
    assert cut["B"] == 0.0 and cut["A"] == pytest.approx(0.03, abs=1e-15) and cut["C"] == 0.02


def _row(breaker: str, checks: list[dict]) -> dict:
    return {"breaker_status": breaker, "limits_json": json.dumps(checks)}


def test_target_gross_by_breach() -> None:
    var = {"name": "var_95", "breached": True, "action": "SCALE", "scale": 0.8}
    stress = {"name": "stress_loss", "breached": True, "action": "REJECT", "scale": 1.0}
    calm = {"name": "cvar_95", "breached": False, "action": "SCALE", "scale": 1.0}
    assert target_gross(1.0, _row("NORMAL", [calm]), PARAMS) is None
    assert target_gross(1.0, _row("NORMAL", [var]), PARAMS) == pytest.approx(0.8)  # the limit's own cure
    assert target_gross(0.9, _row("NORMAL", [var]), PARAMS) == pytest.approx(0.72)
    assert target_gross(1.0, _row("FREEZE", [var]), PARAMS) == pytest.approx(0.5)  # the breaker's max gross
    assert target_gross(0.9, _row("NORMAL", [stress]), PARAMS) == pytest.approx(0.5)  # no scale cures it
    assert target_gross(1.0, _row("DEFENSIVE", []), PARAMS) == pytest.approx(0.5)
    # a state, not an event: a book already within the breaker's max gross is not cut again
    assert target_gross(0.4, _row("FREEZE", []), PARAMS) is None
    with pytest.raises(ValueError, match="max_gross"):
        EmergencyParams(max_gross=0.0)


def test_emergency_targets_never_add_risk() -> None:
    held = {"A": 0.3, "B": 0.3, "C": 0.2}
    wanted = {"A": 0.1, "B": 0.4, "D": 0.1}  # the optimiser: cut A, add to B, open D
    out = emergency_targets(held, wanted, _row("FREEZE", []), {"A": 0.01, "B": 0.02, "C": 0.01}, PARAMS)
    assert out is not None and gross(out) <= 0.5 + 1e-12
    assert "D" not in out and all(abs(out[s]) <= held[s] for s in held)
    assert out["A"] <= 0.1  # the optimiser's deeper cut of A is kept
    assert emergency_targets(held, wanted, _row("NORMAL", []), {}, PARAMS) is None


def _broker_gross(broker: PaperBroker, lake: Lake, day: dt.date) -> float:
    closes = dict(lake.read("price_history", [day]).select("symbol", "close").iter_rows())
    positions = broker.positions()
    return sum(abs(q) * closes[s] for s, q in positions.items())


def test_a_breach_cuts_exposure_at_the_broker_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    days = build_lake(tmp_path / "lake", symbols=20, sessions=6)
    lake = Lake(str(tmp_path / "lake"))
    broker = PaperBroker(
        tmp_path / "broker", initial_cash=SETTINGS.risk.initial_nav, params=cost_params(SETTINGS.execution), seed=11
    )
    # the synthetic targets hold ~0.6 of NAV: an emergency max gross of 0.25 makes the cut plain to see
    settings = SETTINGS.model_copy(
        update={"execution": SETTINGS.execution.model_copy(update={"emergency_max_gross": 0.25})}
    )
    ctx = run_context(lake, settings, now=NOW)
    stage = ExecutionStage(broker, latest_session=days[-1])
    stage.write(ctx, run_stage(stage, ctx, days[:3]), days[:3])
    day, nxt = days[3], days[4]
    cfg = SETTINGS.execution
    breach = pl.DataFrame({"date": [day], "breaker_status": ["FREEZE"], "kill_switch": [False], "limits_json": ["[]"]})
    inputs = load_inputs(lake, [day], cfg.adv_window_sessions, cfg.vol_window_sessions)
    inputs = type(inputs)(**{**inputs.__dict__, "risk": breach})
    steps = [stage.step(day, inputs, load_carried(lake, day, SETTINGS.risk.initial_nav), ctx)]
    stage.write(ctx, steps, [day])
    out = steps[0].detail
    assert out.orders.height and out.notes and out.notes[0].startswith("EMERGENCY rebalance")
    assert out.orders["cycle_id"].str.ends_with(f"-{EMERGENCY_SUFFIX}").all()
    regular = make_cycle_id(SETTINGS.fund.strategy, day)
    for r in out.orders.iter_rows(named=True):  # its own ids, never the cycle's regular ones
        assert r["order_id"] == client_order_id(r["cycle_id"], r["symbol"], Side(r["side"]), r["leg"])
        assert r["order_id"] != client_order_id(regular, r["symbol"], Side(r["side"]), r["leg"])
    assert (out.orders["status"] == "SUBMITTED").all() and (out.orders["side"] == "SELL").all()
    assert (out.decisions["action"] == "MARKET").all()  # greedy: the next open, not a schedule
    before = _broker_gross(broker, lake, day)
    log = broker.submit_log()
    # a rerun of the breached session finds every emergency order at the broker
    rerun = stage.step(day, inputs, load_carried(lake, day, SETTINGS.risk.initial_nav), ctx).detail
    assert broker.submit_log() == log and rerun.already_at_broker == out.orders.height
    # the next session trades them: the broker's gross falls to about the max gross of 0.25 x NAV
    stage.write(ctx, run_stage(stage, ctx, [nxt]), [nxt])
    after = _broker_gross(broker, lake, nxt)
    nav = lake.read("account", [nxt])["nav"].item()
    assert before > 0.45 * nav and after < 0.28 * nav  # fills, costs and one session's price moves aside


@pytest.mark.parametrize("action", ["halt", "derisk"])
def test_the_kill_switch_halts_or_derisks(tmp_path: Path, action: str) -> None:
    """kill_switch_action halt: nothing reaches the broker while the switch is engaged; derisk: the switch is a
    breach, the greedy cut to emergency_max_gross goes (sells only, -EMG ids) and nothing else."""
    from mqf_pipeline import kill_switch

    days = build_lake(tmp_path / "lake", symbols=20, sessions=5)
    lake = Lake(str(tmp_path / "lake"))
    broker = PaperBroker(
        tmp_path / "broker", initial_cash=SETTINGS.risk.initial_nav, params=cost_params(SETTINGS.execution), seed=11
    )
    execution = SETTINGS.execution.model_copy(update={"emergency_max_gross": 0.25, "kill_switch_action": action})
    settings = SETTINGS.model_copy(update={"execution": execution})
    switch = tmp_path / "KILL_SWITCH"
    ctx = run_context(lake, settings, kill_switch_path=switch, now=NOW)
    stage = ExecutionStage(broker, latest_session=days[-1])
    stage.write(ctx, run_stage(stage, ctx, days[:3]), days[:3])
    kill_switch.engage(switch, "test: operator stop", "pytest")
    log = broker.submit_log()
    out = run_stage(stage, ctx, [days[3]])[0].detail
    sent = broker.submit_log()[len(log) :]
    if action == "halt":
        assert sent == [] and (out.orders["status"] == "REJECTED").all()
        assert out.orders["reason"].str.starts_with("KILL_SWITCH").all()
    else:
        assert out.orders.height and out.notes[0].startswith("EMERGENCY rebalance")
        assert "KILL_SWITCH" in out.notes[0]
        assert (out.orders["status"] == "SUBMITTED").all() and (out.orders["side"] == "SELL").all()
        assert out.orders["cycle_id"].str.ends_with(f"-{EMERGENCY_SUFFIX}").all()
        assert {cid for cid, outcome in sent if outcome == "accepted"} == set(out.orders["order_id"].to_list())
