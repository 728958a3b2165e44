"""The provider contract: request/result types, errors and the ``MarketDataProvider`` protocol.

A provider fetches one kind of data from one source and hands back *raw* records with the
canonical column names (see :mod:`mqf_pipeline.market.bars`). It raises :class:`ProviderError`
(or a subclass) for anything it cannot do; the router decides whether to retry or fall back.

Units: dates are sessions (``datetime.date``, America/New_York); latencies are milliseconds;
timeouts are seconds; token-bucket rates are tokens per second.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, runtime_checkable

import polars as pl

Capability = Literal["bars", "corporate_actions", "macro", "fundamentals", "headlines"]
CAPABILITIES: frozenset[str] = frozenset({"bars", "corporate_actions", "macro", "fundamentals", "headlines"})
RequestStatus = Literal["ok", "error", "rate_limited", "timeout"]
#: A callable that blocks until one request may be sent (a token bucket's ``acquire``).
Throttle = Callable[[], object]

CORPORATE_ACTIONS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "action_type": pl.String(),  # "SPLIT" | "DIVIDEND"
    "value": pl.Float64(),  # split: new shares per old share; dividend: cash per share
    "provider": pl.String(),
}
MACRO_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "series_id": pl.String(),  # canonical: "VIX" (index points), "SHORT_RATE" (decimal, annual)
    "value": pl.Float64(),
    "provider": pl.String(),
}
FUNDAMENTALS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "fiscal_period_end": pl.Date(),
    "report_date": pl.Date(),  # first session the figures are known to the market
    "eps": pl.Float64(),  # quarterly diluted EPS, USD per share
    "book_value_per_share": pl.Float64(),  # USD per share at period end
    "revenue": pl.Float64(),  # quarterly, USD (company total)
    "operating_cash_flow": pl.Float64(),  # quarterly, USD (company total)
    "dividend_per_share": pl.Float64(),  # declared in the quarter, USD per share
    "shares_outstanding": pl.Int64(),
    "provider": pl.String(),
}
#: Days from a fiscal quarter's end to the date its figures are assumed public when a provider does not
#: know the real report date: the SEC's 10-Q deadline is 40-45 days (by filer size), so 45 is the latest.
QUARTER_REPORT_LAG_DAYS = 45
#: As :data:`QUARTER_REPORT_LAG_DAYS` for a fiscal year end (10-K deadline: 60-90 days, the latest is used).
YEAR_END_REPORT_LAG_DAYS = 90
HEADLINES_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),  # session the headline is first known at (published before that session's close)
    "symbol": pl.String(),
    "headline": pl.String(),
    "provider": pl.String(),
}
REQUEST_LOG_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "endpoint": pl.String(),
    "symbols": pl.List(pl.String()),
    "start": pl.Date(),
    "end": pl.Date(),
    "status": pl.String(),
    "http_status": pl.Int64(),
    "attempts": pl.Int64(),
    "latency_ms": pl.Float64(),
    "n_rows": pl.Int64(),
    "error": pl.String(),
}


@dataclass(frozen=True)
class BarsRequest:
    """Daily data for ``symbols`` from ``start`` to ``end``, both inclusive."""

    symbols: tuple[str, ...]
    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if isinstance(self.symbols, str) or not self.symbols:
            raise ValueError("BarsRequest.symbols must be a non-empty tuple of symbols")
        if any(not isinstance(s, str) or not s.strip() for s in self.symbols):
            raise ValueError(f"BarsRequest.symbols holds an empty or non-string symbol: {self.symbols!r}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"BarsRequest.symbols holds duplicates: {self.symbols!r}")
        if self.end < self.start:
            raise ValueError(f"BarsRequest range is empty: end {self.end} is before start {self.start}")

    def with_symbols(self, symbols: Sequence[str]) -> BarsRequest:
        """The same date range for other symbols."""
        return BarsRequest(tuple(symbols), self.start, self.end)


@dataclass(frozen=True)
class RequestLog:
    """One request to one endpoint of one provider; ``attempts`` counts HTTP tries (retries + 1)."""

    provider: str
    endpoint: str
    symbols: tuple[str, ...]
    start: dt.date
    end: dt.date
    status: RequestStatus
    http_status: int | None
    attempts: int
    latency_ms: float
    n_rows: int
    error: str | None


def request_log_frame(logs: Sequence[RequestLog]) -> pl.DataFrame:
    """Request logs as a frame with :data:`REQUEST_LOG_SCHEMA`."""
    rows = [{**asdict(log), "symbols": list(log.symbols)} for log in logs]
    return pl.DataFrame(rows, schema=REQUEST_LOG_SCHEMA)


@dataclass
class ProviderResult:
    """Raw bars (canonical column names, values as received) and the requests that fetched them."""

    provider: str
    raw: pl.DataFrame
    requests: list[RequestLog] = field(default_factory=list)


def describe_symbols(symbols: Sequence[str], limit: int = 8) -> str:
    """``"AAPL, MSFT"`` or ``"AAPL, ... (+492 more)"`` for error messages."""
    shown = ", ".join(symbols[:limit])
    return shown if len(symbols) <= limit else f"{shown} (+{len(symbols) - limit} more)"


class ProviderError(Exception):
    """A provider could not serve a request; the message names provider, symbols and dates.

    ``retryable`` tells the router whether retrying the same provider may help (rate limits,
    timeouts, 5xx) or whether to fall back at once. ``partial`` holds rows fetched before the
    failure; ``requests`` the request logs made before it.
    """

    #: Status recorded in :class:`RequestLog` for this error.
    status: RequestStatus = "error"
    #: Whether retrying may help when the raiser does not say.
    default_retryable: bool = False

    def __init__(
        self,
        provider: str,
        symbols: Sequence[str],
        reason: str,
        *,
        retryable: bool | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
        http_status: int | None = None,
        attempts: int = 1,
        partial: ProviderResult | None = None,
        requests: Sequence[RequestLog] = (),
        symbol_reasons: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.symbol_reasons = dict(symbol_reasons or {})
        self.symbols = tuple(symbols)
        self.reason = reason
        self.retryable = self.default_retryable if retryable is None else retryable
        self.start = start
        self.end = end
        self.http_status = http_status
        self.attempts = attempts
        self.partial = partial
        self.requests = list(requests)
        dates = f" {start}..{end}" if start is not None and end is not None else ""
        super().__init__(f"{provider}: {reason} [symbols: {describe_symbols(self.symbols)};{dates}]")

    def reason_for(self, symbol: str) -> str:
        """Why ``symbol`` was not served: its own reason when the provider gave one (a bad file names the
        file, date and column), else the whole error."""
        own = self.symbol_reasons.get(symbol)
        return f"{self.provider}: {own}" if own else str(self)


class RateLimitedError(ProviderError):
    """The provider answered HTTP 429 (after any client-internal retries)."""

    status: RequestStatus = "rate_limited"
    default_retryable = True


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the request timeout."""

    status: RequestStatus = "timeout"
    default_retryable = True


