"""Macro series from FRED through fredapi.

Canonical series and their FRED sources:

============  ========  =====================================================================
series_id     FRED id   units
============  ========  =====================================================================
VIX           VIXCLS    CBOE VIX close, index points (as published)
SHORT_RATE    DTB3      3-month Treasury bill, secondary market; FRED's percent / 100 ->
                        decimal annual rate (5.25 -> 0.0525)
============  ========  =====================================================================

Any other id is passed to FRED unchanged and returned unscaled under its own name.
FRED marks days without an observation with ``"."``; those rows are kept with a null value.

The key comes only from ``FRED_API_KEY`` and never appears in logs or messages. The base URL is
fredapi's ``root_url`` (``https://api.stlouisfed.org/fred``), overridable by ``root_url`` or
``FRED_API_URL`` (tests point it at a local server). fredapi fetches with ``urlopen`` without a
timeout and cannot tell a 429 from other errors, so this module subclasses ``Fred`` and replaces
only its private fetch (``Fred.__fetch_data``): the same URL building and XML parsing, plus a
timeout, the router's throttle, and HTTP 429 -> :class:`RateLimitedError`, timeouts ->
:class:`ProviderTimeoutError`, 5xx -> retryable :class:`ProviderError`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

import polars as pl

from mqf_pipeline.market.providers.base import (
    MACRO_SCHEMA,
    HttpTransport,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailable,
    RateLimitedError,
    RequestLog,
    UnsupportedCapability,
    env_missing,
)

KEY_ENV = "FRED_API_KEY"
URL_ENV = "FRED_API_URL"
ENDPOINT = "series/observations"
#: canonical id -> (FRED id, multiplier to canonical units)
SERIES: dict[str, tuple[str, float]] = {"VIX": ("VIXCLS", 1.0), "SHORT_RATE": ("DTB3", 0.01)}


class _FredHttpError(Exception):
    """A failed FRED HTTP request: status (None if none came back), FRED's message, kind."""

    def __init__(self, status: int | None, message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind  # "rate_limited" | "timeout" | "error"


def _fred_message(body: bytes) -> str:
    """FRED's error message from an XML or JSON error body (else the start of the body)."""
    try:
        return ET.fromstring(body).get("message") or ""
    except ET.ParseError:
        pass
    try:
        return str(json.loads(body).get("error_message", ""))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def _make_fred_class() -> type:
    from fredapi import Fred

    class _TimedFred(Fred):  # type: ignore[misc]
        """fredapi's Fred with a timeout, a throttle and typed HTTP failures."""

        def __init__(self, api_key: str, transport: HttpTransport) -> None:
            super().__init__(api_key=api_key)
            self._transport = transport
            self.calls: list[tuple[int | None, float]] = []

        def _Fred__fetch_data(self, url: str) -> ET.Element:  # noqa: N802 (overrides fredapi's private name)
            full = url + "&api_key=" + urllib.parse.quote_plus(self.api_key)
            self._transport._acquire()
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(full, timeout=self._transport.timeout_s) as resp:
                    body = resp.read()
                    status = resp.status
            except urllib.error.HTTPError as e:
                self.calls.append((e.code, (time.perf_counter() - t0) * 1000.0))
                kind = "rate_limited" if e.code == 429 else "timeout" if e.code == 504 else "error"
                raise _FredHttpError(e.code, _fred_message(e.read()), kind) from None
            except (TimeoutError, urllib.error.URLError) as e:
                self.calls.append((None, (time.perf_counter() - t0) * 1000.0))
                reason = getattr(e, "reason", e)
                kind = "timeout" if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError) else "error"
                raise _FredHttpError(None, type(reason).__name__, kind) from None
            self.calls.append((status, (time.perf_counter() - t0) * 1000.0))
            try:
                return ET.fromstring(body)
            except ET.ParseError:
                raise _FredHttpError(status, "response is not FRED XML", "error") from None

    return _TimedFred


