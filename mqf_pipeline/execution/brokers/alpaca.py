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

Order types: an :class:`OrderRequest`'s type, limit/stop price and time in force reach Alpaca as they are
(``order_payload``). Child orders (:mod:`mqf_pipeline.execution.child_orders`): :meth:`AlpacaBroker.work_children`
is the rerun-safe intraday step (submit the children due and unknown to Alpaca, cancel on the PRICE_AWAY
and VOLUME_ANOMALY guards), :meth:`AlpacaBroker.replace` the cancel-replace (``PATCH /v2/orders/{id}``) to
revision ``<child>-rN``, :meth:`AlpacaBroker.live_orders` each child's live revision.

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
from alpaca.trading.models import Order, Position, TradeAccount

from mqf_pipeline.execution.brokers.alpaca_children import AlpacaChildOrders
from mqf_pipeline.execution.brokers.alpaca_orders import (
    _map_order,
    _optional,
    _parse_model,
    order_payload,
)
from mqf_pipeline.execution.brokers.base import AccountSnapshot, BrokerError, OrderRejectedError
from mqf_pipeline.execution.orders import BrokerOrder, Fill, OrderRequest, round_qty

logger = logging.getLogger(__name__)

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
DUPLICATE_ID_MESSAGE = "client_order_id must be unique"

_TRANSIENT = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)

T = TypeVar("T")


class _TimeoutSession(requests.Session):
    """A ``requests.Session`` that applies a default timeout (seconds) to every request."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


class AlpacaBroker(AlpacaChildOrders):
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
                out[cid] = _map_order(self.name, raw)
        return out

    def submit(self, order: OrderRequest, *, session: dt.date) -> BrokerOrder:
        """Send ``order`` made at ``session``'s close; Alpaca queues it for the next session's open.

        Its order type, limit/stop price and time in force reach Alpaca as they are (a LIMIT-strategy request
        becomes a limit order through :func:`~mqf_pipeline.execution.child_orders.policy_request`).
        Idempotent on ``client_order_id`` (module docstring). Raises ``ValueError`` for an order Alpaca
        cannot take (fractional non-DAY, sub-tick price), :class:`OrderRejectedError` on 403/422.
        """
        body = order_payload(order)
        cid = order.client_order_id
        what = f"submit of {order.side.value} {order.qty:g} {order.symbol} ({cid})"
        logger.info("%s: %s for the session after %s", self.name, what, session)
        return _map_order(self.name, self._send_once(what, cid, lambda: self._client.post("/orders", body)))

    def _send_once(self, what: str, cid: str, send: Callable[[], object]) -> object:
        """``send()`` (a request creating order ``cid``) with retries, never creating ``cid`` twice: after an
        ambiguous failure (timeout, connection error, 5xx) ``cid`` is looked up before sending again, and
        Alpaca's duplicate-id 422 returns the existing order. 403/422 raise :class:`OrderRejectedError`."""
        ambiguous = False

        def attempt() -> object:
            nonlocal ambiguous
            if ambiguous:
                existing = self._lookup_once(cid)
                if existing is not None:
                    logger.info("%s: order %s reached Alpaca before the failure; not sending it again", self.name, cid)
                    return existing
            try:
                return send()
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

        return self._retrying(what, attempt)

    def cancel(self, client_order_id: str) -> BrokerOrder:
        """Cancel by Alpaca's order id; a terminal order is returned unchanged, an unknown id raises.

        Returns Alpaca's view right after the request (``pending_cancel`` reads SUBMITTED until confirmed).
        """
        raw = self._find(client_order_id)
        if raw is None:
            raise BrokerError(f"{self.name}: no order {client_order_id} to cancel")
        order = _map_order(self.name, raw)
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
        return _map_order(
            self.name,
            self._retrying(f"read of order {client_order_id}", lambda: self._client.get_order_by_id(broker_id)),
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
            order = _map_order(self.name, raw)
            if order.filled_qty <= 0:
                continue
            o = _parse_model(self.name, Order, raw, f"order {cid}")
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
            p = _parse_model(self.name, Position, item, "position")
            qty = abs(round_qty(float(p.qty)))
            if qty:
                out[p.symbol] = -qty if p.side.value == "short" else qty
        return out

    def account(self) -> AccountSnapshot:
        """Cash, equity and buying power in dollars."""
        a = _parse_model(self.name, TradeAccount, self._retrying("account", self._client.get_account), "account")
        cash, equity, buying_power = _optional(a.cash), _optional(a.equity), _optional(a.buying_power)
        if cash is None or equity is None or buying_power is None:
            raise BrokerError(f"{self.name}: account without cash, equity or buying_power")
        return AccountSnapshot(cash=cash, equity=equity, buying_power=buying_power)
