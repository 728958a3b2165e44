"""Yahoo fundamentals through yfinance against a replay of Yahoo's timeseries API and earnings calendar
(tests/fixtures/yahoo/fundamentals, tests/fixtures/yahoo/earnings): mapping, point-in-time report dates,
no lookahead, errors, and routing in paper/live mode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import yfinance as yf
from yfinance.data import YfData

from mqf_pipeline import calendar
from mqf_pipeline.config import load_settings
from mqf_pipeline.market.providers.base import (
    FUNDAMENTALS_SCHEMA,
    QUARTER_REPORT_LAG_DAYS,
    YEAR_END_REPORT_LAG_DAYS,
    BarsRequest,
    ProviderError,
    RateLimitedError,
)
from mqf_pipeline.market.providers.files import FilesProvider
from mqf_pipeline.market.providers.yahoo import YahooProvider
from mqf_pipeline.market.providers.yahoo_fundamentals import (
    MalformedFundamentals,
    release_days,
    statement_rows,
    with_report_dates,
)
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.market.router_types import RetrySettings, RouterSettings
from mqf_pipeline.modes import Mode
from mqf_pipeline.stages.providers import build_router
from tests.market.fakes import YahooReplaySession

ALL = BarsRequest(("AAPL", "MSFT"), dt.date(2023, 1, 1), dt.date(2025, 12, 31))
#: AAPL's releases in the fixture are all at 4 PM New York: known at the next session's close.
AAPL_REPORTS = {
    dt.date(2023, 12, 31): dt.date(2024, 2, 2),  # released Thu 2024-02-01 16:00 EST
    dt.date(2024, 3, 31): dt.date(2024, 5, 3),
    dt.date(2024, 6, 30): dt.date(2024, 8, 2),
    dt.date(2024, 9, 30): dt.date(2024, 11, 1),
    dt.date(2024, 12, 31): dt.date(2025, 1, 31),
}


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep yfinance's timezone/cookie caches out of the user's home."""
    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))
    yield


@pytest.fixture(autouse=True)
def fresh_yfinance() -> Iterator[None]:
    """yfinance memoises responses per URL for the process: each test sees its own replay session."""
    YfData.cache_get.cache_clear()
    yield
    YfData.cache_get.cache_clear()


@pytest.fixture(scope="module")
def fetched() -> tuple[pl.DataFrame, YahooReplaySession]:
    session = YahooReplaySession()
    YfData.cache_get.cache_clear()
    return YahooProvider(session=session).fetch_fundamentals(ALL), session


def test_statements_map_to_the_fundamentals_schema(fetched: tuple[pl.DataFrame, YahooReplaySession]) -> None:
    df, _ = fetched
    assert df.schema == pl.Schema(FUNDAMENTALS_SCHEMA)
    assert df.group_by("symbol").len().sort("symbol").rows() == [("AAPL", 5), ("MSFT", 5)]
    q = df.filter((pl.col("symbol") == "AAPL") & (pl.col("fiscal_period_end") == dt.date(2024, 3, 31))).row(
        0, named=True
    )
    assert q["eps"] == 1.53 and q["revenue"] == 90_753e6 and q["operating_cash_flow"] == 22_690e6
    assert q["shares_outstanding"] == 15_337_686_000
    assert q["book_value_per_share"] == pytest.approx(74_194e6 / 15_337_686_000)
    assert q["dividend_per_share"] == pytest.approx(3_710e6 / 15_337_686_000)  # -CashDividendsPaid / shares
    assert set(df["provider"]) == {"yahoo"}


def test_report_date_is_the_session_after_an_after_close_release(
    fetched: tuple[pl.DataFrame, YahooReplaySession],
) -> None:
    df, session = fetched
    aapl = df.filter(pl.col("symbol") == "AAPL")
    assert dict(aapl.select("fiscal_period_end", "report_date").iter_rows()) == AAPL_REPORTS
    # one calendar request per symbol; the annual statement only for MSFT (no earnings dates to match)
    assert sum("calendar/earnings" in u for u in session.fundamentals_calls("AAPL")) == 1
    assert not any("type=annual" in u for u in session.fundamentals_calls("AAPL"))
    assert any("type=annual" in u for u in session.fundamentals_calls("MSFT"))


