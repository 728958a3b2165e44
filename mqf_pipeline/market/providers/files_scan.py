"""Inspection of a folder of user files: which files hold which symbols, in what form, and what is wrong.

Used by :class:`~mqf_pipeline.market.providers.files.FilesProvider` (which serves the parsed rows) and by
``mqf init --files DIR`` (which reports :class:`FolderScan`). The format rules are documented for users in
the docstring of :mod:`mqf_pipeline.market.providers.files`; cell rules in
:mod:`mqf_pipeline.market.providers.files_dates`. Every file is read once, in full (CSV with every value
as text), and checked: a file that cannot be used has a ``problem`` and serves nothing.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from mqf_pipeline.market.providers.files_dates import (
    FileProblemError,
    Frequency,
    dated_rows,
    frequency,
    map_columns,
    missing_cell,
    read_table,
    typed_values,
)

Layout = Literal["per_symbol", "combined", "wide"]
SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".pq")
MACRO_DIR = "macro"
#: Top-level sub-folders of the root that hold no bars.
EXCLUDED_DIRS: tuple[str, ...] = ("fundamentals", MACRO_DIR)
DATE_NAMES: tuple[str, ...] = ("date", "timestamp", "time", "datetime", "day")
#: Bar file header (stripped, lower-cased, blanks collapsed) -> canonical field.
FIELD_ALIASES: dict[str, str] = {
    **dict.fromkeys(DATE_NAMES, "date"),
    **{f: f for f in ("open", "high", "low", "close", "volume", "spread_bps", "symbol")},
    **dict.fromkeys(("price", "last", "close/last"), "close"),
    **dict.fromkeys(
        ("adjusted_close", "adj_close", "adj close", "adjclose", "adjusted close", "adjusted"), "adjusted_close"
    ),
    "vol": "volume",
    "ticker": "symbol",
}
#: Macro file header -> canonical field.
MACRO_ALIASES: dict[str, str] = {
    **dict.fromkeys(DATE_NAMES, "date"),
    **dict.fromkeys(("value", "close", "price"), "value"),
    **dict.fromkeys(("series_id", "series"), "series_id"),
}
PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "adjusted_close")
VALUE_FIELDS: tuple[str, ...] = (*PRICE_FIELDS, "volume", "spread_bps")
#: Macro series held as a decimal annual rate: a value above 1 is probably percent and rejected.
DECIMAL_RATE_SERIES: tuple[str, ...] = ("SHORT_RATE",)
#: Columns and dtypes of the rows a scan keeps per usable bar file (plus ``__row``, the 1-based data row).
BARS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    **{c: pl.Float64() for c in PRICE_FIELDS},
    "volume": pl.Int64(),
    "spread_bps": pl.Float64(),
}
#: Columns and dtypes of the rows a scan keeps per usable macro file (``symbol`` is the series id).
MACRO_ROWS_SCHEMA: dict[str, pl.DataType] = {"date": pl.Date(), "symbol": pl.String(), "value": pl.Float64()}


@dataclass(frozen=True)
class SymbolCoverage:
    """Where one symbol's bars are: dates, rows and files; ``has_*`` hold only if true in every file."""

    symbol: str
    first_date: dt.date
    last_date: dt.date
    n_rows: int
    files: tuple[Path, ...]
    has_ohlc: bool
    has_volume: bool
    has_spread: bool


@dataclass(frozen=True)
class FileScan:
    """What one file holds. ``columns`` maps source headers to canonical names (in a wide file each symbol
    column maps to ``close``); ``problem`` says why the file cannot be used (then it serves nothing);
    ``symbol_stats`` is the coverage of each symbol in this file alone."""

    path: Path
    format: Literal["csv", "parquet"]
    layout: Layout
    date_format: str
    columns: dict[str, str]
    ignored_columns: tuple[str, ...]
    symbols: tuple[str, ...]
    first_date: dt.date | None
    last_date: dt.date | None
    n_rows: int
    frequency: Frequency
    has_ohlc: bool
    has_volume: bool
    has_spread: bool
    problem: str | None
    symbol_stats: tuple[SymbolCoverage, ...] = ()


