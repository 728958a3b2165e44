"""Daily bars, macro series and fundamentals from a folder of CSV or Parquet files a user brings.

**Where files go.** Every ``.csv``, ``.parquet`` or ``.pq`` file under ``root`` is read, in sub-folders
too, except names starting with ``.`` and the top-level folders ``fundamentals/`` and ``macro/`` (below).
Three layouts, mixed freely:

* per symbol: a file without a ``symbol`` column holds one symbol, named by the file name without
  extension, stripped and upper-cased (``aapl.csv`` serves ``AAPL``; ``2019/AAPL.csv`` too);
* combined (long): a file with a ``symbol`` column (alias ``ticker``) holds many; its values are
  stripped and upper-cased, and requests match them case-insensitively;
* wide: a date column plus one column per symbol holding closes (``date,AAPL,MSFT``): a file with no
  ``symbol``, close or adjusted-close column, not all of open/high/low, and some column that is no known
  field. Every column but the date is then a symbol (also one named like a field: ``LOW`` is Lowe's).
  It is close-only (adjusted close = close); an empty cell means no bar.

**Columns.** CSV files are UTF-8 text separated by ``,``, ``;`` or tab (the most frequent in the header
line). Headers are stripped, lower-cased and blanks collapsed before matching; other columns, and
columns with a blank header (a saved index), are ignored (``mqf init --files`` lists them). Two headers
meaning the same field, or one header twice, make the file unusable.

==================  ==============================================  ===========================================
field               header aliases                                  meaning
==================  ==============================================  ===========================================
``date``            timestamp, time, datetime, day                  session date (rules below); required
``open``, ``high``,                                                 prices in listing currency per share,
``low``                                                             unadjusted; optional
``close``           price, last, close/last                         unadjusted close; required (see below)
``adjusted_close``  adj_close, adj close, adjclose, adjusted close,  split- and dividend-adjusted close;
                    adjusted                                        defaults to ``close`` when absent
``volume``          vol                                             shares traded, a whole number >= 0
``spread_bps``                                                      quoted spread, basis points of mid
``symbol``          ticker                                          combined files only
==================  ==============================================  ===========================================

Close-only files are served: only a close is required next to the date (a file with only an adjusted close
uses it as the close too). Absent open, high or low are returned empty (null), absent volume null: nothing is
invented, and the stages that need OHLC or volume say so. Blank, ``null``, ``none``, ``NA``, ``n/a``,
``#N/A``, ``NaN``, ``.`` and ``-`` cells are missing values (null; Yahoo exports have "null" rows); a
leading ``$`` is ignored; any other text that is not a number makes the file unusable.

**Dates: one format per file**, detected from the whole column, never guessed row by row: native Parquet
date or datetime; ISO ``YYYY-MM-DD``, also with a time (``T`` or space separated) and a zone (``Z``, ``UTC``,
``+hh:mm``); ``YYYY/MM/DD``; ``YYYYMMDD``; ``A/B/YYYY`` (or ``-``/``.`` separated), read as MM/DD/YYYY
unless some first field in the file exceeds 12, then as DD/MM/YYYY for the whole file (a file of days 1-12
only is read MM/DD); epoch numbers, seconds, or milliseconds when the largest exceeds 1e11. A row that
does not fit the file's format, or no format fitting the file, makes the file unusable, naming the row
and value; no row is dropped silently.

**Time zones: the date of a timestamp is its calendar date as written, in its own zone**:
``2024-01-02T00:00:00Z`` and ``2024-01-02 16:00-05:00`` are both 2024-01-02 (no conversion to New York);
a Parquet datetime with a zone is read in that zone; epoch numbers are read in UTC.

A file with several timestamps per date (dates under half a day apart) is intraday and unusable: daily bars
expected. Rows need not be sorted; they are returned by symbol and date. Exact repeats within a file are all
returned (the ingest layer counts and flags duplicates); a row repeated identically in another file (the
same history as CSV and Parquet) is served once, from the first file in path order. Two different rows for
one symbol and date, in one file or across two, are an error: "two sources disagree", naming the files,
the date and the first differing column (a missing value differs from a number).

**Errors.** A file that cannot be used serves nothing, and each requested symbol it holds fails with a
reason naming file, row, date and column, e.g. ``files: AAPL.csv: row 14 (2020-03-02): column 'close'
value 'abc' is not a number``. The other symbols are still served: :meth:`FilesProvider.fetch_bars` raises
:class:`ProviderError` carrying their rows (``partial``) and a reason per failed symbol, which ends in the
``backfill_failures`` table. A requested symbol that no file holds fails with ``no file under <root> holds
AAPL (N files scanned)``. Problems in files no request touches are logged once as warnings. ``mqf init
--files DIR`` (:func:`~mqf_pipeline.market.providers.files_scan.scan_folder`) reports, per file, its layout,
date format, columns, coverage, frequency and problem. Files are read once per process and re-read only
when their size or modification time change.

**Macro series** (served when ``<root>/macro/`` exists, sub-folders too): per series ``<SERIES>.csv`` or
``.parquet`` with ``date`` and ``value`` (aliases ``close``, ``price``; a file with a date and exactly one
other column uses that, e.g. FRED's ``DATE,VIXCLS`` download), or a combined file with ``series_id`` (alias
``series``), ``date`` and ``value``. Same date and value rules; series match case-insensitively. The fund
reads ``VIX`` (index points) and ``SHORT_RATE``, which must hold a DECIMAL annual rate (0.05 for 5 %): a
SHORT_RATE value above 1 is rejected as probably percent, naming file, row, date and column. A missing value
is kept as null; a requested series held by an unusable file, or whose files disagree, raises
:class:`ProviderError` with a reason per series.

**Fundamentals** (served only when ``<root>/fundamentals/`` exists): CSV or Parquet files in that folder,
per symbol (``<SYMBOL>.csv``, no ``symbol`` column) or combined (with a ``symbol`` column). One row per
fiscal quarter; header names are stripped and lower-cased:

==========================  ========  ===========================================================
column                      required  meaning
==========================  ========  ===========================================================
``fiscal_period_end``       yes       last day of the fiscal quarter, ``YYYY-MM-DD``
``report_date``             no        first date at whose close the figures were public (a release
                                      after the close is dated the next day); moved to the first
                                      XNYS session on or after it. Empty or absent: the period end
                                      plus ``YEAR_END_REPORT_LAG_DAYS`` (90), the conservative lag
``eps``                     no        quarterly diluted EPS, USD per share
``book_value_per_share``    no        USD per share at period end
``revenue``                 no        quarterly, USD (company total)
``operating_cash_flow``     no        quarterly, USD (company total)
``dividend_per_share``      no        declared in the quarter, USD per share
``shares_outstanding``      no        shares at period end (whole number)
``symbol``                  no        ticker, for combined files
==========================  ========  ===========================================================

A quarter is returned when its report session falls in the request. A date or number that cannot be
read, or a report date on or before its period end, raises :class:`ProviderError` naming the file,
symbol and column.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from mqf_pipeline.market.providers.base import (
    FUNDAMENTALS_SCHEMA,
    MACRO_SCHEMA,
    YEAR_END_REPORT_LAG_DAYS,
    BarsRequest,
    ProviderError,
    ProviderResult,
    RequestLog,
    UnsupportedCapability,
    first_sessions_on_or_after,
)
from mqf_pipeline.market.providers.files_dates import reconcile
from mqf_pipeline.market.providers.files_scan import (
    BARS_SCHEMA,
    MACRO_DIR,
    MACRO_ROWS_SCHEMA,
    SUFFIXES,
    FileScan,
    ScanCache,
)

logger = logging.getLogger(__name__)

RAW_COLUMNS: tuple[str, ...] = tuple(BARS_SCHEMA)
BAR_VALUES: tuple[str, ...] = tuple(c for c in BARS_SCHEMA if c not in ("date", "symbol"))
#: Sub-folder of ``root`` holding fundamentals files.
FUNDAMENTALS_DIR = "fundamentals"
#: Fundamentals columns read as numbers (all optional).
FUNDAMENTAL_VALUES: tuple[str, ...] = tuple(
    c for c in FUNDAMENTALS_SCHEMA if c not in ("symbol", "fiscal_period_end", "report_date", "provider")
)


def _summary(reasons: Mapping[str, str], n_wanted: int, what: str) -> str:
    shown = "; ".join(f"{s}: {r}" for s, r in list(reasons.items())[:3])
    more = f"; (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return f"{len(reasons)} of {n_wanted} {what} not served: {shown}{more}"


class FilesProvider(UnsupportedCapability):
    """Bars, macro series and fundamentals from ``root`` (see module docstring); no network, no rate limit."""

    def __init__(self, root: str | Path, name: str = "files") -> None:
        self.root = Path(root).expanduser()
        self.name = name
        self._cache = ScanCache()
        self._warned: set[tuple[Path, str]] = set()

    @property
    def fundamentals_dir(self) -> Path:
        """The folder fundamentals files sit in (``<root>/fundamentals``)."""
        return self.root / FUNDAMENTALS_DIR

    @property
    def macro_dir(self) -> Path:
        """The folder macro files sit in (``<root>/macro``)."""
        return self.root / MACRO_DIR

    def capabilities(self) -> frozenset[str]:
        """Bars; fundamentals and macro too when their folders exist (else other providers are asked)."""
        extra = {k for k, d in (("fundamentals", self.fundamentals_dir), ("macro", self.macro_dir)) if d.is_dir()}
        return frozenset({"bars", *extra})

    def available(self) -> tuple[bool, str]:
        if not self.root.is_dir():
            return False, f"bars folder {self.root} does not exist"
        return True, ""

    def _error(self, req: BarsRequest, reason: str) -> ProviderError:
        return ProviderError(self.name, req.symbols, reason, retryable=False, start=req.start, end=req.end)

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _file_reasons(self, files: Sequence[FileScan], wanted: Mapping[str, str]) -> dict[str, str]:
        """Upper-cased wanted symbol -> the problem of a file holding it; other files' problems logged once."""
        reasons: dict[str, str] = {}
        for f in files:
            if f.problem is None:
                continue
            hit = [s for s in f.symbols if s in wanted]
            for s in hit:
                reasons.setdefault(s, f"{self._rel(f.path)}: {f.problem}")
            if not hit and (f.path, f.problem) not in self._warned:
                self._warned.add((f.path, f.problem))
                logger.warning("%s: %s cannot be used: %s", self.name, f.path, f.problem)
        return reasons

    def _rows(
        self,
        files: Sequence[FileScan],
        frames: Mapping[Path, pl.DataFrame],
        symbols: set[str],
        start: dt.date,
        end: dt.date,
        schema: Mapping[str, pl.DataType],
    ) -> pl.DataFrame:
        """The rows of ``symbols`` dated in ``[start, end]`` from the usable files, with ``__file`` and ``__row``."""
        parts = [
            frames[f.path]
            .filter(pl.col("symbol").is_in(list(symbols)) & pl.col("date").is_between(start, end))
            .with_columns(pl.lit(self._rel(f.path), pl.String).alias("__file"))
            for f in files
            if f.problem is None and f.path in frames and symbols.intersection(f.symbols)
        ]
        empty = pl.DataFrame(schema={**schema, "__row": pl.UInt32(), "__file": pl.String()})
        return pl.concat([empty, *parts], how="diagonal_relaxed")

    def _not_found(self, symbol: str, files: Sequence[FileScan]) -> str:
        bad = [self._rel(f.path) for f in files if f.problem is not None]
        note = f"; {len(bad)} file(s) cannot be used: {', '.join(bad[:3])}" if bad else ""
        return f"no file under {self.root} holds {symbol} ({len(files)} files scanned{note})"

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        """Rows of the requested symbols within ``[req.start, req.end]``; symbols of unusable files, symbols in
        no file and symbols whose sources disagree fail (:class:`ProviderError` with the others' rows)."""
        t0 = time.perf_counter()
        if not self.root.is_dir():
            raise self._error(req, f"bars folder {self.root} does not exist")
        folder, frames = self._cache.scan(self.root)
        wanted = {s.strip().upper(): s for s in req.symbols}
        reasons = self._file_reasons(folder.files, wanted)
        rows = self._rows(folder.files, frames, set(wanted) - set(reasons), req.start, req.end, BARS_SCHEMA)
        rows, clashes = reconcile(rows, BAR_VALUES)
        reasons.update(clashes)
        held = {s for f in folder.files for s in f.symbols}
        reasons.update({s: self._not_found(s, folder.files) for s in wanted if s not in held and s not in reasons})
        raw = (
            rows.filter(~pl.col("symbol").is_in(list(reasons)))
            .sort("symbol", "date", "__file", "__row")
            .with_columns(pl.col("symbol").replace_strict(wanted, return_dtype=pl.String))
            .select(RAW_COLUMNS)
        )
        failed = {wanted[s]: r for s, r in sorted(reasons.items())}
        summary = _summary(failed, len(wanted), "symbol(s)") if failed else None
        latency = (time.perf_counter() - t0) * 1000.0
        status = "error" if failed else "ok"
        log = RequestLog(
            self.name, str(self.root), req.symbols, req.start, req.end, status, None, 1, latency, raw.height, summary
        )
        result = ProviderResult(self.name, raw, [log])
        if summary is not None:
            raise ProviderError(
                self.name,
                tuple(failed),
                summary,
                retryable=False,
                start=req.start,
                end=req.end,
                partial=result,
                requests=[log],
                symbol_reasons=failed,
            )
        return result

    def fetch_macro(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Observations of ``series`` in ``[start, end]`` from ``<root>/macro`` (:data:`MACRO_SCHEMA`); series of an
        unusable file or with disagreeing sources raise :class:`ProviderError` with a reason per series."""
        if not self.macro_dir.is_dir():
            raise self._unsupported("macro", series)
        folder, frames = self._cache.scan(self.root)
        wanted = {s.strip().upper(): s for s in series}
        reasons = self._file_reasons(folder.macro, wanted)
        rows = self._rows(folder.macro, frames, set(wanted) - set(reasons), start, end, MACRO_ROWS_SCHEMA)
        rows, clashes = reconcile(rows, ("value",))
        reasons.update(clashes)
        if reasons:
            failed = {wanted[s]: r for s, r in sorted(reasons.items())}
            summary = _summary(failed, len(wanted), "series")
            raise ProviderError(
                self.name, tuple(failed), summary, retryable=False, start=start, end=end, symbol_reasons=failed
            )
        return (
            rows.unique(["symbol", "date", "value"], keep="first", maintain_order=True)
            .sort("symbol", "date")
            .select(
                "date",
                pl.col("symbol").replace_strict(wanted, return_dtype=pl.String).alias("series_id"),
                "value",
                pl.lit(self.name, pl.String).alias("provider"),
            )
            .cast(MACRO_SCHEMA)  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ fundamentals
    def _fundamentals_file(self, path: Path, req: BarsRequest, wanted: dict[str, str]) -> pl.DataFrame:
        """The requested symbols' rows of one fundamentals file, typed, with report dates (not yet sessions)."""
        try:
            is_csv = path.suffix.lower() == ".csv"
            df = pl.read_csv(path, infer_schema=False) if is_csv else pl.read_parquet(path)
        except Exception as e:
            raise self._error(req, f"cannot read {path}: {type(e).__name__}: {e}") from e
        df = df.rename({c: c.strip().lower() for c in df.columns})
        if "fiscal_period_end" not in df.columns:
            raise self._error(req, f"{path} lacks required column 'fiscal_period_end'")
        if "symbol" in df.columns:
            key = pl.col("symbol").cast(pl.String).str.strip_chars().str.to_uppercase()
            df = df.filter(key.is_in(list(wanted))).with_columns(key.replace_strict(wanted).alias("symbol"))
        elif path.stem.strip().upper() in wanted:
            df = df.with_columns(pl.lit(wanted[path.stem.strip().upper()], dtype=pl.String).alias("symbol"))
        else:
            return pl.DataFrame(schema={k: v for k, v in FUNDAMENTALS_SCHEMA.items() if k != "provider"})
        if "report_date" not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias("report_date"))
        df = df.with_columns([pl.lit(None, pl.Float64).alias(c) for c in FUNDAMENTAL_VALUES if c not in df.columns])

        def as_date(c: str) -> pl.Expr:
            col = pl.col(c)
            if df.schema[c] == pl.Date():
                return col
            if isinstance(df.schema[c], pl.Datetime):
                return col.dt.date()
            text = col.cast(pl.String).str.strip_chars().str.slice(0, 10)
            return pl.when(text != "").then(text).str.strptime(pl.Date, "%Y-%m-%d", strict=False)

        def as_number(c: str) -> pl.Expr:
            col = pl.col(c)
            if df.schema[c] == pl.String():
                text = col.str.strip_chars()
                return pl.when(text != "").then(text).cast(pl.Float64, strict=False)
            return col.cast(pl.Float64, strict=False)

        typed = df.select(
            "symbol",
            *[as_date(c).alias(c) for c in ("fiscal_period_end", "report_date")],
            *[as_number(c).alias(c) for c in FUNDAMENTAL_VALUES],
            *[pl.col(c).alias(f"__raw_{c}") for c in ("fiscal_period_end", "report_date", *FUNDAMENTAL_VALUES)],
        )
        for c in ("fiscal_period_end", "report_date", *FUNDAMENTAL_VALUES):
            raw = pl.col(f"__raw_{c}").cast(pl.String).str.strip_chars()
            bad = typed.filter(pl.col(c).is_null() & raw.is_not_null() & (raw != ""))
            if c == "fiscal_period_end":
                bad = typed.filter(pl.col(c).is_null())
            if c == "shares_outstanding":
                bad = pl.concat([bad, typed.filter((pl.col(c) % 1 != 0) | (pl.col(c) < 0))])
            if bad.height:
                r = bad.row(0, named=True)
                raise self._error(req, f"{path}: {r['symbol']} column {c!r} has unreadable value {r[f'__raw_{c}']!r}")
        typed = typed.select(~pl.selectors.starts_with("__raw_"))
        early = typed.filter(pl.col("report_date") <= pl.col("fiscal_period_end"))
        if early.height:
            r = early.row(0, named=True)
            raise self._error(
                req,
                f"{path}: {r['symbol']} column 'report_date' {r['report_date']} is not after its "
                f"fiscal_period_end {r['fiscal_period_end']}",
            )
        lag = pl.col("fiscal_period_end") + pl.duration(days=YEAR_END_REPORT_LAG_DAYS)
        return typed.with_columns(
            pl.coalesce("report_date", lag).alias("report_date"),
            pl.col("shares_outstanding").cast(pl.Int64),
        )

    def fetch_fundamentals(self, req: BarsRequest) -> pl.DataFrame:
        """Quarters of the requested symbols whose report session falls in ``req``'s range (docstring)."""
        folder = self.fundamentals_dir
        schema = {k: v for k, v in FUNDAMENTALS_SCHEMA.items() if k != "provider"}
        wanted = {s.strip().upper(): s for s in req.symbols}
        files = (
            sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
            if folder.is_dir()
            else []
        )
        parts = [self._fundamentals_file(p, req, wanted) for p in files]
        rows = (
            pl.concat([p.select(list(schema)) for p in parts], how="vertical") if parts else pl.DataFrame(schema=schema)
        )
        rows = first_sessions_on_or_after(rows.cast(schema), "report_date")  # type: ignore[arg-type]
        return (
            rows.filter(pl.col("report_date").is_between(req.start, req.end))
            .unique(["symbol", "fiscal_period_end", "report_date"], keep="first", maintain_order=True)
            .with_columns(pl.lit(self.name, dtype=pl.String).alias("provider"))
            .select(list(FUNDAMENTALS_SCHEMA))
        )
