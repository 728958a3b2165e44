"""The built-in market simulator as a provider (the default ``simulated`` mode).

Wraps :class:`mqf_pipeline.market.sim.MarketSimulator`: bars in the canonical schema,
splits/dividends, and the VIX (index points) and SHORT_RATE (decimal annual) series. Symbols
outside the simulated universe and dates before the simulator's epoch yield no rows (so the
router can try another provider); dates past its horizon raise a non-retryable ProviderError.
No network, no rate limit; deterministic for given params.
"""

from __future__ import annotations

import datetime as dt
import time

import polars as pl

from mqf_pipeline.market.bars import BARS_SCHEMA
from mqf_pipeline.market.providers.base import (
    CORPORATE_ACTIONS_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HEADLINES_SCHEMA,
    MACRO_SCHEMA,
    BarsRequest,
    ProviderError,
    ProviderResult,
    RequestLog,
    UnsupportedCapability,
)
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams


class SimulatedProvider(UnsupportedCapability):
    """Bars, corporate actions and macro from the seeded simulator (built on first use)."""

    def __init__(
        self,
        params: SimulatorParams | None = None,
        *,
        simulator: MarketSimulator | None = None,
        name: str = "simulated",
    ) -> None:
        self.name = name
        self._params = params
        self._sim = simulator
        self._universe: frozenset[str] | None = None

    @property
    def simulator(self) -> MarketSimulator:
        """The wrapped simulator."""
        if self._sim is None:
            self._sim = MarketSimulator(self._params)
        return self._sim

    def capabilities(self) -> frozenset[str]:
        return frozenset({"bars", "corporate_actions", "macro", "fundamentals", "headlines"})

    def available(self) -> tuple[bool, str]:
        return True, ""

    def _scope(
        self, symbols: tuple[str, ...], start: dt.date, end: dt.date
    ) -> tuple[list[str], dt.date, dt.date] | None:
        """Known symbols and the range clipped to the epoch; None when nothing is left."""
        sim = self.simulator
        start = max(start, sim.params.epoch)
        if end < start:
            return None
        if self._universe is None:
            self._universe = frozenset(sim.universe().get_column("symbol").to_list())
        known = [s for s in symbols if s in self._universe]
        return (known, start, end) if known else None

    def _error(self, symbols: tuple[str, ...], start: dt.date, end: dt.date, e: ValueError) -> ProviderError:
        return ProviderError(self.name, symbols, str(e), retryable=False, start=start, end=end)

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        """Canonical bars of the known symbols (unknown symbols are absent)."""
        t0 = time.perf_counter()
        scope = self._scope(req.symbols, req.start, req.end)
        raw = pl.DataFrame(schema=BARS_SCHEMA)
        if scope is not None:
            try:
                raw = self.simulator.bars(scope[1], scope[2], scope[0])
            except ValueError as e:
                raise self._error(req.symbols, req.start, req.end, e) from e
        ms = (time.perf_counter() - t0) * 1000.0
        log = RequestLog(self.name, "bars", req.symbols, req.start, req.end, "ok", None, 1, ms, raw.height, None)
        return ProviderResult(self.name, raw, [log])

    def fetch_corporate_actions(self, req: BarsRequest) -> pl.DataFrame:
        """Splits (new shares per old) and dividends (USD per share) by ex-date."""
        scope = self._scope(req.symbols, req.start, req.end)
        if scope is None:
            return pl.DataFrame(schema=CORPORATE_ACTIONS_SCHEMA)
        try:
            df = self.simulator.corporate_actions(scope[1], scope[2], scope[0])
        except ValueError as e:
            raise self._error(req.symbols, req.start, req.end, e) from e
        return df.with_columns(pl.lit(self.name, dtype=pl.String).alias("provider"))

    def _symbol_frame(self, req: BarsRequest, fetch: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        scope = self._scope(req.symbols, req.start, req.end)
        if scope is None:
            return pl.DataFrame(schema=schema)
        try:
            df = getattr(self.simulator, fetch)(scope[1], scope[2], scope[0])
        except ValueError as e:
            raise self._error(req.symbols, req.start, req.end, e) from e
        return df.with_columns(pl.lit(self.name, dtype=pl.String).alias("provider")).select(
            [pl.col(c).cast(t) for c, t in schema.items()]
        )

    def fetch_fundamentals(self, req: BarsRequest) -> pl.DataFrame:
        """Quarterly fundamentals whose report_date falls in the range (point-in-time)."""
        return self._symbol_frame(req, "fundamentals", FUNDAMENTALS_SCHEMA)

    def fetch_headlines(self, req: BarsRequest) -> pl.DataFrame:
        """Headlines dated in the range; their tone carries the simulator's weak news signal."""
        return self._symbol_frame(req, "headlines", HEADLINES_SCHEMA)

    def fetch_macro(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        """VIX and SHORT_RATE at each session close; other series ids yield no rows."""
        start = max(start, self.simulator.params.epoch)
        if end < start:
            return pl.DataFrame(schema=MACRO_SCHEMA)
        try:
            df = self.simulator.macro(start, end)
        except ValueError as e:
            raise self._error(series, start, end, e) from e
        return df.filter(pl.col("series_id").is_in(list(series))).with_columns(
            pl.lit(self.name, dtype=pl.String).alias("provider")
        )
