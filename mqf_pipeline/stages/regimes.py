"""Regimes over the lake: the walk-forward filtered HMM for a set of sessions.

The walk-forward schedule is anchored at the first session stored in the lake, and every
refit uses only sessions strictly before it, so a session's regime is the same whether it is
materialized alone or in a backfill, and never depends on later data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

import polars as pl

from mqf_pipeline.regimes.features import market_features
from mqf_pipeline.regimes.mapping import regime_history
from mqf_pipeline.regimes.model import RegimeModel
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput, split_by_day
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.storage.lake import Lake


def regimes_for_dates(
    lake: Lake, dates: Sequence[dt.date], *, refit_every: int, min_train: int, random_state: int
) -> pl.DataFrame:
    """regime_history rows for ``dates`` (dates before the first refit get none)."""
    stored = lake.partitions("price_history")
    if not stored:
        raise ValueError("price_history has no partitions in the lake: ingest before computing regimes")
    first, last = dt.date.fromisoformat(stored[0]), max(dates)
    bars = usable_bars(lake, first, last).select("date", "symbol", "adjusted_close")
    macro = lake.read_range("macro_series", first, last).select("date", "series_id", "value")
    feats = market_features(bars, macro)
    model = RegimeModel(random_state=random_state)  # the prototype: each refit fits a clone of it
    hist = regime_history(bars, macro, features=feats, model=model, refit_every=refit_every, min_train=min_train)
    return hist.filter(pl.col("date").is_in(list(dates)))


class RegimeStage(Stage):
    """Market regime per session: the walk-forward filtered HMM (module docstring)."""

    NAME = "regimes"
    READS = ("price_history", "data_quality", "macro_series")
    WRITES = ("regime_history",)
    ASSET_KEYS: ClassVar[dict[str, str]] = {"regime_history": "regime"}
    CODE_VERSION = "1"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> dict[dt.date, pl.DataFrame]:
        cfg = ctx.settings.signals
        rows = regimes_for_dates(
            ctx.lake,
            days,
            refit_every=cfg.regime_refit_sessions,
            min_train=cfg.regime_min_train_sessions,
            random_state=cfg.regime_random_state,
        )
        return split_by_day(rows)

    def step(self, day: dt.date, inputs: dict[dt.date, pl.DataFrame], carried: None, ctx: RunContext) -> StepOutput:
        rows = inputs.get(day)
        return StepOutput(day, {"regime_history": rows} if rows is not None else {}, None, rows)
