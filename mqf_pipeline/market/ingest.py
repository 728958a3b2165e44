"""Ingestion: raw provider records to price_history rows, archived and flagged.

Pure functions over polars frames; the Dagster asset only wires them to the router and lake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl

from mqf_pipeline.governance.quality import dedupe_bars, with_row_flags
from mqf_pipeline.market.bars import canonicalize
from mqf_pipeline.market.providers.base import BarsRequest
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.storage.archive import RawArchive, records_payload
from mqf_pipeline.storage.lake import WriteResult
from mqf_pipeline.storage.schema import table_spec


@dataclass
class PreparedBars:
    """price_history rows plus what happened on the way."""

    rows: pl.DataFrame
    raw_hashes: dict[tuple[str, dt.date], str] = field(default_factory=dict)  # (provider, session) -> sha256
    n_received: int = 0
    n_undated: int = 0  # rows whose date could not be read: archived, not stored as bars


def prepare_bars(raw: pl.DataFrame, archive: RawArchive, now: dt.datetime, fallback_session: dt.date) -> PreparedBars:
    """Canonicalize raw records (with a ``provider`` column), archive them per (provider, session),
    drop duplicate keys (counting them) and set row-level validation flags.

    Rows are archived before anything is dropped; rows with an unreadable date are archived
    under ``fallback_session`` and counted in ``n_undated``.
    """
    columns = list(table_spec("price_history").columns)
    if raw.height == 0:
        return PreparedBars(rows=pl.DataFrame(schema=table_spec("price_history").columns))
    parts: list[pl.DataFrame] = []
    hashes: dict[tuple[str, dt.date], str] = {}
    n_undated = 0
    for (provider,), group in raw.group_by("provider", maintain_order=True):
        records = group.drop("provider")
        canon = canonicalize(records, str(provider))
        session = canon.get_column("date")
        n_undated += session.null_count()
        keyed = records.with_columns(session.fill_null(fallback_session).alias("__session"))
        for (day,), day_records in keyed.group_by("__session", maintain_order=True):
            digest = archive.store(str(provider), day, records_payload(day_records.drop("__session")))
            hashes[(str(provider), day)] = digest
        parts.append(canon)
    canon_all = pl.concat(parts, how="vertical")
    hash_frame = pl.DataFrame(
        {
            "provider": [p for p, _ in hashes],
            "date": [d for _, d in hashes],
            "raw_hash": list(hashes.values()),
        },
        schema={"provider": pl.String, "date": pl.Date, "raw_hash": pl.String},
    )
    rows = (
        with_row_flags(dedupe_bars(canon_all))
        .join(hash_frame, on=["provider", "date"], how="left")
        .with_columns(pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("ingestion_timestamp"))
        .select(columns)
    )
    return PreparedBars(rows=rows, raw_hashes=hashes, n_received=raw.height, n_undated=n_undated)


def audit_rows(
    days: Sequence[dt.date],
    run_id: str,
    bars: pl.DataFrame,
    n_expected: int,
    raw_hashes: dict[tuple[str, dt.date], str],
    written: Sequence[WriteResult],
    request_stats: dict[str, float],
    now: dt.datetime,
) -> pl.DataFrame:
    """One ingestion_audit row per session; request counters go on the window's first session."""
    per_day = bars.group_by("date").agg(
        n_rows=pl.len(),
        n_symbols=pl.col("symbol").n_unique(),
        n_duplicates=pl.col("n_duplicates").sum().cast(pl.Int64),
        n_cast_failed=pl.col("validation_flags").str.contains('"WRONG_TYPE"', literal=True).sum().cast(pl.Int64),
        providers=pl.col("provider").unique().sort(),
    )
    hashes: dict[dt.date, list[str]] = {}
    for (_provider, day), digest in raw_hashes.items():
        hashes.setdefault(day, []).append(digest)
    first = min(days)
    frame = pl.DataFrame(
        {
            "date": list(days),
            "content_hash": [w.content_hash for w in written],
            "raw_hashes": [json.dumps(sorted(hashes.get(d, []))) for d in days],
            "n_requests": [int(request_stats.get("requests", 0)) if d == first else 0 for d in days],
            "n_retries": [int(request_stats.get("retries", 0)) if d == first else 0 for d in days],
            "n_fallbacks": [int(request_stats.get("fallbacks", 0)) if d == first else 0 for d in days],
            "latency_ms": [float(request_stats.get("latency_ms", 0.0)) if d == first else 0.0 for d in days],
        },
        schema_overrides={"date": pl.Date, "n_requests": pl.Int64, "n_retries": pl.Int64, "n_fallbacks": pl.Int64},
    ).join(per_day, on="date", how="left")
    n_rows = pl.col("n_rows").fill_null(0).cast(pl.Int64)
    missing = (pl.lit(n_expected) - pl.col("n_symbols").fill_null(0)).clip(lower_bound=0).cast(pl.Int64)
    return frame.select(
        "date",
        pl.lit(run_id).alias("run_id"),
        pl.format(
            "[{}]", pl.col("providers").fill_null([]).list.eval(pl.format('"{}"', pl.element())).list.join(",")
        ).alias("providers"),
        pl.lit(n_expected, dtype=pl.Int64).alias("n_symbols_expected"),
        n_rows.alias("n_rows"),
        missing.alias("n_symbols_missing"),
        pl.col("n_duplicates").fill_null(0).alias("n_duplicates"),
        pl.col("n_cast_failed").fill_null(0).alias("n_cast_failed"),
        "n_requests",
        "n_retries",
        "n_fallbacks",
        "latency_ms",
        "raw_hashes",
        "content_hash",
        pl.when(n_rows == 0)
        .then(pl.lit("EMPTY"))
        .when(missing > 0)
        .then(pl.lit("PARTIAL"))
        .otherwise(pl.lit("OK"))
        .alias("status"),
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("ingestion_timestamp"),
    )


