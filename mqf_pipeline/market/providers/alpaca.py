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

Live quotes (:meth:`AlpacaProvider.live_quotes`, for the intraday child-order step) come from
``StockHistoricalDataClient.get_stock_snapshot`` (``GET {base}/v2/stocks/snapshots?symbols=...``, one
request for all symbols): the latest trade's price, and the session's daily bar volume and open.

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

import datetime as dt
import logging
import os
from collections.abc import Sequence
from typing import Any

import polars as pl
import requests

from mqf_pipeline.execution.child_orders import LiveQuote
from mqf_pipeline.market.providers.alpaca_http import (
    KEY_ENV,
    RETRY_ATTEMPTS_ENV,
    RETRY_WAIT_ENV,
    SECRET_ENV,
    URL_ENV,
    _env_number,
    _map_error,
    _ObservedSession,
    _page_logs,
)
from mqf_pipeline.market.providers.alpaca_rows import (
    NEW_YORK,
    _bars_frame,
    headline_rows,
    session_closes,
    snapshot_quotes,
)
from mqf_pipeline.market.providers.base import (
    HEADLINES_SCHEMA,
    BarsRequest,
    HttpTransport,
    ProviderError,
    ProviderResult,
    ProviderUnavailable,
    RequestLog,
    UnsupportedCapability,
    describe_symbols,
    empty_frame,
    env_missing,
)

logger = logging.getLogger(__name__)

ENDPOINT = "/v2/stocks/bars"
NEWS_ENDPOINT = "/v1beta1/news"
SNAPSHOT_ENDPOINT = "/v2/stocks/snapshots"


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
            raise _map_error(
                self.name, self.timeout_s, e, req, endpoint, f"{adjustment} bars", logs, session.hits
            ) from e
        logs.extend(_page_logs(self.name, session.hits, req, endpoint, None))
        return data if isinstance(data, dict) else {}

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        """Raw and adjusted daily bars merged on (symbol, session)."""
        logs: list[RequestLog] = []
        raw = _bars_frame(self._fetch(req, "raw", logs), adjusted=False)
        adj = _bars_frame(self._fetch(req, "all", logs), adjusted=True)
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
            raise _map_error(self.name, self.timeout_s, e, req, NEWS_ENDPOINT, "news", [], session.hits) from e
        self.news_requests = _page_logs(self.name, session.hits, req, NEWS_ENDPOINT, None)
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

    def live_quotes(self, symbols: Sequence[str], session: dt.date) -> dict[str, LiveQuote]:
        """Live quotes of ``symbols`` during ``session`` from one snapshots request (module docstring;
        :func:`~mqf_pipeline.market.providers.alpaca_rows.snapshot_quotes`); symbols without a trade are absent."""
        from alpaca.common.exceptions import APIError
        from alpaca.data.requests import StockSnapshotRequest

        if not symbols:
            return {}
        req = BarsRequest(tuple(dict.fromkeys(symbols)), session, session)
        client, session_http = self._make_client(req)
        params: dict[str, Any] = {"symbol_or_symbols": list(req.symbols)}
        if self.feed:
            params["feed"] = self.feed
        session_http.hits = []
        try:
            data = client.get_stock_snapshot(StockSnapshotRequest(**params)) or {}
        except (APIError, requests.RequestException, ValueError) as e:
            raise _map_error(
                self.name, self.timeout_s, e, req, SNAPSHOT_ENDPOINT, "snapshots", [], session_http.hits
            ) from e
        return snapshot_quotes(data, req.symbols, session)
