"""Quality and eligibility stages: the data_quality scores of each session's bars (seed 000 sections
4.2-4.3) and the symbols allowed to trade (Phase 0 history and Phase 1 quality)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.governance.eligibility import trading_eligibility
from mqf_pipeline.governance.quality import QualityThresholds, rejection_summary, score_quality
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput, concat_rows, split_by_day


def _lookback(th: QualityThresholds) -> int:
    return max(th.window_sessions, th.volume_ref_bars, th.spike_ref_bars) + 1


class QualityStage(Stage):
    """Quality score and flags per symbol and session, from the bars of a trailing window."""

    NAME = "quality"
    READS = ("price_history",)
    WRITES = ("data_quality",)
    CODE_VERSION = "1"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> dict[dt.date, pl.DataFrame]:
        lake, th = ctx.lake, ctx.settings.quality
        stored = lake.partitions("price_history")
        if not stored:
            raise ValueError("price_history has no partitions in the lake: ingest before scoring quality")
        data_start = dt.date.fromisoformat(stored[0])
        if days[0] < data_start:
            raise ValueError(f"cannot score {days[0]}: price_history starts at {data_start}")
        first = max(calendar.session_offset(days[0], -_lookback(th)), data_start)
        sessions = calendar.sessions(first, days[-1])
        history = lake.read_range("price_history", first, days[-1])
        universe = ctx.universe.get_column("symbol").to_list()
        return split_by_day(score_quality(history, universe, sessions, days, th))

    def step(self, day: dt.date, inputs: dict[dt.date, pl.DataFrame], carried: None, ctx: RunContext) -> StepOutput:
        return StepOutput(day, {"data_quality": inputs[day]} if day in inputs else {})


def quality_summary(steps: Sequence[StepOutput], th: QualityThresholds) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """(per-session rejection summary, the sessions over ``max_rejection_rate``, mean quality score)."""
    scored = concat_rows(steps, "data_quality")
    summary = rejection_summary(scored)
    failing = summary.filter(pl.col("rejection_rate") > th.max_rejection_rate)
    return summary, failing, float(scored.get_column("quality_score").mean() or 0.0)


class EligibilityStage(Stage):
    """Symbols allowed to trade: quality accepted (Phase 1) and at least ``min_history_rows`` bars (Phase 0)."""

    NAME = "eligibility"
    READS = ("data_quality", "price_history")
    WRITES = ("trading_eligibility",)
    CODE_VERSION = "1"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> dict[dt.date, pl.DataFrame]:
        lake = ctx.lake
        quality = lake.read("data_quality", days)
        missing = sorted(set(days) - set(quality.get_column("date").unique().to_list()))
        if missing:
            raise ValueError(f"data_quality is missing for {len(missing)} session(s), e.g. {missing[:3]}")
        keys = [p for p in lake.partitions("price_history") if p <= days[-1].isoformat()]
        bar_keys = lake.query("price_history", keys, lambda f: f.select("date", "symbol"))
        return split_by_day(trading_eligibility(quality, bar_keys, ctx.settings.fund.history.min_history_rows))

    def step(self, day: dt.date, inputs: dict[dt.date, pl.DataFrame], carried: None, ctx: RunContext) -> StepOutput:
        rows = inputs.get(day)
        return StepOutput(day, {"trading_eligibility": rows} if rows is not None else {}, None, rows)
