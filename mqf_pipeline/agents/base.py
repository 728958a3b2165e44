"""The contract every alpha agent honours: one Signal row per (date, symbol).

An agent maps point-in-time data to signals for a set of decision dates. For decision date D
it may use only data known at D's close: bars and features dated <= D, fundamentals whose
``report_date`` <= D, headlines dated <= D, macro dated <= D. Agents that learn (ML, pairs)
fit on data strictly before D, on a schedule.

Signal columns (:data:`SIGNAL_SCHEMA`):

* ``mu``: expected simple return over the agent's horizon (decimal; 0.01 = 1%), not annualised;
* ``sigma``: the standard deviation of that return over the same horizon (decimal, > 0);
* ``confidence``: in [0, 1], how much the agent trusts this row;
* ``signal``: in [-1, 1], direction and strength (sign agrees with ``mu``);
* ``horizon_days``: sessions the forecast covers;
* ``reason_codes``: JSON list of short codes explaining the row (e.g. ``["MOM_12_1_TOP_DECILE"]``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

import polars as pl

SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "agent": pl.String(),
    "mu": pl.Float64(),
    "sigma": pl.Float64(),
    "confidence": pl.Float64(),
    "signal": pl.Float64(),
    "horizon_days": pl.Int32(),
    "reason_codes": pl.String(),
}


class SignalContractError(ValueError):
    """An agent returned rows that break the Signal contract; the message names agent, column, row."""


@dataclass(frozen=True)
class AgentData:
    """Point-in-time inputs shared by all agents (each frame may hold history beyond the dates asked).

    ``bars``: canonical bars (date, symbol, open, high, low, close, adjusted_close, volume, spread_bps);
    ``features``: wide indicators (date, symbol, <feature>...) from :mod:`mqf_pipeline.features`;
    ``fundamentals``: (symbol, fiscal_period_end, report_date, eps, book_value_per_share, revenue,
    operating_cash_flow, dividend_per_share, shares_outstanding);
    ``headlines``: (date, symbol, headline); ``macro``: (date, series_id, value);
    ``regimes``: (date, regime, regime_prob, ...) or empty; ``universe``: (symbol, sector).
    """

    bars: pl.DataFrame
    features: pl.DataFrame
    universe: pl.DataFrame
    fundamentals: pl.DataFrame = field(default_factory=pl.DataFrame)
    headlines: pl.DataFrame = field(default_factory=pl.DataFrame)
    macro: pl.DataFrame = field(default_factory=pl.DataFrame)
    regimes: pl.DataFrame = field(default_factory=pl.DataFrame)

    def until(self, day: dt.date) -> AgentData:
        """The same data restricted to what was known at ``day``'s close."""

        def cut(frame: pl.DataFrame, col: str) -> pl.DataFrame:
            return frame.filter(pl.col(col) <= day) if col in frame.columns else frame

        return AgentData(
            bars=cut(self.bars, "date"),
            features=cut(self.features, "date"),
            universe=self.universe,
            fundamentals=cut(self.fundamentals, "report_date"),
            headlines=cut(self.headlines, "date"),
            macro=cut(self.macro, "date"),
            regimes=cut(self.regimes, "date"),
        )


@runtime_checkable
class Agent(Protocol):
    """An alpha agent. Parameters live in ``__init__`` (scikit-learn style); no hidden global state."""

    name: ClassVar[str]
    horizon_days: int

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows (:data:`SIGNAL_SCHEMA`) for every decision date in ``dates`` and the symbols it can
        score, using only data known at each date's close."""
        ...


def reason_json(codes: pl.Expr | Sequence[pl.Expr]) -> pl.Expr:
    """A JSON list of the non-null string codes among ``codes`` (expressions)."""
    exprs = [codes] if isinstance(codes, pl.Expr) else list(codes)
    return pl.format("[{}]", pl.concat_list([pl.format('"{}"', e) for e in exprs]).list.drop_nulls().list.join(","))


def validate_signals(agent: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Check the Signal contract and return the frame in schema order, or raise naming the problem."""
    missing = [c for c in SIGNAL_SCHEMA if c not in frame.columns]
    if missing:
        raise SignalContractError(f"agent {agent!r}: missing column(s) {missing}")
    out = frame.select([pl.col(c).cast(t, strict=False) for c, t in SIGNAL_SCHEMA.items()])
    checks = {
        "mu": pl.col("mu").is_finite(),
        "sigma": pl.col("sigma").is_finite() & (pl.col("sigma") > 0),
        "confidence": pl.col("confidence").is_between(0.0, 1.0),
        "signal": pl.col("signal").is_between(-1.0, 1.0),
        "horizon_days": pl.col("horizon_days") >= 1,
        "agent": pl.col("agent") == agent,
    }
    for column, ok in checks.items():
        bad = out.filter(~ok.fill_null(False))
        if bad.height:
            row = bad.row(0, named=True)
            raise SignalContractError(
                f"agent {agent!r}: {bad.height} row(s) with invalid {column}, e.g. {row['symbol']} on {row['date']}: "
                f"{column}={row[column]!r}"
            )
    for codes in out.get_column("reason_codes").head(5).to_list():
        if not isinstance(json.loads(codes), list):
            raise SignalContractError(f"agent {agent!r}: reason_codes must be a JSON list, got {codes!r}")
    dup = out.group_by("date", "symbol").len().filter(pl.col("len") > 1)
    if dup.height:
        row = dup.row(0, named=True)
        raise SignalContractError(f"agent {agent!r}: duplicate signal for {row['symbol']} on {row['date']}")
    return out.sort("date", "symbol")
