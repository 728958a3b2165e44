"""The simulated market as a data provider: bars, actions, accounts, news, macro and truth.

Every query runs (or reuses) one path from ``params.epoch``; simulated paths are shared by
all simulators with equal params through a small module-level LRU cache.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.market.bars import BARS_SCHEMA
from mqf_pipeline.market.sim.engine import Engine
from mqf_pipeline.market.sim.headlines import headline_rows
from mqf_pipeline.market.sim.ohlcv import ohlcv
from mqf_pipeline.market.sim.params import SimulatorParams
from mqf_pipeline.market.sim.rng import BLOCK
from mqf_pipeline.market.sim.truth import SimulatorTruth, build_truth, grid_keys

ALPHA_COLUMNS: tuple[str, ...] = ("alpha_momentum", "alpha_value", "alpha_news")


def _chunk_starts(t0: int, t1: int) -> list[int]:
    """Starts of the block-aligned chunks covering sessions t0..t1 (bounds peak memory)."""
    return [t0, *range((t0 // BLOCK + 1) * BLOCK, t1 + 1, BLOCK)]


def _new_engine(params: SimulatorParams) -> Engine:
    last = calendar.xnys().last_session.date()
    return Engine(params, np.array(calendar.sessions(params.epoch, last), dtype="datetime64[D]"))


@lru_cache(maxsize=4)
def _shared_engine(params: SimulatorParams) -> Engine:
    """One shared path per params (the engine extends itself under a lock)."""
    return _new_engine(params)


class MarketSimulator:
    """Seeded, deterministic simulated market (a first-class data provider).

    ``shared=True`` (default) reuses the path of any simulator built with equal params in this
    process (a small LRU cache); ``shared=False`` simulates a private path from the epoch.
    """

    def __init__(self, params: SimulatorParams | None = None, *, shared: bool = True) -> None:
        self.params = params or SimulatorParams()
        self._engine = _shared_engine(self.params) if shared else _new_engine(self.params)

    # ---- helpers -------------------------------------------------------------------------
    def _range(self, start: dt.date, end: dt.date) -> tuple[int, int]:
        """Session indices (t0, t1) covering [start, end]; t0 > t1 when no session falls in it."""
        if start < self.params.epoch:
            raise ValueError(f"date {start} is before the simulator epoch {self.params.epoch}")
        if end < start:
            raise ValueError(f"empty range: end {end} is before start {start}")
        dates = self._engine.dates
        last = dates[-1].astype(dt.date)
        if end > last:
            raise ValueError(f"date {end} is past the simulator horizon {last}")
        t0 = int(np.searchsorted(dates, np.datetime64(start, "D"), side="left"))
        t1 = int(np.searchsorted(dates, np.datetime64(end, "D"), side="right")) - 1
        return t0, t1

    def _cols(self, symbols: Sequence[str] | None) -> np.ndarray:
        if symbols is None:
            return np.arange(self._engine.u.n)
        if isinstance(symbols, str):
            raise TypeError("symbols must be a sequence of strings, not a string")
        index = {s: i for i, s in enumerate(self._engine.u.symbols)}
        unknown = [s for s in symbols if s not in index]
        if unknown:
            raise ValueError(f"unknown symbol(s) {unknown[:5]} (universe is S0000..S{self._engine.u.n - 1:04d})")
        return np.unique(np.array([index[s] for s in symbols], dtype=np.int64))

    def _dates(self, t: np.ndarray | list[int]) -> pl.Series:
        return pl.Series("date", self._engine.dates[np.asarray(t, dtype=np.int64)])

    # ---- public ------------------------------------------------------------------------
    def universe(self) -> pl.DataFrame:
        """Static facts at epoch: symbol, name, sector, market_cap_usd, shares, price, dividends."""
        u = self._engine.u
        return pl.DataFrame(
            {
                "symbol": list(u.symbols),
                "name": list(u.names),
                "sector": [u.sector_names[k] for k in u.sector],
                "market_cap_usd": u.market_cap0,
                "shares_outstanding": u.shares0.astype(np.int64),
                "price_usd": u.price0,
                "dividend_payer": u.dividend_payer,
                "dividend_yield": u.dividend_yield,
            }
        )

    def bars(self, start: dt.date, end: dt.date, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Daily bars (BARS_SCHEMA), one row per XNYS session in [start, end] per symbol."""
        t0, t1 = self._range(start, end)
        cols = self._cols(symbols)
        if t0 > t1:
            return pl.DataFrame(schema=BARS_SCHEMA)
        frames = []
        for lo in _chunk_starts(t0, t1):
            hi = min((lo // BLOCK + 1) * BLOCK - 1, t1)
            arrays = ohlcv(self._engine, lo, hi, cols)
            data = grid_keys(self._engine, lo, hi, cols) | {k: v.ravel() for k, v in arrays.items()}
            frames.append(pl.DataFrame(data).select([pl.col(c).cast(t) for c, t in BARS_SCHEMA.items()]))
        return pl.concat(frames, rechunk=True)

    def corporate_actions(self, start: dt.date, end: dt.date, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Splits (value = new shares per old) and cash dividends (USD per share) by ex-date."""
        t0, t1 = self._range(start, end)
        keep = np.zeros(self._engine.u.n, dtype=bool)
        keep[self._cols(symbols)] = True
        rows: list[tuple[int, int, str, float]] = []
        if t0 <= t1:
            for blk in self._engine.blocks_between(t0, t1):
                rows += [(t, i, "SPLIT", v) for t, i, v, _ in blk.splits if t0 <= t <= t1 and keep[i]]
                rows += [(t, i, "DIVIDEND", v) for t, i, v in blk.dividends if t0 <= t <= t1 and keep[i]]
        schema = {"date": pl.Date, "symbol": pl.String, "action_type": pl.String, "value": pl.Float64}
        if not rows:
            return pl.DataFrame(schema=schema)
        t, i, kind, value = zip(*rows, strict=True)
        return pl.DataFrame(
            {
                "date": self._dates(list(t)),
                "symbol": [self._engine.u.symbols[k] for k in i],
                "action_type": list(kind),
                "value": list(value),
            },
            schema=schema,
        ).sort("date", "symbol", "action_type")

    def fundamentals(self, start: dt.date, end: dt.date, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Quarterly accounts whose report_date falls in [start, end] (point in time)."""
        t0, t1 = self._range(start, end)
        cols = self._cols(symbols)
        schema = {
            "symbol": pl.String,
            "fiscal_period_end": pl.Date,
            "report_date": pl.Date,
            "eps": pl.Float64,
            "book_value_per_share": pl.Float64,
            "revenue": pl.Float64,
            "operating_cash_flow": pl.Float64,
            "dividend_per_share": pl.Float64,
            "shares_outstanding": pl.Int64,
        }
        frames = []
        if t0 <= t1:
            self._engine.ensure(t1)
            for rep in self._engine.reports:
                if rep.period_end_session > t1:
                    break
                report = rep.report_session[cols]
                sel = cols[(report >= t0) & (report <= t1)]
                if sel.size == 0:
                    continue
                frames.append(
                    pl.DataFrame(
                        {
                            "symbol": [self._engine.u.symbols[k] for k in sel],
                            "fiscal_period_end": np.full(sel.size, rep.quarter_end),
                            "report_date": self._dates(rep.report_session[sel]),
                            "eps": rep.eps[sel],
                            "book_value_per_share": rep.book_value_per_share[sel],
                            "revenue": rep.revenue[sel],
                            "operating_cash_flow": rep.operating_cash_flow[sel],
                            "dividend_per_share": rep.dividend_per_share[sel],
                            "shares_outstanding": np.round(rep.shares_outstanding[sel]).astype(np.int64),
                        },
                        schema=schema,
                    )
                )
        if not frames:
            return pl.DataFrame(schema=schema)
        return pl.concat(frames).sort("report_date", "symbol")

    def headlines(self, start: dt.date, end: dt.date, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """News headlines (English) by session; tone predicts the next session's return weakly."""
        t0, t1 = self._range(start, end)
        schema = {"date": pl.Date, "symbol": pl.String, "headline": pl.String}
        if t0 > t1:
            return pl.DataFrame(schema=schema)
        t, i, text = headline_rows(self._engine, t0, t1, self._cols(symbols))
        return pl.DataFrame(
            {"date": self._dates(t), "symbol": [self._engine.u.symbols[k] for k in i], "headline": text},
            schema=schema,
        ).sort("date", "symbol", maintain_order=True)

    def macro(self, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Long frame of VIX (index points) and SHORT_RATE (decimal annual) at each session close."""
        t0, t1 = self._range(start, end)
        schema = {"date": pl.Date, "series_id": pl.String, "value": pl.Float64}
        if t0 > t1:
            return pl.DataFrame(schema=schema)
        dates = self._engine.dates[t0 : t1 + 1]
        frames = [
            pl.DataFrame(
                {
                    "date": dates,
                    "series_id": np.full(dates.size, name),
                    "value": self._engine.cells(field, t0, t1),
                },
                schema=schema,
            )
            for name, field in (("VIX", "vix"), ("SHORT_RATE", "short_rate"))
        ]
        return pl.concat(frames).sort("date", "series_id")

    def truth(self, start: dt.date, end: dt.date, symbols: Sequence[str] | None = None) -> SimulatorTruth:
        """Planted ground truth for [start, end] (see :class:`SimulatorTruth`)."""
        t0, t1 = self._range(start, end)
        return build_truth(self._engine, t0, t1, self._cols(symbols))


__all__ = ["ALPHA_COLUMNS", "MarketSimulator"]
