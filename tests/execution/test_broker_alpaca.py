"""AlpacaBroker against a local fake of Alpaca's trading API (real alpaca-py code path, no real sleeping)."""

from __future__ import annotations

import datetime as dt
import logging
import random
import socket
from collections.abc import Iterator

import pytest

from mqf_pipeline.execution.brokers.alpaca import AlpacaBroker
from mqf_pipeline.execution.brokers.base import AccountSnapshot, Broker, BrokerError, OrderRejectedError
from mqf_pipeline.execution.orders import (
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    client_order_id,
)
from tests.execution.fake_alpaca_trading import FakeAlpacaTrading
from tests.market.fakes import FakeResponse

pytestmark = pytest.mark.network_local

KEY, SECRET = "PKTEST9Q2W4E6R", "sk-3c1f-never-log-this-secret"
KEYS = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
SESSION = dt.date(2024, 3, 1)
PRICES = {OrderType.LIMIT: (101.25, None), OrderType.STOP: (None, 98.5), OrderType.STOP_LIMIT: (97.75, 98.5)}


class _TopRandom(random.Random):
    """Jitter at the top of its range: every backoff equals its cap."""

    def random(self) -> float:
        return 1.0


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading() as srv:
        yield srv  # type: ignore[misc]


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _broker(fake: FakeAlpacaTrading, sleeps: list[float], **kw: object) -> AlpacaBroker:
    opts: dict[str, object] = {"url_override": fake.url, "timeout_s": 2.0, "sleep": sleeps.append, "env": KEYS, **kw}
    return AlpacaBroker(**opts)  # type: ignore[arg-type]


def _order(symbol: str = "AAPL", qty: float = 10.0, side: Side = Side.BUY, **kw: object) -> OrderRequest:
    return OrderRequest(client_order_id("2024-03-01", symbol, side), symbol, side, qty, **kw)  # type: ignore[arg-type]


