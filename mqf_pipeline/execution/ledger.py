"""The positions ledger: shares, average cost and realised PnL per symbol, and cash.

Fills, splits and cash dividends are the only things that move it, so the positions are always the
sum of the fills (adjusted for splits). Money in dollars, quantities in signed shares (short < 0).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from mqf_pipeline.execution.orders import QTY_DECIMALS, Fill

#: A position whose |qty| falls below this many shares after rounding is closed.
QTY_EPS = 0.5 * 10.0**-QTY_DECIMALS


@dataclass
class Position:
    qty: float = 0.0
    avg_price: float = 0.0  # average cost of the open quantity, dollars per share
    realized_pnl: float = 0.0  # over the current holding period, dollars, after commissions


@dataclass
class Ledger:
    """Cash and positions; ``realized_pnl`` is cumulative over all symbols (closed ones included)."""

    cash: float
    positions: dict[str, Position] = field(default_factory=dict)
    realized_pnl: float = 0.0

    def qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.qty if pos else 0.0

    def copy(self) -> Ledger:
        return Ledger(
            self.cash,
            {s: Position(p.qty, p.avg_price, p.realized_pnl) for s, p in self.positions.items()},
            self.realized_pnl,
        )

    # ------------------------------------------------------------------ events
    def apply_fill(self, fill: Fill) -> None:
        """Book one fill: cash pays price x qty + commission; closing quantity realises PnL vs average cost."""
        if not (fill.qty > 0 and math.isfinite(fill.price) and fill.price > 0):
            raise ValueError(f"{fill.symbol}: fill {fill.fill_id} has qty {fill.qty} and price {fill.price}")
        q = fill.side.sign * fill.qty
        pos = self.positions.setdefault(fill.symbol, Position())
        self.cash -= q * fill.price + fill.commission
        pos.realized_pnl -= fill.commission
        self.realized_pnl -= fill.commission
        if pos.qty == 0 or (pos.qty > 0) == (q > 0):
            new = pos.qty + q
            pos.avg_price = (pos.qty * pos.avg_price + q * fill.price) / new
            pos.qty = new
        else:
            closing = min(abs(q), abs(pos.qty))
            pnl = closing * (fill.price - pos.avg_price) * (1.0 if pos.qty > 0 else -1.0)
            pos.realized_pnl += pnl
            self.realized_pnl += pnl
            new = pos.qty + q
            if abs(new) < QTY_EPS:
                pos.qty, pos.avg_price = 0.0, 0.0
            elif (new > 0) != (pos.qty > 0):  # crossed zero: the rest opens at the fill price
                pos.qty, pos.avg_price = new, fill.price
            else:
                pos.qty = new
        pos.qty = round(pos.qty, QTY_DECIMALS + 2)
        if pos.qty == 0:  # closed: its PnL stays in the total; a new position starts a new holding period
            del self.positions[fill.symbol]

    def apply_split(self, symbol: str, ratio: float) -> None:
        """``ratio`` new shares per old share: quantity up, average cost down, value unchanged."""
        if not (ratio > 0):
            raise ValueError(f"{symbol}: split ratio must be > 0, got {ratio}")
        pos = self.positions.get(symbol)
        if pos and pos.qty:
            pos.qty *= ratio
            pos.avg_price /= ratio

    def apply_dividend(self, symbol: str, per_share: float) -> float:
        """Cash dividend on the ex-date: a long receives, a short pays. Returns the cash moved (dollars)."""
        amount = self.qty(symbol) * per_share
        self.cash += amount
        return amount

    def apply_corporate_actions(self, actions: pl.DataFrame) -> float:
        """Splits and dividends of one session (columns symbol, action_type, value); returns dividend cash."""
        dividends = 0.0
        for symbol, kind, value in (
            actions.sort("symbol", "action_type").select("symbol", "action_type", "value").iter_rows()
        ):
            if kind == "SPLIT":
                self.apply_split(symbol, float(value))
            elif kind == "DIVIDEND":
                dividends += self.apply_dividend(symbol, float(value))
            else:
                raise ValueError(f"{symbol}: unknown corporate action {kind!r}")
        return dividends

    # ------------------------------------------------------------------ views
    def open_positions(self) -> dict[str, float]:
        """Signed shares of every open position."""
        return {s: p.qty for s, p in sorted(self.positions.items()) if abs(p.qty) >= QTY_EPS}

    def positions_value(self, prices: dict[str, float]) -> float:
        missing = [s for s in self.open_positions() if s not in prices]
        if missing:
            raise ValueError(f"no closing price to mark position(s) {missing[:5]}")
        return sum(q * prices[s] for s, q in self.open_positions().items())

    def nav(self, prices: dict[str, float]) -> float:
        return self.cash + self.positions_value(prices)

    def position_rows(self, day: dt.date, prices: dict[str, float]) -> pl.DataFrame:
        """One row per open position marked at ``prices`` (the session's raw closes)."""
        nav = self.nav(prices)
        rows = []
        for symbol, qty in self.open_positions().items():
            pos, price = self.positions[symbol], prices[symbol]
            value = qty * price
            rows.append(
                {
                    "date": day,
                    "symbol": symbol,
                    "qty": qty,
                    "avg_price": pos.avg_price,
                    "market_price": price,
                    "market_value": value,
                    "weight": value / nav if nav else None,
                    "unrealized_pnl": (price - pos.avg_price) * qty,
                    "realized_pnl": pos.realized_pnl,
                }
            )
        return pl.DataFrame(rows, schema=POSITION_SCHEMA)

    @classmethod
    def from_rows(cls, cash: float, realized_pnl: float, rows: Iterable[dict]) -> Ledger:
        """Rebuild from a stored positions partition and its account row."""
        ledger = cls(cash=cash, realized_pnl=realized_pnl)
        for r in rows:
            ledger.positions[r["symbol"]] = Position(float(r["qty"]), float(r["avg_price"]), float(r["realized_pnl"]))
        return ledger


POSITION_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "qty": pl.Float64(),
    "avg_price": pl.Float64(),
    "market_price": pl.Float64(),
    "market_value": pl.Float64(),
    "weight": pl.Float64(),
    "unrealized_pnl": pl.Float64(),
    "realized_pnl": pl.Float64(),
}
