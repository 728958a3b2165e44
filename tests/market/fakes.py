"""Local stand-ins for the outside world, shared by the market tests (and later the broker tests).

* :class:`FakeHTTPServer` - a ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a daemon thread:
  route table with ``{name}`` path parameters, capture of every request, scripted responses
  (status, body, delay) consumed before the routes, and a lifetime after which it stops itself.
  Delays wait on the stop event, so stopping never hangs on a sleeping handler.
* :class:`FakeAlpacaMarketData` - ``GET /v2/stocks/bars`` in Alpaca's JSON shape with pagination.
* :class:`FakeAlpacaNews` - ``GET /v1beta1/news`` in Alpaca's JSON shape with pagination.
* :class:`FakeFred` - ``GET /fred/series/observations`` in FRED's XML shape.
* :class:`YahooReplaySession` - a ``requests.Session`` whose transport adapter replays recorded
  Yahoo chart JSON (``tests/fixtures/yahoo/<SYMBOL>.json``) for yfinance; no socket is opened. It also
  answers the fundamentals-timeseries API from ``tests/fixtures/yahoo/fundamentals/<SYMBOL>.json`` and
  the earnings calendar page from ``tests/fixtures/yahoo/earnings/<SYMBOL>.html``.
* :class:`FakeClock`, :class:`ScriptedProvider` and bar helpers for router tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import requests
from requests.adapters import BaseAdapter

from mqf_pipeline.market.providers.base import (
    BarsRequest,
    ProviderError,
    ProviderResult,
    ProviderTimeoutError,
    RateLimitedError,
)

NEW_YORK = ZoneInfo("America/New_York")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# --------------------------------------------------------------------------- generic server
@dataclass
class Captured:
    """One request the fake server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    at: float = 0.0

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class FakeResponse:
    """What the server sends: a dict/list body is JSON, str/bytes as is; ``delay_s`` before sending."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return bytes(self.body), "application/octet-stream"


Handler = Callable[[Captured], FakeResponse]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cap = Captured(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k: v for k, v in self.headers.items()},
            body,
            at=time.monotonic(),
        )
        resp = self.server.fake._dispatch(cap)
        if resp.delay_s > 0 and self.server.fake._stop.wait(resp.delay_s):
            self.close_connection = True  # server stopping: drop the connection
            return
        payload, ctype = resp.encoded()
        try:
            self.send_response(resp.status)
            headers = {"Content-Type": ctype, **resp.headers, "Content-Length": str(len(payload))}
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 (http.server names)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeHTTPServer


class FakeHTTPServer:
    """A local HTTP server with routes, request capture and scripted faults (see module docstring)."""

    def __init__(self, max_lifetime_s: float = 120.0) -> None:
        self.requests: list[Captured] = []
        self.max_lifetime_s = max_lifetime_s
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._scripts: dict[str, deque[FakeResponse]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # configuration
    def route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` (``{name}`` matches one path segment) with ``handler``."""
        pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
        self._routes.append((method.upper(), pattern, handler))

    def script(self, path: str, *responses: FakeResponse) -> None:
        """Answer the next requests to ``path`` with ``responses``, in order, before the routes."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(responses)

    def requests_to(self, path: str) -> list[Captured]:
        return [r for r in self.requests if r.path == path]

    def _dispatch(self, cap: Captured) -> FakeResponse:
        with self._lock:
            self.requests.append(cap)
            queue = self._scripts.get(cap.path)
            if queue:
                return queue.popleft()
        for method, pattern, handler in self._routes:
            m = pattern.match(cap.path)
            if m and method == cap.method:
                cap.path_params = m.groupdict()
                try:
                    return handler(cap)
                except Exception as e:  # a broken handler shows up as a 500 with its message
                    return FakeResponse(500, {"message": f"fake handler error: {type(e).__name__}: {e}"})
        return FakeResponse(404, {"message": f"no route for {cap.method} {cap.path}"})

    # lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHTTPServer:
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"{type(self).__name__}",
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- bars helpers
def synthetic_bars(symbols: Sequence[str], sessions: Sequence[dt.date], seed: int = 7) -> pl.DataFrame:
    """Plausible daily bars: date, symbol, open, high, low, close, adjusted_close (0.98 x close), volume."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, sym in enumerate(symbols):
        price = 50.0 + 25.0 * k
        for d in sessions:
            price *= float(np.exp(rng.normal(0, 0.01)))
            o = round(price * (1 + rng.normal(0, 0.002)), 2)
            c = round(price, 2)
            rows.append(
                {
                    "date": d,
                    "symbol": sym,
                    "open": o,
                    "high": round(max(o, c) * 1.005, 2),
                    "low": round(min(o, c) * 0.995, 2),
                    "close": c,
                    "adjusted_close": round(c * 0.98, 4),
                    "volume": int(rng.integers(100_000, 5_000_000)),
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "date": pl.Date,
            "symbol": pl.String,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "adjusted_close": pl.Float64,
            "volume": pl.Int64,
        },
    )


