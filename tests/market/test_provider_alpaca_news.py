"""Alpaca headlines against a local fake of Alpaca's news API (real alpaca-py ``NewsClient`` code path)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.market.providers.alpaca import AlpacaProvider
from mqf_pipeline.market.providers.alpaca_rows import headline_session, session_closes
from mqf_pipeline.market.providers.base import (
    HEADLINES_SCHEMA,
    BarsRequest,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailable,
    RateLimitedError,
)
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.market.router_types import RetrySettings, RouterSettings, TokenBucketSettings
from tests.market.fakes import NEW_YORK, FakeAlpacaNews, FakeResponse, alpaca_news_item

pytestmark = pytest.mark.network_local

KEY, SECRET = "PKNEWS4D2E8A1F", "sk-9a7c-news-never-log-this-secret"
SYMBOLS = ("AAPL", "MSFT")
START, END = dt.date(2024, 1, 8), dt.date(2024, 1, 12)  # Mon..Fri; Mon 2024-01-15 is a holiday (MLK)
RATE_429 = FakeResponse(429, {"code": 42910000, "message": "too many requests"})
PATH = FakeAlpacaNews.PATH


def _ny(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, minute, second, tzinfo=NEW_YORK)


# (id, headline, published in New York, symbols, session it must be dated to or None if never served)
NEWS: list[tuple[int, str, dt.datetime, tuple[str, ...], dt.date | None]] = [
    (1, "Fri before the close, before the window", _ny(5, 15), ("AAPL",), None),
    (2, "Fri exactly at the close", _ny(5, 16), ("AAPL",), dt.date(2024, 1, 8)),
    (3, "Saturday item", _ny(6, 11), ("AAPL",), dt.date(2024, 1, 8)),
    (4, "Monday morning", _ny(8, 10), ("AAPL",), dt.date(2024, 1, 8)),
    (5, "Monday after the close", _ny(8, 17, 30), ("MSFT",), dt.date(2024, 1, 9)),
    (6, "Tuesday: two requested symbols and one other", _ny(9, 12), ("AAPL", "MSFT", "NVDA"), dt.date(2024, 1, 9)),
    (7, "Wednesday one second before the close", _ny(10, 15, 59, 59), ("MSFT",), dt.date(2024, 1, 10)),
    (8, "Wednesday exactly at the close", _ny(10, 16), ("AAPL",), dt.date(2024, 1, 11)),
    (9, "Thursday, unrequested symbol only", _ny(11, 10), ("TSLA",), None),
    (10, "Friday morning", _ny(12, 9), ("MSFT",), dt.date(2024, 1, 12)),
    (11, "Friday after the close", _ny(12, 17), ("AAPL",), dt.date(2024, 1, 16)),
    (12, "MLK weekend Saturday", _ny(13, 11), ("AAPL",), dt.date(2024, 1, 16)),
    (13, "MLK Day (market closed)", _ny(15, 10), ("MSFT",), dt.date(2024, 1, 16)),
]
ITEMS = [alpaca_news_item(i, h, t, s) for i, h, t, s, _ in NEWS]
PUBLISHED = {h: t for _, h, t, _, _ in NEWS}


def _expected(start: dt.date = START, end: dt.date = END) -> pl.DataFrame:
    rows = sorted(
        (day, sym, t, h)
        for _, h, t, syms, day in NEWS
        if day is not None and start <= day <= end
        for sym in syms
        if sym in SYMBOLS
    )
    data = [{"date": d, "symbol": s, "headline": h, "provider": "alpaca"} for d, s, _, h in rows]
    return pl.DataFrame(data, schema=HEADLINES_SCHEMA)


@pytest.fixture(autouse=True)
def alpaca_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)


@pytest.fixture
def server() -> Iterator[FakeAlpacaNews]:
    with FakeAlpacaNews(ITEMS, page_size=4) as srv:
        yield srv  # type: ignore[misc]


def _provider(srv: FakeAlpacaNews, **kw: Any) -> AlpacaProvider:
    opts: dict[str, Any] = {"retry_attempts": 2, "retry_wait_s": 0.0, "timeout_s": 5.0, **kw}
    return AlpacaProvider(url_override=srv.url, **opts)


def _settings(**kw: Any) -> RouterSettings:
    base: dict[str, Any] = {
        "priority": ("alpaca",),
        "retries": RetrySettings(max_attempts=2, base_delay_s=0.25, jitter=0.0),
        "rate_limits": {"alpaca": TokenBucketSettings(rate_per_s=1000, capacity=1000)},
    }
    return RouterSettings(**{**base, **kw})


def test_two_pages_with_captured_path_and_params(server: FakeAlpacaNews) -> None:
    provider = _provider(server)
    assert "headlines" in provider.capabilities()
    got = provider.fetch_headlines(BarsRequest(SYMBOLS, START, END))
    assert got.schema == pl.Schema(HEADLINES_SCHEMA)
    assert got.equals(_expected())

    reqs = server.requests_to(PATH)
    assert len(server.requests) == len(reqs) == 2  # 8 matching items, pages of 4
    first, second = reqs
    assert first.method == "GET"
    assert first.param("symbols") == "AAPL,MSFT"
    assert first.param("start") == "2024-01-05T21:00:00+00:00"  # close of the session before START
    assert first.param("end") == "2024-01-12T21:00:00+00:00"  # close of END
    assert first.param("include_content") == "False"  # Python bool as alpaca-py sends it
    assert first.param("limit") == "50" and first.param("page_token") is None
    assert first.param("sort") is None
    assert first.headers["APCA-API-KEY-ID"] == KEY and first.headers["APCA-API-SECRET-KEY"] == SECRET
    assert second.param("page_token") is not None  # followed next_page_token
    assert {k: v for k, v in second.query.items() if k != "page_token"} == {
        k: v for k, v in first.query.items() if k != "page_token"
    }
    logs = provider.news_requests
    assert [(log.endpoint, log.status, log.attempts, log.n_rows) for log in logs] == [
        ("/v1beta1/news", "ok", 1, 4),
        ("/v1beta1/news", "ok", 1, 4),
    ]


def test_item_mentioning_two_requested_symbols_gives_one_row_each(server: FakeAlpacaNews) -> None:
    got = _provider(server).fetch_headlines(BarsRequest(SYMBOLS, START, END))
    two = got.filter(pl.col("headline") == "Tuesday: two requested symbols and one other")
    assert two.select("date", "symbol").rows() == [(dt.date(2024, 1, 9), "AAPL"), (dt.date(2024, 1, 9), "MSFT")]
    assert "NVDA" not in got["symbol"].to_list() and "TSLA" not in got["symbol"].to_list()
    only_msft = _provider(server).fetch_headlines(BarsRequest(("MSFT",), START, END))
    assert only_msft.filter(pl.col("headline").str.starts_with("Tuesday"))["symbol"].to_list() == ["MSFT"]


def test_session_dating_never_looks_ahead(server: FakeAlpacaNews) -> None:
    got = _provider(server).fetch_headlines(BarsRequest(SYMBOLS, START, END))
    dated = dict(zip(got["headline"], got["date"], strict=False))
    assert dated["Monday after the close"] == dt.date(2024, 1, 9)
    assert dated["Saturday item"] == dt.date(2024, 1, 8)  # weekend -> Monday
    assert dated["Fri exactly at the close"] == dt.date(2024, 1, 8)
    assert dated["Wednesday one second before the close"] == dt.date(2024, 1, 10)
    assert dated["Wednesday exactly at the close"] == dt.date(2024, 1, 11)
    closes = dict(session_closes(dt.date(2024, 1, 2), END))
    for headline, day in dated.items():
        published = PUBLISHED[headline]
        assert closes[day] > published  # known before that session's close
        assert closes[calendar.previous_session(day)] <= published  # and not dated later than needed

    holiday = _provider(server).fetch_headlines(BarsRequest(SYMBOLS, dt.date(2024, 1, 15), dt.date(2024, 1, 16)))
    assert holiday.equals(_expected(dt.date(2024, 1, 16), dt.date(2024, 1, 16)))
    assert set(holiday["headline"]) == {"Friday after the close", "MLK weekend Saturday", "MLK Day (market closed)"}
    assert server.requests[-1].param("start") == "2024-01-12T21:00:00+00:00"


def test_headline_session_rule_with_early_close_and_daylight_saving() -> None:
    thanksgiving = session_closes(dt.date(2024, 11, 28), dt.date(2024, 12, 2))
    assert [d for d, _ in thanksgiving] == [dt.date(2024, 11, 27), dt.date(2024, 11, 29), dt.date(2024, 12, 2)]
    utc = dt.UTC
    assert headline_session(dt.datetime(2024, 11, 28, 15, tzinfo=utc), thanksgiving) == dt.date(2024, 11, 29)
    early = dt.datetime(2024, 11, 29, 13, tzinfo=NEW_YORK)  # the 13:00 early close
    assert headline_session(early - dt.timedelta(seconds=1), thanksgiving) == dt.date(2024, 11, 29)
    assert headline_session(early, thanksgiving) == dt.date(2024, 12, 2)
    assert headline_session(dt.datetime(2024, 11, 29, 14, 30, tzinfo=NEW_YORK), thanksgiving) == dt.date(2024, 12, 2)
    assert headline_session(dt.datetime(2024, 11, 27, 15, tzinfo=NEW_YORK), thanksgiving) is None  # before window
    assert headline_session(dt.datetime(2024, 12, 2, 16, tzinfo=NEW_YORK), thanksgiving) is None  # after window

    summer = session_closes(dt.date(2024, 7, 1), dt.date(2024, 7, 1))  # EDT: close 20:00 UTC
    assert headline_session(dt.datetime(2024, 7, 1, 19, 59, tzinfo=utc), summer) == dt.date(2024, 7, 1)
    assert headline_session(dt.datetime(2024, 7, 1, 19, 59), summer) == dt.date(2024, 7, 1)  # naive = UTC
    assert headline_session(dt.datetime(2024, 7, 1, 20, 0, tzinfo=utc), summer) is None
    assert session_closes(dt.date(2024, 1, 13), dt.date(2024, 1, 15)) == []  # weekend + holiday


def test_range_without_sessions_sends_no_request(server: FakeAlpacaNews) -> None:
    got = _provider(server).fetch_headlines(BarsRequest(SYMBOLS, dt.date(2024, 1, 13), dt.date(2024, 1, 15)))
    assert got.is_empty() and got.schema == pl.Schema(HEADLINES_SCHEMA)
    assert server.requests == []


def test_news_max_items_caps_the_call(server: FakeAlpacaNews, caplog: pytest.LogCaptureFixture) -> None:
    got = _provider(server, news_max_items=3).fetch_headlines(BarsRequest(SYMBOLS, START, END))
    assert [r.param("limit") for r in server.requests] == ["3"]
    assert got.height == 3  # the three most recent items (Alpaca sorts newest first)
    assert "news_max_items=3" in caplog.text


def test_429_then_success_is_retried(server: FakeAlpacaNews) -> None:
    server.script(PATH, RATE_429, RATE_429)
    provider = _provider(server, retry_attempts=3)
    got = provider.fetch_headlines(BarsRequest(SYMBOLS, START, END))
    assert got.equals(_expected())
    assert len(server.requests) == 4  # two 429s, then both pages
    first = provider.news_requests[0]
    assert (first.status, first.attempts, first.http_status) == ("ok", 3, 200)


def test_429_storm_raises_rate_limited(server: FakeAlpacaNews) -> None:
    server.script(PATH, *[RATE_429] * 3)
    with pytest.raises(RateLimitedError) as info:
        _provider(server, retry_attempts=2).fetch_headlines(BarsRequest(SYMBOLS, START, END))
    err = info.value
    assert err.retryable and err.http_status == 429 and err.attempts == 3
    assert len(server.requests) == 3  # alpaca-py's own retries, then it gave up
    assert "news" in str(err) and "AAPL" in str(err) and "2024-01-08" in str(err)
    assert [(log.status, log.attempts, log.endpoint) for log in err.requests] == [("rate_limited", 3, PATH)]


def test_timeout_raises_provider_timeout_and_router_reports_failures(server: FakeAlpacaNews) -> None:
    server.script(PATH, *[FakeResponse(200, {"news": []}, delay_s=3.0)] * 3)
    with pytest.raises(ProviderTimeoutError) as info:
        _provider(server, timeout_s=0.2).fetch_headlines(BarsRequest(SYMBOLS, START, END))
    assert info.value.retryable and "0.2 s" in str(info.value)
    assert [log.status for log in info.value.requests] == ["timeout"]

    provider = _provider(server)
    sleeps: list[float] = []
    routed = DataRouter([provider], _settings(timeout_s=0.2), sleep=sleeps.append).get_headlines(
        BarsRequest(SYMBOLS, START, END)
    )
    assert provider.timeout_s == 0.2  # the router's per-request timeout is applied
    assert sleeps == [0.25]  # one router retry
    assert routed.data.is_empty() and sorted(routed.failures["symbol"]) == sorted(SYMBOLS)
    assert all("no answer within 0.2 s" in e for e in routed.failures["error"])


def test_server_error_is_retryable_and_client_error_is_not(server: FakeAlpacaNews) -> None:
    server.script(PATH, FakeResponse(500, {"message": "boom"}), FakeResponse(422, {"message": "invalid symbols"}))
    with pytest.raises(ProviderError) as info:
        _provider(server).fetch_headlines(BarsRequest(SYMBOLS, START, END))
    assert info.value.retryable and info.value.http_status == 500
    with pytest.raises(ProviderError) as info:
        _provider(server).fetch_headlines(BarsRequest(SYMBOLS, START, END))
    assert not info.value.retryable and "invalid symbols" in str(info.value)


@pytest.mark.parametrize("missing", ["APCA_API_KEY_ID", "APCA_API_SECRET_KEY"])
def test_missing_keys_make_headlines_unavailable(
    monkeypatch: pytest.MonkeyPatch, server: FakeAlpacaNews, caplog: pytest.LogCaptureFixture, missing: str
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv(missing)
    provider = _provider(server)
    assert provider.available() == (False, f"{missing} is not set")
    with pytest.raises(ProviderUnavailable, match=missing) as info:
        provider.fetch_headlines(BarsRequest(SYMBOLS, START, END))
    router = DataRouter([provider], _settings())
    assert router.candidates("headlines") == ([], {"alpaca": f"{missing} is not set"})
    routed = router.get_headlines(BarsRequest(SYMBOLS, START, END))
    assert routed.failures.height == len(SYMBOLS)
    assert all(missing in e for e in routed.failures["error"])
    assert server.requests == []
    blob = "\n".join([str(info.value), repr(provider), str(routed.failures.to_dicts()), caplog.text])
    assert KEY not in blob and SECRET not in blob


def test_keys_never_reach_logs_or_messages(server: FakeAlpacaNews, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(
        PATH,
        *[RATE_429] * 6,
        FakeResponse(403, {"message": f"forbidden for key {KEY} / {SECRET}"}),  # even if a server echoed them
        FakeResponse(200, {"news": []}, delay_s=3.0),
    )
    provider = _provider(server)
    router = DataRouter([provider], _settings(timeout_s=0.2), sleep=lambda s: None)
    texts = [repr(provider), repr(router.settings)]
    for _ in range(3):
        routed = router.get_headlines(BarsRequest(SYMBOLS, START, END))
        texts += [str(routed.failures.to_dicts()), str(routed.requests), str(provider.news_requests)]
    texts.append(caplog.text)
    blob = "\n".join(texts)
    assert "rate_limited" in blob and "HTTP 403" in blob and "no answer within" in blob
    assert KEY not in blob and SECRET not in blob


def test_router_get_headlines_returns_the_rows(server: FakeAlpacaNews) -> None:
    router = DataRouter([_provider(server)], _settings())
    routed = router.get_headlines(BarsRequest(SYMBOLS, START, END))
    assert routed.failures.is_empty()
    assert routed.data.equals(_expected())
    assert [(log.provider, log.status, log.n_rows) for log in routed.requests] == [("alpaca", "ok", 9)]
    again = router.get_headlines(BarsRequest(SYMBOLS, START, END))
    assert again.cache_hit and again.data.equals(routed.data)
    assert len(server.requests) == 2  # the second call came from the cache