@dataclass(frozen=True)
class FolderScan:
    """Every bar file under ``root`` (sub-folders too) and every macro file under ``root/macro``."""

    root: Path
    files: tuple[FileScan, ...]
    macro: tuple[FileScan, ...] = ()

    @property
    def symbols(self) -> dict[str, SymbolCoverage]:
        """Upper-cased symbol -> its coverage merged over the usable bar files that hold it."""
        merged: dict[str, SymbolCoverage] = {}
        for f in self.files:
            for c in f.symbol_stats if f.problem is None else ():
                old = merged.get(c.symbol)
                merged[c.symbol] = c if old is None else _merge(old, c)
        return dict(sorted(merged.items()))

    @property
    def problems(self) -> list[tuple[Path, str]]:
        """(path, why) of every bar or macro file that cannot be used at all."""
        return [(f.path, f.problem) for f in (*self.files, *self.macro) if f.problem is not None]

    @property
    def first_date(self) -> dt.date | None:
        """The earliest date in the usable bar files."""
        return min((f.first_date for f in self.files if f.problem is None and f.first_date), default=None)

    @property
    def last_date(self) -> dt.date | None:
        """The latest date in the usable bar files."""
        return max((f.last_date for f in self.files if f.problem is None and f.last_date), default=None)


def _merge(a: SymbolCoverage, b: SymbolCoverage) -> SymbolCoverage:
    return SymbolCoverage(
        a.symbol,
        min(a.first_date, b.first_date),
        max(a.last_date, b.last_date),
        a.n_rows + b.n_rows,
        (*a.files, *b.files),
        a.has_ohlc and b.has_ohlc,
        a.has_volume and b.has_volume,
        a.has_spread and b.has_spread,
    )


@dataclass
class _Draft:
    """What is known of a file so far, so a problem found midway still reports it."""

    path: Path
    layout: Layout = "per_symbol"
    date_format: str = "unknown"
    columns: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    n_rows: int = 0
    flags: tuple[bool, bool, bool] = (False, False, False)  # has_ohlc, has_volume, has_spread

    def done(self, rows: pl.DataFrame | None, problem: str | None, freq: Frequency = "unknown") -> FileScan:
        """The frozen scan; dates and per-symbol coverage only for a usable file."""
        stats: tuple[SymbolCoverage, ...] = ()
        if problem is None and rows is not None:
            agg = rows.group_by("symbol").agg(pl.col("date").min(), pl.col("date").max().alias("last"), pl.len())
            stats = tuple(
                SymbolCoverage(s, first, last, n, (self.path,), *self.flags)
                for s, first, last, n in agg.sort("symbol").iter_rows()
            )
        fmt: Literal["csv", "parquet"] = "csv" if self.path.suffix.lower() == ".csv" else "parquet"
        first_date = min((c.first_date for c in stats), default=None)
        last_date = max((c.last_date for c in stats), default=None)
        return FileScan(
            self.path,
            fmt,
            self.layout,
            self.date_format,
            dict(self.columns),
            self.ignored,
            self.symbols,
            first_date,
            last_date,
            self.n_rows,
            freq,
            *self.flags,
            problem,
            stats,
        )


def list_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(bar files, macro files) under ``root``, sorted; hidden files and folders skipped."""
    bars = _walk(root, exclude=EXCLUDED_DIRS)
    macro = _walk(root / MACRO_DIR, exclude=()) if (root / MACRO_DIR).is_dir() else []
    return bars, macro


def _walk(top: Path, exclude: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for folder, dirs, names in os.walk(top):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (here == top and d in exclude)]
        out.extend(here / n for n in names if not n.startswith(".") and Path(n).suffix.lower() in SUFFIXES)
    return sorted(out)


def source_of(mapping: dict[str, str], canon: str) -> str | None:
    """The source header mapped to ``canon``."""
    return next((s for s, c in mapping.items() if c == canon), None)


def _stem(path: Path) -> str:
    return path.stem.strip().upper()


def _symbols(table: pl.DataFrame, draft: _Draft, key: str) -> tuple[str, ...]:
    """The symbols (or series) a file holds by its layout: the stem, the ``key`` column's values, or a wide
    file's column names."""
    if draft.layout == "per_symbol":
        return (_stem(draft.path),)
    if draft.layout == "combined":
        col = table[source_of(draft.columns, key) or ""].cast(pl.String).str.strip_chars().str.to_uppercase()
        return tuple(sorted(s for s in col.drop_nulls().unique().to_list() if s))
    names = [c for c, k in draft.columns.items() if k == "close"]
    upper = [n.strip().upper() for n in names]
    twice = sorted({u for u in upper if upper.count(u) > 1})
    if twice:
        raise FileProblemError(
            f"two columns name symbol {twice[0]}: {[n for n in names if n.strip().upper() == twice[0]]}"
        )
    return tuple(sorted(upper))


