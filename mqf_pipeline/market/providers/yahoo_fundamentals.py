"""Point-in-time quarterly fundamentals from Yahoo's statements (the pure half of the Yahoo provider).

:class:`~mqf_pipeline.market.providers.yahoo.YahooProvider` fetches, per symbol, through yfinance's
session: the quarterly income statement, balance sheet and cash flow (Yahoo's fundamentals-timeseries
API, ``yf.Ticker.get_*(freq="quarterly")``), the earnings calendar (``get_earnings_dates``, scraped
from finance.yahoo.com/calendar/earnings) and, only when some quarter has no earnings date, the
annual income statement (to tell fiscal year ends). This module turns those pandas frames into rows of
:data:`~mqf_pipeline.market.providers.base.FUNDAMENTALS_SCHEMA`.

Field mapping (Yahoo's key -> column; money in the statement's currency, USD for US filers):

==========================  =======================================================================
column                      from
==========================  =======================================================================
``eps``                     ``DilutedEPS`` (quarter, per share)
``revenue``                 ``TotalRevenue`` (quarter, company total)
``operating_cash_flow``     ``OperatingCashFlow`` (quarter, company total)
``shares_outstanding``      ``OrdinarySharesNumber`` (period end)
``book_value_per_share``    ``CommonStockEquity`` (else ``StockholdersEquity``) / shares, period end
``dividend_per_share``      ``-CashDividendsPaid`` / shares (paid in the quarter); 0 when Yahoo has no
                            dividend line for the symbol at all (it omits it for non-payers)
==========================  =======================================================================

Point in time: ``report_date`` is the first XNYS session at whose close the quarter was public. The
quarter's earnings release is the first earnings-calendar event strictly after its period end and at
most :data:`MAX_REPORT_LAG_DAYS` later, among events already past; a release before 16:00 New York is
known at that day's close, one at or after 16:00 (or stamped midnight: time unknown) at the next
session's. Without a release, :data:`~mqf_pipeline.market.providers.base.QUARTER_REPORT_LAG_DAYS` (45)
days after the period end, or :data:`~mqf_pipeline.market.providers.base.YEAR_END_REPORT_LAG_DAYS` (90)
for a fiscal year end (also when year ends are unknown). ``report_source`` says which (``"earnings_date"``
or ``"lag"``); the stored table has no such column, so the provider logs the lagged quarters.

Limits: Yahoo serves only the latest ~5 quarters, so older history must come from files; its figures
are as of today, so a restatement after the report date is not point in time (the date is).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

import pandas as pd
import polars as pl

from mqf_pipeline.market.providers.base import (
    QUARTER_REPORT_LAG_DAYS,
    YEAR_END_REPORT_LAG_DAYS,
    first_sessions_on_or_after,
)

#: An earnings release more than this many days after a period end is not that quarter's.
MAX_REPORT_LAG_DAYS = 120
#: New York hour (24 h) from which a release is after the close, so first known at the next session.
CLOSE_HOUR_NY = 16
#: Yahoo keys per statement: (income, balance sheet, cash flow).
INCOME_KEYS = ("DilutedEPS", "TotalRevenue")
BALANCE_KEYS = ("OrdinarySharesNumber", "CommonStockEquity", "StockholdersEquity")
CASH_KEYS = ("OperatingCashFlow", "CashDividendsPaid")
#: Statement rows, before report dates (fiscal_period_end plus the value columns).
QUARTER_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "fiscal_period_end": pl.Date(),
    "eps": pl.Float64(),
    "book_value_per_share": pl.Float64(),
    "revenue": pl.Float64(),
    "operating_cash_flow": pl.Float64(),
    "dividend_per_share": pl.Float64(),
    "shares_outstanding": pl.Int64(),
}


class MalformedFundamentals(ValueError):  # noqa: N818 (reads as a sentence: raise MalformedFundamentals)
    """Yahoo sent something that is not a statement or calendar; the message names symbol and field."""

    def __init__(self, symbol: str, field: str, reason: str) -> None:
        self.symbol, self.field = symbol, field
        super().__init__(f"{symbol}: malformed Yahoo fundamentals, field {field}: {reason}")


def _period_ends(symbol: str, what: str, frame: pd.DataFrame) -> list[dt.date]:
    """The statement's columns as dates (Yahoo's ``asOfDate``, the fiscal period end)."""
    out = []
    for col in frame.columns:
        try:
            out.append(pd.Timestamp(col).date())
        except (TypeError, ValueError) as e:
            raise MalformedFundamentals(symbol, f"{what} column", f"{col!r} is not a period-end date") from e
    if len(set(out)) != len(out):
        raise MalformedFundamentals(symbol, f"{what} column", f"duplicate period ends {sorted(out)}")
    return out


def _statement(symbol: str, what: str, frame: pd.DataFrame | None, keys: Iterable[str]) -> pl.DataFrame:
    """(fiscal_period_end, <key>...) from a yfinance statement (index = keys, columns = period ends);
    keys the statement lacks are all-null columns; non-numeric or infinite values raise."""
    keys = list(keys)
    schema = {"fiscal_period_end": pl.Date(), **{k: pl.Float64() for k in keys}}
    if frame is None or frame.empty:
        return pl.DataFrame(schema=schema)
    ends = _period_ends(symbol, what, frame)
    cols: dict[str, list[float | None]] = {}
    for key in keys:
        if key not in frame.index:
            cols[key] = [None] * len(ends)
            continue
        values: list[float | None] = []
        for end, v in zip(ends, frame.loc[key].tolist(), strict=True):
            try:
                x = float(v)
            except (TypeError, ValueError) as e:
                raise MalformedFundamentals(symbol, f"{what}.{key}", f"{v!r} on {end} is not a number") from e
            if math.isinf(x):
                raise MalformedFundamentals(symbol, f"{what}.{key}", f"{v!r} on {end} is infinite")
            values.append(None if math.isnan(x) else x)
        cols[key] = values
    return pl.DataFrame({"fiscal_period_end": ends, **cols}, schema=schema)


def statement_rows(
    symbol: str, income: pd.DataFrame | None, balance: pd.DataFrame | None, cash: pd.DataFrame | None
) -> pl.DataFrame:
    """One row per fiscal quarter in :data:`QUARTER_SCHEMA` (see the module docstring for the mapping).

    Quarters without any figure are dropped. Raises :class:`MalformedFundamentals` (naming the symbol
    and field) on non-date columns, non-numeric or infinite values, or a share count that is not a
    positive whole number.
    """
    inc = _statement(symbol, "income_statement", income, INCOME_KEYS)
    bal = _statement(symbol, "balance_sheet", balance, BALANCE_KEYS)
    csh = _statement(symbol, "cash_flow", cash, CASH_KEYS)
    no_dividend_line = cash is None or cash.empty or "CashDividendsPaid" not in cash.index
    shares = bal.filter(pl.col("OrdinarySharesNumber").is_not_null())
    bad = shares.filter(
        (pl.col("OrdinarySharesNumber") <= 0)
        | (pl.col("OrdinarySharesNumber").round(0) != pl.col("OrdinarySharesNumber"))
    )
    if bad.height:
        end, n = bad.row(0)[0], bad.get_column("OrdinarySharesNumber")[0]
        raise MalformedFundamentals(
            symbol, "balance_sheet.OrdinarySharesNumber", f"{n!r} on {end} is not a positive whole share count"
        )
    ends = pl.concat([f.select("fiscal_period_end") for f in (inc, bal, csh)]).unique().sort("fiscal_period_end")
    joined = ends.join(inc, on="fiscal_period_end", how="left").join(bal, on="fiscal_period_end", how="left")
    joined = joined.join(csh, on="fiscal_period_end", how="left")
    n = pl.col("OrdinarySharesNumber")
    equity = pl.coalesce("CommonStockEquity", "StockholdersEquity")
    dps = pl.lit(0.0) if no_dividend_line else -pl.col("CashDividendsPaid") / n
    out = joined.select(
        pl.lit(symbol, pl.String).alias("symbol"),
        "fiscal_period_end",
        pl.col("DilutedEPS").alias("eps"),
        (equity / n).alias("book_value_per_share"),
        pl.col("TotalRevenue").alias("revenue"),
        pl.col("OperatingCashFlow").alias("operating_cash_flow"),
        dps.alias("dividend_per_share"),
        n.cast(pl.Int64).alias("shares_outstanding"),
    )
    figures = ["eps", "book_value_per_share", "revenue", "operating_cash_flow", "shares_outstanding"]
    return out.filter(pl.any_horizontal(pl.col(figures).is_not_null())).cast(QUARTER_SCHEMA)  # type: ignore[arg-type]


def release_days(symbol: str, earnings: pd.DataFrame | None, now: dt.datetime) -> pl.DataFrame:
    """(release, public_day) per earnings event before ``now``: the New York date of the release and
    the first date at whose close it is known (the next day when at/after 16:00 or at midnight)."""
    schema = {"release": pl.Date(), "public_day": pl.Date()}
    if earnings is None or earnings.empty:
        return pl.DataFrame(schema=schema)
    if not isinstance(earnings.index, pd.DatetimeIndex) or earnings.index.tz is None:
        raise MalformedFundamentals(
            symbol, "earnings_dates.Earnings Date", f"index {earnings.index[:3].tolist()!r} is not time-zone aware"
        )
    stamps = earnings.index.tz_convert("America/New_York")
    rows = []
    for ts in stamps:
        if ts.to_pydatetime() > now:
            continue
        day = ts.date()
        after_close = ts.hour >= CLOSE_HOUR_NY or (ts.hour, ts.minute, ts.second) == (0, 0, 0)
        rows.append((day, day + dt.timedelta(days=1) if after_close else day))
    return pl.DataFrame(rows, schema=schema, orient="row").unique().sort("release")


def _match_releases(quarters: pl.DataFrame, releases: pl.DataFrame) -> pl.DataFrame:
    """``quarters`` with ``public_day`` of the first release after each period end (within the window)."""
    return (
        quarters.sort("fiscal_period_end")
        .with_columns((pl.col("fiscal_period_end") + pl.duration(days=1)).alias("__after"))
        .join_asof(
            releases.sort("release"),
            left_on="__after",
            right_on="release",
            strategy="forward",
            tolerance=dt.timedelta(days=MAX_REPORT_LAG_DAYS - 1),
        )
        .drop("__after", "release")
    )


def needs_year_ends(quarters: pl.DataFrame, releases: pl.DataFrame) -> bool:
    """Whether some quarter has no release in its window (so fiscal year ends decide its lag)."""
    return quarters.height > 0 and _match_releases(quarters, releases).get_column("public_day").null_count() > 0


def with_report_dates(quarters: pl.DataFrame, releases: pl.DataFrame, year_ends: set[dt.date] | None) -> pl.DataFrame:
    """``quarters`` with ``report_date`` (a session) and ``report_source`` (module docstring).

    ``year_ends``: fiscal year-end dates, or None when unknown (every lagged quarter then gets the year-end
    lag). Dates are always after the period end.
    """
    if quarters.height == 0:
        return quarters.with_columns(report_date=pl.lit(None, pl.Date), report_source=pl.lit(None, pl.String))
    fpe = pl.col("fiscal_period_end")
    is_year_end = pl.lit(True) if year_ends is None else fpe.is_in(sorted(year_ends))
    lag = pl.when(is_year_end).then(YEAR_END_REPORT_LAG_DAYS).otherwise(QUARTER_REPORT_LAG_DAYS)
    dated = _match_releases(quarters, releases).with_columns(
        report_date=pl.coalesce("public_day", fpe + pl.duration(days=lag)),
        report_source=pl.when(pl.col("public_day").is_not_null())
        .then(pl.lit("earnings_date"))
        .otherwise(pl.lit("lag")),
    )
    out = first_sessions_on_or_after(dated.drop("public_day"), "report_date")
    early = out.filter(pl.col("report_date") <= fpe)
    if early.height:  # unreachable by construction (releases are matched strictly after the period end)
        raise AssertionError(f"quarter dated on or before its period end: {early.row(0, named=True)}")
    return out


def year_end_dates(symbol: str, annual: pd.DataFrame | None) -> set[dt.date] | None:
    """Fiscal year ends from the annual statement's columns (None when it has none)."""
    if annual is None or annual.empty:
        return None
    return set(_period_ends(symbol, "annual_income_statement", annual))