# ---------------------------------------------------------------------------- window ingestion
ProgressFn = Callable[[str], None]


@dataclass
class FetchedWindow:
    """What the providers returned for one window of sessions, as rows of the tables ingest writes."""

    price_history: pl.DataFrame  # bars dated on the requested sessions
    corporate_actions: pl.DataFrame
    backfill_failures: pl.DataFrame
    fundamentals: pl.DataFrame  # partitioned by report_date
    news_headlines: pl.DataFrame
    raw_hashes: dict[tuple[str, dt.date], str]
    n_symbols: int
    n_failed_symbols: int
    n_off_calendar: int
    providers: list[str]
    request_stats: dict[str, float]


def _request_stats(requests: Sequence[object]) -> dict[str, float]:
    providers = [getattr(r, "provider", "") for r in requests]
    return {
        "requests": float(len(requests)),
        "retries": float(sum(max(int(getattr(r, "attempts", 1)) - 1, 0) for r in requests)),
        "fallbacks": float(max(len(dict.fromkeys(providers)) - 1, 0)),
        "latency_ms": float(sum(float(getattr(r, "latency_ms", 0.0)) for r in requests)),
        "rate_limited": float(sum(getattr(r, "status", "") == "rate_limited" for r in requests)),
        "timeouts": float(sum(getattr(r, "status", "") == "timeout" for r in requests)),
    }


def _failure_rows(failures: pl.DataFrame, days: Sequence[dt.date], run_id: str, now: dt.datetime) -> pl.DataFrame:
    """Expand router failures (symbol, start, end, provider_attempts, error) to one row per session."""
    schema = table_spec("backfill_failures").columns
    if failures.height == 0:
        return pl.DataFrame(schema=schema)
    day_frame = pl.DataFrame({"date": list(days)}, schema={"date": pl.Date})
    return (
        failures.join(day_frame, how="cross")
        .filter((pl.col("date") >= pl.col("start")) & (pl.col("date") <= pl.col("end")))
        .select(
            "date",
            "symbol",
            pl.col("provider_attempts").list.join(", ").alias("providers_tried"),
            pl.col("error").cast(pl.String),
            pl.lit(run_id).alias("run_id"),
            pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("created_at"),
        )
        .unique(subset=["date", "symbol"], keep="first", maintain_order=True)
    )