def _key(dated: pl.DataFrame, draft: _Draft, key: str) -> pl.Expr:
    """Each row's symbol (or series): the ``key`` column of a combined file (blank is a problem), else the stem."""
    if draft.layout != "combined":
        return pl.lit(_stem(draft.path), pl.String)
    src = source_of(draft.columns, key) or ""
    expr = pl.col(src).cast(pl.String).str.strip_chars().str.to_uppercase()
    empty = dated.filter(expr.is_null() | (expr == ""))
    if empty.height:
        raise FileProblemError(
            f"row {empty['__row'][0]}: column {src!r} is empty (each row of a combined file needs one)"
        )
    return expr


def _is_wide(mapping: dict[str, str], ignored: tuple[str, ...]) -> bool:
    """A date x symbol table of closes: columns that are no known field, and no symbol, close or full OHLC
    columns (so a ticker named like a field, e.g. LOW, is still a symbol there)."""
    canon = set(mapping.values())
    return (
        any(c.strip() for c in ignored)
        and not canon & {"symbol", "close", "adjusted_close"}
        and not {"open", "high", "low"} <= canon
    )


def _bar_rows(table: pl.DataFrame, draft: _Draft) -> pl.DataFrame:
    """A bar file's rows, one per (file row, symbol), typed (a wide file: its non-empty cells as closes)."""
    mapping, ignored = map_columns(table.columns, FIELD_ALIASES)
    canon = set(mapping.values())
    draft.columns, draft.ignored = mapping, ignored
    draft.flags = ({"open", "high", "low"} <= canon, "volume" in canon, "spread_bps" in canon)
    if "symbol" in canon:
        draft.layout = "combined"
    elif _is_wide(mapping, ignored):  # every column but the date (and blank index headers) is a symbol
        date_src = {s: c for s, c in mapping.items() if c == "date"}
        named = [c for c in table.columns if c not in date_src and c.strip()]
        draft.layout, draft.columns, draft.flags = "wide", {**date_src, **dict.fromkeys(named, "close")}, (False,) * 3
        draft.ignored = tuple(c for c in ignored if not c.strip())
    draft.symbols = _symbols(table, draft, "symbol")
    if "date" not in draft.columns.values():
        raise FileProblemError(f"no date column (one of {', '.join(DATE_NAMES)}); columns: {table.columns}")
    if draft.layout != "wide" and not canon & {"close", "adjusted_close"}:
        raise FileProblemError(
            f"no close column (close, price, last, adjusted_close or an alias); columns: {table.columns}"
        )
    dated, draft.date_format = dated_rows(table, source_of(mapping, "date") or "")
    keep = ["__row", "date", "__stamp"]
    if draft.layout == "wide":
        cols = [c for c, k in draft.columns.items() if k == "close"]
        dtype = pl.Float64 if all(dated.schema[c].is_numeric() for c in cols) else pl.String
        long = (
            dated.select(*keep, *[pl.col(c).cast(dtype) for c in cols])
            .unpivot(index=keep, on=cols, variable_name="__col", value_name="close")
            .filter(~missing_cell("close"))
            .with_columns(pl.col("__col").str.strip_chars().str.to_uppercase().alias("symbol"))
        )
        return typed_values(long, {"close": "close"}, True, BARS_SCHEMA)
    fields = {c: s for s, c in mapping.items() if c in VALUE_FIELDS}
    long = dated.select(
        *keep, _key(dated, draft, "symbol").alias("symbol"), *[pl.col(s).alias(c) for c, s in fields.items()]
    )
    return typed_values(long, fields, draft.layout == "combined", BARS_SCHEMA)


