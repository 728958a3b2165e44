"""Files provider: CSV and Parquet, per-symbol and combined files, errors naming the file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.market.bars import BARS_SCHEMA, canonicalize
from mqf_pipeline.market.providers.base import BarsRequest, ProviderError
from mqf_pipeline.market.providers.files import FilesProvider
from tests.market.fakes import synthetic_bars, write_bar_files

START, END = dt.date(2024, 3, 1), dt.date(2024, 3, 28)
SESSIONS = calendar.sessions(dt.date(2024, 2, 20), dt.date(2024, 4, 10))
SYMBOLS = ("AAPL", "MSFT", "SPY")


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_bars(SYMBOLS, SESSIONS)


def _expected(bars: pl.DataFrame, symbols: tuple[str, ...]) -> pl.DataFrame:
    return bars.filter(pl.col("symbol").is_in(list(symbols)) & pl.col("date").is_between(START, END)).sort(
        "symbol", "date"
    )


def _canonical(raw: pl.DataFrame) -> pl.DataFrame:
    out = canonicalize(raw, "files")
    assert not out["cast_failed"].any()
    return out.select([c for c in BARS_SCHEMA if c != "spread_bps"]).sort("symbol", "date")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("combined", [False, True])
def test_reads_requested_symbols_and_dates(tmp_path: Path, bars: pl.DataFrame, fmt: str, combined: bool) -> None:
    write_bar_files(bars, tmp_path, fmt=fmt, combined=combined)
    provider = FilesProvider(tmp_path)
    assert provider.available() == (True, "")
    req = BarsRequest(("MSFT", "AAPL"), START, END)
    result = provider.fetch_bars(req)
    got = _canonical(result.raw)
    expected = _expected(bars, req.symbols)
    assert got.height == expected.height == 2 * len(calendar.sessions(START, END))
    assert got.equals(expected.select(got.columns))
    assert result.requests[0].n_rows == got.height and result.requests[0].status == "ok"


def test_csv_values_arrive_as_text_and_missing_adjusted_close_defaults_to_close(tmp_path: Path) -> None:
    (tmp_path / "ibm.csv").write_text(
        "Date,Open,High,Low,Close,Volume\n2024-03-01,10,11,9,10.5,1000\n2024-03-04,n/a,11,9,10.7,2000\n"
    )
    raw = FilesProvider(tmp_path).fetch_bars(BarsRequest(("IBM",), START, END)).raw
    assert raw["open"].dtype == pl.String  # values as received
    assert raw["adjusted_close"].to_list() == raw["close"].to_list() == ["10.5", "10.7"]
    canon = canonicalize(raw, "files")
    assert canon["cast_failed"].to_list() == [False, True]  # "n/a" is flagged, not dropped
    assert canon["symbol"].to_list() == ["IBM", "IBM"]


def test_adj_close_alias_spread_and_unparseable_dates_are_kept(tmp_path: Path) -> None:
    (tmp_path / "all.csv").write_text(
        "symbol,date,open,high,low,close,adj close,volume,spread_bps\n"
        " qqq ,2024-03-01,1,2,0.5,1.5,1.4,10,3.5\n"
        "QQQ,2023-01-03,1,2,0.5,1.5,1.4,10,3.5\n"
        "QQQ,03/05/2024,1,2,0.5,1.5,1.4,10,3.5\n"
        "DIA,2024-03-01,1,2,0.5,1.5,1.4,10,3.5\n"
    )
    raw = FilesProvider(tmp_path).fetch_bars(BarsRequest(("QQQ",), START, END)).raw
    assert raw["symbol"].to_list() == ["QQQ", "QQQ"]  # out-of-range row left out; bad date kept
    assert raw["adjusted_close"].to_list() == ["1.4", "1.4"]
    assert raw["spread_bps"].to_list() == ["3.5", "3.5"]
    assert canonicalize(raw, "files")["cast_failed"].to_list() == [False, True]


def test_unknown_symbol_gives_no_rows(tmp_path: Path, bars: pl.DataFrame) -> None:
    write_bar_files(bars, tmp_path)
    raw = FilesProvider(tmp_path).fetch_bars(BarsRequest(("NOPE",), START, END)).raw
    assert raw.is_empty()


def test_missing_root_is_unavailable_and_errors_name_it(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    provider = FilesProvider(root)
    ok, why = provider.available()
    assert not ok and str(root) in why
    with pytest.raises(ProviderError, match="nowhere") as info:
        provider.fetch_bars(BarsRequest(("AAPL",), START, END))
    assert not info.value.retryable


def test_bad_parquet_file_error_names_the_file(tmp_path: Path, bars: pl.DataFrame) -> None:
    write_bar_files(bars, tmp_path, fmt="parquet")
    (tmp_path / "MSFT.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(ProviderError) as info:
        FilesProvider(tmp_path).fetch_bars(BarsRequest(("AAPL", "MSFT"), START, END))
    msg = str(info.value)
    assert "MSFT.parquet" in msg and "2024-03-01" in msg and "files" in msg


def test_missing_column_error_names_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "XOM.csv").write_text("date,open,high,low,volume\n2024-03-01,1,2,0.5,10\n")
    with pytest.raises(ProviderError, match=r"XOM\.csv lacks required column\(s\) \['close'\]"):
        FilesProvider(tmp_path).fetch_bars(BarsRequest(("XOM",), START, END))
