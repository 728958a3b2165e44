"""Child orders through the execution stage on the real Alpaca code path (alpaca-py against the local fakes of
Alpaca's trading and market-data APIs): a TWAP parent of D is not sent whole, the intraday step sends its
children during D+1 on schedule (rerun-safe), the guards stop them, and booking D+1 books their fills."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from bench.crash import build_lake
from jobs.schedules import intraday_child_orders
from mqf_pipeline.config import Settings, load_settings
from mqf_pipeline.execution.brokers.alpaca import AlpacaBroker
from mqf_pipeline.execution.child_orders import PRICE_AWAY, LiveQuote, parent_of, session_bounds
from mqf_pipeline.market.providers.alpaca import AlpacaProvider
from mqf_pipeline.stages.base import StepOutput, run_stage
from mqf_pipeline.stages.child_work import ChildWorkRun, stop_reasons, work_session_children
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.execution import ExecutionStage
from mqf_pipeline.storage.lake import Lake
from tests.execution.fake_alpaca_trading import FakeAlpacaTrading
from tests.market.fakes import FakeAlpacaMarketData, alpaca_snapshot

pytestmark = pytest.mark.network_local
BASE = load_settings(Path(__file__).resolve().parents[2] / "configs")
KEYS = {"APCA_API_KEY_ID": "PKKIDS123", "APCA_API_SECRET_KEY": "kids-secret-never-logged"}


def _settings(strategy: str) -> Settings:
    return BASE.model_copy(update={"execution": BASE.execution.model_copy(update={"default_strategy": strategy})})


def _run(lake: Lake, days, broker: AlpacaBroker, settings: Settings) -> list[StepOutput]:
    return run_stage(ExecutionStage(broker, latest_session=days[-1]), run_context(lake, settings), days)


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(cash=BASE.risk.initial_nav) as srv:
        yield srv  # type: ignore[misc]


@pytest.fixture
def data() -> Iterator[FakeAlpacaMarketData]:
    with FakeAlpacaMarketData({}) as srv:
        yield srv  # type: ignore[misc]


def _ordered(tmp_path: Path, fake: FakeAlpacaTrading, strategy: str, symbols: int = 6):
    """A lake, a broker and the orders of the latest session D (days[1]), written; D+1 is days[2]."""
    days = build_lake(tmp_path / "lake", symbols=symbols, sessions=3)
    lake, settings = Lake(str(tmp_path / "lake")), _settings(strategy)
    broker = AlpacaBroker(url_override=fake.url, timeout_s=2.0, sleep=lambda s: None, env=KEYS)
    steps = _run(lake, days[:2], broker, settings)
    ExecutionStage(broker, latest_session=days[1]).write(run_context(lake, settings), steps, days[:2])
    return days, lake, settings, broker, steps[-1].detail.orders


def _quote_all(data: FakeAlpacaMarketData, orders, day: dt.date, away: dict[str, float] | None = None) -> None:
    """Snapshots at the stored close (the session opened there), ``away`` symbols moved by that factor."""
    for sym, price in orders.select("symbol", "price").iter_rows():
        data.snapshots[sym] = alpaca_snapshot(price * (away or {}).get(sym, 1.0), day, 1_000.0, price)


def _step(lake: Lake, broker: AlpacaBroker, settings: Settings, provider: AlpacaProvider, now: dt.datetime):
    run: ChildWorkRun = work_session_children(
        lake, broker, settings.execution, now=now, live_quotes=provider.live_quotes
    )
    assert run.skipped == ()
    return run


def test_twap_parent_is_worked_by_children_and_booked_from_their_fills(
    tmp_path: Path, fake: FakeAlpacaTrading, data: FakeAlpacaMarketData
) -> None:
    days, lake, settings, broker, orders = _ordered(tmp_path, fake, "TWAP")
    d1 = days[2]
    # 1. ordering D: nothing sent whole, each row says it is worked by children during D+1
    assert orders.height and set(orders["strategy"]) == {"TWAP"} and fake.posts() == []
    assert (orders["status"] == "SUBMITTED").all() and orders["broker_order_id"].is_null().all()
    assert (orders["reason"] == f"CHILD_ORDERS: worked during {d1} by the intraday step").all()
    again = _run(lake, days[1:2], broker, settings)[0].detail
    assert again.submitted == 0 and fake.posts() == []
    # 2. the intraday step during D+1: only the due children, a rerun at the same time sends nothing
    provider = AlpacaProvider(url_override=data.url, retry_attempts=0, timeout_s=5.0)
    _quote_all(data, orders, d1)
    opens_at, closes_at = session_bounds(d1)
    assert _step(lake, broker, settings, provider, opens_at - dt.timedelta(minutes=5)).submitted == 0
    first = _step(lake, broker, settings, provider, opens_at + dt.timedelta(minutes=65))
    posted = [p.json()["client_order_id"] for p in fake.posts()]
    assert first.submitted == len(posted) == 3 * orders.height
    assert {c.rsplit("-", 1)[1] for c in posted} == {"c01", "c02", "c03"}
    assert {parent_of(c) for c in posted} == set(orders["order_id"])
    assert _step(lake, broker, settings, provider, opens_at + dt.timedelta(minutes=65)).submitted == 0
    assert len(fake.posts()) == len(posted)
    later = _step(lake, broker, settings, provider, opens_at + dt.timedelta(minutes=95))
    assert later.submitted == orders.height and len(fake.posts()) == 4 * orders.height
    # the fills of the children sent so far; then one symbol trades 6% away: its open children are cancelled
    stopped_sym, stopped_id = orders.select("symbol", "order_id").row(0)
    for p in fake.posts():
        body = p.json()
        if body["client_order_id"] != f"{stopped_id}-c04":  # left open: the guard cancels it
            fake.fill(body["client_order_id"], float(body["qty"]), 50.0)
    _quote_all(data, orders, d1, away={stopped_sym: 1.06})
    guard_run = _step(lake, broker, settings, provider, opens_at + dt.timedelta(minutes=125))
    by_parent = {w.parent_id: w for w in guard_run.works}
    assert by_parent[stopped_id].reason == PRICE_AWAY and by_parent[stopped_id].submitted == ()
    assert by_parent[stopped_id].cancelled == (f"{stopped_id}-c04",)
    assert fake.order(f"{stopped_id}-c04")["status"] == "canceled"
    assert stop_reasons(lake, d1) == {stopped_id: PRICE_AWAY}
    # the rest of the day: the other parents finish, the stopped one sends nothing more
    _quote_all(data, orders, d1)
    end = _step(lake, broker, settings, provider, closes_at - dt.timedelta(minutes=1))
    assert {w.parent_id: w.reason for w in end.works}[stopped_id] == "STOPPED"
    assert stop_reasons(lake, d1) == {stopped_id: PRICE_AWAY}
    for p in fake.posts():
        body = p.json()
        if fake.order(body["client_order_id"])["status"] not in ("filled", "canceled"):
            fake.fill(body["client_order_id"], float(body["qty"]), 50.5)
    # 3. booking D+1: the children's fills are the parents' and the ledger matches Alpaca
    booked = _run(lake, days[2:3], broker, settings)[0].detail
    out = {r["order_id"]: r for r in booked.outcomes.iter_rows(named=True)}
    assert set(out) == set(orders["order_id"])
    assert out[stopped_id]["status"] == "CANCELLED" and out[stopped_id]["cancel_reason"] == PRICE_AWAY
    assert 0 < out[stopped_id]["filled_qty"] < out[stopped_id]["ordered_qty"]
    done = [r for oid, r in out.items() if oid != stopped_id]
    assert all(r["status"] == "FILLED" and abs(r["filled_qty"] - r["ordered_qty"]) < 1e-9 for r in done)
    assert all(50.0 <= r["fill_price"] <= 50.5 for r in done)
    ledger = dict(booked.positions.select("symbol", "qty").iter_rows())
    theirs = broker.positions()
    assert ledger.keys() == theirs.keys() and all(abs(q - theirs[s]) < 1e-6 for s, q in ledger.items())


def test_wait_sends_nothing_before_midday(tmp_path: Path, fake: FakeAlpacaTrading) -> None:
    days, lake, settings, broker, orders = _ordered(tmp_path, fake, "WAIT", symbols=3)
    assert orders.height and set(orders["strategy"]) == {"WAIT"} and fake.posts() == []
    prices = dict(orders.select("symbol", "price").iter_rows())

    def quotes(symbols, session):
        return {s: LiveQuote(prices[s], 0.0, prices[s]) for s in symbols}

    opens_at, _ = session_bounds(days[2])
    run = work_session_children(
        lake, broker, settings.execution, now=opens_at + dt.timedelta(minutes=175), live_quotes=quotes
    )
    assert run.submitted == 0 and len(run.works) == orders.height and fake.posts() == []
    run = work_session_children(
        lake, broker, settings.execution, now=opens_at + dt.timedelta(minutes=181), live_quotes=quotes
    )
    assert run.submitted == orders.height and all(p.json()["client_order_id"].endswith("-c07") for p in fake.posts())


def test_snapshot_live_quotes(data: FakeAlpacaMarketData) -> None:
    day = dt.date(2024, 3, 1)
    data.snapshots["AAPL"] = alpaca_snapshot(101.5, day, 12_345.0, 100.0)
    data.snapshots["MSFT"] = alpaca_snapshot(400.0, dt.date(2024, 2, 29), 9_999.0, 398.0)  # no bar of today yet
    got = AlpacaProvider(url_override=data.url, retry_attempts=0).live_quotes(["AAPL", "MSFT", "ZZZZ"], day)
    assert got == {"AAPL": LiveQuote(101.5, 12_345.0, 100.0), "MSFT": LiveQuote(400.0, 0.0, None)}
    [req] = data.requests_to(FakeAlpacaMarketData.SNAPSHOTS_PATH)
    assert req.param("symbols") == "AAPL,MSFT,ZZZZ" and KEYS["APCA_API_SECRET_KEY"] not in req.path


def test_intraday_schedule_runs_only_in_the_session_and_not_in_simulated_mode() -> None:
    def tick(when: dt.datetime):
        return intraday_child_orders.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))

    saturday = tick(dt.datetime(2024, 3, 2, 15, 0, tzinfo=dt.UTC))
    early = tick(dt.datetime(2024, 3, 1, 14, 5, tzinfo=dt.UTC))  # 09:05 New York
    assert "not an XNYS session" in saturday.skip_message and "outside the regular session" in early.skip_message
    if BASE.fund.mode.value == "simulated":
        assert "local paper broker" in tick(dt.datetime(2024, 3, 1, 15, 0, tzinfo=dt.UTC)).skip_message
