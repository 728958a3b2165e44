"""Alpaca provider against a local fake of Alpaca's market-data API (real alpaca-py code path)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.market.providers.alpaca import AlpacaProvider
from mqf_pipeline.market.providers.base import (
    BarsRequest,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailable,
    RateLimitedError,
)
from mqf_pipeline.market.providers.files import FilesProvider
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.market.router_types import RetrySettings, RouterSettings, TokenBucketSettings
from tests.market.fakes import (
    FakeAlpacaMarketData,
    FakeResponse,
    alpaca_bars,
    synthetic_bars,
    write_bar_files,
)

pytestmark = pytest.mark.network_local

KEY, SECRET = "PKTEST7F3A9C2B", "sk-5e1d-never-log-this-secret"
SYMBOLS = ("AAPL", "MSFT", "SPY")
START, END = dt.date(2024, 1, 3), dt.date(2024, 1, 31)
SESSIONS = calendar.sessions(dt.date(2023, 12, 20), dt.date(2024, 2, 9))
BARS = synthetic_bars(SYMBOLS, SESSIONS)
RATE_429 = FakeResponse(429, {"code": 42910000, "message": "too many requests"})


@pytest.fixture(autouse=True)
def alpaca_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)


@pytest.fixture
def server() -> Iterator[FakeAlpacaMarketData]:
    with FakeAlpacaMarketData(alpaca_bars(BARS), alpaca_bars(BARS, adjusted=True), page_size=7) as srv:
        yield srv  # type: ignore[misc]


def _provider(srv: FakeAlpacaMarketData, **kw: object) -> AlpacaProvider:
    opts: dict[str, object] = {"retry_attempts": 2, "retry_wait_s": 0.0, "timeout_s": 5.0, **kw}
    return AlpacaProvider(url_override=srv.url, **opts)  # type: ignore[arg-type]


def _expected(symbols: tuple[str, ...] = SYMBOLS) -> pl.DataFrame:
    return BARS.filter(pl.col("symbol").is_in(list(symbols)) & pl.col("date").is_between(START, END))


def _settings(**kw: object) -> RouterSettings:
    base: dict[str, object] = {
        "priority": ("alpaca", "files"),
        "retries": RetrySettings(max_attempts=2, base_delay_s=0.25, jitter=0.0),
        "rate_limits": {"alpaca": TokenBucketSettings(rate_per_s=1000, capacity=1000)},
    }
    return RouterSettings(**{**base, **kw})  # type: ignore[arg-type]


def _assert_no_bar_lost(canonical: pl.DataFrame) -> None:
    """Every requested (symbol, session) is present once, with the source's values."""
    want = _expected().sort("symbol", "date")
    got = canonical.select(want.columns).sort("symbol", "date")
    assert got.height == len(SYMBOLS) * len(calendar.sessions(START, END))
    assert got.equals(want)


