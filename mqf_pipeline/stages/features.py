"""Features over the lake, anchored in fixed blocks of sessions so every rerun gives identical rows.

Recursive indicators (EMA, MACD, RSI, ATR, ADX, OBV) depend on the first bar they are computed
from. Each session belongs to a block of ``block_sessions`` consecutive XNYS sessions counted
from a fixed origin; the features of every session in a block are computed from the bars of
``warmup`` sessions before the block's first session up to the session itself. So the
features of a date are the same whether it is materialized alone or inside a long backfill,
and they use only bars at or before that date (no lookahead).

Bars the quality gate rejected (status REJECT) are left out, as if the session were missing:
a 100x print or a NaN close never reaches an indicator.

Volume stays in raw shares: restating it in today's share count would multiply each bar by the
splits after it, which inside a block reaches past the date being computed. Volume ratios
therefore jump for a few weeks after a split (prices are adjusted; OBV and volume ratios are not).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.features import FEATURE_VERSION, compute_features, to_long, warmup_sessions
from mqf_pipeline.governance.quality import REJECT
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput, split_by_day
from mqf_pipeline.storage.lake import Lake

#: Sessions are numbered from this origin; blocks never move.
BLOCK_ORIGIN = dt.date(2000, 1, 3)
DEFAULT_BLOCK_SESSIONS = 63


@lru_cache(maxsize=1)
def _sessions() -> tuple[tuple[dt.date, ...], dict[dt.date, int]]:
    """Every session from the origin to the calendar's end, and each one's position."""
    days = tuple(calendar.sessions(BLOCK_ORIGIN, calendar.xnys().last_session.date()))
    return days, {d: i for i, d in enumerate(days)}


def block_start(day: dt.date, block_sessions: int) -> dt.date:
    """First session of ``day``'s block."""
    days, index = _sessions()
    if day not in index:
        raise ValueError(f"{day} is not an XNYS session on or after {BLOCK_ORIGIN}")
    return days[(index[day] // block_sessions) * block_sessions]


def usable_bars(lake: Lake, start: dt.date, end: dt.date) -> pl.DataFrame:
    """price_history rows in [start, end] minus those data_quality rejected."""
    bars = lake.read_range("price_history", start, end)
    rejected = lake.read_range("data_quality", start, end).filter(pl.col("status") == REJECT).select("date", "symbol")
    return bars.join(rejected, on=["date", "symbol"], how="anti") if rejected.height else bars


def features_for_dates(
    lake: Lake,
    dates: Sequence[dt.date],
    *,
    block_sessions: int = DEFAULT_BLOCK_SESSIONS,
    warmup: int | None = None,
    progress=lambda _m: None,
) -> pl.DataFrame:
    """Wide features (date, symbol, <feature>...) for ``dates``, block-anchored (module docstring)."""
    dates = sorted(dates)
    warmup = warmup if warmup is not None else warmup_sessions()
    blocks: dict[dt.date, list[dt.date]] = {}
    for day in dates:
        blocks.setdefault(block_start(day, block_sessions), []).append(day)
    first_needed = calendar.session_offset(min(blocks), -warmup)
    bars = usable_bars(lake, first_needed, dates[-1])
    parts = []
    for i, (start, days) in enumerate(sorted(blocks.items()), start=1):
        lo = calendar.session_offset(start, -warmup)
        window = bars.filter(pl.col("date").is_between(lo, days[-1]))
        wide = compute_features(window)
        parts.append(wide.filter(pl.col("date").is_in(days)))
        progress(f"features: block {i}/{len(blocks)} ({start} .. {days[-1]})")
    return pl.concat(parts).sort("date", "symbol") if parts else pl.DataFrame()


def feature_rows(wide: pl.DataFrame) -> pl.DataFrame:
    """Long rows for the features table."""
    return to_long(wide)


class FeaturesStage(Stage):
    """Technical indicators per symbol and session, block-anchored (module docstring)."""

    NAME = "features"
    READS = ("price_history", "data_quality")
    WRITES = ("features",)
    CODE_VERSION = f"1-{FEATURE_VERSION}"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> dict[dt.date, pl.DataFrame]:
        block = ctx.settings.signals.feature_block_sessions
        wide = features_for_dates(ctx.lake, days, block_sessions=block, progress=ctx.log.info)
        return split_by_day(wide)

    def step(self, day: dt.date, inputs: dict[dt.date, pl.DataFrame], carried: None, ctx: RunContext) -> StepOutput:
        wide = inputs.get(day, pl.DataFrame())
        return StepOutput(day, {"features": feature_rows(wide)} if wide.height else {}, None, wide)
