"""Yahoo provider through yfinance with a session that replays chart JSON (tests/fixtures/yahoo)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest
import yfinance as yf

from mqf_pipeline.market.bars import canonicalize
from mqf_pipeline.market.providers.base import BarsRequest, ProviderTimeoutError, RateLimitedError
from mqf_pipeline.market.providers.files import FilesProvider
from mqf_pipeline.market.providers.yahoo import YahooProvider
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.market.router_types import RetrySettings, RouterSettings
from tests.market.fakes import FIXTURES, YahooReplaySession, write_bar_files

START, END = dt.date(2020, 8, 5), dt.date(2020, 9, 2)
SPLIT_DAY = dt.date(2020, 8, 31)


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep yfinance's timezone/cookie caches out of the user's home."""
    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))
    yield


def _fixture(symbol: str) -> pl.DataFrame:
    """The recorded chart as a frame: date (New York), Yahoo's split-adjusted OHLCV, adjclose."""
    res = json.loads((FIXTURES / "yahoo" / f"{symbol}.json").read_text())["chart"]["result"][0]
    q = res["indicators"]["quote"][0]
    days = [
        dt.datetime.fromtimestamp(t, dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=-4))).date()
        for t in res["timestamp"]
    ]
    return pl.DataFrame(
        {
            "date": days,
            **{k: q[k] for k in ("open", "high", "low", "close")},
            "volume": q["volume"],
            "adjclose": res["indicators"]["adjclose"][0]["adjclose"],
        }
    ).filter(pl.col("date").is_between(START, END))


def test_bars_are_unadjusted_for_splits_and_keep_yahoos_adjusted_close() -> None:
    session = YahooReplaySession()
    result = YahooProvider(session=session).fetch_bars(BarsRequest(("AAPL", "MSFT"), START, END))
    canon = canonicalize(result.raw, "yahoo")
    assert not canon["cast_failed"].any()
    aapl = canon.filter(pl.col("symbol") == "AAPL").sort("date")
    rec = _fixture("AAPL")
    assert aapl["date"].to_list() == rec["date"].to_list() and aapl.height == 21
    factor = [4.0 if d < SPLIT_DAY else 1.0 for d in rec["date"]]
    for col in ("open", "high", "low", "close"):
        assert aapl[col].to_list() == pytest.approx([v * f for v, f in zip(rec[col], factor, strict=True)])
    assert aapl["volume"].to_list() == [v // int(f) for v, f in zip(rec["volume"], factor, strict=True)]
    assert aapl["adjusted_close"].to_list() == pytest.approx(rec["adjclose"].to_list())
    # around the split the raw close jumps by ~4x while the adjusted close is continuous
    before, after = aapl.filter(pl.col("date").is_in([dt.date(2020, 8, 28), SPLIT_DAY])).rows(named=True)
    assert before["close"] / after["close"] > 3.5
    assert 0.9 < before["adjusted_close"] / after["adjusted_close"] < 1.1

    msft = canon.filter(pl.col("symbol") == "MSFT").sort("date")
    assert msft["close"].to_list() == pytest.approx(_fixture("MSFT")["close"].to_list())
    assert [log.n_rows for log in result.requests] == [21, 21]

    # the real yfinance path: one daily chart request per symbol from START (New York) to now
    data_calls = [u for u in session.chart_calls("AAPL") if "period1" in u]
    assert len(data_calls) == 1
    q = {k: v[0] for k, v in parse_qs(urlsplit(data_calls[0]).query).items()}
    assert q["interval"] == "1d" and "div" in q["events"] and "splits" in q["events"]
    assert int(q["period1"]) == int(dt.datetime(2020, 8, 5, 4, 0, tzinfo=dt.UTC).timestamp())
    assert int(q["period2"]) > int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())


def test_splits_and_dividends() -> None:
    session = YahooReplaySession()
    provider = YahooProvider(session=session)
    req = BarsRequest(("AAPL", "MSFT"), START, END)
    actions = provider.fetch_corporate_actions(req).sort("symbol", "date")
    assert actions.rows() == [
        (dt.date(2020, 8, 7), "AAPL", "DIVIDEND", pytest.approx(0.82), "yahoo"),  # 0.205 split-adjusted x 4
        (SPLIT_DAY, "AAPL", "SPLIT", 4.0, "yahoo"),
        (dt.date(2020, 8, 19), "MSFT", "DIVIDEND", pytest.approx(0.51), "yahoo"),
    ]
    outside = provider.fetch_corporate_actions(BarsRequest(("AAPL",), dt.date(2020, 8, 10), dt.date(2020, 8, 28)))
    assert outside.is_empty()
    n_calls = len([u for u in session.chart_calls("AAPL") if "period1" in u])
    provider.fetch_bars(req)  # memoised: bars after actions of the same request cost no new request
    assert len([u for u in session.chart_calls("AAPL") if "period1" in u]) == n_calls == 2


def test_429_maps_to_rate_limited_and_keeps_partial_rows() -> None:
    session = YahooReplaySession()
    session.fail_always("AAPL", 429)
    with pytest.raises(RateLimitedError) as info:
        YahooProvider(session=session).fetch_bars(BarsRequest(("MSFT", "AAPL"), START, END))
    err = info.value
    assert err.retryable and err.http_status == 429 and err.symbols == ("AAPL",)
    assert err.partial is not None and set(err.partial.raw["symbol"]) == {"MSFT"}
    assert [log.status for log in err.requests] == ["ok", "rate_limited"]


def test_timeout_maps_to_provider_timeout() -> None:
    session = YahooReplaySession()
    session.fail_always("MSFT", "timeout")
    with pytest.raises(ProviderTimeoutError, match="MSFT"):
        YahooProvider(session=session, timeout_s=0.5).fetch_bars(BarsRequest(("MSFT",), START, END))
    assert session.chart_calls("MSFT"), "the replay session was not used"


def test_unknown_symbol_gives_no_rows() -> None:
    result = YahooProvider(session=YahooReplaySession()).fetch_bars(BarsRequest(("ZZZZ",), START, END))
    assert result.raw.is_empty() and result.requests[0].n_rows == 0


def test_router_falls_back_from_rate_limited_yahoo(tmp_path: Path) -> None:
    session = YahooReplaySession()
    session.fail_always("MSFT", 429)
    files = _fixture("MSFT").with_columns(pl.lit("MSFT").alias("symbol"), pl.col("adjclose").alias("adjusted_close"))
    write_bar_files(files.drop("adjclose"), tmp_path)
    sleeps: list[float] = []
    settings = RouterSettings(priority=("yahoo", "files"), retries=RetrySettings(max_attempts=3, jitter=0.0))
    router = DataRouter([FilesProvider(tmp_path), YahooProvider(session=session)], settings, sleep=sleeps.append)
    routed = router.get_bars(BarsRequest(("AAPL", "MSFT"), START, END))
    assert routed.failures.is_empty()
    by = dict(routed.raw.group_by("symbol").agg(pl.col("provider").first()).iter_rows())
    assert by == {"AAPL": "yahoo", "MSFT": "files"}
    assert [s for s in sleeps if s >= 0.5] == [0.5, 1.0]  # two backoffs before giving up on yahoo
    assert routed.canonical().height == 42
