"""Alpaca (paper or live) as a :class:`Broker`, through alpaca-py's ``TradingClient``.

Keys come only from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` (of ``env``, default ``os.environ``) and
never reach a log record, an exception message or a repr: text Alpaca sends back is redacted before use.
``paper`` picks Alpaca's paper or live host; ``url_override`` (tests, proxies) wins over both.

HTTP: the client's ``requests.Session`` is swapped for one that applies ``timeout_s`` (alpaca-py sets
none) and alpaca-py's own retry is switched off (``_retry = 0``). This broker retries HTTP 429, 5xx,
connection errors and timeouts itself, up to ``max_attempts`` attempts, sleeping between attempts
``Retry-After`` seconds when the server sends it, else a full-jitter exponential backoff
``uniform(0, min(backoff_max_s, backoff_base_s * 2**(k-1)))`` after the k-th failure (seeded ``rng``,
deterministic by default); either wait is capped at ``backoff_max_s``. Exhausted retries raise
``BrokerError(retryable=True)``; other 4xx are not retried (403/422 on submit: :class:`OrderRejectedError`).

Idempotency of :meth:`AlpacaBroker.submit` on ``client_order_id``: after an ambiguous failure (timeout,
connection error, 5xx: the order may have reached Alpaca) the next attempt first looks the id up
(``GET /v2/orders:by_client_order_id``) and returns the order if it exists instead of sending it again;
Alpaca's 422 "client_order_id must be unique" also returns the existing order. Every POST of one order
carries the same id, so Alpaca's uniqueness check backs this up: no path creates two orders with one id.

Reads use one by-client-id lookup per order (a cycle sends a few hundred at most; no list paging or
status windows to get wrong). Status mapping (Alpaca -> :class:`OrderStatus`):

* new, accepted, pending_new, accepted_for_bidding, calculated, pending_replace, pending_cancel, held,
  pending_review -> SUBMITTED (PARTIALLY_FILLED when something has filled);
* ``stopped`` -> open as above, not CANCELLED: Alpaca documents it as "a trade is guaranteed but has not
  occurred yet", so a terminal status would be contradicted by the coming fill;
* partially_filled -> PARTIALLY_FILLED; filled -> FILLED;
* canceled, expired, replaced -> CANCELLED; done_for_day -> CANCELLED, except for a GTC order, which
  Alpaca works again the next session (open as above);
* rejected, suspended -> REJECTED (``suspended``: Alpaca will not trade the order; the fund treats it as
  refused and re-plans rather than wait on an order it cannot cancel);
* anything else -> :class:`BrokerError` naming the status.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import requests
from alpaca.common.enums import BaseURL
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopLimitOrderRequest, StopOrderRequest
from pydantic import BaseModel, ValidationError

from mqf_pipeline.execution.brokers.base import AccountSnapshot, BrokerError, OrderRejectedError
from mqf_pipeline.execution.orders import (
    QTY_DECIMALS,
    BrokerOrder,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    round_qty,
)

logger = logging.getLogger(__name__)

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
DUPLICATE_ID_MESSAGE = "client_order_id must be unique"

_OPEN = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "calculated",
        "pending_replace",
        "pending_cancel",
        "held",
        "pending_review",
        "stopped",
    }
)
_CLOSED: dict[str, OrderStatus] = {
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.CANCELLED,
    "replaced": OrderStatus.CANCELLED,
    "done_for_day": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "suspended": OrderStatus.REJECTED,
}
_TYPES = {t.value.lower(): t for t in OrderType}
_TIFS = {t.value.lower(): t for t in TimeInForce}
_REQUESTS: dict[OrderType, type[MarketOrderRequest | LimitOrderRequest | StopOrderRequest | StopLimitOrderRequest]] = {
    OrderType.MARKET: MarketOrderRequest,
    OrderType.LIMIT: LimitOrderRequest,
    OrderType.STOP: StopOrderRequest,
    OrderType.STOP_LIMIT: StopLimitOrderRequest,
}
_TRANSIENT = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class _TimeoutSession(requests.Session):
    """A ``requests.Session`` that applies a default timeout (seconds) to every request."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def _price_text(symbol: str, name: str, price: float) -> str:
    """``price`` in dollars as Alpaca's tick allows: cents at $1 and above, 4 decimals below."""
    decimals = 2 if price >= 1.0 else 4
    if round(price, decimals) != price:
        raise ValueError(f"{symbol}: {name} {price} is finer than Alpaca's {decimals}-decimal tick at this price")
    return f"{price:.{decimals}f}"


