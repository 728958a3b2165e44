"""Child orders: the plan (closed forms), the guards, and the rerun-safe submission step of AlpacaBroker
against the local fake of Alpaca's trading API (real alpaca-py code path)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest

from mqf_pipeline.execution.brokers.alpaca import AlpacaBroker
from mqf_pipeline.execution.brokers.base import OrderRejectedError
from mqf_pipeline.execution.child_orders import (
    NO_QUOTE,
    PRICE_AWAY,
    SESSION_CLOSED,
    STOPPED,
    VOLUME_ANOMALY,
    LiveQuote,
    base_child_id,
    child_id,
    elapsed_volume_share,
    guard,
    limit_price_for,
    parent_of,
    plan_children,
    policy_request,
    revision_id,
)
from mqf_pipeline.execution.orders import OrderRequest, OrderStatus, OrderType, Side, TimeInForce, client_order_id
from mqf_pipeline.execution.sim_inputs import CostParams
from mqf_pipeline.execution.strategies import N_BUCKETS, u_shaped_profile
from tests.execution.fake_alpaca_trading import FakeAlpacaTrading

SESSION = dt.date(2024, 3, 1)  # a Friday, EST: 09:30 New York = 14:30 UTC
OPEN = dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.UTC)
CLOSE = dt.datetime(2024, 3, 1, 21, 0, tzinfo=dt.UTC)
KEYS = {"APCA_API_KEY_ID": "PKCHILD123", "APCA_API_SECRET_KEY": "child-secret-never-logged"}
PARAMS = CostParams()


def _parent(
    strategy: str, qty: float = 130.0, side: Side = Side.BUY, symbol: str = "AAPL", **kw: object
) -> OrderRequest:
    cid = client_order_id("2024-02-29", symbol, side)
    return OrderRequest(cid, symbol, side, qty, strategy=strategy, **kw)  # type: ignore[arg-type]


def _plan(strategy: str, qty: float = 130.0, **kw: object):
    return plan_children(_parent(strategy, qty, **kw), SESSION, arrival_price=100.0, adv=1_000_000.0)


def _at(minutes: float) -> dt.datetime:
    return OPEN + dt.timedelta(minutes=minutes)


# ---------------------------------------------------------------------------------------------- the plan
def test_twap_equal_whole_share_slices_every_30_minutes() -> None:
    plan = _plan("TWAP", 130.0)
    pid = plan.parent.client_order_id
    assert [c.request.qty for c in plan.children] == [10.0] * N_BUCKETS
    assert [c.client_order_id for c in plan.children] == [f"{pid}-c{k:02d}" for k in range(1, 14)]
    assert [c.due for c in plan.children] == [_at(30 * k) for k in range(N_BUCKETS)]
    assert (plan.opens_at, plan.closes_at) == (OPEN, CLOSE)
    assert all(
        c.request.order_type is OrderType.MARKET and c.request.time_in_force is TimeInForce.DAY for c in plan.children
    )


def test_twap_rounds_on_the_cumulative_schedule_and_sums_exactly() -> None:
    plan = _plan("TWAP", 100.5)
    qty = [c.request.qty for c in plan.children]
    assert plan.planned_qty == 100.5 and plan.unplanned_qty == 0.0
    whole = [q - (0.5 if k == N_BUCKETS - 1 else 0.0) for k, q in enumerate(qty)]
    assert all(w == int(w) for w in whole)
    # cumulative whole shares are the planned cumulative 100.5 (k+1)/13 rounded, capped at 100
    assert list(np.cumsum(whole)) == [min(np.floor(100.5 * (k + 1) / 13 + 0.5), 100) for k in range(12)] + [100]


def test_vwap_follows_the_simulators_volume_profile() -> None:
    prof = u_shaped_profile()
    plan = _plan("VWAP", 10_000.0)
    qty = np.array([c.request.qty for c in plan.children])
    assert qty.sum() == 10_000.0 and np.abs(qty - 10_000.0 * prof).max() <= 1.0
    assert qty[0] > qty[6] < qty[-1]  # U shape: busy open and close, quiet midday
    custom = np.arange(1.0, 14.0)  # weights 1..13, total 91: 910 shares -> 10 k shares in bucket k
    plan = plan_children(_parent("VWAP", 910.0), SESSION, arrival_price=100.0, adv=1e6, profile=custom)
    assert [c.request.qty for c in plan.children] == [10.0 * k for k in range(1, 14)]


def test_pov_sizes_by_participation_of_expected_volume() -> None:
    prof = u_shaped_profile()
    # 1% of 50,000 shares expected: 500 planned, the rest of 1,000 is not carried by any child
    plan = plan_children(_parent("POV", 1000.0, pov_rate=0.01), SESSION, arrival_price=100.0, adv=50_000.0)
    qty = np.array([c.request.qty for c in plan.children])
    assert np.abs(qty - 500.0 * prof).max() <= 1.0 and qty.sum() == 500.0 and plan.unplanned_qty == 500.0
    # enough participation: done once 10% of cumulative expected volume reaches the parent
    plan = plan_children(_parent("POV", 1000.0, pov_rate=0.1), SESSION, arrival_price=100.0, adv=50_000.0)
    cum_volume = 0.1 * 50_000.0 * np.cumsum(prof)
    assert plan.planned_qty == 1000.0 and len(plan.children) == int(np.argmax(cum_volume >= 1000.0)) + 1


def test_market_and_limit_are_one_child_at_the_open() -> None:
    market = _plan("MARKET", 42.0)
    [child] = market.children
    assert (child.request.qty, child.due, child.request.order_type) == (42.0, OPEN, OrderType.MARKET)
    [buy] = _plan("LIMIT", 42.0, limit_offset_bps=5.0).children
    assert (buy.request.order_type, buy.request.limit_price) == (OrderType.LIMIT, 99.95)  # 100 x (1 - 5 bps)
    sell = plan_children(
        _parent("LIMIT", 7.0, side=Side.SELL, limit_offset_bps=5.0), SESSION, arrival_price=100.003, adv=1e6
    )
    assert sell.children[0].request.limit_price == 100.06  # 100.053 rounded up to the cent: passive for a sell


def test_wait_sends_nothing_before_midday() -> None:
    plan = _plan("WAIT", 70.0)
    assert [c.bucket for c in plan.children] == list(range(6, 13)) and plan.planned_qty == 70.0
    assert min(c.due for c in plan.children) == _at(180)


def test_early_close_session_spreads_the_buckets_over_the_short_day() -> None:
    plan = plan_children(_parent("TWAP"), dt.date(2024, 11, 29), arrival_price=100.0, adv=1e6)
    assert plan.closes_at - plan.opens_at == dt.timedelta(hours=3, minutes=30)
    assert plan.children[1].due - plan.children[0].due == dt.timedelta(minutes=210) / 13


def test_bad_inputs_name_the_symbol_and_order() -> None:
    p = _parent("TWAP")
    with pytest.raises(ValueError, match=f"AAPL order {p.client_order_id}: ADV"):
        plan_children(p, SESSION, arrival_price=100.0, adv=0.0)
    with pytest.raises(ValueError, match=r"AAPL order .*unknown execution strategy"):
        plan_children(_parent("ICEBERG"), SESSION, arrival_price=100.0, adv=1e6)
    with pytest.raises(ValueError, match="not an XNYS session"):
        plan_children(p, dt.date(2024, 3, 2), arrival_price=100.0, adv=1e6)


def test_ids_and_limit_prices() -> None:
    cid = child_id("P", 0)
    assert (cid, revision_id(cid, 2), revision_id(revision_id(cid, 1), 2)) == ("P-c01", "P-c01-r2", "P-c01-r2")
    assert parent_of("P-c01-r2") == parent_of("P-c13") == parent_of("P") == "P"
    assert base_child_id("P-c01-r2") == "P-c01"
    assert limit_price_for("X", Side.BUY, 0.5, 10.0) == 0.4995  # sub-dollar tick
    req = _parent("LIMIT", 10.0, limit_offset_bps=20.0)
    lim = policy_request(req, 50.0)
    assert (lim.order_type, lim.limit_price, lim.time_in_force) == (OrderType.LIMIT, 49.9, TimeInForce.DAY)
    assert policy_request(_parent("TWAP"), 50.0) == _parent("TWAP")


# ---------------------------------------------------------------------------------------------- guards
def test_price_away_guard_at_five_percent() -> None:
    plan = _plan("TWAP")
    assert guard(plan, LiveQuote(105.01, 0.0), _at(45), PARAMS) == PRICE_AWAY
    assert guard(plan, LiveQuote(94.99, 0.0), _at(45), PARAMS) == PRICE_AWAY
    assert guard(plan, LiveQuote(104.99, 0.0), _at(45), PARAMS) is None


def test_volume_anomaly_guard_at_three_times_the_expected_volume_so_far() -> None:
    plan, prof = _plan("TWAP"), u_shaped_profile()
    share = float(prof[:3].sum() + 0.5 * prof[3])  # 105 minutes in: three buckets and half of the fourth
    assert elapsed_volume_share(plan, _at(105)) == pytest.approx(share)
    limit = 3.0 * 1e6 * share
    assert guard(plan, LiveQuote(100.0, limit * 1.001), _at(105), PARAMS) == VOLUME_ANOMALY
    assert guard(plan, LiveQuote(100.0, limit * 0.999), _at(105), PARAMS) is None
    # in the first bucket the threshold is at least the first bucket's expected volume; at the close 3x ADV
    assert guard(plan, LiveQuote(100.0, 3e6 * prof[0] * 0.999), _at(1), PARAMS) is None
    assert elapsed_volume_share(plan, CLOSE) == 1.0


# ---------------------------------------------------------------------------------------------- at Alpaca
@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading() as srv:
        yield srv  # type: ignore[misc]


@pytest.fixture
def broker(fake: FakeAlpacaTrading) -> AlpacaBroker:
    return AlpacaBroker(url_override=fake.url, timeout_s=2.0, sleep=lambda s: None, env=KEYS)


QUIET = {"AAPL": LiveQuote(100.2, 1_000.0)}


@pytest.mark.network_local
def test_limit_request_reaches_alpaca_as_a_limit_order(fake: FakeAlpacaTrading, broker: AlpacaBroker) -> None:
    req = policy_request(_parent("LIMIT", 12.0, limit_offset_bps=10.0, time_in_force=TimeInForce.GTC), 250.0)
    got = broker.submit(req, session=SESSION)
    body = fake.posts()[0].json()
    assert (body["type"], body["limit_price"], body["time_in_force"]) == ("limit", "249.75", "gtc")
    assert (got.order_type, got.limit_price, got.time_in_force) == (OrderType.LIMIT, 249.75, TimeInForce.GTC)


@pytest.mark.network_local
def test_children_go_on_schedule_and_a_rerun_sends_nothing_twice(fake: FakeAlpacaTrading, broker: AlpacaBroker) -> None:
    plan = _plan("TWAP", 130.0)
    ids = [c.client_order_id for c in plan.children]
    assert broker.work_children([plan], now=OPEN - dt.timedelta(minutes=5), quotes=QUIET)[0].submitted == ()
    [work] = broker.work_children([plan], now=_at(65), quotes=QUIET)
    assert work.submitted == tuple(ids[:3]) and work.reason is None
    posts = [p.json() for p in fake.posts()]
    assert [(p["client_order_id"], p["qty"], p["type"]) for p in posts] == [(i, "10.0000", "market") for i in ids[:3]]
    [again] = broker.work_children([plan], now=_at(65), quotes=QUIET)
    assert again.submitted == () and len(fake.posts()) == 3 and set(again.orders) == set(ids[:3])
    fake.fill(ids[0], 4.0, 100.1)
    [later] = broker.work_children([plan], now=_at(95), quotes=QUIET)
    assert later.submitted == (ids[3],) and len(fake.posts()) == 4 and later.filled_qty == 4.0
    [closed] = broker.work_children([plan], now=CLOSE, quotes=QUIET)
    assert closed.reason == SESSION_CLOSED and len(fake.posts()) == 4


@pytest.mark.network_local
def test_price_away_cancels_open_children_and_the_parent_stays_stopped(
    fake: FakeAlpacaTrading, broker: AlpacaBroker
) -> None:
    plan = _plan("TWAP", 130.0)
    ids = [c.client_order_id for c in plan.children]
    broker.work_children([plan], now=_at(35), quotes=QUIET)
    fake.fill(ids[0], 10.0, 100.0)  # c01 done, c02 open
    [work] = broker.work_children([plan], now=_at(65), quotes={"AAPL": LiveQuote(105.5, 1_000.0)})
    assert (work.reason, work.cancelled, work.submitted) == (PRICE_AWAY, (ids[1],), ())
    assert fake.order(ids[1])["status"] == "canceled" and fake.order(ids[0])["status"] == "filled"
    assert len(fake.posts()) == 2
    [rerun] = broker.work_children([plan], now=_at(125), quotes=QUIET)  # price back: still stopped
    assert (rerun.reason, rerun.submitted) == (STOPPED, ()) and len(fake.posts()) == 2


@pytest.mark.network_local
def test_volume_anomaly_aborts_the_rest(fake: FakeAlpacaTrading, broker: AlpacaBroker) -> None:
    plan = _plan("VWAP", 1300.0)
    broker.work_children([plan], now=_at(35), quotes=QUIET)
    assert len(fake.posts()) == 2
    heavy = {"AAPL": LiveQuote(100.0, 3.0 * 1e6 * elapsed_volume_share(plan, _at(65)) + 1.0)}
    [work] = broker.work_children([plan], now=_at(65), quotes=heavy)
    assert work.reason == VOLUME_ANOMALY and work.submitted == () and len(work.cancelled) == 2
    assert all(o.status is OrderStatus.CANCELLED for o in broker.get_orders(work.cancelled).values())
    assert broker.work_children([plan], now=_at(95), quotes=QUIET)[0].reason == STOPPED and len(fake.posts()) == 2


@pytest.mark.network_local
def test_wait_sends_nothing_at_alpaca_before_midday(fake: FakeAlpacaTrading, broker: AlpacaBroker) -> None:
    plan = _plan("WAIT", 70.0)
    [work] = broker.work_children([plan], now=_at(175), quotes=QUIET)
    assert (work.submitted, work.reason, fake.posts()) == ((), None, [])
    assert broker.work_children([plan], now=_at(181), quotes=QUIET)[0].submitted == (plan.children[0].client_order_id,)


@pytest.mark.network_local
def test_no_quote_kill_switch_and_refusals(fake: FakeAlpacaTrading, broker: AlpacaBroker) -> None:
    plan = _plan("TWAP", 130.0)
    [work] = broker.work_children([plan], now=_at(65), quotes={})
    assert (work.reason, work.submitted, fake.posts()) == (NO_QUOTE, (), [])
    calls: list[int] = []

    def switch() -> str | None:
        calls.append(1)
        return "KILL_SWITCH: test" if len(calls) > 1 else None

    [work] = broker.work_children([plan], now=_at(65), quotes=QUIET, kill_switch=switch)
    assert work.reason == "KILL_SWITCH: test" and len(work.submitted) == 1 and len(fake.posts()) == 1
    other = _plan("TWAP", 26.0, symbol="MSFT")
    fake.reject("MSFT")
    [refused] = broker.work_children([other], now=_at(35), quotes={"MSFT": LiveQuote(100.0, 0.0)})
    assert [cid for cid, _ in refused.rejected] == [c.client_order_id for c in other.children[:2]]
    assert "insufficient buying power" in refused.rejected[0][1] and refused.submitted == ()


@pytest.mark.network_local
def test_cancel_replace_uses_revision_ids_and_is_rerun_safe(fake: FakeAlpacaTrading, broker: AlpacaBroker) -> None:
    plan = _plan("LIMIT", 20.0, limit_offset_bps=10.0)
    [child] = plan.children
    cid = child.client_order_id
    broker.work_children([plan], now=_at(1), quotes=QUIET)
    assert fake.posts()[0].json()["limit_price"] == "99.90"
    fake.fill(cid, 5.0, 99.9)
    r1 = broker.replace(cid, qty=15.0, limit_price=100.05)
    assert (r1.client_order_id, r1.limit_price, r1.qty, r1.status) == (f"{cid}-r1", 100.05, 15.0, OrderStatus.SUBMITTED)
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert len(patches) == 1 and patches[0].json() == {
        "client_order_id": f"{cid}-r1",
        "qty": "15.0000",
        "limit_price": "100.05",
    }
    assert fake.order(cid)["status"] == "replaced" and fake.order(cid)["replaced_by"] == fake.order(f"{cid}-r1")["id"]
    assert broker.replace(cid, limit_price=100.05) == r1 and len([r for r in fake.requests if r.method == "PATCH"]) == 1
    assert broker.live_orders([cid])[cid].client_order_id == f"{cid}-r1"
    assert broker.replace(f"{cid}-r1", limit_price=100.1).client_order_id == f"{cid}-r2"
    # the step sees the live revision: nothing resubmitted, and a guard cancels the revision, not the child
    [work] = broker.work_children([plan], now=_at(40), quotes={"AAPL": LiveQuote(94.0, 0.0)})
    assert (work.reason, work.cancelled, len(fake.posts())) == (PRICE_AWAY, (f"{cid}-r2",), 1)
    with pytest.raises(OrderRejectedError, match=f"{cid}-r2 \\(AAPL\\) is CANCELLED"):
        broker.replace(cid, limit_price=99.0)