class FredProvider(HttpTransport, UnsupportedCapability):
    """FRED macro series (see module docstring)."""

    def __init__(self, *, root_url: str | None = None, timeout_s: float = 30.0, name: str = "fred") -> None:
        super().__init__(timeout_s)
        self.name = name
        self.root_url = root_url or os.environ.get(URL_ENV) or None
        self._fred: Any = None

    def __repr__(self) -> str:
        return f"FredProvider(name={self.name!r}, root_url={self.root_url or 'default'!r})"

    def capabilities(self) -> frozenset[str]:
        return frozenset({"macro"})

    def available(self) -> tuple[bool, str]:
        if env_missing(KEY_ENV):
            return False, f"{KEY_ENV} is not set"
        return True, ""

    def _client(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> Any:
        ok, why = self.available()
        if not ok:
            raise ProviderUnavailable(self.name, series, why, start=start, end=end)
        if self._fred is None:
            self._fred = _make_fred_class()(os.environ[KEY_ENV].strip(), self)
            if self.root_url:
                self._fred.root_url = self.root_url.rstrip("/")
        return self._fred

    def fetch_macro(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Observations of ``series`` (canonical ids) from ``start`` to ``end`` inclusive."""
        fred = self._client(series, start, end)
        frames: list[pl.DataFrame] = []
        logs: list[RequestLog] = []
        for sid in series:
            fred_id, scale = SERIES.get(sid, (sid, 1.0))
            fred.calls = []
            t0 = time.perf_counter()

            def ok_log(n_rows: int, note: str | None, fred_id: str = fred_id, t0: float = t0) -> RequestLog:
                ms = (time.perf_counter() - t0) * 1000.0
                return RequestLog(
                    self.name, ENDPOINT, (fred_id,), start, end, "ok", 200, len(fred.calls), ms, n_rows, note
                )

            try:
                obs = fred.get_series(fred_id, observation_start=start.isoformat(), observation_end=end.isoformat())
            except _FredHttpError as e:
                ms = (time.perf_counter() - t0) * 1000.0
                what = f"HTTP {e.status}: {e.message}" if e.status else e.message
                logs.append(
                    RequestLog(
                        self.name,
                        ENDPOINT,
                        (fred_id,),
                        start,
                        end,
                        e.kind,  # type: ignore[arg-type]
                        e.status,
                        len(fred.calls),
                        ms,
                        0,
                        what,
                    )
                )
                kw: dict[str, Any] = {"start": start, "end": end, "http_status": e.status, "requests": logs}
                if e.kind == "rate_limited":
                    raise RateLimitedError(self.name, (sid,), f"{fred_id}: {what}", **kw) from None
                if e.kind == "timeout":
                    raise ProviderTimeoutError(
                        self.name, (sid,), f"{fred_id}: no answer within {self.timeout_s:g} s ({what})", **kw
                    ) from None
                retryable = e.status is None or e.status >= 500
                raise ProviderError(self.name, (sid,), f"{fred_id}: {what}", retryable=retryable, **kw) from None
            except ValueError as e:  # fredapi: "No data exists for series id"
                logs.append(ok_log(0, str(e)))
                continue
            values = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) * scale
                for v in obs.to_numpy()
            ]
            dates = [d.date() for d in obs.index]
            frames.append(
                pl.DataFrame(
                    {"date": dates, "series_id": [sid] * len(dates), "value": values},
                    schema={k: v for k, v in MACRO_SCHEMA.items() if k != "provider"},
                )
            )
            logs.append(ok_log(len(dates), None))
        data = (
            pl.concat(frames)
            if frames
            else pl.DataFrame(schema={k: v for k, v in MACRO_SCHEMA.items() if k != "provider"})
        )
        return data.with_columns(pl.lit(self.name, dtype=pl.String).alias("provider")).filter(
            pl.col("date").is_between(start, end)
        )
