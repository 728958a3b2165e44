"""Daily bars, splits and dividends from Yahoo Finance through yfinance.

One ``yf.Ticker(symbol, session=...).history(start, auto_adjust=False, actions=True)`` call per
symbol (plus yfinance's one-off timezone probe and cookie/crumb requests). ``session`` is
yfinance's: None lets yfinance build its curl_cffi session; tests pass a ``requests.Session``
that replays recorded chart JSON. yfinance keeps one process-wide session, so the last session
given wins for every Ticker in the process.

Units and adjustments: Yahoo's OHLC and volume are *split-adjusted* and its dividend amounts are
split-adjusted too; ``Adj Close`` is split- and dividend-adjusted. To honour the bars contract
(``close`` unadjusted) this provider fetches from ``start`` to today, so every later split is
known, and multiplies prices and dividends by the product of the split ratios after each date
(dividing volume by it). ``adjusted_close`` is Yahoo's ``Adj Close`` as received. Split values
are new shares per old share (4:1 -> 4.0). Errors: HTTP 429 -> :class:`RateLimitedError`,
timeouts -> :class:`ProviderTimeoutError`; a symbol Yahoo has no data for yields no rows.
Fetched histories are memoised for ``memo_ttl_s`` seconds so bars and corporate actions of the
same symbols cost one request.

Fundamentals: point-in-time quarterly statements, three to five requests per symbol (each gated by the
throttle; yfinance's statement and calendar calls use its own 30 s timeout); the mapping and the
report-date rules are in :mod:`mqf_pipeline.market.providers.yahoo_fundamentals`. A symbol Yahoo has no
statements for yields no rows; malformed statements raise a non-retryable :class:`ProviderError` naming
the symbol and field.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pandas as pd
import polars as pl

from mqf_pipeline.market.bars import BARS_SCHEMA
from mqf_pipeline.market.providers import yahoo_fundamentals as yfund
from mqf_pipeline.market.providers.base import (
    CORPORATE_ACTIONS_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    BarsRequest,
    HttpTransport,
    ProviderError,
    ProviderResult,
    ProviderTimeoutError,
    RateLimitedError,
    RequestLog,
    UnsupportedCapability,
)

ENDPOINT = "/v8/finance/chart"
FUNDAMENTALS_ENDPOINT = "/ws/fundamentals-timeseries/v1/finance/timeseries"
logger = logging.getLogger(__name__)
#: Yahoo's records: the canonical bar columns without spread, volume as the float Yahoo sends.
BARS_RAW_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in BARS_SCHEMA.items() if k != "spread_bps"},
    "volume": pl.Float64(),
}
_CONFIG_LOCK = threading.RLock()


@contextmanager
def _yfinance_raises() -> Iterator[None]:
    """Make yfinance raise instead of logging and returning an empty frame (restored afterwards)."""
    import yfinance as yf

    with _CONFIG_LOCK:
        before = yf.config.debug.hide_exceptions
        yf.config.debug.hide_exceptions = False
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module=r"yfinance(\..*)?")
                yield
        finally:
            yf.config.debug.hide_exceptions = before


def _is_timeout(e: BaseException) -> bool:
    if isinstance(e, TimeoutError):
        return True
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & {"Timeout", "ReadTimeout", "ConnectTimeout"})


def _http_status(e: BaseException) -> int | None:
    resp = getattr(e, "response", None)
    code = getattr(resp, "status_code", None)
    return code if isinstance(code, int) else None


def _is_transport(e: BaseException) -> bool:
    mods = {c.__module__.split(".")[0] for c in type(e).__mro__}
    return bool(mods & {"requests", "curl_cffi", "urllib3"}) or isinstance(e, ConnectionError)


class YahooProvider(HttpTransport, UnsupportedCapability):
    """Yahoo Finance via yfinance (see module docstring)."""

    def __init__(
        self, *, session: Any = None, timeout_s: float = 10.0, memo_ttl_s: float = 300.0, name: str = "yahoo"
    ) -> None:
        super().__init__(timeout_s)
        self.name = name
        self.session = session
        self.memo_ttl_s = memo_ttl_s
        self._memo: OrderedDict[tuple[str, dt.date], tuple[float, pd.DataFrame]] = OrderedDict()

    def capabilities(self) -> frozenset[str]:
        return frozenset({"bars", "corporate_actions", "fundamentals"})

    def available(self) -> tuple[bool, str]:
        return True, ""

    # ------------------------------------------------------------------ fetching
    def _history(self, symbol: str, req: BarsRequest) -> tuple[pd.DataFrame | None, RequestLog]:
        """Yahoo's history of ``symbol`` from ``req.start`` to today (None if Yahoo has none)."""
        key = (symbol, req.start)
        hit = self._memo.get(key)
        if hit is not None and time.monotonic() - hit[0] <= self.memo_ttl_s:
            return hit[1], RequestLog(
                self.name, ENDPOINT, (symbol,), req.start, req.end, "ok", None, 0, 0.0, len(hit[1]), None
            )
        import yfinance as yf
        from yfinance import exceptions as yfe

        self._acquire()
        t0 = time.perf_counter()
        try:
            with _yfinance_raises():
                hist = yf.Ticker(symbol, session=self.session).history(
                    start=req.start.isoformat(),
                    interval="1d",
                    auto_adjust=False,
                    actions=True,
                    timeout=self.timeout_s,
                )
        except (yfe.YFPricesMissingError, yfe.YFTzMissingError, yfe.YFTickerMissingError) as e:
            ms = (time.perf_counter() - t0) * 1000.0
            return None, RequestLog(
                self.name, ENDPOINT, (symbol,), req.start, req.end, "ok", None, 1, ms, 0, f"no data: {e}"
            )
        except Exception as e:
            ms = (time.perf_counter() - t0) * 1000.0
            if _http_status(e) == 404:  # unknown symbol: the chart and quote endpoints answer 404
                return None, RequestLog(
                    self.name,
                    ENDPOINT,
                    (symbol,),
                    req.start,
                    req.end,
                    "ok",
                    404,
                    1,
                    ms,
                    0,
                    f"no data: {type(e).__name__}",
                )
            raise self._map_error(e, symbol, req, ms) from e
        ms = (time.perf_counter() - t0) * 1000.0
        self._memo[key] = (time.monotonic(), hist)
        while len(self._memo) > 256:
            self._memo.popitem(last=False)
        return hist, RequestLog(self.name, ENDPOINT, (symbol,), req.start, req.end, "ok", 200, 1, ms, len(hist), None)

    def _map_error(
        self, e: Exception, symbol: str, req: BarsRequest, ms: float, endpoint: str = ENDPOINT
    ) -> ProviderError:
        from yfinance import exceptions as yfe

        kw: dict[str, Any] = {"start": req.start, "end": req.end}
        what = f"{type(e).__name__}: {str(e)[:200]}"
        if isinstance(e, yfe.YFRateLimitError):
            log = RequestLog(self.name, endpoint, (symbol,), req.start, req.end, "rate_limited", 429, 1, ms, 0, what)
            return RateLimitedError(
                self.name, (symbol,), "HTTP 429 Too Many Requests", http_status=429, requests=[log], **kw
            )
        if _is_timeout(e):
            log = RequestLog(self.name, endpoint, (symbol,), req.start, req.end, "timeout", None, 1, ms, 0, what)
            return ProviderTimeoutError(
                self.name, (symbol,), f"no answer within {self.timeout_s:g} s", requests=[log], **kw
            )
        code = _http_status(e)
        log = RequestLog(self.name, endpoint, (symbol,), req.start, req.end, "error", code, 1, ms, 0, what)
        return ProviderError(
            self.name, (symbol,), what, retryable=_is_transport(e), http_status=code, requests=[log], **kw
        )

    @staticmethod
    def _split_factor(hist: pd.DataFrame) -> list[float]:
        """Per row, the product of split ratios strictly after that row (1.0 if none)."""
        ratios = [float(x) if x and x > 0 else 1.0 for x in hist.get("Stock Splits", pd.Series(0.0, hist.index))]
        out = [1.0] * len(ratios)
        acc = 1.0
        for i in range(len(ratios) - 1, -1, -1):
            out[i] = acc
            acc *= ratios[i]
        return out

    def _each(self, req: BarsRequest) -> Iterator[tuple[str, pd.DataFrame | None, RequestLog]]:
        for symbol in req.symbols:
            hist, log = self._history(symbol, req)
            yield symbol, hist, log

    # ------------------------------------------------------------------ protocol
    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        """Unadjusted OHLCV and Yahoo's adjusted close, one request per symbol."""
        parts: list[pl.DataFrame] = []
        logs: list[RequestLog] = []
        try:
            for symbol, hist, log in self._each(req):
                logs.append(log)
                if hist is None or hist.empty:
                    continue
                f = self._split_factor(hist)
                rows = {
                    "date": [ts.date() for ts in hist.index],
                    "symbol": [symbol] * len(hist),
                    **{
                        k.lower(): [float(v) * m for v, m in zip(hist[k], f, strict=True)]
                        for k in ("Open", "High", "Low", "Close")
                    },
                    "adjusted_close": [float(v) for v in hist["Adj Close"]],
                    "volume": [
                        float(round(float(v) / m)) if pd.notna(v) else None
                        for v, m in zip(hist["Volume"], f, strict=True)
                    ],
                }
                df = pl.DataFrame(rows, schema=BARS_RAW_SCHEMA).filter(pl.col("date").is_between(req.start, req.end))
                parts.append(df)
                logs[-1] = replace(log, n_rows=df.height)  # rows within the request, not up to today
        except ProviderError as e:
            e.partial = ProviderResult(self.name, _concat(parts), list(logs))
            e.requests = [*logs, *e.requests]
            raise
        return ProviderResult(self.name, _concat(parts), logs)

    def fetch_corporate_actions(self, req: BarsRequest) -> pl.DataFrame:
        """Splits (new/old) and dividends (cash per share, unadjusted) with ex-dates in the range."""
        rows: list[dict[str, Any]] = []
        for symbol, hist, _log in self._each(req):
            if hist is None or hist.empty:
                continue
            f = self._split_factor(hist)
            divs = hist.get("Dividends", pd.Series(0.0, hist.index))
            splits = hist.get("Stock Splits", pd.Series(0.0, hist.index))
            for ts, d, s, m in zip(hist.index, divs, splits, f, strict=True):
                day = ts.date()
                if not req.start <= day <= req.end:
                    continue
                if s and s > 0:
                    rows.append({"date": day, "symbol": symbol, "action_type": "SPLIT", "value": float(s)})
                if d and d > 0:
                    rows.append({"date": day, "symbol": symbol, "action_type": "DIVIDEND", "value": float(d) * m})
        schema = {k: v for k, v in CORPORATE_ACTIONS_SCHEMA.items() if k != "provider"}
        return pl.DataFrame(rows, schema=schema).with_columns(pl.lit(self.name).alias("provider"))

    def _statements(self, symbol: str, now: dt.datetime) -> pl.DataFrame:
        """Every quarter Yahoo has for ``symbol`` with its report date (empty if Yahoo has no statements)."""
        import yfinance as yf
        from yfinance.data import YfData

        # yfinance memoises responses per URL for the process: a retry must not replay a failed answer
        YfData.cache_get.cache_clear()
        ticker = yf.Ticker(symbol, session=self.session)

        def get(call: Any, *args: Any, **kwargs: Any) -> Any:
            self._acquire()
            return call(*args, **kwargs)

        with _yfinance_raises():
            try:
                income = get(ticker.get_income_stmt, freq="quarterly")
            except Exception as e:
                if "Empty fundamentals-timeseries result" in str(e) or _http_status(e) == 404:
                    return pl.DataFrame(schema={**yfund.QUARTER_SCHEMA, "report_date": pl.Date()})
                raise
            balance = get(ticker.get_balance_sheet, freq="quarterly")
            cash = get(ticker.get_cash_flow, freq="quarterly")
            quarters = yfund.statement_rows(symbol, income, balance, cash)
            releases = yfund.release_days(symbol, get(ticker.get_earnings_dates, limit=25), now)
            year_ends: set[dt.date] | None = set()
            if yfund.needs_year_ends(quarters, releases):
                year_ends = yfund.year_end_dates(symbol, get(ticker.get_income_stmt, freq="yearly"))
        dated = yfund.with_report_dates(quarters, releases, year_ends)
        lagged = dated.filter(pl.col("report_source") == "lag").get_column("fiscal_period_end").to_list()
        if lagged:
            logger.info(
                "yahoo: %s has no earnings date for quarter(s) %s; dated by the report-lag rule", symbol, lagged
            )
        return dated.drop("report_source")

    def fetch_fundamentals(self, req: BarsRequest, now: dt.datetime | None = None) -> pl.DataFrame:
        """Quarters whose report date (a session, see module docstring) falls in ``req``'s range.

        ``now``: releases after it are ignored (default: the current time, UTC).
        """
        now = now or dt.datetime.now(dt.UTC)
        parts: list[pl.DataFrame] = []
        for symbol in req.symbols:
            t0 = time.perf_counter()
            try:
                parts.append(self._statements(symbol, now))
            except yfund.MalformedFundamentals as e:
                raise ProviderError(self.name, (symbol,), str(e), retryable=False, start=req.start, end=req.end) from e
            except ProviderError:
                raise
            except Exception as e:
                ms = (time.perf_counter() - t0) * 1000.0
                raise self._map_error(e, symbol, req, ms, FUNDAMENTALS_ENDPOINT) from e
        schema = {k: v for k, v in FUNDAMENTALS_SCHEMA.items() if k != "provider"}
        rows = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame(schema=schema)
        return (
            rows.filter(pl.col("report_date").is_between(req.start, req.end))
            .with_columns(pl.lit(self.name, dtype=pl.String).alias("provider"))
            .select([pl.col(c).cast(t) for c, t in FUNDAMENTALS_SCHEMA.items()])
        )


def _concat(parts: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=BARS_RAW_SCHEMA)