def alpaca_timestamp(day: dt.date) -> str:
    """Alpaca's stamp of a daily bar: midnight New York, in UTC (``2024-01-02T05:00:00Z``)."""
    local = dt.datetime.combine(day, dt.time(0, 0), tzinfo=NEW_YORK)
    return local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alpaca_bars(frame: pl.DataFrame, adjusted: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Alpaca bar objects per symbol from :func:`synthetic_bars` rows (adjusted: close = adjusted_close)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in frame.sort("symbol", "date").iter_rows(named=True):
        close = r["adjusted_close"] if adjusted else r["close"]
        f = (close / r["close"]) if adjusted else 1.0
        out.setdefault(r["symbol"], []).append(
            {
                "t": alpaca_timestamp(r["date"]),
                "o": r["open"] * f,
                "h": r["high"] * f,
                "l": r["low"] * f,
                "c": close,
                "v": r["volume"],
                "n": 1000,
                "vw": round((r["high"] + r["low"]) / 2 * f, 4),
            }
        )
    return out


def write_bar_files(frame: pl.DataFrame, root: Path, fmt: str = "csv", combined: bool = False) -> list[Path]:
    """Write ``frame`` as per-symbol files (``<SYMBOL>.<fmt>``) or one combined file with a symbol column."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    groups = (
        [("all_bars", frame)]
        if combined
        else [
            (s, frame.filter(pl.col("symbol") == s).drop("symbol")) for s in frame["symbol"].unique(maintain_order=True)
        ]
    )
    for stem, df in groups:
        path = root / f"{stem}.{fmt}"
        if fmt == "csv":
            df.write_csv(path)
        else:
            df.write_parquet(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- Alpaca market data
class FakeAlpacaMarketData(FakeHTTPServer):
    """``GET /v2/stocks/bars`` like Alpaca's data API v2: symbols, timeframe=1Day, start/end (RFC 3339),
    adjustment raw|all, limit, page_token; pages of at most ``page_size`` bars ordered by symbol then time,
    ``next_page_token`` an opaque base64 offset. Requests without key headers get 401."""

    PATH = "/v2/stocks/bars"
    SNAPSHOTS_PATH = "/v2/stocks/snapshots"

    def __init__(
        self,
        raw: dict[str, list[dict[str, Any]]],
        adjusted: dict[str, list[dict[str, Any]]] | None = None,
        page_size: int = 10_000,
        max_lifetime_s: float = 120.0,
    ) -> None:
        super().__init__(max_lifetime_s)
        self.data = {"raw": raw, "all": adjusted if adjusted is not None else raw}
        self.page_size = page_size
        self.route("GET", self.PATH, self._bars)
        #: raw snapshot JSON per symbol served by ``GET /v2/stocks/snapshots`` (see :func:`alpaca_snapshot`)
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.route("GET", self.SNAPSHOTS_PATH, self._snapshots)

    @staticmethod
    def _time(value: str) -> dt.datetime:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)

    def _bars(self, cap: Captured) -> FakeResponse:
        if not cap.headers.get("APCA-API-KEY-ID") or not cap.headers.get("APCA-API-SECRET-KEY"):
            return FakeResponse(401, {"code": 40110000, "message": "request is not authorized"})
        if cap.param("timeframe") != "1Day":
            return FakeResponse(422, {"code": 42210000, "message": f"invalid timeframe {cap.param('timeframe')}"})
        adjustment = cap.param("adjustment") or "raw"
        if adjustment not in self.data:
            return FakeResponse(422, {"code": 42210000, "message": f"invalid adjustment {adjustment}"})
        symbols = sorted((cap.param("symbols") or "").split(","))
        start = self._time(cap.param("start") or "1970-01-01T00:00:00Z")
        end = self._time(cap.param("end") or "2100-01-01T00:00:00Z")
        items = [
            (s, b) for s in symbols for b in self.data[adjustment].get(s, []) if start <= self._time(b["t"]) <= end
        ]
        token = cap.param("page_token")
        offset = int(base64.b64decode(token).decode()) if token else 0
        limit = min(int(cap.param("limit") or 1000), self.page_size)
        page = items[offset : offset + limit]
        nxt = offset + len(page)
        bars: dict[str, list[dict[str, Any]]] = {}
        for s, b in page:
            bars.setdefault(s, []).append(b)
        next_token = base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else None
        return FakeResponse(200, {"bars": bars, "next_page_token": next_token})

    def _snapshots(self, cap: Captured) -> FakeResponse:
        """``GET /v2/stocks/snapshots?symbols=A,B``: ``{symbol: snapshot}`` for the known symbols."""
        if not cap.headers.get("APCA-API-KEY-ID") or not cap.headers.get("APCA-API-SECRET-KEY"):
            return FakeResponse(401, {"code": 40110000, "message": "request is not authorized"})
        symbols = [s for s in (cap.param("symbols") or "").split(",") if s]
        if not symbols:
            return FakeResponse(422, {"code": 42210000, "message": "symbols is required"})
        return FakeResponse(200, {s: self.snapshots[s] for s in symbols if s in self.snapshots})


def alpaca_snapshot(last: float, day: dt.date, volume: float, open_: float) -> dict[str, Any]:
    """One raw snapshot as Alpaca's data API v2 sends it: latest trade ``last`` dollars, daily bar of
    ``day`` (stamped midnight New York) with ``volume`` shares and opening price ``open_``."""
    t = alpaca_timestamp(day)
    bar = {"t": t, "o": open_, "h": max(open_, last), "l": min(open_, last), "c": last, "v": volume, "n": 1, "vw": last}
    return {
        "latestTrade": {"t": t, "x": "V", "p": last, "s": 100, "c": ["@"], "i": 1, "z": "C"},
        "latestQuote": {
            "t": t,
            "ax": "V",
            "ap": last + 0.01,
            "as": 1,
            "bx": "V",
            "bp": last - 0.01,
            "bs": 1,
            "c": ["R"],
        },
        "minuteBar": bar,
        "dailyBar": bar,
        "prevDailyBar": bar,
    }


def alpaca_news_item(
    item_id: int, headline: str, created_at: dt.datetime, symbols: Sequence[str], source: str = "benzinga"
) -> dict[str, Any]:
    """One Alpaca news article; ``created_at`` (aware) is sent as UTC ``...Z`` like Alpaca does."""
    stamp = created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": item_id,
        "headline": headline,
        "author": "Newsroom",
        "created_at": stamp,
        "updated_at": stamp,
        "summary": "",
        "content": f"<p>{headline}</p>",
        "url": f"https://news.example/{item_id}",
        "images": [],
        "symbols": list(symbols),
        "source": source,
    }


class FakeAlpacaNews(FakeHTTPServer):
    """``GET /v1beta1/news`` like Alpaca's news API: symbols (comma-separated; an item matches if it lists
    any), start/end (RFC 3339, inclusive, on ``created_at``), sort (default "desc" by ``created_at``),
    include_content, limit (default 10, at most 50 and ``page_size``), page_token; ``next_page_token`` an
    opaque base64 offset. Requests without key headers get 401."""

    PATH = "/v1beta1/news"

    def __init__(self, items: Sequence[dict[str, Any]], page_size: int = 50, max_lifetime_s: float = 120.0) -> None:
        super().__init__(max_lifetime_s)
        self.items = list(items)
        self.page_size = page_size
        self.route("GET", self.PATH, self._news)

    def _news(self, cap: Captured) -> FakeResponse:
        if not cap.headers.get("APCA-API-KEY-ID") or not cap.headers.get("APCA-API-SECRET-KEY"):
            return FakeResponse(401, {"code": 40110000, "message": "request is not authorized"})
        sort = (cap.param("sort") or "desc").lower()
        if sort not in ("asc", "desc"):
            return FakeResponse(400, {"code": 40010001, "message": f"invalid sort {sort}"})
        wanted = {s for s in (cap.param("symbols") or "").split(",") if s}
        start = FakeAlpacaMarketData._time(cap.param("start") or "1970-01-01T00:00:00Z")
        end = FakeAlpacaMarketData._time(cap.param("end") or "2100-01-01T00:00:00Z")
        items = [
            i
            for i in self.items
            if (not wanted or wanted & set(i["symbols"]))
            and start <= FakeAlpacaMarketData._time(i["created_at"]) <= end
        ]
        items.sort(key=lambda i: (i["created_at"], i["id"]), reverse=sort == "desc")
        if (cap.param("include_content") or "false").lower() != "true":
            items = [{**i, "content": ""} for i in items]
        token = cap.param("page_token")
        offset = int(base64.b64decode(token).decode()) if token else 0
        limit = min(int(cap.param("limit") or 10), 50, self.page_size)
        page = items[offset : offset + limit]
        nxt = offset + len(page)
        next_token = base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else None
        return FakeResponse(200, {"news": page, "next_page_token": next_token})


# --------------------------------------------------------------------------- FRED
class FakeFred(FakeHTTPServer):
    """``GET /fred/series/observations`` answering FRED's XML; ``series`` maps id -> [(date, value str)]."""

    PATH = "/fred/series/observations"

    def __init__(self, series: dict[str, list[tuple[str, str]]], api_key: str, max_lifetime_s: float = 120.0) -> None:
        super().__init__(max_lifetime_s)
        self.series = series
        self.api_key = api_key
        self.route("GET", self.PATH, self._observations)

    @property
    def root_url(self) -> str:
        return self.url + "/fred"

    @staticmethod
    def error(status: int, message: str) -> FakeResponse:
        body = f'<?xml version="1.0" encoding="utf-8" ?>\n<error code="{status}" message="{message}"/>'
        return FakeResponse(status, body, {"Content-Type": "text/xml; charset=UTF-8"})

    def _observations(self, cap: Captured) -> FakeResponse:
        if cap.param("api_key") != self.api_key:
            return self.error(400, "Bad Request.  The value for variable api_key is not registered.")
        sid = cap.param("series_id") or ""
        if sid not in self.series:
            return self.error(400, "Bad Request.  The series does not exist.")
        lo, hi = cap.param("observation_start") or "1776-07-04", cap.param("observation_end") or "9999-12-31"
        obs = [(d, v) for d, v in self.series[sid] if lo <= d <= hi]
        lines = [f'<observation realtime_start="{hi}" realtime_end="{hi}" date="{d}" value="{v}"/>' for d, v in obs]
        body = (
            '<?xml version="1.0" encoding="utf-8" ?>\n'
            f'<observations realtime_start="{hi}" realtime_end="{hi}" '
            f'observation_start="{lo}" observation_end="{hi}" units="lin" output_type="1" file_type="xml" '
            f'order_by="observation_date" sort_order="asc" count="{len(obs)}" offset="0" limit="100000">\n'
            + "\n".join(lines)
            + "\n</observations>"
        )
        return FakeResponse(200, body, {"Content-Type": "text/xml; charset=UTF-8"})


