"""Governance gates control order flow: Phase 3 or 4 failing, FREEZE and BEAR_CRISIS stop orders that add
risk (recorded per order with the gate), reductions and closes still go; the kill switch stops all."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from bench.crash import build_lake
from mqf_pipeline.config import load_settings
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.execution.orders import OrderRequest, OrderType, Side, TimeInForce
from mqf_pipeline.stages.base import run_stage
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.execution import ExecutionStage, load_carried, load_inputs
from mqf_pipeline.stages.execution_gates import is_reduction, new_risk_reason
from mqf_pipeline.stages.params import cost_params
from mqf_pipeline.storage.lake import Lake

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = load_settings(ROOT / "configs")
NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _req(side: Side, qty: float) -> OrderRequest:
    return OrderRequest(
        client_order_id="x",
        symbol="AAA",
        side=side,
        qty=qty,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
    )


@pytest.mark.parametrize(
    ("held", "side", "qty", "leg", "reduces"),
    [
        (100.0, Side.SELL, 40.0, 0, True),  # trims a long
        (100.0, Side.SELL, 100.0, 0, True),  # closes a long
        (100.0, Side.BUY, 10.0, 0, False),  # adds to a long
        (-50.0, Side.BUY, 50.0, 0, True),  # covers a short
        (-50.0, Side.SELL, 5.0, 0, False),  # adds to a short
        (0.0, Side.SELL, 5.0, 0, False),  # opens a short
        (100.0, Side.SELL, 150.0, 0, False),  # crosses zero in one order
        (100.0, Side.SELL, 30.0, 1, False),  # the opening leg of a trade that crossed zero
    ],
)
def test_reduction_is_toward_zero_without_crossing(held, side, qty, leg, reduces) -> None:
    assert is_reduction(held, _req(side, qty), leg) is reduces


def _gates(day: dt.date, failed: set[int]) -> pl.DataFrame:
    phases = [0, 1, 2, 3, 4]
    return pl.DataFrame(
        {
            "date": [day] * 5,
            "phase": phases,
            "passed": [p not in failed for p in phases],
            "detail": [f"phase {p} detail" for p in phases],
        }
    )


def test_the_first_failing_reason_is_named() -> None:
    day = dt.date(2024, 3, 1)
    calm = pl.DataFrame({"date": [day], "breaker_status": ["NORMAL"], "kill_switch": [False]})
    frozen = calm.with_columns(breaker_status=pl.lit("FREEZE"))
    assert new_risk_reason(calm, _gates(day, set()), "BULL_QUIET") is None
    assert new_risk_reason(calm, _gates(day, {3, 4}), None).startswith("GATE_PHASE3_RISK: phase 3 detail")
    assert new_risk_reason(calm, _gates(day, {4}), None).startswith("GATE_PHASE4_ORDERS")
    assert new_risk_reason(frozen, _gates(day, set()), None).startswith("BREAKER_FREEZE")
    assert new_risk_reason(calm, _gates(day, set()), "BEAR_CRISIS").startswith("REGIME_BEAR_CRISIS")


@pytest.fixture
def held_book(tmp_path: Path):
    """Three sessions traded at the paper broker (positions open), then session 4's inputs and state."""
    days = build_lake(tmp_path / "lake", symbols=20, sessions=5)
    lake = Lake(str(tmp_path / "lake"))
    broker = PaperBroker(
        tmp_path / "broker", initial_cash=SETTINGS.risk.initial_nav, params=cost_params(SETTINGS.execution), seed=11
    )
    ctx = run_context(lake, SETTINGS, now=NOW)
    stage = ExecutionStage(broker, latest_session=days[-1])
    stage.write(ctx, run_stage(stage, ctx, days[:3]), days[:3])
    day = days[3]
    cfg = SETTINGS.execution
    inputs = load_inputs(lake, [day], cfg.adv_window_sessions, cfg.vol_window_sessions)
    carried = load_carried(lake, day, SETTINGS.risk.initial_nav)
    return lake, broker, stage, ctx, day, inputs, carried


