"""The execution cycle on the real Alpaca broker code path (alpaca-py against a local fake Alpaca server):
orders reach Alpaca once, fills come back as positions, and a rerun sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import build_lake
from mqf_pipeline.config import load_settings
from mqf_pipeline.execution.brokers.alpaca import AlpacaBroker
from mqf_pipeline.stages.base import StepOutput, run_stage
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.execution import ExecutionStage
from mqf_pipeline.storage.lake import Lake
from tests.execution.fake_alpaca_trading import FakeAlpacaTrading

pytestmark = pytest.mark.network_local
_BASE = load_settings(Path(__file__).resolve().parents[2] / "configs")
# MARKET schedules go to Alpaca whole (TWAP/VWAP/POV/WAIT are worked as children: test_child_work.py)
SETTINGS = _BASE.model_copy(update={"execution": _BASE.execution.model_copy(update={"default_strategy": "MARKET"})})


def _run(lake: Lake, days, broker: AlpacaBroker, latest) -> list[StepOutput]:
    return run_stage(ExecutionStage(broker, latest_session=latest), run_context(lake, SETTINGS), days)


KEYS = {"APCA_API_KEY_ID": "PKCYCLE123", "APCA_API_SECRET_KEY": "cycle-secret-never-logged"}


def test_cycle_submits_once_books_fills_and_reconciles(tmp_path: Path) -> None:
    days = build_lake(tmp_path / "lake", symbols=12, sessions=3)
    lake = Lake(str(tmp_path / "lake"))
    with FakeAlpacaTrading(cash=SETTINGS.risk.initial_nav) as fake:
        broker = AlpacaBroker(url_override=fake.url, timeout_s=2.0, sleep=lambda s: None, env=KEYS)
        # history before the latest session is never sent to a real broker
        early = _run(lake, days[:1], broker, days[1])
        assert (
            early[0].detail.orders.is_empty()
            and "not sent past orders" in early[0].detail.notes[0]
            and not fake.posts()
        )
        # the latest session: orders go to Alpaca once
        first = _run(lake, days[1:2], broker, days[1])
        orders = first[0].detail.orders
        assert (
            orders.height and (orders["status"] == "SUBMITTED").all() and orders["broker_order_id"].is_not_null().all()
        )
        assert len(fake.posts()) == orders.height
        ExecutionStage(broker, latest_session=days[1]).write(run_context(lake, SETTINGS), early + first, days[:2])
        rerun = _run(lake, days[1:2], broker, days[1])
        assert len(fake.posts()) == orders.height and rerun[0].detail.already_at_broker == orders.height
        # Alpaca fills them during the next session (the first half of each, then the rest)
        for oid, qty in orders.select("order_id", "qty").iter_rows():
            half = round(qty / 2, 4)
            fake.fill(oid, half, 50.0)
            fake.fill(oid, round(qty - half, 4), 50.5)
        nxt = _run(lake, days[2:3], broker, days[2])[0].detail
        out = nxt.outcomes
        assert out.height == orders.height and (out["status"] == "FILLED").all()
        assert (abs(out["filled_qty"] - out["ordered_qty"]) < 1e-9).all()
        ledger = dict(nxt.positions.select("symbol", "qty").iter_rows())
        assert ledger.keys() == broker.positions().keys()
        assert all(abs(q - broker.positions()[s]) < 1e-6 for s, q in ledger.items())