# --------------------------------------------------------------------------- Yahoo replay
class _YahooReplayAdapter(BaseAdapter):
    """Answers yfinance's requests from fixture files; outcomes per symbol can be scripted."""

    def __init__(self, owner: YahooReplaySession) -> None:
        super().__init__()
        self.owner = owner

    def _response(self, request: requests.PreparedRequest, status: int, body: bytes, ctype: str) -> requests.Response:
        r = requests.Response()
        r.status_code = status
        r._content = body
        r.headers["Content-Type"] = ctype
        r.url = request.url or ""
        r.request = request
        r.encoding = "utf-8"
        r.reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "")
        return r

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        self.owner.calls.append((request.method or "GET", request.url or "", kwargs.get("timeout")))
        if url.path.endswith("/v1/test/getcrumb"):
            return self._response(request, 200, b"replay-crumb", "text/plain")
        if "/ws/fundamentals-timeseries/" in url.path or url.path.endswith("/calendar/earnings"):
            return self._fundamentals(request, url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
        m = re.match(r"^/v8/finance/chart/([^/]+)$", url.path)
        if "/finance/quoteSummary/" in url.path:
            err = {
                "quoteSummary": {
                    "result": None,
                    "error": {"code": "Not Found", "description": "Quote not found"},
                }
            }
            return self._response(request, 404, json.dumps(err).encode(), "application/json")
        if not m:  # cookie and consent pages
            return self._response(request, 200, b"<html><body>ok</body></html>", "text/html")
        symbol = m.group(1)
        outcome = self.owner._next_outcome(symbol, "chart")
        if outcome == "timeout":
            raise requests.exceptions.ReadTimeout(f"replay: read timed out (timeout={kwargs.get('timeout')})")
        if isinstance(outcome, int):
            return self._response(request, outcome, b"Too Many Requests" if outcome == 429 else b"error", "text/plain")
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.owner.chart(symbol, params)
        if body is None:
            err = {
                "chart": {
                    "result": None,
                    "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
                }
            }
            return self._response(request, 404, json.dumps(err).encode(), "application/json")
        return self._response(request, 200, json.dumps(body).encode(), "application/json")

    def _fundamentals(self, request: requests.PreparedRequest, path: str, params: dict[str, str]) -> requests.Response:
        """The timeseries API (JSON) or the earnings calendar page (HTML), with scripted outcomes."""
        kind = "earnings" if path.endswith("/calendar/earnings") else "fundamentals"
        symbol = params.get("symbol", "")
        outcome = self.owner._next_outcome(symbol, kind)
        if outcome == "timeout":
            raise requests.exceptions.ReadTimeout("replay: read timed out")
        if isinstance(outcome, int):
            return self._response(request, outcome, b"Too Many Requests" if outcome == 429 else b"error", "text/plain")
        if kind == "earnings":
            return self._response(request, 200, self.owner.earnings_page(symbol).encode(), "text/html")
        body = self.owner.timeseries(symbol, params.get("type", "").split(","))
        return self._response(request, 200, json.dumps(body).encode(), "application/json")

    def close(self) -> None:
        return


def timeseries_body(symbol: str, store: dict[str, dict[str, dict[str, float]]], types: Sequence[str]) -> dict[str, Any]:
    """Yahoo's fundamentals-timeseries answer for ``types`` (``quarterlyDilutedEPS``, ``annualTotalRevenue``,
    ...) from ``store`` = {"quarterly"|"annual": {key: {asOfDate: value}}}; a type without data gets only its
    meta, as Yahoo does. No store (unknown symbol) -> an empty result list."""
    if not store:
        return {"timeseries": {"result": [], "error": None}}
    result = []
    for t in types:
        scale = next((p for p in ("quarterly", "annual", "trailing") if t.startswith(p)), "")
        values = store.get(scale, {}).get(t[len(scale) :], {})
        entry: dict[str, Any] = {"meta": {"symbol": [symbol], "type": [t]}}
        if values:
            days = sorted(values)
            entry["timestamp"] = [int(dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC).timestamp()) for d in days]
            entry[t] = [
                {
                    "dataId": 0,
                    "asOfDate": d,
                    "periodType": "3M" if scale == "quarterly" else "12M",
                    "currencyCode": "USD",
                    "reportedValue": {"raw": values[d], "fmt": f"{values[d]}"},
                }
                for d in days
            ]
        result.append(entry)
    return {"timeseries": {"result": result, "error": None}}