def _archive_actions(actions: pl.DataFrame, archive: RawArchive) -> pl.DataFrame:
    """Archive corporate actions per (provider, ex-date) and attach their raw hash."""
    schema = table_spec("corporate_actions").columns
    if actions.height == 0:
        return pl.DataFrame(schema=schema)
    parts = []
    for (provider, day), group in actions.group_by("provider", "date", maintain_order=True):
        digest = archive.store(f"{provider}/corporate_actions", day, records_payload(group))
        parts.append(group.with_columns(pl.lit(digest).alias("raw_hash")))
    return (
        pl.concat(parts)
        .with_columns(pl.col("value").cast(pl.Float64))
        .unique(subset=["date", "symbol", "action_type"], keep="first", maintain_order=True)
        .select(list(schema))
    )


def roll_to_sessions(frame: pl.DataFrame, column: str, sessions: Sequence[dt.date]) -> pl.DataFrame:
    """Move ``column`` dates that are not sessions to the next session in ``sessions`` (news on a
    Saturday is first tradable on Monday); rows after the last session are dropped."""
    if frame.height == 0:
        return frame
    grid = pl.DataFrame({"__session": sorted(sessions)}, schema={"__session": pl.Date})
    return (
        frame.sort(column)
        .join_asof(grid, left_on=column, right_on="__session", strategy="forward")
        .filter(pl.col("__session").is_not_null())
        .with_columns(pl.col("__session").alias(column))
        .drop("__session")
    )


def _archive_events(
    frame: pl.DataFrame, archive: RawArchive, kind: str, column: str, sessions: Sequence[dt.date]
) -> pl.DataFrame:
    """Archive point-in-time events (fundamentals, headlines) per (provider, session) and attach raw_hash."""
    rolled = roll_to_sessions(frame, column, sessions)
    parts = []
    for (provider, day), group in rolled.group_by("provider", column, maintain_order=True):
        digest = archive.store(f"{provider}/{kind}", day, records_payload(group))
        parts.append(group.with_columns(pl.lit(digest).alias("raw_hash")))
    return pl.concat(parts) if parts else rolled.with_columns(pl.lit(None, pl.String).alias("raw_hash"))


def fundamentals_rows(routed: pl.DataFrame, archive: RawArchive, sessions: Sequence[dt.date]) -> pl.DataFrame:
    """fundamentals table rows, by the session each report is first known."""
    rows = _archive_events(routed, archive, "fundamentals", "report_date", sessions)
    cols = list(table_spec("fundamentals").columns)
    if rows.height == 0:
        return pl.DataFrame(schema=table_spec("fundamentals").columns)
    return rows.unique(subset=["symbol", "fiscal_period_end", "report_date"], keep="first", maintain_order=True).select(
        cols
    )


def headline_rows(routed: pl.DataFrame, archive: RawArchive, sessions: Sequence[dt.date]) -> pl.DataFrame:
    """news_headlines rows, by the session each headline is first known, with a stable id."""
    if routed.height == 0:
        return pl.DataFrame(schema=table_spec("news_headlines").columns)
    with_id = routed.with_columns(
        pl.concat_str([pl.col("symbol"), pl.col("date").cast(pl.String), pl.col("headline")], separator="|")
        .map_elements(lambda v: hashlib.sha256(v.encode()).hexdigest()[:16], return_dtype=pl.String)
        .alias("headline_id")
    )
    rows = _archive_events(with_id, archive, "headlines", "date", sessions)
    return rows.unique(subset=["date", "symbol", "headline_id"], keep="first", maintain_order=True).select(
        list(table_spec("news_headlines").columns)
    )


