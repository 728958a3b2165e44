"""The broker contract every execution venue implements, and its errors.

The execution cycle only talks to a broker through these methods. Reconciliation reads
``get_orders`` before anything is submitted; ``submit`` must be idempotent on
``client_order_id`` (a second submit of a known id returns the broker's existing order, never a
new one).

Optional capabilities the cycle uses when a broker has them: ``settle(session, market)`` (the paper
broker trades its open orders through a session it is shown), ``positions_as_of(session)`` (positions
after a past session, so reruns of old partitions reconcile too) and ``accepts_historical`` (True: may
be sent orders for past sessions; a real broker is only sent the latest session's orders).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mqf_pipeline.execution.orders import BrokerOrder, Fill, OrderRequest


class BrokerError(RuntimeError):
    """The broker could not be reached or answered with an error; ``retryable`` says if retrying may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class OrderRejectedError(BrokerError):
    """The broker refused the order (buying power, symbol not tradable, bad price...)."""


class LiveTradingRefusedError(RuntimeError):
    """Live trading was asked for without every safeguard in place; the message says which is missing."""


@dataclass(frozen=True)
class AccountSnapshot:
    """Cash and equity in dollars as the broker reports them."""

    cash: float
    equity: float
    buying_power: float


@runtime_checkable
class Broker(Protocol):
    """An execution venue. Quantities in shares, prices and money in dollars."""

    name: str

    def get_orders(self, client_order_ids: Sequence[str]) -> dict[str, BrokerOrder]:
        """The broker's current view of these ids; ids it never received are absent."""
        ...

    def submit(self, order: OrderRequest, *, session: dt.date) -> BrokerOrder:
        """Submit for the session after ``session`` (orders made at D's close trade during D+1)."""
        ...

    def cancel(self, client_order_id: str) -> BrokerOrder:
        """Cancel an open order (a terminal order is returned unchanged)."""
        ...

    def fills(self, client_order_ids: Sequence[str]) -> list[Fill]:
        """Every execution of these orders so far."""
        ...

    def positions(self) -> dict[str, float]:
        """Signed share quantity per symbol (non-zero only)."""
        ...

    def account(self) -> AccountSnapshot: ...