class YahooReplaySession(requests.Session):
    """A real ``requests.Session`` (yfinance accepts it) whose transport replays chart JSON fixtures.

    Chart requests with ``period1``/``period2`` get the fixture trimmed to ``[period1, period2)`` like
    Yahoo does; ``fail(symbol, *outcomes)`` scripts the next chart answers (an HTTP status or
    ``"timeout"``), ``fail_always(symbol, outcome)`` every one. ``calls`` records (method, url, timeout).
    """

    def __init__(self, fixtures: Path = FIXTURES / "yahoo") -> None:
        super().__init__()
        self.fixtures = fixtures
        self.calls: list[tuple[str, str, Any]] = []
        self._next: dict[str, deque[int | str]] = {}
        self._always: dict[str, int | str] = {}
        #: symbol -> timeseries store overriding the fixture file (tests of malformed data)
        self.statements: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        adapter = _YahooReplayAdapter(self)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def fail(self, symbol: str, *outcomes: int | str, kind: str = "chart") -> None:
        """Script the next answers of ``kind`` (chart, fundamentals, earnings) for ``symbol``."""
        self._next.setdefault(f"{kind}:{symbol}", deque()).extend(outcomes)

    def fail_always(self, symbol: str, outcome: int | str, kind: str = "chart") -> None:
        self._always[f"{kind}:{symbol}"] = outcome

    def _next_outcome(self, symbol: str, kind: str = "chart") -> int | str | None:
        q = self._next.get(f"{kind}:{symbol}")
        if q:
            return q.popleft()
        return self._always.get(f"{kind}:{symbol}")

    def fundamentals_calls(self, symbol: str) -> list[str]:
        """URLs of the timeseries and earnings-calendar requests for ``symbol``."""
        return [u for _, u, _ in self.calls if f"symbol={symbol}" in u and ("timeseries" in u or "calendar" in u)]

    def timeseries(self, symbol: str, types: Sequence[str]) -> dict[str, Any]:
        """The timeseries answer from ``fundamentals/<SYMBOL>.json`` (or ``self.statements[symbol]``)."""
        store = self.statements.get(symbol)
        path = self.fixtures / "fundamentals" / f"{symbol}.json"
        if store is None and path.exists():
            store = json.loads(path.read_text())
        return timeseries_body(symbol, store or {}, types)

    def earnings_page(self, symbol: str) -> str:
        """``earnings/<SYMBOL>.html``, or a calendar page without a table (Yahoo's answer for no events)."""
        path = self.fixtures / "earnings" / f"{symbol}.html"
        return path.read_text() if path.exists() else "<html><body><p>No results</p></body></html>"

    def chart_calls(self, symbol: str) -> list[str]:
        return [u for _, u, _ in self.calls if f"/v8/finance/chart/{symbol}?" in u]

    def chart(self, symbol: str, params: dict[str, str]) -> dict[str, Any] | None:
        path = self.fixtures / f"{symbol}.json"
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        if "period1" not in params:
            return doc
        lo, hi = int(params["period1"]), int(params.get("period2", 2**62))
        res = doc["chart"]["result"][0]
        keep = [i for i, t in enumerate(res["timestamp"]) if lo <= t < hi]
        res["timestamp"] = [res["timestamp"][i] for i in keep]
        for block in res["indicators"]["quote"] + res["indicators"].get("adjclose", []):
            for k, v in block.items():
                block[k] = [v[i] for i in keep]
        for kind in ("dividends", "splits"):
            events = res.get("events", {}).get(kind, {})
            res.get("events", {})[kind] = {k: e for k, e in events.items() if lo <= e["date"] < hi}
        return doc


