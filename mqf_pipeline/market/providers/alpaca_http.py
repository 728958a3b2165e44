"""HTTP plumbing of the Alpaca market-data provider: the observed session, request logs and error mapping.

See :mod:`mqf_pipeline.market.providers.alpaca`. :class:`_ObservedSession` replaces alpaca-py's
``requests.Session`` (throttle, default timeout, one :class:`_Hit` per HTTP request); :func:`_page_logs`
turns the hits of one call into one :class:`RequestLog` per page; :func:`_map_error` maps an alpaca-py /
requests failure to the provider error types with the keys redacted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import requests

from mqf_pipeline.market.providers.base import (
    BarsRequest,
    HttpTransport,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RequestLog,
)

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
URL_ENV = "APCA_API_DATA_URL"
RETRY_ATTEMPTS_ENV = "APCA_RETRY_MAX_ATTEMPTS"
RETRY_WAIT_ENV = "APCA_RETRY_WAIT_SECONDS"


@dataclass
class _Hit:
    """One HTTP request as seen by the session: page token, status (None if it raised), ms."""

    page_token: str | None
    status: int | None
    latency_ms: float
    rows: int = 0


class _ObservedSession(requests.Session):
    """A ``requests.Session`` that throttles, applies a default timeout and records each request."""

    def __init__(self, owner: HttpTransport) -> None:
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


def _page_logs(
    provider: str,
    hits: list[_Hit],
    req: BarsRequest,
    endpoint: str,
    error: str | None,
    failed_as: str = "error",
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
                provider,
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


def _map_error(
    provider: str,
    timeout_s: float,
    e: Exception,
    req: BarsRequest,
    endpoint: str,
    what: str,
    logs: list[RequestLog],
    hits: list[_Hit],
) -> ProviderError:
    """Map an alpaca-py / requests failure fetching ``what`` to the provider error types (keys redacted)."""
    from alpaca.common.exceptions import APIError

    n = len(hits)
    common = {"start": req.start, "end": req.end, "attempts": max(n, 1)}
    if isinstance(e, APIError):
        code = e.status_code
        text = _redact(str(e)[:300])
        common["requests"] = [*logs, *_page_logs(provider, hits, req, endpoint, text)]
        if code == 429:
            return RateLimitedError(
                provider,
                req.symbols,
                f"HTTP 429 after {n} tries ({what})",
                http_status=429,
                **common,
            )
        if code == 504:
            return ProviderTimeoutError(
                provider,
                req.symbols,
                f"HTTP 504 gateway timeout after {n} tries ({what})",
                http_status=504,
                **common,
            )
        return ProviderError(
            provider,
            req.symbols,
            f"HTTP {code}: {text}",
            http_status=code,
            retryable=code is None or code >= 500,
            **common,
        )
    if isinstance(e, requests.Timeout):
        common["requests"] = [*logs, *_page_logs(provider, hits, req, endpoint, "timeout", "timeout")]
        return ProviderTimeoutError(
            provider,
            req.symbols,
            f"no answer within {timeout_s:g} s ({what}; {type(e).__name__})",
            **common,
        )
    if isinstance(e, requests.RequestException):
        common["requests"] = [*logs, *_page_logs(provider, hits, req, endpoint, type(e).__name__)]
        return ProviderError(provider, req.symbols, f"connection failed: {type(e).__name__}", retryable=True, **common)
    text = _redact(str(e)[:200])  # unparseable or unexpected response body
    common["requests"] = [*logs, *_page_logs(provider, hits, req, endpoint, text)]
    return ProviderError(provider, req.symbols, f"bad response: {text}", retryable=False, **common)
