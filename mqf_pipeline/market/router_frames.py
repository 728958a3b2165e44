"""Frame shaping for the data router: conforming provider answers, bar quality, results and failures.

Helpers of :class:`~mqf_pipeline.market.router.DataRouter` that turn what providers return into the
router's results (:class:`~mqf_pipeline.market.router_types.RoutedBars` /
:class:`~mqf_pipeline.market.router_types.RoutedFrame`) and copy them in and out of its cache.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.market.bars import BARS_SCHEMA, PRICE_COLUMNS, BarsSchemaError, canonicalize
from mqf_pipeline.market.providers.base import (
    CORPORATE_ACTIONS_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HEADLINES_SCHEMA,
    MACRO_SCHEMA,
    ProviderError,
    RequestLog,
)
from mqf_pipeline.market.router_types import Kind, RoutedBars, RoutedFrame, _Job, _Served


def _failures_frame(unit_col: str, rows: list[dict[str, object]]) -> pl.DataFrame:
    schema = {
        unit_col: pl.String(),
        "start": pl.Date(),
        "end": pl.Date(),
        "provider_attempts": pl.List(pl.String()),
        "error": pl.String(),
    }
    return pl.DataFrame(rows, schema=schema)


def _failed_call_logs(
    provider: str, job: _Job, units: tuple[str, ...], err: ProviderError, latency: float, rows: int
) -> list[RequestLog]:
    """The request logs of a failed call: the provider's own, else one record of the whole call."""
    return err.requests or [
        RequestLog(
            provider,
            job.kind,
            units,
            job.start,
            job.end,
            err.status,
            err.http_status,
            err.attempts,
            latency,
            rows,
            str(err),
        )
    ]


def _expected_sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    try:
        return calendar.sessions(start, end)
    except ValueError:  # outside the calendar's range: weekdays are the best guess
        return [d.date() for d in pd.bdate_range(start, end)]


def bars_quality(raw: pl.DataFrame, provider: str, symbols: Sequence[str], start: dt.date, end: dt.date) -> float:
    """Fraction of the requested (symbol, session) pairs present with finite positive prices."""
    sessions = _expected_sessions(start, end)
    if not sessions or not symbols:
        return 1.0
    if raw.is_empty():
        return 0.0
    canon = canonicalize(raw, provider)
    good = pl.all_horizontal([pl.col(c).is_finite() & (pl.col(c) > 0) for c in PRICE_COLUMNS])
    ok = (
        canon.filter(good.fill_null(False) & pl.col("date").is_in(sessions) & pl.col("symbol").is_in(list(symbols)))
        .select("symbol", "date")
        .unique()
        .height
    )
    return ok / (len(sessions) * len(symbols))


def _shape_bars(
    provider: str,
    raw: pl.DataFrame,
    units: tuple[str, ...],
    start: dt.date,
    end: dt.date,
    *,
    logs: list[RequestLog],
) -> _Served:
    """Bars of ``units`` with the canonical columns present plus ``provider``, and their quality."""
    if "symbol" not in raw.columns:
        raise BarsSchemaError(f"provider {provider!r}: bars lack required column(s) ['symbol']")
    raw = raw.filter(pl.col("symbol").cast(pl.String).is_in(list(units)))
    cols = [c for c in BARS_SCHEMA if c in raw.columns]
    raw = raw.select(*cols, pl.lit(provider, dtype=pl.String).alias("provider"))
    quality = bars_quality(raw.drop("provider"), provider, units, start, end)  # raises on a bad schema
    served = set(raw.get_column("symbol").cast(pl.String).unique().to_list())
    return _Served(raw, served, logs, quality)


def _assemble(
    kind: Kind, frames: list[pl.DataFrame], logs: list[RequestLog], failures: pl.DataFrame
) -> RoutedBars | RoutedFrame:
    if kind == "bars":
        empty = pl.DataFrame(schema={**BARS_SCHEMA, "provider": pl.String()})
        raw = pl.concat(frames, how="diagonal_relaxed") if frames else empty
        return RoutedBars(raw=raw, requests=logs, failures=failures)
    schema = {
        "corporate_actions": CORPORATE_ACTIONS_SCHEMA,
        "fundamentals": FUNDAMENTALS_SCHEMA,
        "headlines": HEADLINES_SCHEMA,
        "macro": MACRO_SCHEMA,
    }[kind]
    data = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)
    return RoutedFrame(data=data, requests=logs, failures=failures)


def _conform(
    df: pl.DataFrame,
    schema: dict[str, pl.DataType],
    provider: str,
    *,
    units: tuple[str, ...],
    start: dt.date,
    end: dt.date,
) -> pl.DataFrame:
    """``df`` with ``schema``'s columns and dtypes; ``provider`` filled in where absent."""
    if "provider" not in df.columns:
        df = df.with_columns(pl.lit(provider, dtype=pl.String).alias("provider"))
    missing = [c for c in schema if c not in df.columns]
    if missing:
        reason = f"returned a frame without column(s) {missing}"
        raise ProviderError(provider, units, reason, retryable=False, start=start, end=end)
    return df.select([pl.col(c).cast(t) for c, t in schema.items()])


def _rows(r: RoutedBars | RoutedFrame) -> int:
    return r.raw.height if isinstance(r, RoutedBars) else r.data.height


def _copy_result(r: RoutedBars | RoutedFrame) -> RoutedBars | RoutedFrame:
    """A cache-hit copy: same rows, no requests (none were made)."""
    if isinstance(r, RoutedBars):
        return RoutedBars(r.raw.clone(), [], r.failures.clone(), cache_hit=True)
    return RoutedFrame(r.data.clone(), [], r.failures.clone(), cache_hit=True)