def _mixed_targets(day: dt.date, held: dict[str, float], weights: dict[str, float]) -> pl.DataFrame:
    """Half the held names cut to half their weight (reductions), every other name bought (increases)."""
    names = sorted(held)
    cut = set(names[: len(names) // 2])
    rows = [(s, weights[s] / 2 if s in cut else weights[s] + 0.02) for s in names]
    rows += [(f"C{i:03d}", 0.02) for i in range(20) if f"C{i:03d}" not in held]
    return pl.DataFrame(
        {"date": [day] * len(rows), "symbol": [r[0] for r in rows], "target_weight": [r[1] for r in rows]}
    )


def _session(held_book, *, gates: pl.DataFrame, breaker: str, settings=None):
    """Book session 4, then order it toward mixed targets under ``gates`` and ``breaker``."""
    lake, broker, stage, ctx, day, inputs, carried = held_book
    if settings is not None:
        ctx = run_context(lake, settings, now=NOW)
    booked = stage.book(day, inputs, carried, ctx)
    held = booked.ledger.open_positions()
    assert len(held) >= 4, "the fixture must hold positions to reduce"
    targets = _mixed_targets(day, held, booked.weights())
    risk = pl.DataFrame({"date": [day], "breaker_status": [breaker], "kill_switch": [False]})
    before = len(broker.submit_log())
    out = stage.order(day, inputs, booked, ctx, targets=targets, risk=risk, gates=gates).detail
    sent = {cid for cid, outcome in broker.submit_log()[before:] if outcome == "accepted"}
    return out.orders, sent, held


def _is_reduction(row: dict, qty: dict[str, float]) -> bool:
    side = Side(row["side"])
    return is_reduction(qty.get(row["symbol"], 0.0), _req(side, row["qty"]), row["leg"])


def test_phase3_failing_sends_no_increasing_order(held_book) -> None:
    day = held_book[4]
    orders, sent, qty = _session(held_book, gates=_gates(day, {3, 4}), breaker="NORMAL")
    rows = orders.to_dicts()
    reductions = [r for r in rows if _is_reduction(r, qty)]
    increases = [r for r in rows if not _is_reduction(r, qty)]
    assert reductions and increases
    assert all(r["status"] == "REJECTED" and r["reason"].startswith("GATE_PHASE3_RISK") for r in increases)
    assert not {r["order_id"] for r in increases} & sent  # nothing adding risk reached the broker
    assert all(r["status"] == "SUBMITTED" and r["reason"] is None for r in reductions)
    assert {r["order_id"] for r in reductions} == sent


def test_freeze_sends_reductions_not_increases(held_book) -> None:
    """With the emergency cut out of the way (max gross 1.0: the book is within it), FREEZE is the gate."""
    day = held_book[4]
    settings = SETTINGS.model_copy(
        update={"execution": SETTINGS.execution.model_copy(update={"emergency_max_gross": 1.0})}
    )
    orders, sent, qty = _session(held_book, gates=_gates(day, set()), breaker="FREEZE", settings=settings)
    rows = orders.to_dicts()
    increases = [r for r in rows if not _is_reduction(r, qty)]
    reductions = [r for r in rows if _is_reduction(r, qty)]
    assert reductions and increases
    assert all(r["reason"].startswith("BREAKER_FREEZE") and r["order_id"] not in sent for r in increases)
    assert {r["order_id"] for r in reductions} == sent


def test_freeze_above_the_emergency_gross_sends_only_the_cut(held_book) -> None:
    """FREEZE with the book above the emergency max gross (0.5): the orders are the de-risking set alone."""
    day = held_book[4]
    orders, sent, qty = _session(held_book, gates=_gates(day, set()), breaker="FREEZE")
    assert orders.height and {r["order_id"] for r in orders.to_dicts()} == sent
    assert all(_is_reduction(r, qty) for r in orders.to_dicts())
    assert orders["cycle_id"].str.ends_with("-EMG").all()


def test_passed_gates_send_everything(held_book) -> None:
    day = held_book[4]
    orders, sent, _ = _session(held_book, gates=_gates(day, set()), breaker="NORMAL")
    assert orders.height and (orders["status"] == "SUBMITTED").all()
    assert set(orders["order_id"].to_list()) == sent