def order_payload(order: OrderRequest) -> dict[str, Any]:
    """The JSON body of ``POST /v2/orders`` for ``order``: qty with 4 decimals, prices as ticks (strings).

    Validated by alpaca-py's request model of the order type. Raises ``ValueError`` (naming the symbol)
    for a fractional quantity with a time in force other than DAY, which Alpaca refuses.
    """
    if order.qty != int(order.qty) and order.time_in_force is not TimeInForce.DAY:
        raise ValueError(
            f"{order.symbol}: fractional quantity {order.qty} needs time_in_force DAY at Alpaca, "
            f"got {order.time_in_force.value}"
        )
    prices = {k: v for k, v in (("limit_price", order.limit_price), ("stop_price", order.stop_price)) if v is not None}
    request = _REQUESTS[order.order_type](
        symbol=order.symbol,
        qty=order.qty,
        side=AlpacaSide(order.side.value.lower()),
        time_in_force=AlpacaTif(order.time_in_force.value.lower()),
        client_order_id=order.client_order_id,
        **prices,
    )
    body = {k: getattr(v, "value", v) for k, v in request.to_request_fields().items()}
    body["qty"] = f"{order.qty:.{QTY_DECIMALS}f}"
    body.update({k: _price_text(order.symbol, k, v) for k, v in prices.items()})
    return body


def _float(value: str | float | None) -> float:
    """An Alpaca decimal (string or number) as a float; missing is 0."""
    return 0.0 if value is None or value == "" else float(value)


def _optional(value: str | float | None) -> float | None:
    """An Alpaca decimal as a float; missing is None."""
    return None if value is None or value == "" else float(value)


