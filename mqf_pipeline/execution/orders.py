"""Orders: types, the order state machine and deterministic client order ids.

An order's ``client_order_id`` is a UUID5 of (cycle_id, symbol, side, leg): the same cycle asking
for the same trade always names it the same way, so a retry or a rerun of a partition finds the
order already at the broker (reconciliation) instead of submitting it twice. ``leg`` separates the
two orders of a trade that crosses zero (close the long, then open the short).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

#: Namespace of every client order id this fund makes (fixed: changing it would re-submit history).
ORDER_NAMESPACE = uuid.UUID("6f1c0e52-3d7a-5b8e-9a41-2c5d8e7f9b10")
#: Quantities are in shares, rounded to this many decimals (Alpaca's fractional precision).
QTY_DECIMALS = 4


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell (signed quantity = sign * qty)."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    NEW = "NEW"  # built by the fund, not yet at a broker
    SUBMITTED = "SUBMITTED"  # accepted by the broker, nothing filled yet
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"  # cancelled or expired (DAY order at the close), possibly after partial fills
    REJECTED = "REJECTED"  # refused by the broker, or blocked before submission (kill switch, FREEZE)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})

#: Allowed transitions. A status may also stay as it is (a repeated report is not a transition).
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset(
        {
            OrderStatus.SUBMITTED,
            OrderStatus.REJECTED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
        }
    ),
    OrderStatus.SUBMITTED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED}),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}


class OrderStateError(ValueError):
    """An order was asked to make a transition its state machine forbids; the message names it."""


def transition(order_id: str, current: OrderStatus, new: OrderStatus) -> OrderStatus:
    """Validate ``current -> new`` for ``order_id`` and return ``new`` (unchanged status is allowed)."""
    if new == current or new in TRANSITIONS[current]:
        return new
    raise OrderStateError(f"order {order_id}: {current.value} -> {new.value} is not a valid transition")


def client_order_id(cycle_id: str, symbol: str, side: Side | str, leg: int = 0) -> str:
    """Deterministic UUID5 string of (cycle_id, symbol, side, leg)."""
    if leg < 0:
        raise ValueError(f"{symbol}: order leg must be >= 0, got {leg}")
    return str(uuid.uuid5(ORDER_NAMESPACE, f"{cycle_id}|{symbol}|{Side(side).value}|{leg}"))


def round_qty(qty: float) -> float:
    """Shares rounded to :data:`QTY_DECIMALS` decimals."""
    return round(float(qty), QTY_DECIMALS)


@dataclass(frozen=True)
class OrderRequest:
    """What the fund asks a broker to do. ``qty`` > 0 in shares (4 decimals); prices in dollars."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: float | None = None
    stop_price: float | None = None
    #: execution schedule the paper broker follows during the session (MARKET, LIMIT, TWAP, POV, VWAP, WAIT)
    strategy: str = "MARKET"
    #: LIMIT strategy: passive offset from the bucket's mid, bps (>= 0)
    limit_offset_bps: float = 0.0
    #: POV strategy: share of each bucket's volume (0, 1]
    pov_rate: float = 0.1

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("order without a symbol")
        if not (self.qty > 0):
            raise ValueError(f"{self.symbol}: order quantity must be > 0 shares, got {self.qty}")
        if round_qty(self.qty) != self.qty:
            raise ValueError(f"{self.symbol}: quantity {self.qty} has more than {QTY_DECIMALS} decimals")
        needs_limit = self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise ValueError(
                f"{self.symbol}: {self.order_type.value} order {'needs' if needs_limit else 'takes no'} limit_price"
            )
        if needs_stop != (self.stop_price is not None):
            raise ValueError(
                f"{self.symbol}: {self.order_type.value} order {'needs' if needs_stop else 'takes no'} stop_price"
            )
        for name in ("limit_price", "stop_price"):
            value = getattr(self, name)
            if value is not None and not (value > 0):
                raise ValueError(f"{self.symbol}: {name} must be > 0, got {value}")


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one order (reconciliation reads these)."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    reject_reason: str | None = None

    def with_status(self, status: OrderStatus, **changes: object) -> BrokerOrder:
        """A copy after a validated transition."""
        return replace(self, status=transition(self.client_order_id, self.status, status), **changes)


@dataclass(frozen=True)
class Fill:
    """One execution (a child fill for the paper broker, the order's aggregate for Alpaca).

    ``price`` is the fill price in dollars; ``mid`` the mid price when it filled (None when the broker
    does not say); ``commission`` in dollars.
    """

    client_order_id: str
    fill_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    timestamp: str  # ISO 8601, UTC
    commission: float = 0.0
    mid: float | None = None