def test_without_earnings_dates_the_conservative_lag_applies(
    fetched: tuple[pl.DataFrame, YahooReplaySession],
) -> None:
    df, _ = fetched
    msft = dict(df.filter(pl.col("symbol") == "MSFT").select("fiscal_period_end", "report_date").iter_rows())
    assert QUARTER_REPORT_LAG_DAYS == 45 and YEAR_END_REPORT_LAG_DAYS == 90
    assert msft[dt.date(2024, 3, 31)] == dt.date(2024, 5, 15)  # +45 days, a Wednesday session
    # fiscal year end (MSFT's annual statement ends in June): +90 days = Sat 2024-09-28 -> Monday
    assert msft[dt.date(2024, 6, 30)] == dt.date(2024, 9, 30)
    assert msft[dt.date(2024, 12, 31)] == dt.date(2025, 2, 14)
    assert all(calendar.is_session(d) for d in df["report_date"])


def test_no_quarter_is_visible_before_its_report_date() -> None:
    """No lookahead: a window ending the session before a report never holds that quarter, a window
    starting at it does; a daily request returns exactly the quarters reported that session."""
    provider = YahooProvider(session=YahooReplaySession())
    for end, report in AAPL_REPORTS.items():
        before = provider.fetch_fundamentals(BarsRequest(("AAPL",), end, calendar.previous_session(report)))
        assert end not in before["fiscal_period_end"].to_list()
        on = provider.fetch_fundamentals(BarsRequest(("AAPL",), report, report))
        assert on["fiscal_period_end"].to_list() == [end]
    release_day = dt.date(2024, 5, 2)  # the 16:00 release day itself: not yet known at that close
    assert provider.fetch_fundamentals(BarsRequest(("AAPL",), release_day, release_day)).is_empty()


def test_a_release_after_now_is_not_used() -> None:
    """As of 2024-05-02 12:00 New York the Q1 release (16:00 that day) has not happened: the quarter
    falls back to the lag rule instead of being dated by a release that is still in the future."""
    now = dt.datetime(2024, 5, 2, 12, 0, tzinfo=calendar.NEW_YORK)
    df = YahooProvider(session=YahooReplaySession()).fetch_fundamentals(BarsRequest(("AAPL",), ALL.start, ALL.end), now)
    q1 = df.filter(pl.col("fiscal_period_end") == dt.date(2024, 3, 31))
    assert q1["report_date"].to_list() == [dt.date(2024, 5, 15)]  # 45 days (AAPL's year ends in September)


def test_release_before_the_close_is_known_that_session_and_midnight_means_unknown_time() -> None:
    idx = pd.DatetimeIndex(
        [
            pd.Timestamp("2024-04-25 07:00", tz="America/New_York"),
            pd.Timestamp("2024-04-26 00:00", tz="America/New_York"),
            pd.Timestamp("2024-04-27 16:00", tz="America/New_York"),
        ]
    )
    days = release_days("X", pd.DataFrame({"EPS Estimate": [1.0, 1.0, 1.0]}, index=idx), dt.datetime.now(dt.UTC))
    assert days.rows() == [
        (dt.date(2024, 4, 25), dt.date(2024, 4, 25)),
        (dt.date(2024, 4, 26), dt.date(2024, 4, 27)),
        (dt.date(2024, 4, 27), dt.date(2024, 4, 28)),
    ]
    quarters = pl.DataFrame({"fiscal_period_end": [dt.date(2024, 3, 31)]})
    dated = with_report_dates(quarters, days, None)
    assert dated.row(0, named=True) == {
        "fiscal_period_end": dt.date(2024, 3, 31),
        "report_date": dt.date(2024, 4, 25),
        "report_source": "earnings_date",
    }


def test_no_dividend_line_means_zero_and_missing_fields_are_null() -> None:
    cols = [pd.Timestamp("2024-03-31"), pd.Timestamp("2024-06-30")]
    income = pd.DataFrame([[1.0, 1.1]], index=["DilutedEPS"], columns=cols)
    balance = pd.DataFrame(
        [[100.0, 100.0], [500.0, float("nan")]], index=["OrdinarySharesNumber", "StockholdersEquity"], columns=cols
    )
    cash = pd.DataFrame([[20.0, 30.0]], index=["OperatingCashFlow"], columns=cols)
    rows = statement_rows("AMZN", income, balance, cash)
    assert rows.select("dividend_per_share").to_series().to_list() == [0.0, 0.0]
    assert rows["book_value_per_share"].to_list() == [5.0, None]
    assert rows["revenue"].null_count() == 2


