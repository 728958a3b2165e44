"""The canonical daily-bars contract every provider returns.

Providers hand back *raw* records: the canonical column names, but values as received
(strings, NaN, duplicates and all). :func:`canonicalize` turns them into the canonical
frame, never dropping a row silently: a value that cannot be coerced becomes null and the
row is marked ``cast_failed`` so the quality gate can flag it (``WRONG_TYPE``).

Prices are in the listing currency per share. ``close`` is the raw (unadjusted) close;
``adjusted_close`` is adjusted for splits and dividends, so only *ratios* of it are
meaningful (daily returns), not its level. ``spread_bps`` is the average quoted
bid-ask spread in basis points of mid, where the provider knows it.
"""

from __future__ import annotations

import polars as pl

#: Columns and dtypes of canonical bars, in order.
BARS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "adjusted_close": pl.Float64(),
    "volume": pl.Int64(),
    "spread_bps": pl.Float64(),
}

#: Columns a provider must supply; ``spread_bps`` may be absent (filled with null).
REQUIRED_BAR_COLUMNS: tuple[str, ...] = (
    "date",
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "adjusted_close",
    "volume",
)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adjusted_close")


class BarsSchemaError(ValueError):
    """A provider frame lacks a required column; the message names it."""


def _coerce(name: str, dtype: pl.DataType, source: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if dtype == pl.Date() and source == pl.String():
        return col.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if dtype == pl.Date() and isinstance(source, pl.Datetime):
        return col.dt.date()
    if dtype == pl.Int64() and source in (pl.Float32(), pl.Float64()):
        # volumes sometimes arrive as floats (1.2e6); keep whole numbers, null otherwise
        return pl.when(col.is_finite() & (col == col.round(0))).then(col).otherwise(None).cast(pl.Int64)
    if dtype == pl.Int64() and source == pl.String():
        return col.str.strip_chars().cast(pl.Float64, strict=False).round(0).cast(pl.Int64, strict=False)
    if dtype == pl.Float64() and source == pl.String():
        return col.str.strip_chars().cast(pl.Float64, strict=False)
    return col.cast(dtype, strict=False)


def canonicalize(raw: pl.DataFrame, provider: str) -> pl.DataFrame:
    """Coerce raw provider records to :data:`BARS_SCHEMA` plus ``provider`` and ``cast_failed``.

    Every input row yields one output row, in the same order. ``cast_failed`` is true where a
    non-null input value of any canonical column could not be coerced to its dtype.
    Raises :class:`BarsSchemaError` naming the missing column when one is absent.
    """
    missing = [c for c in REQUIRED_BAR_COLUMNS if c not in raw.columns]
    if missing:
        raise BarsSchemaError(f"provider {provider!r}: bars lack required column(s) {missing}")
    if "spread_bps" not in raw.columns:
        raw = raw.with_columns(pl.lit(None, dtype=pl.Float64).alias("spread_bps"))
    exprs: list[pl.Expr] = []
    failed: list[pl.Expr] = []
    for name, dtype in BARS_SCHEMA.items():
        source = raw.schema[name]
        coerced = _coerce(name, dtype, source)
        exprs.append(coerced.alias(name))
        failed.append(pl.col(name).is_not_null() & coerced.is_null())
    return raw.select(
        *exprs,
        pl.lit(provider, dtype=pl.String).alias("provider"),
        pl.any_horizontal(failed).alias("cast_failed"),
    )