def test_multi_symbol_with_pagination_and_captured_params(server: FakeAlpacaMarketData) -> None:
    result = _provider(server).fetch_bars(BarsRequest(SYMBOLS, START, END))
    got = result.raw.sort("symbol", "date")
    want = _expected().sort("symbol", "date")
    assert got.select("date", "symbol").equals(want.select("date", "symbol"))
    for col in ("open", "high", "low", "close", "adjusted_close"):
        assert got[col].to_list() == pytest.approx(want[col].to_list(), rel=1e-12), col
    assert got["volume"].to_list() == want["volume"].to_list()

    reqs = server.requests_to(FakeAlpacaMarketData.PATH)
    n_bars = want.height
    pages = -(-n_bars // 7)
    assert len(reqs) == 2 * pages  # raw pages, then adjusted pages
    first = reqs[0]
    assert first.method == "GET"
    assert first.param("symbols") == "AAPL,MSFT,SPY"
    assert first.param("timeframe") == "1Day"
    assert first.param("adjustment") == "raw"
    assert first.param("start") == "2024-01-03T05:00:00+00:00"  # midnight New York
    assert first.param("end") == "2024-02-01T04:59:59+00:00"  # end of the last day, New York
    assert first.param("limit") == "10000" and first.param("page_token") is None
    assert reqs[1].param("page_token") is not None  # followed next_page_token
    assert [r.param("adjustment") for r in reqs] == ["raw"] * pages + ["all"] * pages
    assert first.headers["APCA-API-KEY-ID"] == KEY
    assert len(result.requests) == 2 * pages
    assert sum(log.n_rows for log in result.requests) == 2 * n_bars
    assert all(log.status == "ok" and log.attempts == 1 for log in result.requests)


def test_two_429_then_success_records_the_retries(server: FakeAlpacaMarketData) -> None:
    server.script(FakeAlpacaMarketData.PATH, RATE_429, RATE_429)
    router = DataRouter([_provider(server, retry_attempts=3)], _settings())
    routed = router.get_bars(BarsRequest(SYMBOLS, START, END))
    assert routed.failures.is_empty()
    first = routed.requests[0]
    assert (first.status, first.attempts, first.http_status) == ("ok", 3, 200)
    metrics = router.metrics_frame().row(0, named=True)
    assert metrics["retries"] == 2 and metrics["successes"] == 1 and metrics["rate_limited"] == 0
    _assert_no_bar_lost(routed.canonical())


def test_429_storm_raises_rate_limited(server: FakeAlpacaMarketData) -> None:
    server.script(FakeAlpacaMarketData.PATH, *[RATE_429] * 3)
    with pytest.raises(RateLimitedError) as info:
        _provider(server, retry_attempts=2).fetch_bars(BarsRequest(SYMBOLS, START, END))
    err = info.value
    assert err.retryable and err.http_status == 429 and err.attempts == 3
    assert len(server.requests) == 3  # alpaca-py's own retries, then it gave up
    assert "AAPL" in str(err) and "2024-01-03" in str(err)


def test_429_storm_falls_back_to_files_and_no_bar_is_lost(server: FakeAlpacaMarketData, tmp_path: Path) -> None:
    server.script(FakeAlpacaMarketData.PATH, *[RATE_429] * 100)
    write_bar_files(BARS, tmp_path, fmt="csv")
    sleeps: list[float] = []
    router = DataRouter([FilesProvider(tmp_path), _provider(server)], _settings(), sleep=sleeps.append)
    routed = router.get_bars(BarsRequest(SYMBOLS, START, END))
    assert sleeps == [0.25]  # one router retry of alpaca, then fallback
    assert routed.failures.is_empty()
    assert set(routed.raw["provider"].unique()) == {"files"}
    statuses = [log.status for log in routed.requests if log.provider == "alpaca"]
    assert statuses == ["rate_limited", "rate_limited"]
    assert len(server.requests) == 6  # 2 router attempts x (1 + 2 alpaca-py retries)
    _assert_no_bar_lost(routed.canonical())
    m = {r["provider"]: r for r in router.metrics_frame().iter_rows(named=True)}
    assert m["alpaca"]["rate_limited"] == 2 and m["files"]["successes"] == 1


def test_timeout_falls_back_and_no_bar_is_lost(server: FakeAlpacaMarketData, tmp_path: Path) -> None:
    server.script(FakeAlpacaMarketData.PATH, *[FakeResponse(200, {"bars": {}}, delay_s=3.0)] * 3)
    provider = _provider(server)
    with pytest.raises(ProviderTimeoutError) as info:
        AlpacaProvider(url_override=server.url, timeout_s=0.2, retry_wait_s=0).fetch_bars(
            BarsRequest(SYMBOLS, START, END)
        )
    assert info.value.retryable and "0.2 s" in str(info.value)

    write_bar_files(BARS, tmp_path, fmt="parquet", combined=True)
    router = DataRouter([provider, FilesProvider(tmp_path)], _settings(timeout_s=0.2), sleep=lambda s: None)
    assert provider.timeout_s == 0.2  # the router's per-request timeout is applied
    routed = router.get_bars(BarsRequest(SYMBOLS, START, END))
    assert [log.status for log in routed.requests if log.provider == "alpaca"] == ["timeout", "timeout"]
    assert set(routed.raw["provider"].unique()) == {"files"}
    assert routed.failures.is_empty()
    _assert_no_bar_lost(routed.canonical())


def test_server_error_is_retryable_and_client_error_is_not(server: FakeAlpacaMarketData) -> None:
    server.script(FakeAlpacaMarketData.PATH, FakeResponse(500, {"message": "boom"}))
    with pytest.raises(ProviderError) as info:
        _provider(server).fetch_bars(BarsRequest(SYMBOLS, START, END))
    assert info.value.retryable and info.value.http_status == 500
    server.script(FakeAlpacaMarketData.PATH, FakeResponse(422, {"message": "invalid symbol"}))
    with pytest.raises(ProviderError) as info:
        _provider(server).fetch_bars(BarsRequest(SYMBOLS, START, END))
    assert not info.value.retryable and "invalid symbol" in str(info.value)


@pytest.mark.parametrize("missing", ["APCA_API_KEY_ID", "APCA_API_SECRET_KEY"])
def test_missing_keys_make_the_provider_unavailable(
    monkeypatch: pytest.MonkeyPatch, server: FakeAlpacaMarketData, missing: str
) -> None:
    monkeypatch.delenv(missing)
    provider = _provider(server)
    ok, why = provider.available()
    assert not ok and why == f"{missing} is not set"
    with pytest.raises(ProviderUnavailable, match=missing):
        provider.fetch_bars(BarsRequest(SYMBOLS, START, END))
    routed = DataRouter([provider], _settings()).get_bars(BarsRequest(SYMBOLS, START, END))
    assert routed.failures.height == len(SYMBOLS)
    assert all(missing in e for e in routed.failures["error"])
    assert server.requests == []


def test_keys_never_reach_logs_or_messages(
    server: FakeAlpacaMarketData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(
        FakeAlpacaMarketData.PATH,
        *[RATE_429] * 6,
        FakeResponse(403, {"message": f"forbidden for key {KEY}"}),  # even if a server echoed it
        FakeResponse(200, {"bars": {}}, delay_s=3.0),
    )
    provider = _provider(server)
    router = DataRouter([provider], _settings(timeout_s=0.2), sleep=lambda s: None)
    texts = [repr(provider), repr(router.settings)]
    for _ in range(3):
        routed = router.get_bars(BarsRequest(SYMBOLS, START, END))
        texts += [str(routed.failures.to_dicts()), str(routed.requests)]
        router.clear_cache()
    try:
        provider.fetch_bars(BarsRequest(SYMBOLS, START, END))
    except ProviderError as e:
        texts.append(str(e))
    texts.append(caplog.text)
    blob = "\n".join(texts)
    assert "rate_limited" in blob and "HTTP 403" in blob and "timeout" in blob
    assert KEY not in blob and SECRET not in blob
