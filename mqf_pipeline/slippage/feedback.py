"""Seed 002 section 5.5 feedback actions, as a pure function of the feedback history.

A symbol *triggers* on session d when its slippage that session (``FeedbackParams.fills.target``, bps, the
notional-weighted mean over its usable fills of d: weights quantity x arrival price) exceeds
``threshold_bps``. The action then holds for the ``hold_sessions`` sessions after d (``from_date`` = the
first session after d, ``until_date`` = the ``hold_sessions``-th): the symbol's signal score x
``score_multiplier`` (0.8), its Kelly size x ``kelly_multiplier`` (0.7), preferred schedule POV if the
slippage exceeded ``pov_above_bps``, else TWAP. Several triggers in force at once do not compound: the
latest one is the symbol's action (its window and schedule), so one row per symbol.

``sessions`` is the trading calendar (sorted or not) the windows are counted in; it must cover the
windows asked about.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from mqf_pipeline.slippage.data import fills_frame
from mqf_pipeline.slippage.params import FeedbackParams, FillSpec

#: Columns of :func:`actions_in_force` and :func:`triggers`.
ACTION_COLUMNS: tuple[str, ...] = (
    "symbol",
    "from_date",
    "until_date",
    "score_multiplier",
    "kelly_multiplier",
    "preferred_strategy",
    "reason",
    "trigger_date",
    "slippage_bps",
)
_ACTION_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "from_date": pl.Date(),
    "until_date": pl.Date(),
    "score_multiplier": pl.Float64(),
    "kelly_multiplier": pl.Float64(),
    "preferred_strategy": pl.String(),
    "reason": pl.String(),
    "trigger_date": pl.Date(),
    "slippage_bps": pl.Float64(),
}


def session_slippage(feedback: pl.DataFrame, until: dt.date, spec: FillSpec) -> pl.DataFrame:
    """Per (date, symbol) up to ``until``: ``slippage_bps`` (notional-weighted mean of the usable fills) and
    ``n_fills``."""
    w = pl.col("weight")
    return (
        fills_frame(feedback, spec, until=until)
        .group_by("date", "symbol")
        .agg(((pl.col("y") * w).sum() / w.sum()).alias("slippage_bps"), pl.len().alias("n_fills"))
        .sort("date", "symbol")
    )


def _calendar(sessions: Sequence[dt.date]) -> np.ndarray:
    cal = np.unique(np.array(list(sessions), dtype="datetime64[D]"))
    if cal.size == 0:
        raise ValueError("sessions is empty: the feedback windows are counted in trading sessions")
    return cal


def triggers(
    feedback: pl.DataFrame,
    until: dt.date,
    sessions: Sequence[dt.date],
    params: FeedbackParams,
    *,
    since: dt.date | None = None,
) -> pl.DataFrame:
    """Every trigger dated in [``since``, ``until``] (all up to ``until`` when ``since`` is None), with its
    action and window (:data:`ACTION_COLUMNS`), by trigger date and symbol. The calendar must cover the
    trigger dates and the windows after them."""
    hits = session_slippage(feedback, until, params.fills).filter(pl.col("slippage_bps") > params.threshold_bps)
    if since is not None:
        hits = hits.filter(pl.col("date") >= since)
    if hits.height == 0:
        return pl.DataFrame(schema=_ACTION_SCHEMA)
    cal = _calendar(sessions)
    days = hits["date"].to_numpy().astype("datetime64[D]")
    start = np.searchsorted(cal, days, side="right")
    end = start + params.hold_sessions - 1
    if days.min() < cal[0] or end.max() >= len(cal):
        raise ValueError(
            f"sessions ({cal[0]} to {cal[-1]}) must cover the triggers from {days.min()} and "
            f"{params.hold_sessions} sessions after {days.max()}"
        )
    pov = pl.col("slippage_bps") > params.pov_above_bps
    out = hits.with_columns(
        pl.Series("from_date", cal[start]).cast(pl.Date),
        pl.Series("until_date", cal[end]).cast(pl.Date),
        pl.lit(params.score_multiplier).alias("score_multiplier"),
        pl.lit(params.kelly_multiplier).alias("kelly_multiplier"),
        pl.when(pov).then(pl.lit("POV")).otherwise(pl.lit("TWAP")).alias("preferred_strategy"),
        pl.format(
            "slippage {} bps > {} bps on {} ({} fills){}",
            pl.col("slippage_bps").round(1),
            pl.lit(params.threshold_bps),
            pl.col("date"),
            pl.col("n_fills"),
            pl.when(pov).then(pl.lit(f"; > {params.pov_above_bps:g} bps: POV")).otherwise(pl.lit("")),
        ).alias("reason"),
        pl.col("date").alias("trigger_date"),
    )
    return out.select(ACTION_COLUMNS).cast(_ACTION_SCHEMA).sort("trigger_date", "symbol")


def actions_in_force(
    feedback: pl.DataFrame, as_of: dt.date, sessions: Sequence[dt.date], params: FeedbackParams | None = None
) -> pl.DataFrame:
    """The actions in force on the first session after ``as_of``, from the fills dated on or before
    ``as_of`` only: one row per symbol (its latest trigger in force), :data:`ACTION_COLUMNS`, by symbol.

    ``sessions`` must hold the ``hold_sessions`` sessions up to ``as_of`` (or start before every trigger)
    and the windows after them."""
    params = params if params is not None else FeedbackParams()
    cal = _calendar(sessions)
    i_next = int(np.searchsorted(cal, np.datetime64(as_of, "D"), side="right"))
    if i_next >= len(cal):
        raise ValueError(f"sessions ({cal[0]} to {cal[-1]}) must hold the session after {as_of}")
    # triggers on the hold_sessions sessions up to as_of are in force at cal[i_next]; a shorter calendar is
    # fine while no trigger predates it (triggers() checks)
    since = cal[i_next - params.hold_sessions].astype(dt.date) if i_next >= params.hold_sessions else None
    fired = triggers(feedback, as_of, sessions, params, since=since)
    return (
        fired.sort("trigger_date").group_by("symbol", maintain_order=True).last().select(ACTION_COLUMNS).sort("symbol")
    )