def _macro_rows(table: pl.DataFrame, draft: _Draft) -> pl.DataFrame:
    """A macro file's rows (``symbol`` holds the series id); a decimal-rate series above 1 is a problem."""
    mapping, ignored = map_columns(table.columns, MACRO_ALIASES)
    if "value" not in mapping.values() and len(ignored) == 1:  # one unnamed series, e.g. FRED's DATE,VIXCLS
        mapping, ignored = {**mapping, ignored[0]: "value"}, ()
    canon = set(mapping.values())
    draft.columns, draft.ignored = mapping, ignored
    draft.layout = "combined" if "series_id" in canon else "per_symbol"
    draft.symbols = _symbols(table, draft, "series_id")
    if not {"date", "value"} <= canon:
        raise FileProblemError(f"needs a date and a value column (value, close or price); columns: {table.columns}")
    dated, draft.date_format = dated_rows(table, source_of(mapping, "date") or "")
    src = source_of(mapping, "value") or ""
    long = dated.select(
        "__row", "date", "__stamp", _key(dated, draft, "series_id").alias("symbol"), pl.col(src).alias("value")
    )
    rows = typed_values(long, {"value": src}, draft.layout == "combined", MACRO_ROWS_SCHEMA)
    high = rows.filter(pl.col("symbol").is_in(list(DECIMAL_RATE_SERIES)) & (pl.col("value") > 1))
    if high.height:
        r = high.row(0, named=True)
        raise FileProblemError(
            f"row {r['__row']} ({r['date']}, {r['symbol']}): column {src!r} value {r['value']} is above 1, probably "
            f"percent: {r['symbol']} must be a decimal annual rate (0.05 for 5%)"
        )
    return rows


def _scan(path: Path, build: Callable[[pl.DataFrame, _Draft], pl.DataFrame]) -> tuple[FileScan, pl.DataFrame | None]:
    """Read ``path`` once, ``build`` its typed rows and check their spacing; a problem makes the file unusable."""
    draft = _Draft(path, symbols=(_stem(path),))
    try:
        table = read_table(path)
        draft.n_rows = table.height
        rows = build(table, draft)
        freq, per_day = frequency(rows, "symbol", "__stamp")
        if freq == "intraday":
            raise FileProblemError(f"intraday: {per_day} rows per date; daily bars expected")
    except FileProblemError as e:
        draft.date_format = e.date_format or draft.date_format
        return draft.done(None, str(e)), None
    except Exception as e:  # a file polars chokes on must not take the folder down with it
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return draft.done(None, f"cannot be processed: {type(e).__name__}: {detail}"), None
    rows = rows.drop("__stamp")
    return draft.done(rows, None, freq), rows


def scan_bar_file(path: Path) -> tuple[FileScan, pl.DataFrame | None]:
    """One bar file's scan and, when usable, its rows (:data:`BARS_SCHEMA` plus ``__row``)."""
    return _scan(path, _bar_rows)


def scan_macro_file(path: Path) -> tuple[FileScan, pl.DataFrame | None]:
    """One macro file's scan and, when usable, its rows (``__row``, date, symbol = series id, value)."""
    return _scan(path, _macro_rows)


_Entry = tuple[tuple[int, int], FileScan, pl.DataFrame | None]


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


class ScanCache:
    """Scans of a folder's files kept per file by (path, size, mtime_ns): an unchanged file is read once.
    New or changed files are scanned on a few threads (polars releases the GIL while it works)."""

    def __init__(self, workers: int | None = None) -> None:
        self._entries: dict[tuple[str, Path], _Entry] = {}
        self.workers = workers or min(8, os.cpu_count() or 1)

    def scan(self, root: Path) -> tuple[FolderScan, dict[Path, pl.DataFrame]]:
        """The folder's scan and the rows of its usable bar and macro files, by path."""
        bars, macro = list_files(root)
        keys = [("bars", p) for p in bars] + [("macro", p) for p in macro]
        stamps = {k: _stamp(k[1]) for k in keys}
        todo = [k for k in keys if k not in self._entries or self._entries[k][0] != stamps[k]]

        def run(key: tuple[str, Path]) -> _Entry:
            return (stamps[key], *(scan_bar_file if key[0] == "bars" else scan_macro_file)(key[1]))

        done: dict[tuple[str, Path], _Entry] = {}
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(todo))) as pool:
                done = dict(zip(todo, pool.map(run, todo), strict=True))
        self._entries = {k: done.get(k) or self._entries[k] for k in keys}
        files = tuple(e[1] for (kind, _), e in self._entries.items() if kind == "bars")
        macro_files = tuple(e[1] for (kind, _), e in self._entries.items() if kind == "macro")
        frames = {p: e[2] for (_, p), e in self._entries.items() if e[2] is not None}
        return FolderScan(root, files, macro_files), frames


def scan_folder(root: Path) -> FolderScan:
    """Every bar and macro file under ``root`` scanned (see the module docstring)."""
    return ScanCache().scan(Path(root))[0]
