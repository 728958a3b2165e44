"""The warm-up: the fund's history before its inception, materialized once as one range.

A fund's first daily cycle needs a look-back: governance Phase 0 asks for ``min_history_rows`` bars per
symbol, the regime model for ``regime_min_train_sessions`` sessions of features, the agents for
``agent_history_sessions``. Those sessions were never the fund's cycles (it did not exist yet), so they
are not daily partitions: the warm-up runs every stage before the trading cycle
(:data:`~mqf_pipeline.stages.registry.WARM_UP_STAGES`) over the whole range, each with the one fold
(:func:`~mqf_pipeline.stages.base.materialize`), in pipeline order. The lake then holds exactly the rows
it would hold had each session been a daily partition (the stages are block-anchored and deterministic),
one file per table and session as always; the orchestrator records one materialization for the range
instead of one per asset and session. Nothing trades in the warm-up.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mqf_pipeline.stages.base import RunContext, Stage, StageRun, materialize
from mqf_pipeline.stages.plan import missing_sessions
from mqf_pipeline.stages.registry import WARM_UP_STAGES
from mqf_pipeline.stages.signals import SignalStage
from mqf_pipeline.storage.lake import Lake

#: Called as each stage starts: (stage name, its position from 1, number of stages).
OnStage = Callable[[str, int, int], object]


@dataclass(frozen=True)
class WarmUpRun:
    """What the warm-up wrote: each stage's run and its wall time in seconds."""

    days: tuple[dt.date, ...]
    runs: dict[str, StageRun]
    seconds: dict[str, float]


def check_stages(stages: Sequence[Stage]) -> None:
    """The warm-up runs exactly :data:`WARM_UP_STAGES`, in their order (a missing stage would leave a hole in
    the look-back; a trading stage would trade before the fund existed)."""
    got = [type(s) for s in stages]
    if got != list(WARM_UP_STAGES):
        want = ", ".join(s.NAME for s in WARM_UP_STAGES)
        raise ValueError(f"the warm-up runs the stages {want} in this order; got {', '.join(s.NAME for s in stages)}")


def warm_up_spans(settings: Any) -> dict[str, int]:
    """Stage name -> how many of the warm-up's last sessions it covers, for the stages not run over all of it."""
    return {SignalStage.NAME: settings.fund.history.warm_up_signal_sessions}


def stage_days(days: Sequence[dt.date], spans: Mapping[str, int]) -> dict[str, list[dt.date]]:
    """Per warm-up stage, the sessions it materializes: the last ``spans[name]`` of ``days`` for a stage whose
    older output nothing reads (the signals), else all of them."""
    days = sorted(days)
    return {
        s.NAME: days[len(days) - min(spans[s.NAME], len(days)) :] if s.NAME in spans else days for s in WARM_UP_STAGES
    }


def missing_tables(lake: Lake, days: Sequence[dt.date], spans: Mapping[str, int]) -> list[str]:
    """The warm-up tables with a session missing in the lake (the warm-up must run again), each checked over
    its own stage's sessions (:func:`stage_days`)."""
    per_stage = stage_days(days, spans)
    return [
        table
        for stage in WARM_UP_STAGES
        for table in stage.WRITES
        if per_stage[stage.NAME] and missing_sessions(lake, per_stage[stage.NAME], [table])
    ]


def run_warm_up(
    ctx: RunContext,
    stages: Sequence[Stage],
    days: Sequence[dt.date],
    on_stage: OnStage = lambda *_: None,
    spans: Mapping[str, int] | None = None,
) -> WarmUpRun:
    """Materialize ``stages`` (:func:`check_stages`) over ``days`` (a stage named in ``spans`` over its last
    sessions only, :func:`stage_days`), one after the other."""
    check_stages(stages)
    days = sorted(days)
    if not days:
        raise ValueError("the warm-up has no sessions (history.warm_up_sessions is 0)")
    per_stage = stage_days(days, spans or {})
    runs: dict[str, StageRun] = {}
    seconds: dict[str, float] = {}
    for i, stage in enumerate(stages, start=1):
        on_stage(stage.NAME, i, len(stages))
        if not per_stage[stage.NAME]:
            continue
        began = time.monotonic()
        runs[stage.NAME] = materialize(stage, ctx, per_stage[stage.NAME])
        seconds[stage.NAME] = round(time.monotonic() - began, 2)
    return WarmUpRun(tuple(days), runs, seconds)
