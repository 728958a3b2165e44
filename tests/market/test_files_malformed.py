"""The files provider on real-world input: every malformed case gives a correct result or an error naming the
file, symbol, row/date and column, and never costs the good files their symbols. Also every date format and
the fields of the folder scan report (``mqf init --files``)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import polars as pl
import pytest

from mqf_pipeline.market.bars import canonicalize
from mqf_pipeline.market.providers.base import MACRO_SCHEMA, BarsRequest, ProviderError
from mqf_pipeline.market.providers.files import FilesProvider
from mqf_pipeline.market.providers.files_scan import FileScan, scan_folder

START, END = dt.date(2023, 1, 1), dt.date(2024, 12, 31)
D1, D2, D3 = dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 16)
OHLCV = "date,open,high,low,close,volume\n"


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _good(root: Path, name: str = "GOOD.csv") -> Path:
    return _write(root, name, OHLCV + "2024-01-02,10,11,9,10.5,100\n2024-01-03,10,11,9,10.6,200\n")


def _fetch(root: Path, *symbols: str, provider: FilesProvider | None = None) -> tuple[pl.DataFrame, dict[str, str]]:
    """(rows served, symbol -> reason of each failed symbol)."""
    try:
        return (provider or FilesProvider(root)).fetch_bars(BarsRequest(symbols, START, END)).raw, {}
    except ProviderError as e:
        assert e.partial is not None and not e.retryable
        return e.partial.raw, {s: e.reason_for(s) for s in e.symbols}


def _scan(root: Path, name: str) -> FileScan:
    return next(f for f in scan_folder(root).files if f.path == root / name)


def _dates(raw: pl.DataFrame, symbol: str) -> list[dt.date]:
    return raw.filter(pl.col("symbol") == symbol)["date"].to_list()


# ---------------------------------------------------------------------------- values
def test_non_numeric_price_names_file_row_date_and_column(tmp_path: Path) -> None:
    _good(tmp_path)
    _write(tmp_path, "BAD.csv", OHLCV + "2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,abc,10\n")
    raw, reasons = _fetch(tmp_path, "GOOD", "BAD")
    assert reasons == {"BAD": "files: BAD.csv: row 2 (2024-01-03): column 'close' value 'abc' is not a number"}
    assert _dates(raw, "GOOD") == [D1, D2]
    assert _scan(tmp_path, "BAD.csv").problem == "row 2 (2024-01-03): column 'close' value 'abc' is not a number"


@pytest.mark.parametrize("token", ["", "null", "NA", "n/a", "NaN", "#N/A", ".", " NULL "])
def test_missing_value_tokens_are_null_not_errors(tmp_path: Path, token: str) -> None:
    """Yahoo CSV exports have whole "null" rows: kept, with nulls, for the quality gate to flag."""
    _write(tmp_path, "Y.csv", f"Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,1,2,0.5,1.5,1.4,10\n"
           f"2024-01-03,{token},{token},{token},{token},{token},{token}\n")  # fmt: skip
    raw, reasons = _fetch(tmp_path, "Y")
    assert reasons == {}
    assert raw.row(1, named=True) == {"date": D2, "symbol": "Y", **dict.fromkeys(raw.columns[2:])}
    assert not canonicalize(raw, "files")["cast_failed"].any()


@pytest.mark.parametrize(
    ("volume", "what"), [("-5", "value '-5' is negative"), ("10.5", "value '10.5' is not a whole number")]
)
def test_bad_volume_names_date_and_column(tmp_path: Path, volume: str, what: str) -> None:
    _good(tmp_path)
    _write(tmp_path, "V.csv", OHLCV + f"2024-01-02,1,2,0.5,1.5,1.2e6\n2024-01-03,1,2,0.5,1.5,{volume}\n")
    raw, reasons = _fetch(tmp_path, "V", "GOOD")
    assert reasons == {"V": f"files: V.csv: row 2 (2024-01-03): column 'volume' {what}"}
    assert _dates(raw, "GOOD") == [D1, D2]


def test_wide_and_combined_value_errors_name_the_symbol(tmp_path: Path) -> None:
    _write(tmp_path, "wide.csv", "Date,AAPL,MSFT\n2024-01-02,1,2\n2024-01-03,1,x\n")
    _write(tmp_path, "long.csv", "symbol,date,close\nIBM,2024-01-02,1\nXOM,2024-01-02,oops\n")
    _, reasons = _fetch(tmp_path, "MSFT", "IBM")
    assert reasons == {
        "MSFT": "files: wide.csv: row 2 (2024-01-03, MSFT): column 'MSFT' value 'x' is not a number",
        "IBM": "files: long.csv: row 2 (2024-01-02, XOM): column 'close' value 'oops' is not a number",
    }


def test_empty_symbol_cell_in_combined_file_is_a_problem(tmp_path: Path) -> None:
    _write(tmp_path, "long.csv", "ticker,date,close\nIBM,2024-01-02,1\n ,2024-01-03,1\n")
    assert (
        _scan(tmp_path, "long.csv").problem == "row 2: column 'ticker' is empty (each row of a combined file needs one)"
    )


# ---------------------------------------------------------------------------- duplicates and order
def test_exact_duplicates_in_one_file_are_all_returned(tmp_path: Path) -> None:
    _write(
        tmp_path, "D.csv", OHLCV + "2024-01-02,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.6,10\n"
    )
    raw, reasons = _fetch(tmp_path, "D")
    assert reasons == {} and _dates(raw, "D") == [D1, D1, D2]


def test_different_rows_for_one_date_in_one_file_disagree(tmp_path: Path) -> None:
    _good(tmp_path)
    _write(tmp_path, "D.csv", OHLCV + "2024-01-02,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.7,10\n")
    raw, reasons = _fetch(tmp_path, "D", "GOOD")
    assert reasons == {
        "D": "files: two sources disagree on D 2024-01-02: D.csv rows 1 and 2 differ in column 'close' (1.5 vs 1.7)"
    }
    assert set(raw["symbol"]) == {"GOOD"}


def test_two_files_that_disagree_are_both_named(tmp_path: Path) -> None:
    _good(tmp_path)
    _write(tmp_path, "X.csv", OHLCV + "2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.6,10\n")
    pl.DataFrame({"date": [D2], "close": [1.6], "volume": [11]}).write_parquet(
        tmp_path / "old" / "x.parquet", mkdir=True
    )
    raw, reasons = _fetch(tmp_path, "X", "GOOD")
    assert reasons == {
        "X": "files: two sources disagree on X 2024-01-03: X.csv row 2 and old/x.parquet row 1 differ in column "
        "'open' (1.0 vs None)"
    }
    assert set(raw["symbol"]) == {"GOOD"}


def test_identical_rows_in_csv_and_parquet_are_served_once(tmp_path: Path) -> None:
    """Cross-file identical duplicates are served once per date (from the first file in path order), so the
    ingest layer does not count them as provider duplicates."""
    path = _good(tmp_path, "AAPL.csv")
    pl.read_csv(path).with_columns(pl.col("date").str.to_date()).write_parquet(
        tmp_path / "parquet" / "AAPL.parquet", mkdir=True
    )
    raw, reasons = _fetch(tmp_path, "AAPL")
    assert reasons == {} and _dates(raw, "AAPL") == [D1, D2]
    assert scan_folder(tmp_path).symbols["AAPL"].files == (tmp_path / "AAPL.csv", tmp_path / "parquet" / "AAPL.parquet")


def test_unsorted_dates_are_returned_sorted(tmp_path: Path) -> None:
    _write(tmp_path, "U.csv", "date,close\n2024-01-16,3\n2024-01-02,1\n2024-01-03,2\n")
    raw, _ = _fetch(tmp_path, "U")
    assert _dates(raw, "U") == [D1, D2, D3] and raw["close"].to_list() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------------------- dates
@pytest.mark.parametrize(
    ("cells", "label"),
    [
        (["2024-01-02", "2024-01-03", "2024-01-16"], "ISO YYYY-MM-DD"),
        (["2024-1-2", "2024-01-03", "2024-01-16"], "ISO YYYY-MM-DD"),
        (["2024-01-02 00:00:00", "2024-01-03T00:00", "2024-01-16 00:00:00.000"], "ISO datetime"),
        (["2024-01-02T00:00:00Z", "2024-01-03 16:00-05:00", "2024-01-16T23:30:00+0900"], "ISO datetime with zone"),
        (["2024/01/02", "2024/01/03", "2024/01/16"], "YYYY/MM/DD"),
        (["20240102", "20240103", "20240116"], "YYYYMMDD"),
        (["01/02/2024", "1/3/2024", "01/16/2024"], "MM/DD/YYYY"),
        (["02/01/2024", "03/01/2024", "16/01/2024"], "DD/MM/YYYY"),
        (["02.01.2024", "03.01.2024", "16.01.2024"], "DD.MM.YYYY"),
        (["1/2/2024 4:00:00 PM", "1/3/2024 4:00:00 PM", "1/16/2024 4:00:00 PM"], "MM/DD/YYYY"),
        (["1704153600", "1704240000", "1705363200"], "epoch seconds"),
        (["1704207600000", "1704294000000", "1705417200000"], "epoch milliseconds"),
    ],
)
def test_date_formats(tmp_path: Path, cells: list[str], label: str) -> None:
    _write(tmp_path, "F.csv", "Date,Close\n" + "".join(f'"{c}",{i}\n' for i, c in enumerate(cells)))
    raw, reasons = _fetch(tmp_path, "F")
    assert reasons == {} and _dates(raw, "F") == [D1, D2, D3]
    scan = _scan(tmp_path, "F.csv")
    assert scan.date_format == label and scan.problem is None


@pytest.mark.parametrize(
    ("dates", "label"),
    [
        (pl.Series([D1, D2, D3]), "native date"),
        (pl.Series([dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3), dt.datetime(2024, 1, 16)]), "native datetime"),
        (  # the calendar date in the column's own zone: 2024-01-03 07:00 Tokyo is 2024-01-02 22:00 UTC
            pl.Series(
                [dt.datetime(2024, 1, 2, 9), dt.datetime(2024, 1, 3, 7), dt.datetime(2024, 1, 16, 23)]
            ).dt.replace_time_zone("Asia/Tokyo"),
            "native datetime with zone",
        ),
        (pl.Series([20240102, 20240103, 20240116]), "YYYYMMDD"),
        (pl.Series([1704153600, 1704240000, 1705363200]), "epoch seconds"),
    ],
)
def test_parquet_date_columns(tmp_path: Path, dates: pl.Series, label: str) -> None:
    pl.DataFrame({"timestamp": dates, "price": [1.0, 2.0, 3.0]}).write_parquet(tmp_path / "P.pq")
    raw, reasons = _fetch(tmp_path, "P")
    assert reasons == {} and _dates(raw, "P") == [D1, D2, D3]
    assert _scan(tmp_path, "P.pq").date_format == label


@pytest.mark.parametrize(
    ("cells", "problem"),
    [
        (["2024-01-02", "03/05/2024"], "row 2: column 'date' value '03/05/2024' does not match the file's date "
         "format ISO YYYY-MM-DD (one format per file)"),
        (["2024-01-02", "2024-02-30"], "row 2: column 'date' value '2024-02-30' is not a valid ISO YYYY-MM-DD date"),
        (["01/02/2024", "13/13/2024"], "row 2: column 'date' value '13/13/2024' is not a valid DD/MM/YYYY date "
         "(nor MM/DD/YYYY)"),
        (["01/02/2024", "02/30/2024"], "row 2: column 'date' value '02/30/2024' is not a valid MM/DD/YYYY date "
         "(nor DD/MM/YYYY)"),
        (["yesterday", "today"], "row 1: column 'date' value 'yesterday' is not a date in a known format"),
        (["2024-01-02", ""], "row 2: column 'date' is empty (every row needs a date)"),
    ],
)  # fmt: skip
def test_unreadable_dates_are_errors_never_dropped_rows(tmp_path: Path, cells: list[str], problem: str) -> None:
    _good(tmp_path)
    _write(tmp_path, "B.csv", "date,close\n" + "".join(f"{c},1\n" for c in cells))
    raw, reasons = _fetch(tmp_path, "B", "GOOD")
    assert reasons == {"B": f"files: B.csv: {problem}"} and set(raw["symbol"]) == {"GOOD"}


# ---------------------------------------------------------------------------- layouts
def test_close_only_file_next_to_ohlcv_files_and_adjusted_only(tmp_path: Path) -> None:
    _good(tmp_path)
    _write(tmp_path, "C.csv", "Date,Price\n2024-01-02,5\n2024-01-03,6\n")
    _write(tmp_path, "A.csv", "Date,Adj Close,Vol\n2024-01-02,7,100\n")
    raw, reasons = _fetch(tmp_path, "GOOD", "C", "A")
    assert reasons == {}
    c = raw.filter(pl.col("symbol") == "C")
    assert c["open"].to_list() == [None, None] and c["volume"].dtype == pl.Int64 and c["volume"].null_count() == 2
    assert c["adjusted_close"].to_list() == c["close"].to_list() == [5.0, 6.0]
    assert raw.filter(pl.col("symbol") == "A").select("close", "adjusted_close", "volume").row(0) == (7.0, 7.0, 100)
    assert raw.filter(pl.col("symbol") == "GOOD")["open"].to_list() == [10.0, 10.0]
    scans = {f.path.name: f for f in scan_folder(tmp_path).files}
    assert (scans["C.csv"].has_ohlc, scans["C.csv"].has_volume, scans["A.csv"].has_volume) == (False, False, True)
    assert scans["GOOD.csv"].has_ohlc and scans["GOOD.csv"].has_volume


def test_wide_file_is_served_close_only(tmp_path: Path) -> None:
    _write(tmp_path, "closes.csv", ",Date,AAPL, msft ,LOW\n0,2024-01-02,1.5,,9\n1,2024-01-03,1.6,2.5,null\n")
    raw, reasons = _fetch(tmp_path, "AAPL", "MSFT", "LOW")
    assert reasons == {}
    assert raw.select("date", "symbol", "close", "adjusted_close", "open").rows() == [
        (D1, "AAPL", 1.5, 1.5, None),
        (D2, "AAPL", 1.6, 1.6, None),
        (D1, "LOW", 9.0, 9.0, None),  # a ticker named like a field is a symbol in a wide file
        (D2, "MSFT", 2.5, 2.5, None),  # an empty cell is no bar
    ]
    scan = _scan(tmp_path, "closes.csv")
    assert (scan.layout, scan.symbols, scan.has_ohlc, scan.ignored_columns) == (
        "wide",
        ("AAPL", "LOW", "MSFT"),
        False,
        ("",),  # a pandas index column
    )
    assert scan.columns == {"Date": "date", "AAPL": "close", " msft ": "close", "LOW": "close"}


def test_nasdaq_export_and_semicolon_separated_file(tmp_path: Path) -> None:
    _write(tmp_path, "TSLA.csv", "Date,Close/Last,Volume,Open,High,Low\n01/03/2024,$238.45,121082600,$250.08,$251.25,"
           "$244.41\n01/02/2024,$248.42,104654200,$250.08,$251.25,$244.41\n")  # fmt: skip
    _write(tmp_path, "SAP.csv", "Date;Close;Volume\n2024-01-02;139.2;100\n")
    raw, reasons = _fetch(tmp_path, "TSLA", "SAP")
    assert reasons == {}
    assert raw.select("date", "symbol", "close", "open", "volume").rows() == [
        (D1, "SAP", 139.2, None, 100),
        (D1, "TSLA", 248.42, 250.08, 104654200),
        (D2, "TSLA", 238.45, 250.08, 121082600),
    ]


def test_files_in_sub_folders_are_served_hidden_and_special_folders_skipped(tmp_path: Path) -> None:
    _good(tmp_path / "us" / "2024", "IBM.csv")
    _good(tmp_path / ".cache", "HID.csv")
    _good(tmp_path, ".HID2.csv")
    _good(tmp_path / "macro", "MAC.csv")
    _good(tmp_path / "fundamentals", "FUN.csv")
    raw, reasons = _fetch(tmp_path, "IBM", "HID")
    assert _dates(raw, "IBM") == [D1, D2]
    assert reasons == {"HID": f"files: no file under {tmp_path} holds HID (1 files scanned)"}
    assert [f.path for f in scan_folder(tmp_path).files] == [tmp_path / "us" / "2024" / "IBM.csv"]


# ---------------------------------------------------------------------------- unusable files
@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("G.csv", b"\x00\x01\x02garbage\xff", "is not a text table (binary content)"),
        ("G.parquet", b"PAR1 not really", "cannot be read as Parquet: "),
        ("G.csv", b"when,close\n2024-01-02,1\n", "no date column (one of date, timestamp, time, datetime, day); "
         "columns: ['when', 'close']"),
        ("G.csv", b"date,Close,Price\n2024-01-02,1,1\n", "columns 'Close' and 'Price' both mean 'close' (after "
         "lower-casing and aliases)"),
        ("G.csv", b"date,close,close\n2024-01-02,1,1\n", "column 'close' appears twice; columns: "
         "['date', 'close', 'close']"),
        ("G.csv", b"date,close\n" + b"".join(f"2024-01-0{d} {h}:00,1\n".encode() for d in (2, 3) for h in range(9, 13)),
         "intraday: 4 rows per date; daily bars expected"),
    ],
)  # fmt: skip
def test_unusable_file_names_itself_and_good_files_are_served(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    _good(tmp_path)
    (tmp_path / name).write_bytes(content)
    raw, reasons = _fetch(tmp_path, "G", "GOOD")
    assert reasons["G"].startswith(f"files: {name}: {problem}") and set(raw["symbol"]) == {"GOOD"}
    assert [(p.name, m[: len(problem)]) for p, m in scan_folder(tmp_path).problems] == [(name, problem)]


def test_problems_of_unrequested_files_are_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _good(tmp_path)
    _write(tmp_path, "BAD.csv", "close\n1\n")
    provider = FilesProvider(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mqf_pipeline.market.providers.files"):
        for _ in range(2):
            raw, reasons = _fetch(tmp_path, "GOOD", provider=provider)
            assert reasons == {} and raw.height == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"files: {tmp_path / 'BAD.csv'} cannot be used: no date column (one of date, timestamp, time, datetime, "
        "day); columns: ['close']"
    ]


# ---------------------------------------------------------------------------- scan report
def test_scan_report_fields(tmp_path: Path) -> None:
    _write(tmp_path, "AAPL.csv", " Date ,Open,High,Low,Close,Volume,Dividends,spread_bps\n"
           "2024-01-03,1,2,0.5,1.5,10,0,2\n2024-01-02,1,2,0.5,1.5,10,0,2\n")  # fmt: skip
    weeks = pl.date_range(dt.date(2023, 1, 2), dt.date(2023, 6, 26), "1w", eager=True)
    pl.DataFrame(
        {"symbol": ["AAPL", "SPY"] * len(weeks), "date": weeks.extend(weeks).sort(), "close": 1.0}
    ).write_parquet(tmp_path / "weekly.parquet")
    months = pl.date_range(dt.date(2020, 1, 31), dt.date(2020, 12, 31), "1mo", eager=True)
    pl.DataFrame({"date": months, "close": 1.0}).write_csv(tmp_path / "M.csv")
    scan = scan_folder(tmp_path)
    a, m, w = scan.files
    assert (a.layout, a.format, a.date_format, a.frequency, a.n_rows) == (
        "per_symbol",
        "csv",
        "ISO YYYY-MM-DD",
        "daily",
        2,
    )
    assert a.columns == {" Date ": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close",
                         "Volume": "volume", "spread_bps": "spread_bps"}  # fmt: skip
    assert (a.ignored_columns, a.symbols, a.first_date, a.last_date) == (("Dividends",), ("AAPL",), D1, D2)
    assert (a.has_ohlc, a.has_volume, a.has_spread, a.problem) == (True, True, True, None)
    assert (w.layout, w.format, w.frequency, w.symbols, w.n_rows) == (
        "combined",
        "parquet",
        "weekly",
        ("AAPL", "SPY"),
        52,
    )
    assert (m.frequency, m.has_ohlc, m.has_volume) == ("monthly", False, False)
    cov = scan.symbols["AAPL"]
    assert (cov.first_date, cov.last_date, cov.n_rows) == (dt.date(2023, 1, 2), D2, 28)
    assert cov.files == (tmp_path / "AAPL.csv", tmp_path / "weekly.parquet")
    assert (cov.has_ohlc, cov.has_volume, cov.has_spread) == (False, False, False)  # only if true in every file
    assert list(scan.symbols) == ["AAPL", "M", "SPY"] and scan.problems == []
    assert (scan.first_date, scan.last_date) == (dt.date(2020, 1, 31), D2)


# ---------------------------------------------------------------------------- macro
def test_macro_folder_series_and_files(tmp_path: Path) -> None:
    _write(tmp_path, "macro/vix.csv", "DATE,VIXCLS\n2024-01-02,13.2\n2024-01-03,.\n2024-01-16,14\n")  # FRED download
    _write(tmp_path, "macro/rates.csv", "series,date,value\nshort_rate,01/02/2024,0.0525\nOTHER,01/02/2024,9\n")
    provider = FilesProvider(tmp_path)
    assert provider.capabilities() == frozenset({"bars", "macro"})
    got = provider.fetch_macro(("VIX", "Short_Rate", "NOPE"), D1, D2)
    assert got.schema == pl.Schema(MACRO_SCHEMA)
    assert got.rows() == [
        (D1, "Short_Rate", 0.0525, "files"),
        (D1, "VIX", 13.2, "files"),
        (D2, "VIX", None, "files"),  # FRED's "." is a missing value
    ]
    macro = {f.path.name: f for f in scan_folder(tmp_path).macro}
    assert (macro["rates.csv"].layout, macro["rates.csv"].symbols) == ("combined", ("OTHER", "SHORT_RATE"))
    assert macro["vix.csv"].columns == {"DATE": "date", "VIXCLS": "value"}


def test_short_rate_in_percent_is_rejected_naming_file_date_and_column(tmp_path: Path) -> None:
    _write(tmp_path, "macro/SHORT_RATE.csv", "date,value\n2024-01-02,0.05\n2024-01-03,5.25\n")
    _write(tmp_path, "macro/VIX.parquet", "")
    with pytest.raises(ProviderError) as info:
        FilesProvider(tmp_path).fetch_macro(("SHORT_RATE",), D1, D3)
    assert info.value.reason_for("SHORT_RATE") == (
        "files: macro/SHORT_RATE.csv: row 2 (2024-01-03, SHORT_RATE): column 'value' value 5.25 is above 1, probably "
        "percent: SHORT_RATE must be a decimal annual rate (0.05 for 5%)"
    )
    assert FilesProvider(tmp_path / "none").capabilities() == frozenset({"bars"})
