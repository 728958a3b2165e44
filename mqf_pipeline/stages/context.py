"""Building the :class:`~mqf_pipeline.stages.base.RunContext` of a run from its settings."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from mqf_pipeline.stages.base import KillSwitch, RunContext, StageLog
from mqf_pipeline.stages.universe import universe_frame
from mqf_pipeline.storage.lake import Lake


def run_context(
    lake: Lake,
    settings,
    *,
    kill_switch_path: Path | None = None,
    log: StageLog | None = None,
    now: dt.datetime | None = None,
    run_id: str = "",
) -> RunContext:
    """The context every stage of one run shares: the universe is resolved once from ``settings``. The kill
    switch is the file at ``kill_switch_path`` and the ``kill_switch_events`` of ``lake`` (never engaged
    without a path)."""
    return RunContext(
        lake=lake,
        settings=settings,
        kill_switch=KillSwitch(kill_switch_path, lake),
        log=log or logging.getLogger("mqf_pipeline.stages"),
        universe=universe_frame(settings),
        now=now or dt.datetime.now(dt.UTC),
        run_id=run_id,
    )
