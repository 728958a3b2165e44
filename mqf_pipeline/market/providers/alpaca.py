"""Daily bars and news headlines from Alpaca's market-data API through alpaca-py (bars client, news client).

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

Headlines ("headlines" capability) come from Alpaca's news API through alpaca-py's ``NewsClient``:
``GET {base}/v1beta1/news`` with ``symbols`` (comma-separated), ``start``/``end`` (RFC 3339, UTC),
``include_content=False``, ``limit`` (page size, at most 50, set by alpaca-py) and ``page_token``; alpaca-py
follows ``next_page_token`` itself. The news client shares the bars client's keys, base URL, retries,
throttle, timeout and error mapping. In paper (and live) mode this is the pipeline's only source of
headlines; the simulator makes its own in simulated mode.

Session dating (no lookahead): an item's ``created_at`` (UTC; converted to America/New_York) is dated to
the first XNYS session whose close is *strictly later* than it, using the calendar's actual close (16:00,
or 13:00 on early-close days). So an item published before the close belongs to that session; one
published at or after the close, on a weekend or on a holiday belongs to the next session; a headline is
never dated to a session whose close precedes its publication. ``updated_at`` is ignored. The request
asks for items created from the close before the first requested session to the close of the last
one, and keeps the rows dated within the requested range. An item mentioning several requested symbols
gives one row per such symbol; symbols not requested are dropped.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl
import requests

from mqf_pipeline import calendar
from mqf_pipeline.market.providers.base import (
    HEADLINES_SCHEMA,
    BarsRequest,
    HttpTransport,
    ProviderError,
    ProviderResult,
    ProviderTimeoutError,
    ProviderUnavailable,
    RateLimitedError,
    RequestLog,
    UnsupportedCapability,
    describe_symbols,
    empty_frame,
    env_missing,
)

logger = logging.getLogger(__name__)

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
URL_ENV = "APCA_API_DATA_URL"
RETRY_ATTEMPTS_ENV = "APCA_RETRY_MAX_ATTEMPTS"
RETRY_WAIT_ENV = "APCA_RETRY_WAIT_SECONDS"
ENDPOINT = "/v2/stocks/bars"
NEWS_ENDPOINT = "/v1beta1/news"
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
        rows = _count_rows(resp) if resp.status_code == 200 else 0
        self.hits.append(_Hit(token, resp.status_code, ms, rows))
        return resp


def _count_rows(resp: requests.Response) -> int:
    """Bars (``{"bars": {symbol: [...]}}``) or news items (``{"news": [...]}``) in one page."""
    try:
        body = resp.json()
    except ValueError:
        return 0
    if not isinstance(body, dict):
        return 0
    bars, news = body.get("bars"), body.get("news")
    if isinstance(bars, dict):
        return sum(len(v) for v in bars.values() if isinstance(v, list))
    return len(news) if isinstance(news, list) else 0


SessionCloses = list[tuple[dt.date, dt.datetime]]


def session_closes(start: dt.date, end: dt.date) -> SessionCloses:
    """(session, close in UTC) for the session before the first one in ``start..end`` through the last.

    Empty if the range holds no session. Raises ``ValueError`` outside the calendar's range.
    """
    days = calendar.sessions(start, end)
    if not days:
        return []
    first = calendar.previous_session(days[0])
    closes = calendar.xnys().closes.loc[pd.Timestamp(first) : pd.Timestamp(days[-1])]
    out = [(ts.date(), close.to_pydatetime()) for ts, close in closes.items()]
    if [d for d, _ in out] != [first, *days]:
        raise ValueError(f"calendar closes do not match the sessions {first}..{days[-1]}")
    return out


def headline_session(published: dt.datetime, closes: SessionCloses) -> dt.date | None:
    """The first session of ``closes`` whose close is strictly after ``published``.

    None if ``published`` is at or after the last close, or before the first close (it belongs to
    the first listed session or earlier, which is outside the window). Naive times are taken as UTC.
    """
    if published.tzinfo is None:
        published = published.replace(tzinfo=dt.UTC)
    i = bisect.bisect_right([c for _, c in closes], published)
    if i == 0 or i >= len(closes):
        return None
    return closes[i][0]


def _parse_time(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str) and value.strip():
        try:
            t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def headline_rows(
    items: Sequence[dict[str, Any]],
    symbols: Sequence[str],
    closes: SessionCloses,
    start: dt.date,
    end: dt.date,
    provider: str,
) -> pl.DataFrame:
    """Rows with :data:`HEADLINES_SCHEMA` from raw Alpaca news items (see module docstring).

    Items without a headline or a parseable ``created_at`` are skipped (logged); a repeated item id
    counts once.
    """
    wanted = {s.upper(): s for s in symbols}
    seen: set[object] = set()
    rows: list[tuple[dt.date, str, dt.datetime, str]] = []
    skipped = 0
    for item in items:
        item_id = item.get("id")
        if item_id is not None:
            if item_id in seen:
                continue
            seen.add(item_id)
        headline = str(item.get("headline") or "").strip()
        created = _parse_time(item.get("created_at"))
        if not headline or created is None:
            skipped += 1
            continue
        day = headline_session(created, closes)
        if day is None or not start <= day <= end:
            continue
        mentioned = dict.fromkeys(str(s).upper() for s in item.get("symbols") or [])
        rows.extend((day, wanted[sym], created, headline) for sym in mentioned if sym in wanted)
    if skipped:
        logger.warning("%s: skipped %d news item(s) without a headline or created_at", provider, skipped)
    rows.sort(key=lambda r: r[:3])
    data = [{"date": d, "symbol": sym, "headline": h, "provider": provider} for d, sym, _, h in rows]
    return pl.DataFrame(data, schema=HEADLINES_SCHEMA) if data else empty_frame(HEADLINES_SCHEMA)


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
    """Alpaca daily bars and news headlines (see module docstring).

    ``feed``: "iex", "sip" or None (account default). ``news_max_items`` caps the news items of one
    call (alpaca-py's ``limit`` is a total, not a page size); None fetches every page.
    """

    def __init__(
        self,
        *,
        url_override: str | None = None,
        feed: str | None = None,
        timeout_s: float = 30.0,
        retry_attempts: int | None = None,
        retry_wait_s: float | None = None,
        news_max_items: int | None = None,
        name: str = "alpaca",
    ) -> None:
        super().__init__(timeout_s)
        self.name = name
        self.url_override = url_override or os.environ.get(URL_ENV) or None
        self.feed = feed
        self.retry_attempts = int(retry_attempts if retry_attempts is not None else _env_number(RETRY_ATTEMPTS_ENV, 3))
        self.retry_wait_s = float(retry_wait_s if retry_wait_s is not None else _env_number(RETRY_WAIT_ENV, 3.0))
        self.news_max_items = news_max_items
        self._client: Any = None
        self._news_client: Any = None
        self._session: _ObservedSession | None = None
        #: Request logs of the last :meth:`fetch_headlines` call (one per page).
        self.news_requests: list[RequestLog] = []

    def __repr__(self) -> str:
        return f"AlpacaProvider(name={self.name!r}, url={self.url_override or 'default'!r}, feed={self.feed!r})"

    def capabilities(self) -> frozenset[str]:
        return frozenset({"bars", "headlines"})

    def available(self) -> tuple[bool, str]:
        missing = env_missing(KEY_ENV, SECRET_ENV)
        if missing:
            return False, " and ".join(missing) + (" is" if len(missing) == 1 else " are") + " not set"
        return True, ""

    def _build(self, cls: type, req: BarsRequest) -> Any:
        """An alpaca-py REST client of ``cls`` with keys from the environment, our session and retries."""
        client = cls(
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
        if self._session is None:
            self._session = _ObservedSession(self)
        client._session = self._session
        client._retry = max(0, self.retry_attempts)
        client._retry_wait = max(0.0, self.retry_wait_s)
        client._retry_codes = [429, 504]
        return client

    def _make_client(self, req: BarsRequest) -> tuple[Any, _ObservedSession]:
        ok, why = self.available()
        if not ok:
            raise ProviderUnavailable(self.name, req.symbols, why, start=req.start, end=req.end)
        if self._client is None:
            from alpaca.data.historical import StockHistoricalDataClient

            self._client = self._build(StockHistoricalDataClient, req)
        assert self._session is not None
        return self._client, self._session

    def _make_news_client(self, req: BarsRequest) -> tuple[Any, _ObservedSession]:
        ok, why = self.available()
        if not ok:
            raise ProviderUnavailable(self.name, req.symbols, why, start=req.start, end=req.end)
        if self._news_client is None:
            from alpaca.data.historical.news import NewsClient

            self._news_client = self._build(NewsClient, req)
        assert self._session is not None
        return self._news_client, self._session

    def _logs(
        self, hits: list[_Hit], req: BarsRequest, endpoint: str, error: str | None, failed_as: str = "error"
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
                    endpoint,
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
        endpoint = f"{ENDPOINT}?adjustment={adjustment}"
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
            raise self._error(e, req, endpoint, f"{adjustment} bars", logs, session.hits) from e
        logs.extend(self._logs(session.hits, req, endpoint, None))
        return data if isinstance(data, dict) else {}

    def _error(
        self, e: Exception, req: BarsRequest, endpoint: str, what: str, logs: list[RequestLog], hits: list[_Hit]
    ) -> ProviderError:
        """Map an alpaca-py / requests failure fetching ``what`` to the provider error types (keys redacted)."""
        from alpaca.common.exceptions import APIError

        n = len(hits)
        common = {"start": req.start, "end": req.end, "attempts": max(n, 1)}
        if isinstance(e, APIError):
            code = e.status_code
            text = _redact(str(e)[:300])
            common["requests"] = [*logs, *self._logs(hits, req, endpoint, text)]
            if code == 429:
                return RateLimitedError(
                    self.name,
                    req.symbols,
                    f"HTTP 429 after {n} tries ({what})",
                    http_status=429,
                    **common,
                )
            if code == 504:
                return ProviderTimeoutError(
                    self.name,
                    req.symbols,
                    f"HTTP 504 gateway timeout after {n} tries ({what})",
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
            common["requests"] = [*logs, *self._logs(hits, req, endpoint, "timeout", "timeout")]
            return ProviderTimeoutError(
                self.name,
                req.symbols,
                f"no answer within {self.timeout_s:g} s ({what}; {type(e).__name__})",
                **common,
            )
        if isinstance(e, requests.RequestException):
            common["requests"] = [*logs, *self._logs(hits, req, endpoint, type(e).__name__)]
            return ProviderError(
                self.name, req.symbols, f"connection failed: {type(e).__name__}", retryable=True, **common
            )
        text = _redact(str(e)[:200])  # unparseable or unexpected response body
        common["requests"] = [*logs, *self._logs(hits, req, endpoint, text)]
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

    def fetch_headlines(self, req: BarsRequest) -> pl.DataFrame:
        """Headlines of ``req.symbols`` dated to sessions in ``req``'s range (see module docstring)."""
        from alpaca.common.exceptions import APIError
        from alpaca.data.requests import NewsRequest

        self.news_requests = []
        try:
            closes = session_closes(req.start, req.end)
        except ValueError as e:
            raise ProviderError(
                self.name, req.symbols, f"cannot date news: {e}", retryable=False, start=req.start, end=req.end
            ) from e
        if not closes:  # no session in range: nothing can be dated into it
            return empty_frame(HEADLINES_SCHEMA)
        client, session = self._make_news_client(req)
        params = NewsRequest(
            symbols=",".join(req.symbols),
            start=closes[0][1].astimezone(dt.UTC),
            end=closes[-1][1].astimezone(dt.UTC),
            limit=self.news_max_items,
            include_content=False,
        )
        session.hits = []
        try:
            data = client.get_news(params) or {}
        except (APIError, requests.RequestException, ValueError) as e:
            raise self._error(e, req, NEWS_ENDPOINT, "news", [], session.hits) from e
        self.news_requests = self._logs(session.hits, req, NEWS_ENDPOINT, None)
        items = data.get("news") if isinstance(data, dict) else None
        items = [i for i in items or [] if isinstance(i, dict)]
        if self.news_max_items is not None and len(items) >= self.news_max_items:
            logger.warning(
                "%s: news for %s %s..%s stopped at news_max_items=%d; later items are missing",
                self.name,
                describe_symbols(req.symbols),
                req.start,
                req.end,
                self.news_max_items,
            )
        return headline_rows(items, req.symbols, closes, req.start, req.end, self.name)
