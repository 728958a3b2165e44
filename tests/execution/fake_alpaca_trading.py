"""A local stand-in for Alpaca's trading REST API v2, built on :class:`tests.market.fakes.FakeHTTPServer`.

Endpoints (JSON shapes alpaca-py 0.44's ``Order``, ``Position`` and ``TradeAccount`` parse):
``POST /v2/orders`` (422 ``{"code": 40010001, "message": "client_order_id must be unique"}`` on a known id),
``GET /v2/orders`` (``status`` open|closed|all, ``limit``, ``symbols``, ``direction``),
``GET /v2/orders:by_client_order_id``, ``GET /v2/orders/{id}``, ``DELETE /v2/orders/{id}`` (204),
``PATCH /v2/orders/{id}`` (replace: a new order with ``replaces``, the old one ``replaced`` with
``replaced_by``; 422 when the order is no longer open or the new ``client_order_id`` is taken),
``GET /v2/positions``, ``GET /v2/account``. Requests without both key headers get 401.

Faults, per endpoint name (:data:`ENDPOINTS`): :meth:`fail` (the next answers, e.g. 500/503, possibly
delayed), :meth:`storm` (n consecutive 429s, optionally with ``Retry-After``), :meth:`slow` (served, but
answered after a delay), :meth:`store_then_timeout` (the next submit stores the order, then answers too late),
:meth:`reject` (403 "insufficient buying power" for a symbol). :meth:`fill` makes partial and full fills
(status, filled_qty, filled_avg_price, filled_at) and moves positions and cash; :meth:`set_status` forces a
status. ``hits`` lists the endpoint name of every request served, in order.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from tests.market.fakes import Captured, FakeHTTPServer, FakeResponse

ENDPOINTS = ("submit", "list", "by_client_id", "get", "cancel", "replace", "positions", "account")
OPEN_STATUSES = frozenset(
    {"new", "accepted", "pending_new", "accepted_for_bidding", "calculated", "pending_replace", "pending_cancel"}
    | {"held", "pending_review", "stopped", "partially_filled"}
)
_NAMESPACE = uuid.UUID("0b6f2a8e-51c4-4c8e-9d3a-7e2f1a9c4b60")
_TYPES = ("market", "limit", "stop", "stop_limit")
_TIFS = ("day", "gtc", "opg", "cls", "ioc", "fok")


def _now() -> str:
    """Alpaca's timestamp format: RFC 3339 in UTC with microseconds and ``Z``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: float) -> str:
    """A decimal as Alpaca sends it (a string, no float noise)."""
    return format(round(value, 6), "f").rstrip("0").rstrip(".") or "0"


def _error(status: int, code: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"code": code, "message": message})