# --------------------------------------------------------------------------- in-memory fakes
class FakeClock:
    """A monotonic clock in seconds whose ``sleep`` advances it and records the delay."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


Behaviour = str  # "ok" | "no_rows" | "error" | "fatal" | "rate_limited" | "timeout"


class ScriptedProvider:
    """An in-memory bars provider; ``behaviour[symbol]`` decides each call's fate (default "ok").

    A call raises when any of its symbols is scripted to fail ("rate_limited", "timeout", "error" are
    retryable; "fatal" is not); "no_rows" symbols are silently absent. ``fail_calls`` makes the first
    n calls fail with "rate_limited" regardless. ``latency_s`` advances an injected clock per call.
    """

    def __init__(
        self,
        name: str,
        bars: pl.DataFrame,
        behaviour: dict[str, Behaviour] | None = None,
        *,
        fail_calls: int = 0,
        clock: FakeClock | None = None,
        latency_s: float = 0.0,
        capabilities: Iterable[str] = ("bars",),
    ) -> None:
        self.name = name
        self.bars = bars
        self.behaviour = dict(behaviour or {})
        self.fail_calls = fail_calls
        self.clock = clock
        self.latency_s = latency_s
        self._caps = frozenset(capabilities)
        self.calls: list[tuple[str, ...]] = []
        self.is_available = True

    def capabilities(self) -> frozenset[str]:
        return self._caps

    def available(self) -> tuple[bool, str]:
        return (True, "") if self.is_available else (False, f"{self.name.upper()}_KEY is not set")

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        self.calls.append(req.symbols)
        if self.clock is not None:
            self.clock.advance(self.latency_s)
        if len(self.calls) <= self.fail_calls:
            raise RateLimitedError(self.name, req.symbols, "scripted 429", start=req.start, end=req.end)
        kw: dict[str, Any] = {"start": req.start, "end": req.end}
        for s in req.symbols:
            b = self.behaviour.get(s, "ok")
            if b == "rate_limited":
                raise RateLimitedError(self.name, req.symbols, f"scripted 429 for {s}", **kw)
            if b == "timeout":
                raise ProviderTimeoutError(self.name, req.symbols, f"scripted timeout for {s}", **kw)
            if b in ("error", "fatal"):
                raise ProviderError(self.name, req.symbols, f"scripted {b} for {s}", retryable=b == "error", **kw)
        keep = [s for s in req.symbols if self.behaviour.get(s, "ok") == "ok"]
        raw = self.bars.filter(pl.col("symbol").is_in(keep) & pl.col("date").is_between(req.start, req.end))
        return ProviderResult(self.name, raw, [])

    def fetch_corporate_actions(self, req: BarsRequest) -> pl.DataFrame:
        raise ProviderError(self.name, req.symbols, "no corporate actions here")

    def fetch_macro(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        raise ProviderError(self.name, series, "no macro here")
