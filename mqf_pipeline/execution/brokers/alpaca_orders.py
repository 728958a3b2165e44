"""Alpaca order payloads and the mapping of Alpaca's JSON answers to the broker's order types.

Used by :class:`~mqf_pipeline.execution.brokers.alpaca.AlpacaBroker`; the status mapping is described in
that module's docstring. ``broker`` arguments are the broker's name, used in error messages.
"""

from __future__ import annotations

from typing import Any, TypeVar

from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from pydantic import BaseModel, ValidationError

from mqf_pipeline.execution.brokers.base import BrokerError
from mqf_pipeline.execution.orders import (
    QTY_DECIMALS,
    BrokerOrder,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    round_qty,
)

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

M = TypeVar("M", bound=BaseModel)


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


def replace_payload(
    symbol: str, new_client_order_id: str, qty: float | None = None, limit_price: float | None = None
) -> dict[str, Any]:
    """The JSON body of ``PATCH /v2/orders/{id}`` (replace): the new ``client_order_id`` and the changed
    ``qty`` (shares, 4 decimals) and/or ``limit_price`` (dollars, as a tick). Validated by alpaca-py's
    ``ReplaceOrderRequest`` (its ``qty`` is typed as whole shares, so the quantity is checked here)."""
    if qty is None and limit_price is None:
        raise ValueError(f"{symbol}: replace of order {new_client_order_id} changes neither qty nor limit_price")
    if qty is not None and not (qty > 0 and round_qty(qty) == qty):
        raise ValueError(
            f"{symbol}: replacement quantity must be > 0 shares with <= {QTY_DECIMALS} decimals, got {qty}"
        )
    request = ReplaceOrderRequest(limit_price=limit_price, client_order_id=new_client_order_id)
    body = {k: getattr(v, "value", v) for k, v in request.to_request_fields().items()}
    if qty is not None:
        body["qty"] = f"{qty:.{QTY_DECIMALS}f}"
    if limit_price is not None:
        body["limit_price"] = _price_text(symbol, "limit_price", limit_price)
    return body


def _float(value: str | float | None) -> float:
    """An Alpaca decimal (string or number) as a float; missing is 0."""
    return 0.0 if value is None or value == "" else float(value)


def _optional(value: str | float | None) -> float | None:
    """An Alpaca decimal as a float; missing is None."""
    return None if value is None or value == "" else float(value)


def _parse_model(broker: str, cls: type[M], raw: object, what: str) -> M:
    """``raw`` (Alpaca JSON) validated as alpaca-py model ``cls``; a bad body is a :class:`BrokerError`."""
    if not isinstance(raw, dict):
        raise BrokerError(f"{broker}: {what}: expected a JSON object, got {type(raw).__name__}")
    try:
        return cls(**raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BrokerError(f"{broker}: {what}: bad {cls.__name__} ({where}: {first['msg']})") from None


def _map_order(broker: str, raw: object) -> BrokerOrder:
    """An Alpaca order (JSON) as a :class:`BrokerOrder`, status mapped as in the module docstring."""
    status = str(raw.get("status")) if isinstance(raw, dict) else ""
    cid = raw.get("client_order_id") if isinstance(raw, dict) else None
    if status not in _OPEN and status not in _CLOSED:
        raise BrokerError(f"{broker}: order {cid}: unknown Alpaca order status {status!r}")
    o = _parse_model(broker, Order, raw, f"order {cid}")
    kind = o.type or o.order_type
    order_type = _TYPES.get(kind.value if kind is not None else "")
    tif = _TIFS.get(o.time_in_force.value)
    if order_type is None or tif is None or o.side is None or o.symbol is None:
        raise BrokerError(
            f"{broker}: order {cid}: unsupported order (type {kind}, time_in_force {o.time_in_force.value})"
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