def fetch_bars_window(
    router: DataRouter,
    archive: RawArchive,
    symbols: Sequence[str],
    days: Sequence[dt.date],
    run_id: str,
    now: dt.datetime,
    progress: ProgressFn = lambda _msg: None,
) -> FetchedWindow:
    """Fetch bars, corporate actions, fundamentals and headlines for ``symbols`` over the sessions ``days``
    through the router, archiving every raw record. Every requested symbol-session ends either as a bar
    or as a backfill_failures row.
    """
    days = sorted(days)
    request = BarsRequest(symbols=tuple(symbols), start=days[0], end=days[-1])
    progress(f"fetching bars: {len(symbols)} symbols x {len(days)} sessions ({days[0]} .. {days[-1]})")
    routed = router.get_bars(request)
    prepared = prepare_bars(routed.raw, archive, now, days[-1])
    day_set = set(days)
    in_calendar = prepared.rows.filter(pl.col("date").is_in(list(day_set)))
    n_off = prepared.rows.height - in_calendar.height
    if n_off:
        progress(f"ignored {n_off} bar(s) dated off the requested XNYS sessions")
    stats = _request_stats(routed.requests)
    progress(
        f"received {prepared.n_received} raw rows from {sorted(set(routed.raw.get_column('provider')))} "
        f"in {stats['requests']:.0f} request(s), {stats['retries']:.0f} retries"
    )
    routed_actions = router.get_corporate_actions(request)
    if routed_actions.failures.height:
        progress(f"corporate actions unavailable for {routed_actions.failures.height} symbol(s) from every provider")
    actions = _archive_actions(routed_actions.data, archive)
    return FetchedWindow(
        price_history=in_calendar,
        corporate_actions=actions.filter(pl.col("date").is_in(list(day_set))),
        backfill_failures=_failure_rows(routed.failures, days, run_id, now),
        fundamentals=fundamentals_rows(router.get_fundamentals(request).data, archive, days),
        news_headlines=headline_rows(router.get_headlines(request).data, archive, days),
        raw_hashes=prepared.raw_hashes,
        n_symbols=len(symbols),
        n_failed_symbols=routed.failures.get_column("symbol").n_unique() if routed.failures.height else 0,
        n_off_calendar=n_off,
        providers=sorted(set(routed.raw.get_column("provider"))) if routed.raw.height else [],
        request_stats=stats,
    )


@dataclass
class MacroWindow:
    """macro_series rows of a window, and the series no provider served (series -> why)."""

    rows: pl.DataFrame
    absent: dict[str, str]


def fetch_macro_window(
    router: DataRouter,
    archive: RawArchive,
    series: Sequence[str],
    days: Sequence[dt.date],
    now: dt.datetime,
) -> MacroWindow:
    """macro_series rows of ``series`` over ``days`` through the router (raw records archived).

    A series value is as of the session's date; a provider that skips a session (e.g. FRED on a
    federal holiday the exchange keeps open) leaves that series absent for the session. A series no
    provider serves (no FRED key, no macro file) is absent, never made up: ``absent`` says why, with the
    providers tried and their errors.
    """
    days = sorted(days)
    routed = router.get_macro(tuple(series), days[0], days[-1])
    absent = {
        str(r["series_id"]): f"{r['error']} (tried: {', '.join(r['provider_attempts']) or 'none'})"
        for r in routed.failures.iter_rows(named=True)
    }
    frame = routed.data
    schema = table_spec("macro_series").columns
    parts = []
    for (provider, day), group in frame.group_by("provider", "date", maintain_order=True):
        digest = archive.store(f"{provider}/macro", day, records_payload(group))
        parts.append(group.with_columns(pl.lit(digest).alias("raw_hash")))
    rows = (
        pl.concat(parts)
        .with_columns(
            pl.col("value").cast(pl.Float64),
            pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("ingestion_timestamp"),
        )
        .unique(subset=["date", "series_id"], keep="first", maintain_order=True)
        .select(list(schema))
        if parts
        else pl.DataFrame(schema=schema)
    )
    return MacroWindow(rows.filter(pl.col("date").is_in(list(days))), absent)
