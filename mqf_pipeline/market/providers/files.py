"""Daily bars from local CSV or Parquet files a user brings.

Layout: the files sit directly in one folder ``root`` (no sub-folders), in either form, mixed freely:

* one file per symbol, ``<root>/<SYMBOL>.csv`` or ``<root>/<SYMBOL>.parquet`` (also ``.pq``),
  *without* a ``symbol`` column; the symbol is the file name without extension, matched to the
  requested symbol case-insensitively (``aapl.csv`` serves ``AAPL``);
* any other ``.csv``/``.parquet`` file *with* a ``symbol`` column holding many symbols
  (matched after stripping blanks, case-insensitively).

Columns (header names are stripped and lower-cased; extra columns are ignored):

========================  ========  ===============================================================
column                    required  meaning
========================  ========  ===============================================================
``date``                  yes       session date, ``YYYY-MM-DD`` (Parquet: date, datetime or string)
``open``, ``high``,       yes       prices in listing currency per share, unadjusted
``low``, ``close``
``volume``                yes       shares traded (integer; ``1.2e6``-style whole floats accepted)
``adjusted_close``        no        split- and dividend-adjusted close; aliases ``adj_close``,
                                    ``adj close``; defaults to ``close`` when absent
``spread_bps``            no        average quoted spread in basis points of mid
``symbol``                no        ticker, for combined files
========================  ========  ===============================================================

CSV files are read with every value as text, so values reach :func:`bars.canonicalize` exactly as
written ("n/a" becomes null and is flagged there). Rows whose date cannot be parsed are kept
(the quality gate flags them) rather than dropped; rows with a parsable date outside the request
are left out. If a symbol appears in several files, all its rows are returned (duplicates are
reported by the quality gate). A missing root or an unreadable file raises :class:`ProviderError`
naming it.

Fundamentals (served only when the folder ``<root>/fundamentals/`` exists): CSV or Parquet files in that
folder, per symbol (``<SYMBOL>.csv``, no ``symbol`` column) or combined (with a ``symbol`` column), as
for bars. One row per fiscal quarter; header names are stripped and lower-cased:

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
import time
from pathlib import Path

import polars as pl

from mqf_pipeline.market.providers.base import (
    FUNDAMENTALS_SCHEMA,
    YEAR_END_REPORT_LAG_DAYS,
    BarsRequest,
    ProviderError,
    ProviderResult,
    RequestLog,
    UnsupportedCapability,
    first_sessions_on_or_after,
)

SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".pq")
REQUIRED: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")
OPTIONAL: tuple[str, ...] = ("adjusted_close", "spread_bps")
ALIASES: dict[str, str] = {"adj_close": "adjusted_close", "adj close": "adjusted_close"}
RAW_COLUMNS: tuple[str, ...] = ("date", "symbol", "open", "high", "low", "close", "adjusted_close", "volume")
#: Sub-folder of ``root`` holding fundamentals files.
FUNDAMENTALS_DIR = "fundamentals"
#: Fundamentals columns read as numbers (all optional).
FUNDAMENTAL_VALUES: tuple[str, ...] = tuple(
    c for c in FUNDAMENTALS_SCHEMA if c not in ("symbol", "fiscal_period_end", "report_date", "provider")
)


def _norm(name: str) -> str:
    n = name.strip().lower()
    return ALIASES.get(n, n)


class FilesProvider(UnsupportedCapability):
    """Bars from ``root`` (see module docstring); no network, no rate limit."""

    def __init__(self, root: str | Path, name: str = "files") -> None:
        self.root = Path(root).expanduser()
        self.name = name

    @property
    def fundamentals_dir(self) -> Path:
        """The folder fundamentals files sit in (``<root>/fundamentals``)."""
        return self.root / FUNDAMENTALS_DIR

    def capabilities(self) -> frozenset[str]:
        """Bars; fundamentals too when ``<root>/fundamentals/`` exists (else other providers are asked)."""
        return frozenset({"bars", "fundamentals"}) if self.fundamentals_dir.is_dir() else frozenset({"bars"})

    def available(self) -> tuple[bool, str]:
        if not self.root.is_dir():
            return False, f"bars folder {self.root} does not exist"
        return True, ""

    def _error(self, req: BarsRequest, reason: str) -> ProviderError:
        return ProviderError(self.name, req.symbols, reason, retryable=False, start=req.start, end=req.end)

    def _columns(self, path: Path, req: BarsRequest) -> list[str]:
        try:
            if path.suffix.lower() == ".csv":
                return list(pl.read_csv(path, n_rows=0, infer_schema=False).columns)
            return list(pl.read_parquet_schema(path).keys())
        except Exception as e:
            raise self._error(req, f"cannot read {path}: {type(e).__name__}: {e}") from e

    def _read(self, path: Path, req: BarsRequest) -> pl.DataFrame:
        try:
            is_csv = path.suffix.lower() == ".csv"
            df = pl.read_csv(path, infer_schema=False) if is_csv else pl.read_parquet(path)
        except Exception as e:
            raise self._error(req, f"cannot read {path}: {type(e).__name__}: {e}") from e
        renamed = {c: _norm(c) for c in df.columns}
        if len(set(renamed.values())) != len(renamed):
            raise self._error(req, f"{path} has duplicate columns after normalising names: {df.columns}")
        df = df.rename(renamed)
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise self._error(req, f"{path} lacks required column(s) {missing}")
        if "adjusted_close" not in df.columns:
            df = df.with_columns(pl.col("close").alias("adjusted_close"))
        return df

    def _in_range(self, df: pl.DataFrame, start: dt.date, end: dt.date) -> pl.DataFrame:
        col = pl.col("date")
        dtype = df.schema["date"]
        if dtype == pl.Date():
            parsed = col
        elif isinstance(dtype, pl.Datetime):
            parsed = col.dt.date()
        else:
            parsed = (
                col.cast(pl.String).str.strip_chars().str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
            )
        return df.filter(parsed.is_null() | parsed.is_between(start, end))

    def fetch_bars(self, req: BarsRequest) -> ProviderResult:
        """Rows of the requested symbols within ``[req.start, req.end]``; see the module docstring."""
        t0 = time.perf_counter()
        if not self.root.is_dir():
            raise self._error(req, f"bars folder {self.root} does not exist")
        wanted = {s.strip().upper(): s for s in req.symbols}
        parts: list[pl.DataFrame] = []
        files = sorted(p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        for path in files:
            has_symbol = "symbol" in {_norm(c) for c in self._columns(path, req)}
            if not has_symbol and path.stem.strip().upper() not in wanted:
                continue
            df = self._read(path, req)
            if has_symbol:
                key = pl.col("symbol").cast(pl.String).str.strip_chars().str.to_uppercase()
                df = df.filter(key.is_in(list(wanted))).with_columns(key.replace_strict(wanted).alias("symbol"))
            else:
                df = df.with_columns(pl.lit(wanted[path.stem.strip().upper()], dtype=pl.String).alias("symbol"))
            df = self._in_range(df, req.start, req.end)
            cols = [*RAW_COLUMNS, *(["spread_bps"] if "spread_bps" in df.columns else [])]
            if df.height:
                parts.append(df.select(cols))
        raw = (
            pl.concat(parts, how="diagonal_relaxed")
            if parts
            else pl.DataFrame(schema={c: pl.String() for c in RAW_COLUMNS})
        )
        log = RequestLog(
            self.name,
            str(self.root),
            req.symbols,
            req.start,
            req.end,
            "ok",
            None,
            1,
            (time.perf_counter() - t0) * 1000.0,
            raw.height,
            None,
        )
        return ProviderResult(self.name, raw, [log])

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
