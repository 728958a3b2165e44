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
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import polars as pl

from mqf_pipeline.market.providers.base import (
    BarsRequest,
    ProviderError,
    ProviderResult,
    RequestLog,
    UnsupportedCapability,
)

SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".pq")
REQUIRED: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")
OPTIONAL: tuple[str, ...] = ("adjusted_close", "spread_bps")
ALIASES: dict[str, str] = {"adj_close": "adjusted_close", "adj close": "adjusted_close"}
RAW_COLUMNS: tuple[str, ...] = ("date", "symbol", "open", "high", "low", "close", "adjusted_close", "volume")


def _norm(name: str) -> str:
    n = name.strip().lower()
    return ALIASES.get(n, n)


class FilesProvider(UnsupportedCapability):
    """Bars from ``root`` (see module docstring); no network, no rate limit."""

    def __init__(self, root: str | Path, name: str = "files") -> None:
        self.root = Path(root).expanduser()
        self.name = name

    def capabilities(self) -> frozenset[str]:
        return frozenset({"bars"})

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
