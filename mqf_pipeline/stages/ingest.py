"""Ingest stages: provider data into the lake (bars, corporate actions, fundamentals, headlines, the
ingestion audit and backfill failures; macro series).

Their inputs are the providers (through the router), not the lake: ``load_inputs`` fetches the whole
window at once (one request per provider and symbol batch), ``step`` selects a session's rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

import polars as pl

from mqf_pipeline.market.ingest import FetchedWindow, audit_rows, fetch_bars_window, fetch_macro_window
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput, Written, concat_rows, split_by_day
from mqf_pipeline.storage.archive import RawArchive

#: Macro inputs per session: a VIX-like index (points) and the short rate (decimal, annual).
MACRO_SERIES = ("VIX", "SHORT_RATE")


class IngestStage(Stage):
    """Bars and the provider tables fetched with them, for the universe's symbols."""

    NAME = "ingest"
    READS = ()
    WRITES = (
        "price_history",
        "corporate_actions",
        "backfill_failures",
        "fundamentals",
        "news_headlines",
        "ingestion_audit",
    )
    CODE_VERSION = "1"
    PARTITION_BY: ClassVar[dict[str, str]] = {"fundamentals": "report_date"}
    #: Tables a step selects from the fetched window (the audit is made at write time: it records the
    #: content hashes of the price_history partitions written).
    _SELECTED = ("price_history", "corporate_actions", "backfill_failures", "news_headlines")

    def __init__(self, router: DataRouter, archive: RawArchive) -> None:
        self.router = router
        self.archive = archive

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> tuple[FetchedWindow, dict]:
        symbols = ctx.universe.get_column("symbol").to_list()
        fetched = fetch_bars_window(self.router, self.archive, symbols, days, ctx.run_id, ctx.now, ctx.log.info)
        by_day = {t: split_by_day(getattr(fetched, t)) for t in self._SELECTED}
        by_day["fundamentals"] = split_by_day(fetched.fundamentals, "report_date")
        return fetched, by_day

    def step(self, day: dt.date, inputs: tuple[FetchedWindow, dict], carried: None, ctx: RunContext) -> StepOutput:
        fetched, by_day = inputs
        rows = {t: part[day] for t, part in by_day.items() if day in part}
        return StepOutput(day, rows, None, fetched)

    def write(self, ctx: RunContext, steps: Sequence[StepOutput], days: Sequence[dt.date]) -> Written:
        """The fetched tables, then one ingestion_audit row per session naming what was written."""
        fetched: FetchedWindow = steps[0].detail
        written = {t: self.write_table(ctx, t, concat_rows(steps, t), days) for t in self.WRITES[:-1]}
        bars = concat_rows(steps, "price_history")
        ctx.log.info(
            f"wrote price_history ({bars.height} bars), fundamentals ({fetched.fundamentals.height} reports), "
            f"news_headlines ({fetched.news_headlines.height}), corporate_actions "
            f"({fetched.corporate_actions.height}), backfill_failures ({fetched.backfill_failures.height}) "
            f"for {len(days)} sessions"
        )
        audit = audit_rows(
            sorted(days),
            ctx.run_id,
            fetched.price_history,
            fetched.n_symbols,
            fetched.raw_hashes,
            written["price_history"],
            fetched.request_stats,
            ctx.now,
        )
        written["ingestion_audit"] = self.write_table(ctx, "ingestion_audit", audit, days)
        return written


class MacroStage(Stage):
    """Macro series per session (a series a provider skips on a session is absent that session)."""

    NAME = "macro"
    READS = ()
    WRITES = ("macro_series",)
    CODE_VERSION = "1"

    def __init__(self, router: DataRouter, archive: RawArchive, series: Sequence[str] = MACRO_SERIES) -> None:
        self.router = router
        self.archive = archive
        self.series = tuple(series)

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> tuple[dict[dt.date, pl.DataFrame], dict]:
        window = fetch_macro_window(self.router, self.archive, self.series, days, ctx.now)
        for series, why in window.absent.items():
            ctx.log.warning(f"macro series {series} is absent for {days[0]}..{days[-1]}: {why}")
        return split_by_day(window.rows), window.absent

    def step(
        self, day: dt.date, inputs: tuple[dict[dt.date, pl.DataFrame], dict], carried: None, ctx: RunContext
    ) -> StepOutput:
        by_day, absent = inputs
        return StepOutput(day, {"macro_series": by_day[day]} if day in by_day else {}, None, {"absent": absent})
