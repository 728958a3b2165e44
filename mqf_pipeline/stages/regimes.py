"""Regimes over the lake: the walk-forward filtered HMM for a set of sessions.

The walk-forward schedule is anchored at the first session stored in the lake, and every
refit uses only sessions strictly before it, so a session's regime is the same whether it is
materialized alone or in a backfill, and never depends on later data.

The HMM observations are the ones the universe can give (:func:`supported_observations`): with fewer
than two symbols with usable bars there is no cross-section, so the model is fitted on the index return
alone. A run says which observations it used, on how many symbols, and warns below
:data:`~mqf_pipeline.regimes.features.SMALL_UNIVERSE` symbols.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from mqf_pipeline.regimes.features import (
    DEFAULT_OBSERVATIONS,
    MIN_CROSS_SECTION,
    SMALL_UNIVERSE,
    market_features,
    small_universe_warning,
    supported_observations,
    universe_size,
)
from mqf_pipeline.regimes.mapping import regime_history
from mqf_pipeline.regimes.model import RegimeModel
from mqf_pipeline.stages.base import RunContext, Stage, StageLog, StepOutput, split_by_day
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.storage.lake import Lake


@dataclass(frozen=True)
class RegimeRun:
    """The regime rows of a run, the HMM observations they were fitted on and the universe's size."""

    rows: pl.DataFrame
    observations: tuple[str, ...]
    universe_size: int
    configured: tuple[str, ...] = DEFAULT_OBSERVATIONS

    @property
    def small_universe(self) -> bool:
        return self.universe_size < SMALL_UNIVERSE

    def metadata(self) -> dict[str, object]:
        """``observations``, ``universe_size`` and ``small_universe`` (the asset's metadata)."""
        return {
            "observations": ", ".join(self.observations),
            "universe_size": self.universe_size,
            "small_universe": self.small_universe,
        }

    def report(self, log: StageLog) -> None:
        """Once per run: a WARNING below :data:`SMALL_UNIVERSE` symbols, and the observations used (a
        WARNING when the universe cannot give the configured ones, INFO otherwise)."""
        note = small_universe_warning(self.universe_size)
        if note:
            log.warning(f"regimes: {note}")
        line = f"regimes: {self.universe_size} symbol(s) with usable bars, HMM observations {self.observations}"
        if self.observations != self.configured:
            dropped = sorted(set(self.configured) - set(self.observations))
            log.warning(
                f"{line} instead of {self.configured}: {', '.join(dropped)} need(s) >= {MIN_CROSS_SECTION} symbols "
                "per session"
            )
        else:
            log.info(line)


@dataclass(frozen=True)
class RegimeDetail:
    """A session's regime row (None before the first refit) and the run's observations and universe size."""

    rows: pl.DataFrame | None
    run: RegimeRun


def regimes_for_dates(
    lake: Lake,
    dates: Sequence[dt.date],
    *,
    refit_every: int,
    min_train: int,
    random_state: int,
    observations: Sequence[str] = DEFAULT_OBSERVATIONS,
) -> RegimeRun:
    """regime_history rows for ``dates`` (dates before the first refit get none), fitted on the
    ``observations`` the universe supports (:func:`supported_observations`)."""
    stored = lake.partitions("price_history")
    if not stored:
        raise ValueError("price_history has no partitions in the lake: ingest before computing regimes")
    first, last = dt.date.fromisoformat(stored[0]), max(dates)
    bars = usable_bars(lake, first, last).select("date", "symbol", "adjusted_close")
    macro = lake.read_range("macro_series", first, last).select("date", "series_id", "value")
    n_symbols = universe_size(bars)
    used = supported_observations(n_symbols, observations)
    feats = market_features(bars, macro)
    model = RegimeModel(random_state=random_state)  # the prototype: each refit fits a clone of it
    hist = regime_history(
        bars, macro, features=feats, model=model, refit_every=refit_every, min_train=min_train, observations=used
    )
    rows = hist.filter(pl.col("date").is_in(list(dates)))
    return RegimeRun(rows, used, n_symbols, tuple(observations))


class RegimeStage(Stage):
    """Market regime per session: the walk-forward filtered HMM (module docstring)."""

    NAME = "regimes"
    READS = ("price_history", "data_quality", "macro_series")
    WRITES = ("regime_history",)
    ASSET_KEYS: ClassVar[dict[str, str]] = {"regime_history": "regime"}
    CODE_VERSION = "1"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> tuple[dict[dt.date, pl.DataFrame], RegimeRun]:
        cfg = ctx.settings.signals
        run = regimes_for_dates(
            ctx.lake,
            days,
            refit_every=cfg.regime_refit_sessions,
            min_train=cfg.regime_min_train_sessions,
            random_state=cfg.regime_random_state,
        )
        run.report(ctx.log)
        return split_by_day(run.rows), run

    def step(
        self, day: dt.date, inputs: tuple[dict[dt.date, pl.DataFrame], RegimeRun], carried: None, ctx: RunContext
    ) -> StepOutput:
        by_day, run = inputs
        rows = by_day.get(day)
        return StepOutput(day, {"regime_history": rows} if rows is not None else {}, None, RegimeDetail(rows, run))
