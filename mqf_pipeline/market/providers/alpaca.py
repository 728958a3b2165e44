"""Daily bars from Alpaca's market-data API through alpaca-py's ``StockHistoricalDataClient``.

Two requests per chunk of symbols: ``adjustment=raw`` gives open/high/low/close/volume and
``adjustment=all`` gives the split- and dividend-adjusted close (``adjusted_close``). Alpaca
stamps a daily bar at midnight America/New_York (in UTC); the session is that local date.
alpaca-py follows ``next_page_token`` itself.

Keys come only from the environment (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``) and are never
logged or put into messages. The base URL comes from ``url_override`` or ``APCA_API_DATA_URL``
(tests point it at a local server). alpaca-py 0.44 retries HTTP 429/504 itself,
``retry_attempts`` times with a fixed ``retry_wait_s`` sleep; its constructor does not expose
these, so this provider sets them on the client (``_retry``, ``_retry_wait``, ``_retry_codes``),
from arguments or ``APCA_RETRY_MAX_ATTEMPTS`` / ``APCA_RETRY_WAIT_SECONDS`` (defaults 3 and 3 s).
The client's ``requests.Session`` is swapped for one that applies the timeout (alpaca-py sets
none), calls the router's throttle before every HTTP request and records each request, so an
exhausted 429 surfaces as :class:`RateLimitedError` and a timeout as :class:`ProviderTimeoutError`.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import requests

from mqf_pipeline.market.providers.base import (
    BarsRequest,
    HttpTransport,
    ProviderError,
    ProviderResult,
    ProviderTimeoutError,
    ProviderUnavailable,
    RateLimitedError,
    RequestLog,
    UnsupportedCapability,
    env_missing,
)

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
URL_ENV = "APCA_API_DATA_URL"
RETRY_ATTEMPTS_ENV = "APCA_RETRY_MAX_ATTEMPTS"
RETRY_WAIT_ENV = "APCA_RETRY_WAIT_SECONDS"
ENDPOINT = "/v2/stocks/bars"
NEW_YORK = ZoneInfo("America/New_York")


@dataclass
class _Hit:
    """One HTTP request as seen by the session: page token, status (None if it raised), ms."""

    page_token: str | None
    status: int | None
    latency_ms: float
    rows: int = 0


class _ObservedSession(requests.Session):
    """A ``requests.Session`` that throttles, applies a default timeout and records each request."""

    def __init__(self, owner: AlpacaProvider) -> None:
        super().__init__()
        self._owner = owner
        self.hits: list[_Hit] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._owner.timeout_s)
        params = kwargs.get("params") or {}
        token = params.get("page_token") if isinstance(params, dict) else None
        self._owner._acquire()
        t0 = time.perf_counter()
        try:
            resp = super().request(method, url, *args, **kwargs)
        except Exception:
            self.hits.append(_Hit(token, None, (time.perf_counter() - t0) * 1000.0))
            raise
        ms = (time.perf_counter() - t0) * 1000.0
        rows = 0
        if resp.status_code == 200:
            try:
                bars = resp.json().get("bars") or {}
                rows = sum(len(v) for v in bars.values()) if isinstance(bars, dict) else 0
            except (ValueError, AttributeError):
                rows = 0
        self.hits.append(_Hit(token, resp.status_code, ms, rows))
        return resp


def _redact(text: str) -> str:
    """``text`` with the key and secret values (if set) replaced by ``***``."""
    for name in (KEY_ENV, SECRET_ENV):
        value = os.environ.get(name, "").strip()
        if value:
            text = text.replace(value, "***")
    return text


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from e


class AlpacaProvider(HttpTransport, UnsupportedCapability):
    """Alpaca daily bars (see module docstring). ``feed``: "iex", "sip" or None (account default)."""

    def __init__(
        self,
        *,
        url_override: str | None = None,
        feed: str | None = None,
        timeout_s: float = 30.0,
        retry_attempts: int | None = None,
        retry_wait_s: float | None = None,
        name: str = "alpaca",
    ) -> None:
        super().__init__(timeout_s)
        self.name = name
        self.url_override = url_override or os.environ.get(URL_ENV) or None
        self.feed = feed
        self.retry_attempts = int(retry_attempts if retry_attempts is not None else _env_number(RETRY_ATTEMPTS_ENV, 3))
        self.retry_wait_s = float(retry_wait_s if retry_wait_s is not None else _env_number(RETRY_WAIT_ENV, 3.0))
        self._client: Any = None
        self._session: _ObservedSession | None = None

    def __repr__(self) -> str:
        return f"AlpacaProvider(name={self.name!r}, url={self.url_override or 'default'!r}, feed={self.feed!r})"

    def capabilities(self) -> frozenset[str]:
        return frozenset({"bars"})

    def available(self) -> tuple[bool, str]:
        missing = env_missing(KEY_ENV, SECRET_ENV)
        if missing:
            return False, " and ".join(missing) + (" is" if len(missing) == 1 else " are") + " not set"
        return True, ""

    def _make_client(self, req: BarsRequest) -> tuple[Any, _ObservedSession]:
        ok, why = self.available()
        if not ok:
            raise ProviderUnavailable(self.name, req.symbols, why, start=req.start, end=req.end)
        if self._client is None:
            from alpaca.data.historical import StockHistoricalDataClient

            client = StockHistoricalDataClient(
                os.environ[KEY_ENV].strip(),
                os.environ[SECRET_ENV].strip(),
                raw_data=True,
                url_override=self.url_override,
            )
            for attr in ("_session", "_retry", "_retry_wait", "_retry_codes"):
                if not hasattr(client, attr):
                    raise ProviderError(
                        self.name,
                        req.symbols,
                        f"alpaca-py client has no {attr}; this provider needs alpaca-py 0.40-0.44 internals",
                        retryable=False,
                        start=req.start,
                        end=req.end,
                    )
            self._session = _ObservedSession(self)
            client._session = self._session
            client._retry = max(0, self.retry_attempts)
            client._retry_wait = max(0.0, self.retry_wait_s)
            client._retry_codes = [429, 504]
            self._client = client
        assert self._session is not None
        return self._client, self._session

    def _logs(
        self, hits: list[_Hit], req: BarsRequest, adjustment: str, error: str | None, failed_as: str = "error"
    ) -> list[RequestLog]:
        """One log per page: consecutive tries with the same page token are attempts of that page.

        ``failed_as`` is the status of a request that raised instead of answering.
        """
        pages: list[list[_Hit]] = []
        for h in hits:
            if pages and pages[-1][-1].page_token == h.page_token and pages[-1][-1].status != 200:
                pages[-1].append(h)
            else:
                pages.append([h])
        by_code = {200: "ok", 429: "rate_limited", 504: "timeout"}
        logs = []
        for page in pages:
            last = page[-1]
            status = failed_as if last.status is None else by_code.get(last.status, "error")
            logs.append(
                RequestLog(
                    self.name,
                    f"{ENDPOINT}?adjustment={adjustment}",
                    req.symbols,
                    req.start,
                    req.end,
                    status,  # type: ignore[arg-type]
                    last.status,
                    len(page),
                    sum(h.latency_ms for h in page),
                    last.rows,
                    None if status == "ok" else error,
                )
            )
        return logs

    def _fetch(self, req: BarsRequest, adjustment: str, logs: list[RequestLog]) -> dict[str, list[dict[str, Any]]]:
        from alpaca.common.exceptions import APIError
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        client, session = self._make_client(req)
        start = dt.datetime.combine(req.start, dt.time(0, 0), tzinfo=NEW_YORK)
        end = dt.datetime.combine(req.end, dt.time(23, 59, 59), tzinfo=NEW_YORK)
        params: dict[str, Any] = {
            "symbol_or_symbols": list(req.symbols),
            "timeframe": TimeFrame.Day,
            "start": start,
            "end": end,
            "adjustment": adjustment,
        }
        if self.feed:
            params["feed"] = self.feed
        session.hits = []
        try:
            data = client.get_stock_bars(StockBarsRequest(**params)) or {}
        except (APIError, requests.RequestException, ValueError) as e:
            raise self._error(e, req, adjustment, logs, session.hits) from e
        logs.extend(self._logs(session.hits, req, adjustment, None))
        return data if isinstance(data, dict) else {}

    def _error(
        self, e: Exception, req: BarsRequest, adjustment: str, logs: list[RequestLog], hits: list[_Hit]
    ) -> ProviderError:
        """Map an alpaca-py / requests failure to the provider error types (keys redacted)."""
        from alpaca.common.exceptions import APIError

        n = len(hits)
        common = {"start": req.start, "end": req.end, "attempts": max(n, 1)}
        if isinstance(e, APIError):
            code = e.status_code
            text = _redact(str(e)[:300])
            common["requests"] = [*logs, *self._logs(hits, req, adjustment, text)]
            if code == 429:
                return RateLimitedError(
                    self.name,
                    req.symbols,
                    f"HTTP 429 after {n} tries ({adjustment} bars)",
                    http_status=429,
                    **common,
                )
            if code == 504:
                return ProviderTimeoutError(
                    self.name,
                    req.symbols,
                    f"HTTP 504 gateway timeout after {n} tries",
                    http_status=504,
                    **common,
                )
            return ProviderError(
                self.name,
                req.symbols,
                f"HTTP {code}: {text}",
                http_status=code,
                retryable=code is None or code >= 500,
                **common,
            )
        if isinstance(e, requests.Timeout):
            common["requests"] = [*logs, *self._logs(hits, req, adjustment, "timeout", "timeout")]
            return ProviderTimeoutError(
                self.name,
                req.symbols,
                f"no answer within {self.timeout_s:g} s ({type(e).__name__})",
                **common,
            )
        if isinstance(e, requests.RequestException):
            common["requests"] = [*logs, *self._logs(hits, req, adjustment, type(e).__name__)]
            return ProviderError(
                self.name, req.symbols, f"connection failed: {type(e).__name__}", retryable=True, **common
            )
        text = _redact(str(e)[:200])  # unparseable or unexpected response body
        common["requests"] = [*logs, *self._logs(hits, req, adjustment, text)]
        return ProviderError(self.name, req.symbols, f"bad response: {text}", retryable=False, **common)

    @staticmethod
    def _frame(data: dict[str, list[dict[str, Any]]], adjusted: bool) -> pl.DataFrame:
        rows: list[dict[str, Any]] = []
        for symbol, bars in data.items():
            for b in bars:
                t = dt.datetime.fromisoformat(str(b["t"]).replace("Z", "+00:00")).astimezone(NEW_YORK)
                if adjusted:
                    rows.append({"date": t.date(), "symbol": symbol, "adjusted_close": b.get("c")})
                else:
                    rows.append(
                        {
                            "date": t.date(),
                            "symbol": symbol,
                            "open": b.get("o"),
                            "high": b.get("h"),
                            "low": b.get("l"),
                            "close": b.get("c"),
                            "volume": b.get("v"),
                        }
                    )
        if adjusted:
            schema: dict[str, Any] = {"date": pl.Date, "symbol": pl.String, "adjusted_close": pl.Float64}
        else:
            schema = {
                "date": pl.Date,
                "symbol": pl.String,
                "open": pl.Float64,
                "high": pl.Float64,
                "low": pl.Float64,
                "close": pl.Float64,
                "volume": pl.Int64,
            }
        return pl.DataFrame(rows, schema=schema, strict=False)

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        """Raw and adjusted daily bars merged on (symbol, session)."""
        logs: list[RequestLog] = []
        raw = self._frame(self._fetch(req, "raw", logs), adjusted=False)
        adj = self._frame(self._fetch(req, "all", logs), adjusted=True)
        adj = adj.unique(["symbol", "date"], keep="first", maintain_order=True)
        out = raw.join(adj, on=["symbol", "date"], how="left", maintain_order="left")
        out = out.filter(pl.col("date").is_between(req.start, req.end)).select(
            "date", "symbol", "open", "high", "low", "close", "adjusted_close", "volume"
        )
        return ProviderResult(self.name, out, logs)
