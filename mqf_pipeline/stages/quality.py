"""Window-level quality and eligibility over the lake: what the data_quality and
trading_eligibility assets compute, without Dagster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.governance.eligibility import trading_eligibility
from mqf_pipeline.governance.quality import QualityThresholds, rejection_summary, score_quality
from mqf_pipeline.storage.lake import Lake, WriteResult


@dataclass
class QualityResult:
    written: list[WriteResult]
    summary: pl.DataFrame  # date, n_symbols, n_rejected, rejection_rate
    failing: pl.DataFrame  # summary rows over the limit
    mean_score: float


def _lookback(th: QualityThresholds) -> int:
    return max(th.window_sessions, th.volume_ref_bars, th.spike_ref_bars) + 1


def score_window(
    lake: Lake, universe: Sequence[str], days: Sequence[dt.date], th: QualityThresholds, now: dt.datetime
) -> QualityResult:
    """Score ``days`` from price_history in the lake and write data_quality partitions."""
    days = sorted(days)
    stored = lake.partitions("price_history")
    if not stored:
        raise ValueError("price_history has no partitions in the lake: ingest before scoring quality")
    data_start = dt.date.fromisoformat(stored[0])
    if days[0] < data_start:
        raise ValueError(f"cannot score {days[0]}: price_history starts at {data_start}")
    first = max(calendar.session_offset(days[0], -_lookback(th)), data_start)
    sessions = calendar.sessions(first, days[-1])
    history = lake.read_range("price_history", first, days[-1])
    scored = score_quality(history, universe, sessions, days, th)
    written = lake.write_many("data_quality", scored, days, now=now)
    summary = rejection_summary(scored)
    failing = summary.filter(pl.col("rejection_rate") > th.max_rejection_rate)
    mean_score = float(scored.get_column("quality_score").mean() or 0.0)
    return QualityResult(written=written, summary=summary, failing=failing, mean_score=mean_score)


@dataclass
class EligibilityResult:
    written: list[WriteResult]
    n_eligible_last: int
    n_symbols_last: int


def eligibility_window(
    lake: Lake, days: Sequence[dt.date], min_history_rows: int, now: dt.datetime
) -> EligibilityResult:
    """trading_eligibility partitions for ``days`` from data_quality and price_history keys."""
    days = sorted(days)
    quality = lake.read("data_quality", days)
    missing = sorted(set(days) - set(quality.get_column("date").unique().to_list()))
    if missing:
        raise ValueError(f"data_quality is missing for {len(missing)} session(s), e.g. {missing[:3]}")
    keys = [p for p in lake.partitions("price_history") if p <= days[-1].isoformat()]
    bar_keys = lake.scan("price_history", keys).select("date", "symbol").collect()
    elig = trading_eligibility(quality, bar_keys, min_history_rows)
    written = lake.write_many("trading_eligibility", elig, days, now=now)
    last = elig.filter(pl.col("date") == days[-1])
    return EligibilityResult(written, int(last.get_column("eligible").sum()), last.height)