class AlpacaBroker:
    """Alpaca's trading API v2 as a :class:`Broker` (see module docstring). Times in seconds.

    ``sleep`` waits between retries (tests inject a recorder); ``rng`` draws the jitter (default
    ``random.Random(0)``); ``env`` holds the keys (default ``os.environ``).
    """

    #: Alpaca trades from now on: the execution cycle must not send it orders for past sessions.
    accepts_historical = False

    def __init__(
        self,
        paper: bool = True,
        url_override: str | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        env: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if not (timeout_s > 0):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if backoff_base_s < 0 or backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must be >= 0")
        env = os.environ if env is None else env
        key, secret = env.get(KEY_ENV, "").strip(), env.get(SECRET_ENV, "").strip()
        missing = [name for name, value in ((KEY_ENV, key), (SECRET_ENV, secret)) if not value]
        if missing:
            raise BrokerError(f"Alpaca broker needs {' and '.join(missing)} set in the environment")
        self.paper = paper
        self.name = "alpaca-paper" if paper else "alpaca-live"
        self.timeout_s = float(timeout_s)
        self.max_attempts = int(max_attempts)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random(0)
        self._secrets = (key, secret)
        self._client = TradingClient(key, secret, paper=paper, raw_data=True, url_override=url_override or None)
        self._client._session = _TimeoutSession(self.timeout_s)
        self._client._retry = 0  # alpaca-py retries nothing; _retrying below does
        self._client._retry_codes = []

    @property
    def base_url(self) -> str:
        """The trading API host requests go to (without the ``/v2`` version)."""
        url = self._client._base_url
        return url.value if isinstance(url, BaseURL) else str(url)

    def __repr__(self) -> str:
        return f"AlpacaBroker(name={self.name!r}, base_url={self.base_url!r}, timeout_s={self.timeout_s:g})"

    # ------------------------------------------------------------------ HTTP plumbing
    def _redact(self, text: str) -> str:
        for value in self._secrets:
            text = text.replace(value, "***")
        return text

    def _message(self, e: APIError) -> str:
        """Alpaca's error message (its JSON ``message`` or the raw body), redacted and shortened."""
        text = str(e)
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("message"):
            text = str(body["message"])
        return self._redact(text.strip()[:300])

    def _delay(self, failures: int, e: Exception) -> float:
        """Seconds to wait after the ``failures``-th failed attempt: ``Retry-After`` or full jitter."""
        response = getattr(e, "response", None)
        raw = response.headers.get("Retry-After") if response is not None else None
        if raw:
            try:
                wait: float | None = float(raw)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(raw)
                    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
                    wait = (when - dt.datetime.now(dt.UTC)).total_seconds()
                except (TypeError, ValueError):
                    wait = None
            if wait is not None:
                return min(max(wait, 0.0), self.backoff_max_s)
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** (failures - 1))
        return self._rng.uniform(0.0, cap)

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """``attempt()`` with retries on 429, 5xx, timeouts and connection errors (module docstring).

        Any other HTTP error becomes a non-retryable :class:`BrokerError` with Alpaca's (redacted) message.
        """
        last = ""
        for n in range(1, self.max_attempts + 1):
            try:
                return attempt()
            except APIError as e:
                status = e.status_code
                if status is None or (status != 429 and status < 500):
                    raise BrokerError(f"{self.name}: {what}: HTTP {status}: {self._message(e)}") from None
                last, error = f"HTTP {status}", e
            except _TRANSIENT as e:
                last = "timeout" if isinstance(e, requests.Timeout) else f"connection error ({type(e).__name__})"
                error = e
            if n < self.max_attempts:
                delay = self._delay(n, error)
                logger.warning(
                    "%s: %s failed (%s), attempt %d/%d; retrying in %.2f s",
                    self.name,
                    what,
                    last,
                    n,
                    self.max_attempts,
                    delay,
                )
                self._sleep(delay)
        raise BrokerError(
            f"{self.name}: {what} failed after {self.max_attempts} attempts (last: {last})", retryable=True
        )

    def _model(self, cls: type[M], raw: object, what: str) -> M:
        """``raw`` (Alpaca JSON) validated as alpaca-py model ``cls``; a bad body is a :class:`BrokerError`."""
        if not isinstance(raw, dict):
            raise BrokerError(f"{self.name}: {what}: expected a JSON object, got {type(raw).__name__}")
        try:
            return cls(**raw)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BrokerError(f"{self.name}: {what}: bad {cls.__name__} ({where}: {first['msg']})") from None

    def _order(self, raw: object) -> BrokerOrder:
        """An Alpaca order (JSON) as a :class:`BrokerOrder`, status mapped as in the module docstring."""
        status = str(raw.get("status")) if isinstance(raw, dict) else ""
        cid = raw.get("client_order_id") if isinstance(raw, dict) else None
        if status not in _OPEN and status not in _CLOSED:
            raise BrokerError(f"{self.name}: order {cid}: unknown Alpaca order status {status!r}")
        o = self._model(Order, raw, f"order {cid}")
        kind = o.type or o.order_type
        order_type = _TYPES.get(kind.value if kind is not None else "")
        tif = _TIFS.get(o.time_in_force.value)
        if order_type is None or tif is None or o.side is None or o.symbol is None:
            raise BrokerError(
                f"{self.name}: order {cid}: unsupported order (type {kind}, time_in_force {o.time_in_force.value})"
            )
        filled = round_qty(_float(o.filled_qty))
        mapped = _CLOSED.get(status)
        if mapped is None or (status == "done_for_day" and tif is TimeInForce.GTC):
            mapped = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
        return BrokerOrder(
            client_order_id=o.client_order_id,
            broker_order_id=str(o.id),
            symbol=o.symbol,
            side=Side.BUY if o.side is AlpacaSide.BUY else Side.SELL,
            qty=round_qty(_float(o.qty)),
            order_type=order_type,
            time_in_force=tif,
            status=mapped,
            filled_qty=filled,
            filled_avg_price=_optional(o.filled_avg_price),
            limit_price=_optional(o.limit_price),
            stop_price=_optional(o.stop_price),
            reject_reason=f"Alpaca status {status}" if mapped is OrderStatus.REJECTED else None,
        )

    def _lookup_once(self, client_order_id: str) -> object | None:
        """One ``GET /v2/orders:by_client_order_id``: the raw order, or None on 404."""
        try:
            return self._client.get_order_by_client_id(client_order_id)
        except APIError as e:
            if e.status_code == 404:
                return None
            raise

    def _find(self, client_order_id: str) -> object | None:
        return self._retrying(f"lookup of order {client_order_id}", lambda: self._lookup_once(client_order_id))

    # ------------------------------------------------------------------ Broker
    def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, BrokerOrder]:
        """Alpaca's view of each id (one by-client-id lookup per id); ids Alpaca does not know are absent."""
        out: dict[str, BrokerOrder] = {}
        for cid in dict.fromkeys(client_order_ids):
            raw = self._find(cid)
            if raw is not None:
                out[cid] = self._order(raw)
        return out

    def submit(self, order: OrderRequest, *, session: dt.date) -> BrokerOrder:
        """Send ``order`` made at ``session``'s close; Alpaca queues it for the next session's open.

        Idempotent on ``client_order_id`` (module docstring). Raises ``ValueError`` for an order Alpaca
        cannot take (fractional non-DAY, sub-tick price), :class:`OrderRejectedError` on 403/422.
        """
        body = order_payload(order)
        cid = order.client_order_id
        what = f"submit of {order.side.value} {order.qty:g} {order.symbol} ({cid})"
        ambiguous = False

        def attempt() -> object:
            nonlocal ambiguous
            if ambiguous:
                existing = self._lookup_once(cid)
                if existing is not None:
                    logger.info("%s: order %s reached Alpaca before the failure; not sending it again", self.name, cid)
                    return existing
            try:
                return self._client.post("/orders", body)
            except APIError as e:
                if e.status_code is not None and e.status_code >= 500:
                    ambiguous = True
                    raise
                if e.status_code == 422 and DUPLICATE_ID_MESSAGE in str(e):
                    existing = self._lookup_once(cid)
                    if existing is None:
                        raise BrokerError(
                            f"{self.name}: {what}: Alpaca reports a duplicate id it cannot find"
                        ) from None
                    logger.info("%s: order %s already at Alpaca; returning it", self.name, cid)
                    return existing
                if e.status_code in (403, 422):
                    raise OrderRejectedError(f"{self.name} rejected {what}: {self._message(e)}") from None
                raise
            except _TRANSIENT:
                ambiguous = True
                raise

        logger.info("%s: %s for the session after %s", self.name, what, session)
        return self._order(self._retrying(what, attempt))

    def cancel(self, client_order_id: str) -> BrokerOrder:
        """Cancel by Alpaca's order id; a terminal order is returned unchanged, an unknown id raises.

        Returns Alpaca's view right after the request (``pending_cancel`` reads SUBMITTED until confirmed).
        """
        raw = self._find(client_order_id)
        if raw is None:
            raise BrokerError(f"{self.name}: no order {client_order_id} to cancel")
        order = self._order(raw)
        if order.status.terminal:
            return order
        broker_id = order.broker_order_id

        def attempt() -> None:
            try:
                self._client.cancel_order_by_id(broker_id)
            except APIError as e:
                if e.status_code != 422:  # 422: no longer cancelable (filled or cancelled meanwhile)
                    raise

        self._retrying(f"cancel of order {client_order_id}", attempt)
        return self._order(
            self._retrying(f"read of order {client_order_id}", lambda: self._client.get_order_by_id(broker_id))
        )

    def fills(self, client_order_ids: Sequence[str]) -> list[Fill]:
        """One aggregate fill per order with filled_qty > 0: average price, no commission (Alpaca charges none
        on US equities), stamped ``filled_at`` (else ``updated_at``) in UTC; ``fill_id`` = broker id:filled qty.
        """
        out: list[Fill] = []
        for cid in dict.fromkeys(client_order_ids):
            raw = self._find(cid)
            if raw is None:
                continue
            order = self._order(raw)
            if order.filled_qty <= 0:
                continue
            o = self._model(Order, raw, f"order {cid}")
            if order.filled_avg_price is None:
                raise BrokerError(f"{self.name}: order {cid} has filled_qty {order.filled_qty} but no filled_avg_price")
            when = o.filled_at or o.updated_at
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
            out.append(
                Fill(
                    client_order_id=cid,
                    fill_id=f"{order.broker_order_id}:{order.filled_qty}",
                    symbol=order.symbol,
                    side=order.side,
                    qty=order.filled_qty,
                    price=order.filled_avg_price,
                    timestamp=when.astimezone(dt.UTC).isoformat(),
                    commission=0.0,
                )
            )
        return out

    def positions(self) -> dict[str, float]:
        """Signed shares per symbol (short positions negative), non-zero only."""
        raw = self._retrying("positions", self._client.get_all_positions)
        if not isinstance(raw, list):
            raise BrokerError(f"{self.name}: positions: expected a JSON list, got {type(raw).__name__}")
        out: dict[str, float] = {}
        for item in raw:
            p = self._model(Position, item, "position")
            qty = abs(round_qty(float(p.qty)))
            if qty:
                out[p.symbol] = -qty if p.side.value == "short" else qty
        return out

    def account(self) -> AccountSnapshot:
        """Cash, equity and buying power in dollars."""
        a = self._model(TradeAccount, self._retrying("account", self._client.get_account), "account")
        cash, equity, buying_power = _optional(a.cash), _optional(a.equity), _optional(a.buying_power)
        if cash is None or equity is None or buying_power is None:
            raise BrokerError(f"{self.name}: account without cash, equity or buying_power")
        return AccountSnapshot(cash=cash, equity=equity, buying_power=buying_power)