@pytest.mark.parametrize(
    ("index", "value", "field"),
    [
        ("OrdinarySharesNumber", -5.0, "balance_sheet.OrdinarySharesNumber"),
        ("StockholdersEquity", float("inf"), "balance_sheet.StockholdersEquity"),
    ],
)
def test_malformed_statement_names_symbol_and_field(index: str, value: float, field: str) -> None:
    cols = [pd.Timestamp("2024-03-31")]
    balance = pd.DataFrame([[value]], index=[index], columns=cols)
    with pytest.raises(MalformedFundamentals, match=f"XYZ: .*field {field}") as info:
        statement_rows("XYZ", None, balance, None)
    assert info.value.symbol == "XYZ" and info.value.field == field


def test_malformed_data_over_the_wire_is_a_non_retryable_provider_error() -> None:
    session = YahooReplaySession()
    session.statements["BAD"] = {
        "quarterly": {"DilutedEPS": {"2024-03-31": 1.0}, "OrdinarySharesNumber": {"2024-03-31": 10.5}}
    }
    with pytest.raises(ProviderError, match=r"BAD.*OrdinarySharesNumber") as info:
        YahooProvider(session=session).fetch_fundamentals(BarsRequest(("BAD",), ALL.start, ALL.end))
    assert not info.value.retryable and info.value.symbols == ("BAD",)
    with pytest.raises(MalformedFundamentals, match="earnings_dates"):
        release_days("BAD", pd.DataFrame({"x": [1]}, index=pd.DatetimeIndex(["2024-01-01"])), dt.datetime.now(dt.UTC))


def test_unknown_symbol_gives_no_rows() -> None:
    df = YahooProvider(session=YahooReplaySession()).fetch_fundamentals(BarsRequest(("ZZZZ",), ALL.start, ALL.end))
    assert df.is_empty() and df.schema == pl.Schema(FUNDAMENTALS_SCHEMA)


def test_rate_limit_maps_and_the_router_falls_back_to_files(tmp_path: Path) -> None:
    session = YahooReplaySession()
    session.fail_always("MSFT", 429, kind="fundamentals")
    with pytest.raises(RateLimitedError, match="MSFT"):
        YahooProvider(session=session).fetch_fundamentals(BarsRequest(("MSFT",), ALL.start, ALL.end))
    (tmp_path / "fundamentals").mkdir()
    (tmp_path / "fundamentals" / "MSFT.csv").write_text(
        "fiscal_period_end,report_date,eps\n2024-03-31,2024-04-26,2.94\n"
    )
    settings = RouterSettings(priority=("yahoo", "files"), retries=RetrySettings(max_attempts=2, jitter=0.0))
    router = DataRouter([YahooProvider(session=session), FilesProvider(tmp_path)], settings, sleep=lambda _s: None)
    routed = router.get_fundamentals(ALL)
    assert routed.failures.is_empty()
    by = dict(routed.data.group_by("symbol").agg(pl.col("provider").first()).iter_rows())
    assert by == {"AAPL": "yahoo", "MSFT": "files"}


@pytest.mark.parametrize("mode", [Mode.PAPER, Mode.LIVE])
def test_paper_and_live_route_fundamentals_to_yahoo_by_default(mode: Mode, tmp_path: Path) -> None:
    """The shipped configs/providers.yaml: a user with network gets Yahoo's fundamentals in paper and live;
    the files provider joins (after Yahoo) only when <files_root>/fundamentals/ exists."""
    configs = Path(__file__).resolve().parents[2] / "configs"
    overrides = {"fund": {"mode": mode.value}, "universe": {"symbols": ["AAPL"]}}
    settings = load_settings(configs, **overrides, providers={"files_root": str(tmp_path)})
    router = build_router(settings)
    assert [p.name for p in router.candidates("fundamentals")[0]] == ["yahoo"]
    (tmp_path / "fundamentals").mkdir()
    assert [p.name for p in router.candidates("fundamentals")[0]] == ["yahoo", "files"]