def test_is_a_broker_named_by_endpoint(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    broker = _broker(fake, sleeps)
    assert isinstance(broker, Broker)
    assert broker.name == "alpaca-paper" and broker.base_url == fake.url
    assert _broker(fake, sleeps, paper=False).name == "alpaca-live"


def test_paper_and_live_hosts_without_override() -> None:
    assert AlpacaBroker(paper=True, env=KEYS).base_url == "https://paper-api.alpaca.markets"
    assert AlpacaBroker(paper=False, env=KEYS).base_url == "https://api.alpaca.markets"


@pytest.mark.parametrize("missing", [["APCA_API_KEY_ID"], ["APCA_API_SECRET_KEY"], list(KEYS)])
def test_missing_keys_are_named(missing: list[str]) -> None:
    env = {k: v for k, v in KEYS.items() if k not in missing}
    with pytest.raises(BrokerError) as info:
        AlpacaBroker(env=env)
    assert all(name in str(info.value) for name in missing)
    assert KEY not in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("tif", list(TimeInForce))
@pytest.mark.parametrize("order_type", list(OrderType))
def test_order_types_and_tifs_reach_alpaca(
    fake: FakeAlpacaTrading, sleeps: list[float], order_type: OrderType, tif: TimeInForce
) -> None:
    limit, stop = PRICES.get(order_type, (None, None))
    req = _order(qty=12.0, order_type=order_type, time_in_force=tif, limit_price=limit, stop_price=stop)
    got = _broker(fake, sleeps).submit(req, session=SESSION)
    [post] = fake.posts()
    body = post.json()
    assert body["type"] == order_type.value.lower() and body["time_in_force"] == tif.value.lower()
    assert body["qty"] == "12.0000" and body["side"] == "buy" and body["symbol"] == "AAPL"
    assert body["client_order_id"] == req.client_order_id
    assert body.get("limit_price") == (None if limit is None else f"{limit:.2f}")
    assert body.get("stop_price") == (None if stop is None else f"{stop:.2f}")
    assert post.headers["APCA-API-KEY-ID"] == KEY
    assert (got.status, got.order_type, got.time_in_force, got.qty) == (OrderStatus.SUBMITTED, order_type, tif, 12.0)
    assert (got.limit_price, got.stop_price, got.client_order_id) == (limit, stop, req.client_order_id)
    assert got.broker_order_id == fake.order(req.client_order_id)["id"]


def test_fractional_qty(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    broker = _broker(fake, sleeps)
    with pytest.raises(ValueError, match="MSFT"):
        broker.submit(_order("MSFT", 2.5, time_in_force=TimeInForce.GTC), session=SESSION)
    assert fake.posts() == []
    got = broker.submit(_order("MSFT", 2.5), session=SESSION)
    assert fake.posts()[0].json()["qty"] == "2.5000" and got.qty == 2.5


def test_sub_penny_limit_price_is_refused_before_sending(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    with pytest.raises(ValueError, match="AAPL: limit_price"):
        _broker(fake, sleeps).submit(_order(order_type=OrderType.LIMIT, limit_price=101.255), session=SESSION)
    assert fake.posts() == []


def test_429_storm_shorter_than_max_attempts_backs_off_and_succeeds(
    fake: FakeAlpacaTrading, sleeps: list[float]
) -> None:
    fake.storm(3)
    got = _broker(fake, sleeps, rng=_TopRandom()).submit(_order(), session=SESSION)
    assert got.status is OrderStatus.SUBMITTED
    assert sleeps == [0.5, 1.0, 2.0]  # capped exponential backoff, full jitter at its top
    assert len(fake.posts()) == 4 and len(fake.orders) == 1
    assert fake.count("by_client_id") == 0  # a 429 is not ambiguous: no lookup needed


def test_default_jitter_is_deterministic_and_within_caps(fake: FakeAlpacaTrading) -> None:
    runs = []
    for _ in range(2):
        sleeps: list[float] = []
        fake.storm(4, endpoint="account")
        _broker(fake, sleeps, backoff_max_s=3.0).account()
        runs.append(sleeps)
    assert runs[0] == runs[1] and len(runs[0]) == 4
    assert all(0 <= s <= cap for s, cap in zip(runs[0], [0.5, 1.0, 2.0, 3.0], strict=True))


@pytest.mark.parametrize(("retry_after", "expected"), [("3", 3.0), ("30", 8.0), ("0.25", 0.25)])
def test_retry_after_is_honoured_and_capped(
    fake: FakeAlpacaTrading, sleeps: list[float], retry_after: str, expected: float
) -> None:
    fake.storm(2, retry_after=retry_after)
    _broker(fake, sleeps).submit(_order(), session=SESSION)
    assert sleeps == [expected, expected]


def test_429_storm_longer_than_max_attempts_is_retryable_error(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    fake.storm(10)
    with pytest.raises(BrokerError) as info:
        _broker(fake, sleeps, max_attempts=3).submit(_order(), session=SESSION)
    err = info.value
    assert err.retryable and not isinstance(err, OrderRejectedError)
    assert "3 attempts" in str(err) and "HTTP 429" in str(err)
    assert len(fake.posts()) == 3 and len(sleeps) == 2 and fake.orders == {}


def test_5xx_is_retried_with_a_lookup_before_each_resend(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    fake.fail("submit", FakeResponse(500, {"message": "internal"}), FakeResponse(503, {"message": "unavailable"}))
    got = _broker(fake, sleeps).submit(_order(), session=SESSION)
    assert got.status is OrderStatus.SUBMITTED
    assert len(fake.posts()) == 3 and len(fake.orders) == 1
    assert fake.hits == ["submit", "by_client_id", "submit", "by_client_id", "submit"]
    fake.fail("account", FakeResponse(502, "bad gateway"))
    assert _broker(fake, sleeps).account().cash == pytest.approx(100_000.0)


def test_403_is_rejected_and_not_retried(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    fake.reject("TSLA")
    with pytest.raises(OrderRejectedError) as info:
        _broker(fake, sleeps).submit(_order("TSLA"), session=SESSION)
    assert "insufficient buying power" in str(info.value) and "TSLA" in str(info.value)
    assert not info.value.retryable
    assert len(fake.posts()) == 1 and sleeps == [] and fake.orders == {}


def test_422_other_than_duplicate_is_rejected(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    fake.fail("submit", FakeResponse(422, {"code": 40010001, "message": "asset XYZ is not tradable"}))
    with pytest.raises(OrderRejectedError, match="not tradable"):
        _broker(fake, sleeps).submit(_order(), session=SESSION)
    assert len(fake.posts()) == 1 and sleeps == []


def test_timeout_after_the_server_stored_the_order_makes_one_order(
    fake: FakeAlpacaTrading, sleeps: list[float]
) -> None:
    fake.store_then_timeout(3.0)
    req = _order()
    got = _broker(fake, sleeps, timeout_s=0.2).submit(req, session=SESSION)
    assert len(fake.orders) == 1 and len(fake.posts()) == 1  # a lookup instead of a second POST
    assert fake.hits == ["submit", "by_client_id"]
    assert got.broker_order_id == fake.order(req.client_order_id)["id"] and len(sleeps) == 1


def test_timeout_before_the_server_stored_the_order_resends_once(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    fake.fail("submit", FakeResponse(200, {}, delay_s=3.0))
    got = _broker(fake, sleeps, timeout_s=0.2).submit(_order(), session=SESSION)
    assert fake.hits == ["submit", "by_client_id", "submit"]
    assert len(fake.orders) == 1 and got.status is OrderStatus.SUBMITTED


def test_connection_errors_are_retried_then_retryable_error(sleeps: list[float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = AlpacaBroker(url_override=f"http://127.0.0.1:{port}", sleep=sleeps.append, env=KEYS, max_attempts=2)
    with pytest.raises(BrokerError) as info:
        broker.positions()
    assert info.value.retryable and "2 attempts" in str(info.value) and "connection" in str(info.value)
    assert len(sleeps) == 1


def test_duplicate_submit_returns_the_existing_order(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    broker = _broker(fake, sleeps)
    first = broker.submit(_order(), session=SESSION)
    again = broker.submit(_order(), session=SESSION)
    assert again == first and len(fake.orders) == 1
    assert len(fake.posts()) == 2  # Alpaca refused the second with 422 "client_order_id must be unique"
    assert sleeps == []


def test_partial_then_full_fill(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    broker = _broker(fake, sleeps)
    buy, short = _order("AAPL", 10.0), _order("MSFT", 5.0, Side.SELL)
    ids = [buy.client_order_id, short.client_order_id]
    for req in (buy, short):
        broker.submit(req, session=SESSION)
    assert broker.fills(ids) == [] and broker.positions() == {}

    fake.fill(buy.client_order_id, 4, 100.0)
    partial = broker.get_orders(ids)[buy.client_order_id]
    assert (partial.status, partial.filled_qty, partial.filled_avg_price) == (OrderStatus.PARTIALLY_FILLED, 4.0, 100.0)
    [fill] = broker.fills(ids)
    assert (fill.qty, fill.price, fill.side, fill.commission) == (4.0, 100.0, Side.BUY, 0.0)
    assert fill.fill_id == f"{partial.broker_order_id}:4.0"
    assert dt.datetime.fromisoformat(fill.timestamp).utcoffset() == dt.timedelta(0)
    assert broker.positions() == {"AAPL": 4.0}

    fake.fill(buy.client_order_id, 6, 101.0)
    fake.fill(short.client_order_id, 5, 50.0)
    orders = broker.get_orders([*ids, "never-sent"])
    assert set(orders) == set(ids)
    done = orders[buy.client_order_id]
    assert (done.status, done.filled_qty, done.filled_avg_price) == (OrderStatus.FILLED, 10.0, pytest.approx(100.6))
    fills = {f.client_order_id: f for f in broker.fills(ids)}
    assert fills[buy.client_order_id].qty == 10.0 and fills[buy.client_order_id].price == pytest.approx(100.6)
    assert fills[buy.client_order_id].timestamp.startswith(fake.order(buy.client_order_id)["filled_at"][:19])
    assert fills[short.client_order_id].side is Side.SELL
    assert broker.positions() == {"AAPL": 10.0, "MSFT": -5.0}
    cash = 100_000.0 - 4 * 100.0 - 6 * 101.0 + 5 * 50.0
    equity = cash + 10 * 101.0 - 5 * 50.0
    assert broker.account() == AccountSnapshot(
        cash=pytest.approx(cash), equity=pytest.approx(equity), buying_power=pytest.approx(cash)
    )  # type: ignore[arg-type]


def test_cancel_open_and_terminal_orders(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    broker = _broker(fake, sleeps)
    open_order, filled = _order("AAPL"), _order("MSFT")
    for req in (open_order, filled):
        broker.submit(req, session=SESSION)
    fake.fill(open_order.client_order_id, 3, 10.0)
    cancelled = broker.cancel(open_order.client_order_id)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled_qty == 3.0
    fake.fill(filled.client_order_id, 10, 20.0)
    before = fake.count("cancel")
    assert broker.cancel(filled.client_order_id).status is OrderStatus.FILLED
    assert broker.cancel(open_order.client_order_id).status is OrderStatus.CANCELLED
    assert fake.count("cancel") == before  # terminal orders: no DELETE sent
    with pytest.raises(BrokerError, match="no order"):
        broker.cancel("never-sent")


@pytest.mark.parametrize(
    ("raw", "filled", "expected"),
    [
        *[
            (s, "0", OrderStatus.SUBMITTED)
            for s in ("new", "accepted", "pending_new", "accepted_for_bidding", "calculated", "pending_replace")
        ],
        *[(s, "0", OrderStatus.SUBMITTED) for s in ("pending_cancel", "held", "pending_review", "stopped")],
        ("new", "2", OrderStatus.PARTIALLY_FILLED),
        ("held", "2", OrderStatus.PARTIALLY_FILLED),
        ("partially_filled", "2", OrderStatus.PARTIALLY_FILLED),
        ("filled", "10", OrderStatus.FILLED),
        *[(s, "0", OrderStatus.CANCELLED) for s in ("canceled", "expired", "done_for_day", "replaced")],
        ("canceled", "2", OrderStatus.CANCELLED),
        ("rejected", "0", OrderStatus.REJECTED),
        ("suspended", "0", OrderStatus.REJECTED),
    ],
)
def test_status_mapping(
    fake: FakeAlpacaTrading, sleeps: list[float], raw: str, filled: str, expected: OrderStatus
) -> None:
    broker = _broker(fake, sleeps)
    req = _order()
    broker.submit(req, session=SESSION)
    fake.set_status(req.client_order_id, raw, filled_qty=filled, filled_avg_price="10" if filled != "0" else None)
    got = broker.get_orders([req.client_order_id])[req.client_order_id]
    assert got.status is expected
    assert (got.reject_reason is not None) == (expected is OrderStatus.REJECTED)


def test_done_for_day_gtc_order_stays_open(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    broker = _broker(fake, sleeps)
    req = _order(time_in_force=TimeInForce.GTC)
    broker.submit(req, session=SESSION)
    fake.set_status(req.client_order_id, "done_for_day")
    assert broker.get_orders([req.client_order_id])[req.client_order_id].status is OrderStatus.SUBMITTED


def test_unknown_status_is_an_error_naming_it(fake: FakeAlpacaTrading, sleeps: list[float]) -> None:
    broker = _broker(fake, sleeps)
    req = _order()
    broker.submit(req, session=SESSION)
    fake.set_status(req.client_order_id, "teleported")
    with pytest.raises(BrokerError, match="teleported"):
        broker.get_orders([req.client_order_id])


def test_keys_never_reach_logs_or_messages(
    fake: FakeAlpacaTrading, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = _broker(fake, sleeps, max_attempts=2, timeout_s=0.2)
    texts = [str(broker), repr(broker)]
    fake.storm(2, retry_after="1")
    fake.fail("account", FakeResponse(401, {"code": 40110000, "message": f"key {KEY} secret {SECRET} refused"}))
    fake.fail("positions", FakeResponse(200, [], delay_s=3.0), FakeResponse(200, [], delay_s=3.0))
    fake.reject("TSLA", f"insufficient buying power for {KEY}/{SECRET}")
    calls = [
        lambda: broker.submit(_order(), session=SESSION),
        broker.account,
        broker.positions,
        lambda: broker.submit(_order("TSLA"), session=SESSION),
    ]
    for call in calls:
        with pytest.raises(BrokerError) as info:
            call()
        texts.append(str(info.value))
    texts.append(caplog.text)
    blob = "\n".join(texts)
    assert "HTTP 429" in blob and "HTTP 401" in blob and "timeout" in blob and "insufficient buying power" in blob
    assert KEY not in blob and SECRET not in blob
