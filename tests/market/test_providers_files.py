"""Files provider: CSV and Parquet, per-symbol and combined files, partial results, errors naming the file,
scan caching and fundamentals. Malformed input and the date formats: ``test_files_malformed.py``."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.market.bars import BARS_SCHEMA, canonicalize
from mqf_pipeline.market.providers import files_scan
from mqf_pipeline.market.providers.base import FUNDAMENTALS_SCHEMA, BarsRequest, ProviderError
from mqf_pipeline.market.providers.files import FilesProvider
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.market.router_types import RouterSettings
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


def test_missing_cells_are_null_and_adjusted_close_defaults_to_close(tmp_path: Path) -> None:
    (tmp_path / "ibm.csv").write_text(
        "Date,Open,High,Low,Close,Volume\n2024-03-01,10,11,9,10.5,1000\n2024-03-04,n/a,11,9,10.7,2000\n"
    )
    raw = FilesProvider(tmp_path).fetch_bars(BarsRequest(("IBM",), START, END)).raw
    assert raw.schema == pl.Schema({**BARS_SCHEMA})  # typed: every cell was checked when the file was read
    assert raw["open"].to_list() == [10.0, None]  # "n/a" is a missing value, not an error
    assert raw["adjusted_close"].to_list() == raw["close"].to_list() == [10.5, 10.7]
    canon = canonicalize(raw, "files")
    assert canon["cast_failed"].to_list() == [False, False]
    assert canon["symbol"].to_list() == ["IBM", "IBM"]


def test_combined_file_aliases_spread_and_requested_spelling(tmp_path: Path) -> None:
    (tmp_path / "all.csv").write_text(
        "Ticker,date,open,high,low,close,adj close,volume,spread_bps\n"
        " qqq ,2024-03-01,1,2,0.5,1.5,1.4,10,3.5\n"
        "QQQ,2023-01-03,1,2,0.5,1.5,1.4,10,3.5\n"
        "DIA,2024-03-01,1,2,0.5,1.5,1.4,10,3.5\n"
    )
    raw = FilesProvider(tmp_path).fetch_bars(BarsRequest(("qqq",), START, END)).raw
    assert raw["symbol"].to_list() == ["qqq"]  # the requested spelling; out-of-range row left out
    assert raw["adjusted_close"].to_list() == [1.4] and raw["spread_bps"].to_list() == [3.5]
    assert raw["volume"].dtype == pl.Int64 and raw["volume"].to_list() == [10]


def test_unknown_symbol_fails_with_reason_and_others_are_served(tmp_path: Path, bars: pl.DataFrame) -> None:
    write_bar_files(bars, tmp_path)
    with pytest.raises(ProviderError) as info:
        FilesProvider(tmp_path).fetch_bars(BarsRequest(("NOPE", "AAPL"), START, END))
    err = info.value
    assert err.symbols == ("NOPE",) and not err.retryable
    assert err.reason_for("NOPE") == f"files: no file under {tmp_path} holds NOPE (3 files scanned)"
    assert err.partial is not None and set(err.partial.raw["symbol"]) == {"AAPL"}
    assert err.requests[0].status == "error" and err.requests[0].n_rows == err.partial.raw.height


def test_missing_root_is_unavailable_and_errors_name_it(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    provider = FilesProvider(root)
    ok, why = provider.available()
    assert not ok and str(root) in why
    with pytest.raises(ProviderError, match="nowhere") as info:
        provider.fetch_bars(BarsRequest(("AAPL",), START, END))
    assert not info.value.retryable


def test_bad_parquet_file_fails_its_symbol_only(tmp_path: Path, bars: pl.DataFrame) -> None:
    write_bar_files(bars, tmp_path, fmt="parquet")
    (tmp_path / "MSFT.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(ProviderError) as info:
        FilesProvider(tmp_path).fetch_bars(BarsRequest(("AAPL", "MSFT"), START, END))
    err = info.value
    assert err.symbols == ("MSFT",)
    assert err.reason_for("MSFT").startswith("files: MSFT.parquet: cannot be read as Parquet")
    assert "2024-03-01" in str(err) and "files" in str(err)
    assert err.partial is not None
    assert _canonical(err.partial.raw).equals(_expected(bars, ("AAPL",)).select(_canonical(err.partial.raw).columns))


def test_missing_close_column_names_file_and_columns(tmp_path: Path) -> None:
    (tmp_path / "XOM.csv").write_text("date,open,high,low,volume\n2024-03-01,1,2,0.5,10\n")
    with pytest.raises(ProviderError) as info:
        FilesProvider(tmp_path).fetch_bars(BarsRequest(("XOM",), START, END))
    assert info.value.reason_for("XOM") == (
        "files: XOM.csv: no close column (close, price, last, adjusted_close or an alias); "
        "columns: ['date', 'open', 'high', 'low', 'volume']"
    )


def test_router_keeps_good_symbols_and_records_the_bad_files_reason(tmp_path: Path, bars: pl.DataFrame) -> None:
    write_bar_files(bars, tmp_path)
    (tmp_path / "MSFT.csv").write_text("date,close\n2024-03-01,abc\n")
    router = DataRouter([FilesProvider(tmp_path)], RouterSettings(priority=("files",)))
    routed = router.get_bars(BarsRequest(("AAPL", "MSFT", "SPY"), START, END))
    assert set(routed.raw["symbol"]) == {"AAPL", "SPY"}
    failure = routed.failures.row(0, named=True)
    assert routed.failures.height == 1 and failure["symbol"] == "MSFT"
    assert failure["error"] == "files: MSFT.csv: row 1 (2024-03-01): column 'close' value 'abc' is not a number"


def test_scan_is_cached_until_a_file_changes(
    tmp_path: Path, bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bar_files(bars, tmp_path)
    reads: list[Path] = []
    real = files_scan.read_table
    monkeypatch.setattr(files_scan, "read_table", lambda p: reads.append(p) or real(p))
    provider = FilesProvider(tmp_path)
    req = BarsRequest(("AAPL",), START, END)
    provider.fetch_bars(req)
    provider.fetch_bars(req)
    assert len(reads) == 3  # each file once
    path = tmp_path / "AAPL.csv"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    provider.fetch_bars(req)
    assert reads[3:] == [path]


# ---------------------------------------------------------------------------- fundamentals
def _fundamentals_dir(root: Path) -> Path:
    folder = root / "fundamentals"
    folder.mkdir()
    return folder


def test_fundamentals_from_files_are_point_in_time(tmp_path: Path) -> None:
    """Per-symbol CSV and combined Parquet; report dates move to the first session on or after them, an
    empty report date gets the 90-day lag, and a quarter is returned only once its report session is in range."""
    folder = _fundamentals_dir(tmp_path)
    (folder / "aapl.csv").write_text(
        "Fiscal_Period_End,report_date,eps,revenue,shares_outstanding,dividend_per_share\n"
        "2024-03-31,2024-05-04,1.53,90753000000,15337686000,0.24\n"  # Saturday -> Monday 2024-05-06
        "2024-06-30,,1.40,85777000000,15222259000,0.25\n"  # no date: 2024-06-30 + 90 days = 2024-09-28 -> 09-30
    )
    pl.DataFrame(
        {
            "symbol": ["MSFT", "IBM"],
            "fiscal_period_end": [dt.date(2024, 3, 31)] * 2,
            "report_date": [dt.date(2024, 4, 25)] * 2,
        }
    ).write_parquet(folder / "combined.parquet")
    provider = FilesProvider(tmp_path)
    assert "fundamentals" in provider.capabilities()
    got = provider.fetch_fundamentals(BarsRequest(("AAPL", "MSFT"), dt.date(2024, 1, 1), dt.date(2024, 12, 31)))
    assert got.schema == pl.Schema(FUNDAMENTALS_SCHEMA)
    assert got.sort("symbol", "fiscal_period_end").select("symbol", "fiscal_period_end", "report_date").rows() == [
        ("AAPL", dt.date(2024, 3, 31), dt.date(2024, 5, 6)),
        ("AAPL", dt.date(2024, 6, 30), dt.date(2024, 9, 30)),
        ("MSFT", dt.date(2024, 3, 31), dt.date(2024, 4, 25)),
    ]
    first = got.filter(pl.col("report_date") == dt.date(2024, 5, 6)).row(0, named=True)
    assert first["eps"] == 1.53 and first["shares_outstanding"] == 15_337_686_000 and first["provider"] == "files"
    # no lookahead: the session before the report does not see the quarter, the report session does
    before = provider.fetch_fundamentals(BarsRequest(("AAPL",), dt.date(2024, 5, 3), dt.date(2024, 5, 3)))
    assert before.is_empty()
    on = provider.fetch_fundamentals(BarsRequest(("AAPL",), dt.date(2024, 5, 6), dt.date(2024, 5, 6)))
    assert on["fiscal_period_end"].to_list() == [dt.date(2024, 3, 31)]
    # the bars scan ignores the fundamentals folder
    with pytest.raises(ProviderError, match=r"no file under .* holds AAPL \(0 files scanned\)"):
        provider.fetch_bars(BarsRequest(("AAPL",), dt.date(2024, 1, 2), dt.date(2024, 1, 5)))


def test_no_fundamentals_folder_means_no_capability(tmp_path: Path) -> None:
    assert FilesProvider(tmp_path).capabilities() == frozenset({"bars"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("symbol,fiscal_period_end,eps\nAAPL,2024-03-31,abc\n", "AAPL column 'eps' has unreadable value 'abc'"),
        ("symbol,fiscal_period_end,eps\nAAPL,31/03/2024,1.0\n", "AAPL column 'fiscal_period_end'"),
        ("symbol,fiscal_period_end,shares_outstanding\nAAPL,2024-03-31,-3\n", "AAPL column 'shares_outstanding'"),
        ("symbol,fiscal_period_end,report_date\nAAPL,2024-03-31,2024-03-15\n", "'report_date' 2024-03-15 is not after"),
        ("symbol,eps\nAAPL,1.0\n", "lacks required column 'fiscal_period_end'"),
    ],
)
def test_malformed_fundamentals_name_file_symbol_and_column(tmp_path: Path, content: str, message: str) -> None:
    (_fundamentals_dir(tmp_path) / "f.csv").write_text(content)
    req = BarsRequest(("AAPL",), dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    with pytest.raises(ProviderError, match=re.escape(message)) as info:
        FilesProvider(tmp_path).fetch_fundamentals(req)
    assert "f.csv" in str(info.value) and not info.value.retryable