class ProviderUnavailable(ProviderError):  # noqa: N818 (name fixed by the interface)
    """The provider cannot be used at all (e.g. keys missing; the message names the env var)."""


@runtime_checkable
class MarketDataProvider(Protocol):
    """What the router needs from a data source. Unsupported capabilities are never called."""

    name: str

    def capabilities(self) -> frozenset[str]:
        """Subset of :data:`CAPABILITIES` this provider serves."""
        ...

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` or ``(False, reason)``, e.g. ``(False, "APCA_API_KEY_ID is not set")``."""
        ...

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        """Raw daily bars for ``req``; symbols without data are simply absent."""
        ...

    def fetch_corporate_actions(self, req: BarsRequest) -> pl.DataFrame:
        """Splits and dividends with :data:`CORPORATE_ACTIONS_SCHEMA`."""
        ...

    def fetch_macro(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Macro observations with :data:`MACRO_SCHEMA`."""
        ...

    def fetch_fundamentals(self, req: BarsRequest) -> pl.DataFrame:
        """Quarterly fundamentals reported in ``req``'s range (:data:`FUNDAMENTALS_SCHEMA`)."""
        ...

    def fetch_headlines(self, req: BarsRequest) -> pl.DataFrame:
        """News headlines dated in ``req``'s range (:data:`HEADLINES_SCHEMA`)."""
        ...


@runtime_checkable
class TransportControl(Protocol):
    """Providers that send HTTP requests let the router gate each one and set its timeout."""

    def bind_transport(self, throttle: Throttle | None, timeout_s: float | None) -> None:
        """Call ``throttle()`` before every HTTP request; time out each after ``timeout_s`` seconds."""
        ...


class HttpTransport:
    """Mixin holding a throttle (called before each HTTP request) and a timeout in seconds."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = float(timeout_s)
        self._throttle: Throttle | None = None

    def bind_transport(self, throttle: Throttle | None, timeout_s: float | None) -> None:
        """See :class:`TransportControl`."""
        self._throttle = throttle
        if timeout_s is not None:
            self.timeout_s = float(timeout_s)

    def _acquire(self) -> None:
        if self._throttle is not None:
            self._throttle()


class UnsupportedCapability:
    """Mixin: the ``fetch_*`` methods of capabilities a provider lacks raise a clear error."""

    name: str

    def _unsupported(self, what: str, symbols: Sequence[str] = ()) -> ProviderError:
        return ProviderError(self.name, symbols, f"does not provide {what}", retryable=False)

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        raise self._unsupported("bars", req.symbols)

    def fetch_corporate_actions(self, req: BarsRequest) -> pl.DataFrame:
        raise self._unsupported("corporate_actions", req.symbols)

    def fetch_macro(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        raise self._unsupported("macro", series)

    def fetch_fundamentals(self, req: BarsRequest) -> pl.DataFrame:
        raise self._unsupported("fundamentals", req.symbols)

    def fetch_headlines(self, req: BarsRequest) -> pl.DataFrame:
        raise self._unsupported("headlines", req.symbols)


def first_sessions_on_or_after(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """``frame`` with the dates of ``column`` moved to the first XNYS session on or after each (a report
    public on a Saturday is first known at Monday's close); rows past the calendar's end are dropped."""
    from mqf_pipeline import calendar

    dates = frame.get_column(column).drop_nulls()
    if dates.is_empty():
        return frame.filter(pl.col(column).is_not_null())
    last = calendar.xnys().last_session.date()
    lo, hi = dates.min(), min(dates.max() + dt.timedelta(days=10), last)  # type: ignore[operator]
    grid = pl.DataFrame({"__session": calendar.sessions(lo, hi) if lo <= hi else []}, schema={"__session": pl.Date})
    return (
        frame.with_row_index("__row")
        .filter(pl.col(column).is_not_null())
        .sort(column)
        .join_asof(grid, left_on=column, right_on="__session", strategy="forward")
        .filter(pl.col("__session").is_not_null())
        .with_columns(pl.col("__session").alias(column))
        .sort("__row")
        .drop("__row", "__session")
    )


def env_missing(*names: str) -> list[str]:
    """The names among ``names`` whose environment variables are unset or blank."""
    return [n for n in names if not os.environ.get(n, "").strip()]


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with ``schema``."""
    return pl.DataFrame(schema=schema)


def ms_since(t0: float, clock: Callable[[], float]) -> float:
    """Milliseconds elapsed since ``t0`` on ``clock`` (seconds)."""
    return (clock() - t0) * 1000.0