class FakeAlpacaTrading(FakeHTTPServer):
    """Alpaca's trading API v2 on 127.0.0.1 (see module docstring); ``cash`` in dollars."""

    def __init__(self, cash: float = 100_000.0, max_lifetime_s: float = 120.0) -> None:
        super().__init__(max_lifetime_s)
        self.cash = float(cash)
        self.orders: dict[str, dict[str, Any]] = {}  # by Alpaca order id, in submission order
        self.by_client_id: dict[str, str] = {}
        self.holdings: dict[str, tuple[float, float]] = {}  # symbol -> (signed qty, avg entry price)
        self.marks: dict[str, float] = {}  # symbol -> last fill price
        self.rejected_symbols: dict[str, str] = {}
        self.hits: list[str] = []
        self._faults: dict[str, deque[FakeResponse | float]] = {name: deque() for name in ENDPOINTS}
        self._state = threading.RLock()
        routes: list[tuple[str, str, str, Callable[[Captured], FakeResponse]]] = [
            ("POST", "/v2/orders", "submit", self._submit),
            ("GET", "/v2/orders", "list", self._list),
            ("GET", "/v2/orders:by_client_order_id", "by_client_id", self._by_client_id),
            ("GET", "/v2/orders/{order_id}", "get", self._get),
            ("DELETE", "/v2/orders/{order_id}", "cancel", self._cancel),
            ("PATCH", "/v2/orders/{order_id}", "replace", self._replace),
            ("GET", "/v2/positions", "positions", self._positions),
            ("GET", "/v2/account", "account", self._account),
        ]
        for method, path, name, handler in routes:
            self.route(method, path, self._guarded(name, handler))

    # ------------------------------------------------------------------ faults
    def fail(self, endpoint: str, *responses: FakeResponse) -> None:
        """Answer the next requests to ``endpoint`` with ``responses`` (nothing stored or changed)."""
        with self._state:
            self._faults[endpoint].extend(responses)

    def storm(self, n: int, endpoint: str = "submit", retry_after: str | None = None) -> None:
        """``n`` consecutive HTTP 429s on ``endpoint``, with a ``Retry-After`` header if given."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.fail(endpoint, *[FakeResponse(429, {"code": 42910000, "message": "rate limit exceeded"}, headers)] * n)

    def slow(self, endpoint: str, delay_s: float, n: int = 1) -> None:
        """The next ``n`` requests to ``endpoint`` are served normally but answered only after ``delay_s``
        (a submit is stored first). For a late answer that changes nothing, :meth:`fail` with a delayed
        :class:`FakeResponse`."""
        with self._state:
            self._faults[endpoint].extend([delay_s] * n)

    def store_then_timeout(self, delay_s: float) -> None:
        """The next submit stores the order, then answers only after ``delay_s`` (an ambiguous submit)."""
        self.slow("submit", delay_s)

    def reject(self, symbol: str, message: str = "insufficient buying power") -> None:
        """Orders for ``symbol`` get 403 with ``message`` and are not stored."""
        with self._state:
            self.rejected_symbols[symbol] = message

    # ------------------------------------------------------------------ order life
    def order(self, client_order_id: str) -> dict[str, Any]:
        """The stored order JSON of ``client_order_id`` (a copy)."""
        with self._state:
            return dict(self.orders[self.by_client_id[client_order_id]])

    def set_status(self, client_order_id: str, status: str, **fields: Any) -> None:
        """Force an order's raw ``status`` (any string) and other fields."""
        with self._state:
            o = self.orders[self.by_client_id[client_order_id]]
            o.update(status=status, updated_at=_now(), **fields)

    def fill(self, client_order_id: str, qty: float, price: float) -> dict[str, Any]:
        """Fill ``qty`` more shares at ``price``: partially_filled, then filled when complete; moves
        positions and cash. Returns the order JSON."""
        with self._state:
            o = self.orders[self.by_client_id[client_order_id]]
            if o["status"] not in OPEN_STATUSES:
                raise ValueError(f"order {client_order_id} is {o['status']}")
            done, total = float(o["filled_qty"]), float(o["qty"])
            if qty <= 0 or done + qty > total + 1e-9:
                raise ValueError(f"cannot fill {qty} of {client_order_id}: {done} of {total} filled")
            avg = float(o["filled_avg_price"] or 0.0)
            new_done = round(done + qty, 9)
            now = _now()
            o["filled_avg_price"] = _num((avg * done + price * qty) / new_done)
            o["filled_qty"] = _num(new_done)
            o["updated_at"] = now
            if abs(new_done - total) < 1e-9:
                o["status"], o["filled_at"] = "filled", now
            else:
                o["status"] = "partially_filled"
            signed = qty if o["side"] == "buy" else -qty
            self.cash -= signed * price
            self.marks[o["symbol"]] = price
            held, entry = self.holdings.get(o["symbol"], (0.0, 0.0))
            after = round(held + signed, 9)
            if after == 0:
                self.holdings.pop(o["symbol"], None)
            else:
                if held == 0 or (held > 0) != (after > 0):
                    entry = price  # opened or flipped
                elif abs(after) > abs(held):
                    entry = (entry * abs(held) + price * qty) / abs(after)
                self.holdings[o["symbol"]] = (after, entry)
            return dict(o)

    def posts(self) -> list[Captured]:
        """Every ``POST /v2/orders`` received (including refused and faulted ones)."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v2/orders"]

    def count(self, endpoint: str) -> int:
        return self.hits.count(endpoint)

    # ------------------------------------------------------------------ handlers
    def _guarded(self, name: str, handler: Callable[[Captured], FakeResponse]) -> Callable[[Captured], FakeResponse]:
        def serve(cap: Captured) -> FakeResponse:
            with self._state:
                self.hits.append(name)
                if not cap.headers.get("APCA-API-KEY-ID") or not cap.headers.get("APCA-API-SECRET-KEY"):
                    return _error(401, 40110000, "request is not authorized")
                fault = self._faults[name].popleft() if self._faults[name] else None
                if isinstance(fault, FakeResponse):
                    return fault
                response = handler(cap)
                if fault is not None:
                    response.delay_s = fault
                return response

        return serve

    def _submit(self, cap: Captured) -> FakeResponse:
        body = cap.json()
        if not isinstance(body, dict):
            return _error(400, 40010000, "request body must be a JSON object")
        symbol, side, kind, tif = body.get("symbol"), body.get("side"), body.get("type"), body.get("time_in_force")
        cid = str(body.get("client_order_id") or uuid.uuid4())
        try:
            qty = float(body.get("qty"))
        except (TypeError, ValueError):
            return _error(422, 40010001, "qty is required")
        problem = None
        if not symbol or side not in ("buy", "sell") or kind not in _TYPES or tif not in _TIFS:
            problem = f"invalid order: symbol={symbol} side={side} type={kind} time_in_force={tif}"
        elif qty <= 0:
            problem = "qty must be > 0"
        elif qty != int(qty) and tif != "day":
            problem = "fractional orders must be DAY orders"
        elif (kind in ("limit", "stop_limit")) != ("limit_price" in body):
            problem = f"limit_price is {'required' if kind in ('limit', 'stop_limit') else 'not allowed'} for {kind}"
        elif (kind in ("stop", "stop_limit")) != ("stop_price" in body):
            problem = f"stop_price is {'required' if kind in ('stop', 'stop_limit') else 'not allowed'} for {kind}"
        elif len(cid) > 128:
            problem = "client_order_id must be no more than 128 characters"
        if problem:
            return _error(422, 40010001, problem)
        if cid in self.by_client_id:
            return _error(422, 40010001, "client_order_id must be unique")
        if symbol in self.rejected_symbols:
            return _error(403, 40310000, self.rejected_symbols[symbol])
        now = _now()
        order_id = str(uuid.uuid5(_NAMESPACE, f"order-{len(self.orders)}"))
        order: dict[str, Any] = {
            "id": order_id,
            "client_order_id": cid,
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "expired_at": None,
            "expires_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(_NAMESPACE, f"asset-{symbol}")),
            "symbol": symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(body["qty"]),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "",
            "order_type": kind,
            "type": kind,
            "side": side,
            "position_intent": f"{side}_to_open",
            "time_in_force": tif,
            "limit_price": body.get("limit_price"),
            "stop_price": body.get("stop_price"),
            "status": "accepted",
            "extended_hours": bool(body.get("extended_hours", False)),
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }
        self.orders[order_id] = order
        self.by_client_id[cid] = order_id
        return FakeResponse(200, dict(order))

    def _list(self, cap: Captured) -> FakeResponse:
        status = cap.param("status") or "open"
        if status not in ("open", "closed", "all"):
            return _error(422, 40010001, f"invalid status {status}")
        symbols = {s for s in (cap.param("symbols") or "").split(",") if s}
        limit = min(int(cap.param("limit") or 50), 500)
        items = [
            o
            for o in self.orders.values()
            if (status == "all" or (o["status"] in OPEN_STATUSES) == (status == "open"))
            and (not symbols or o["symbol"] in symbols)
        ]
        if (cap.param("direction") or "desc") == "desc":
            items.reverse()
        return FakeResponse(200, [dict(o) for o in items[:limit]])

    def _by_client_id(self, cap: Captured) -> FakeResponse:
        cid = cap.param("client_order_id") or ""
        order_id = self.by_client_id.get(cid)
        if order_id is None:
            return _error(404, 40410000, f"order not found for {cid}")
        return FakeResponse(200, dict(self.orders[order_id]))

    def _get(self, cap: Captured) -> FakeResponse:
        order = self.orders.get(cap.path_params["order_id"])
        if order is None:
            return _error(404, 40410000, "order not found")
        return FakeResponse(200, dict(order))

    def _cancel(self, cap: Captured) -> FakeResponse:
        order = self.orders.get(cap.path_params["order_id"])
        if order is None:
            return _error(404, 40410000, "order not found")
        if order["status"] not in OPEN_STATUSES:
            return _error(422, 42210000, f"order is {order['status']}, not cancelable")
        now = _now()
        order.update(status="canceled", canceled_at=now, updated_at=now)
        return FakeResponse(204, b"")

    def _replace(self, cap: Captured) -> FakeResponse:
        old = self.orders.get(cap.path_params["order_id"])
        if old is None:
            return _error(404, 40410000, "order not found")
        body = cap.json()
        if not isinstance(body, dict):
            return _error(400, 40010000, "request body must be a JSON object")
        if old["status"] not in OPEN_STATUSES or old["status"] in ("pending_cancel", "pending_replace"):
            return _error(422, 42210000, f"order is {old['status']}, not replaceable")
        cid = str(body.get("client_order_id") or uuid.uuid4())
        if cid in self.by_client_id:
            return _error(422, 40010001, "client_order_id must be unique")
        try:
            qty = float(body.get("qty", old["qty"]))
        except (TypeError, ValueError):
            return _error(422, 40010001, "invalid qty")
        if qty <= 0 or qty < float(old["filled_qty"]):
            return _error(422, 40010001, "qty must be > 0 and not below the filled quantity")
        if "limit_price" in body and old["type"] not in ("limit", "stop_limit"):
            return _error(422, 40010001, f"limit_price is not allowed for {old['type']}")
        now = _now()
        order_id = str(uuid.uuid5(_NAMESPACE, f"order-{len(self.orders)}"))
        new = dict(old)
        new.update(
            id=order_id,
            client_order_id=cid,
            created_at=now,
            updated_at=now,
            submitted_at=now,
            qty=str(body.get("qty", old["qty"])),
            filled_qty="0",
            filled_avg_price=None,
            filled_at=None,
            canceled_at=None,
            replaced_at=None,
            replaced_by=None,
            replaces=old["id"],
            limit_price=body.get("limit_price", old["limit_price"]),
            stop_price=body.get("stop_price", old["stop_price"]),
            time_in_force=body.get("time_in_force", old["time_in_force"]),
            status="accepted",
        )
        old.update(status="replaced", replaced_by=order_id, replaced_at=now, updated_at=now)
        self.orders[order_id] = new
        self.by_client_id[cid] = order_id
        return FakeResponse(200, dict(new))

    def _positions(self, cap: Captured) -> FakeResponse:
        out = []
        for symbol, (qty, entry) in sorted(self.holdings.items()):
            mark = self.marks.get(symbol, entry)
            value, cost = qty * mark, qty * entry
            out.append(
                {
                    "asset_id": str(uuid.uuid5(_NAMESPACE, f"asset-{symbol}")),
                    "symbol": symbol,
                    "exchange": "NASDAQ",
                    "asset_class": "us_equity",
                    "asset_marginable": True,
                    "avg_entry_price": _num(entry),
                    "qty": _num(qty),  # Alpaca reports a short position's qty negative
                    "side": "long" if qty > 0 else "short",
                    "market_value": _num(value),
                    "cost_basis": _num(cost),
                    "unrealized_pl": _num(value - cost),
                    "unrealized_plpc": "0",
                    "unrealized_intraday_pl": _num(value - cost),
                    "unrealized_intraday_plpc": "0",
                    "current_price": _num(mark),
                    "lastday_price": _num(mark),
                    "change_today": "0",
                    "qty_available": _num(qty),
                }
            )
        return FakeResponse(200, out)

    def _account(self, cap: Captured) -> FakeResponse:
        long_value = sum(q * self.marks.get(s, e) for s, (q, e) in self.holdings.items() if q > 0)
        short_value = sum(q * self.marks.get(s, e) for s, (q, e) in self.holdings.items() if q < 0)
        equity = self.cash + long_value + short_value
        return FakeResponse(
            200,
            {
                "id": str(uuid.uuid5(_NAMESPACE, "account")),
                "account_number": "PA3FAKE00001",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "buying_power": _num(max(self.cash, 0.0)),
                "regt_buying_power": _num(max(self.cash, 0.0)),
                "non_marginable_buying_power": _num(max(self.cash, 0.0)),
                "cash": _num(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": _num(equity),
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2024-01-02T14:00:00.000000Z",
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": True,
                "equity": _num(equity),
                "last_equity": _num(equity),
                "long_market_value": _num(long_value),
                "short_market_value": _num(short_value),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "options_buying_power": "0",
                "options_approved_level": 0,
                "options_trading_level": 0,
            },
        )
