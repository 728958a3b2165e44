"""The stage contract: every stage of the fund in one shape, and the one fold that runs any of them.

A stage turns stored tables into the rows of other tables, one partition per XNYS session:

1. ``READS`` / ``WRITES`` name its tables (the Dagster lineage is derived from them, nowhere else);
   ``CARRIES`` names the tables of the previous session it continues (its own state: risk state,
   targets, positions), ``()`` for a stage without carried state.
2. ``load_inputs(ctx, days)`` reads the lake once for a range of sessions. A stage computed in fixed
   blocks (features, regimes, signals) does its block work here and its step only selects a day.
3. ``load_carried(ctx, first_day)`` continues the state stored for the session before ``first_day``
   (nothing stored: a fresh start; a gap: :class:`StageStateError` naming what to run).
4. ``step(day, inputs, carried, ctx)`` is pure: it makes the session's rows for every table it writes
   and the state the next session continues.
5. ``write(ctx, steps, days)`` writes one atomic file per table and session.

:func:`run_stage` is the one fold over sessions; :func:`materialize` folds and writes. The operator's
kill switch reaches every stage the same way, as ``ctx.kill_switch``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline import kill_switch as switch_file
from mqf_pipeline.storage.lake import Lake, WriteResult
from mqf_pipeline.storage.schema import row_schema

#: What a stage wrote: per table, one result per session partition.
Written = dict[str, list[WriteResult]]


#: A progress line: "<stage>: [block |stage ]<done>/<total>[ sessions][ (<note>)]". Stages write them through
#: ``ctx.log.info`` (:meth:`Stage.progress_line`, the block loops, the warm-up); the CLI's progress display
#: reads them back from the run's event log with :func:`parse_progress`.
PROGRESS_LINE = re.compile(
    r"^(?P<stage>[a-z][\w-]*): (?:(?P<unit>block|stage) )?(?P<done>\d+)/(?P<total>\d+)(?P<sessions> sessions)?"
    r"(?P<rest>.*)$"
)


@dataclass(frozen=True)
class Progress:
    """One parsed progress line: ``done`` of ``total`` ``unit`` (sessions, blocks or stages) of ``stage``."""

    stage: str
    done: int
    total: int
    unit: str
    note: str


def parse_progress(message: str) -> Progress | None:
    """The :data:`PROGRESS_LINE` in ``message`` (its first line), or None for any other message."""
    m = PROGRESS_LINE.match(message.split("\n", 1)[0])
    if m is None or (m["unit"] is None and m["sessions"] is None):
        return None
    unit = {"block": "blocks", "stage": "stages"}.get(m["unit"] or "", "sessions")
    note = m["rest"].strip().removeprefix("(").removesuffix(")").strip()
    return Progress(m["stage"], int(m["done"]), int(m["total"]), unit, note)


class StageStateError(RuntimeError):
    """The state a session continues (the previous session's partition of a carried table) is missing."""


class StageLog(Protocol):
    """Where a stage reports progress: a ``logging.Logger`` or Dagster's ``context.log``."""

    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...


class KillSwitch:
    """The operator's kill switch as every stage sees it (seed 000 section 12.2): the switch file and the
    ``kill_switch_events`` table of ``lake`` (:mod:`mqf_pipeline.kill_switch`). ``path=None`` is a switch
    that is never engaged (tests, research runs)."""

    def __init__(self, path: Path | None = None, lake: Lake | None = None) -> None:
        self.path, self.lake = path, lake

    def reason(self) -> str | None:
        """The switch's one-line description while engaged, else None. Read afresh on every call, so a
        switch engaged mid-run stops what comes after."""
        if self.path is None:
            return None
        state = switch_file.status(self.path, self.lake)
        return state.describe() if state.active else None

    def engage(self, reason: str, engaged_by: str) -> None:
        """Engage the switch, recorded with source ``pipeline`` (a no-op without a path)."""
        if self.path is not None:
            switch_file.engage(self.path, reason, engaged_by, lake=self.lake, source="pipeline")


@dataclass
class RunContext:
    """What every stage of a run shares: the lake, the settings, the kill switch, where to report."""

    lake: Lake
    settings: Any  # mqf_pipeline.config.Settings (Any: the contract does not depend on config)
    kill_switch: KillSwitch = field(default_factory=KillSwitch)
    log: StageLog = field(default_factory=lambda: logging.getLogger("mqf_pipeline.stages"))
    universe: pl.DataFrame | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    run_id: str = ""


@dataclass
class StepOutput:
    """One session's rows per table written, the state handed to the next session, and a detail object
    (the stage's own summary of the session, for progress lines and materialization metadata)."""

    day: dt.date
    rows: dict[str, pl.DataFrame]
    carried: Any = None
    detail: Any = None


@dataclass
class StageRun:
    """A materialized range: the steps and what was written per table."""

    steps: list[StepOutput]
    written: Written

    @property
    def last(self) -> StepOutput:
        return self.steps[-1]


class Stage(ABC):
    """Base of every stage (module docstring). Subclasses set the class attributes and ``step``."""

    NAME: ClassVar[str]
    READS: ClassVar[tuple[str, ...]]
    WRITES: ClassVar[tuple[str, ...]]
    CARRIES: ClassVar[tuple[str, ...]] = ()
    CODE_VERSION: ClassVar[str]
    #: Tables read to make a written table when that is fewer than ``READS`` (its lineage is narrower).
    TABLE_READS: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Asset key of a written table when it differs from the table's name.
    ASSET_KEYS: ClassVar[dict[str, str]] = {}
    #: Column a written table is partitioned on when it is not ``date`` (fundamentals: ``report_date``).
    PARTITION_BY: ClassVar[dict[str, str]] = {}
    #: A progress line every this many sessions (and after the last).
    PROGRESS_EVERY: ClassVar[int] = 50

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> Any:
        return None

    def load_carried(self, ctx: RunContext, first_day: dt.date) -> Any:
        return None

    @abstractmethod
    def step(self, day: dt.date, inputs: Any, carried: Any, ctx: RunContext) -> StepOutput:
        """The session's rows per table, the state handed to the next session, and a summary."""

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        return f"{self.NAME}: {i}/{n} sessions ({step.day})"

    def write(self, ctx: RunContext, steps: Sequence[StepOutput], days: Sequence[dt.date]) -> Written:
        """One partition per table and session, in ``WRITES`` order."""
        return {t: self.write_table(ctx, t, concat_rows(steps, t), days) for t in self.WRITES}

    def write_table(
        self, ctx: RunContext, table: str, rows: pl.DataFrame, days: Sequence[dt.date]
    ) -> list[WriteResult]:
        """One partition of ``table`` per session of ``days`` (an empty file where a session has no rows)."""
        return ctx.lake.write_many(table, rows, days, by=self.PARTITION_BY.get(table, "date"), now=ctx.now)

    @classmethod
    def reads_of(cls, table: str) -> tuple[str, ...]:
        """The tables read to make ``table`` (``TABLE_READS`` if it names the table, else ``READS``)."""
        return cls.TABLE_READS.get(table, cls.READS)

    @classmethod
    def asset_key(cls, table: str) -> str:
        return cls.ASSET_KEYS.get(table, table)


def concat_rows(steps: Sequence[StepOutput], table: str) -> pl.DataFrame:
    """The rows of ``table`` over ``steps`` (an empty frame with the table's columns when there are none)."""
    frames = [s.rows[table] for s in steps if table in s.rows and s.rows[table].height]
    if frames:
        return pl.concat(frames, how="vertical_relaxed")
    return pl.DataFrame(schema=row_schema(table))


def run_stage(stage: Stage, ctx: RunContext, days: Sequence[dt.date]) -> list[StepOutput]:
    """The fold: ``days`` in order, each step continuing the state the previous one handed on."""
    days = sorted(days)
    if not days:
        raise ValueError(f"{stage.NAME}: no sessions to run")
    inputs = stage.load_inputs(ctx, days)
    carried = stage.load_carried(ctx, days[0])
    steps: list[StepOutput] = []
    for i, day in enumerate(days, start=1):
        out = stage.step(day, inputs, carried, ctx)
        steps.append(out)
        carried = out.carried
        if i % stage.PROGRESS_EVERY == 0 or i == len(days):
            ctx.log.info(stage.progress_line(out, i, len(days)))
    return steps


def materialize(stage: Stage, ctx: RunContext, days: Sequence[dt.date]) -> StageRun:
    """Run ``days`` and write every table's partitions."""
    days = sorted(days)
    steps = run_stage(stage, ctx, days)
    return StageRun(steps, stage.write(ctx, steps, days))


def split_by_day(frame: pl.DataFrame, column: str = "date") -> dict[dt.date, pl.DataFrame]:
    """Rows of ``frame`` per session (split once, not filtered per step)."""
    if frame.height == 0 or column not in frame.columns:
        return {}
    return {key[0]: part for key, part in frame.partition_by(column, as_dict=True).items()}


def previous_partition(
    lake: Lake, table: str, day: dt.date, *, error: type[Exception], what: str, state: str
) -> dt.date | None:
    """The session before ``day`` if ``table`` holds it; None when ``table`` holds nothing before ``day``.

    A gap raises ``error`` naming what to materialize: "<what> for <day> continue(s) <state> of <prev>,
    which is not materialized (latest stored before it: ...)".
    """
    prev = calendar.session_offset(day, -1)
    before = [p for p in lake.partitions(table) if p < day.isoformat()]
    if not before:
        return None
    if before[-1] != prev.isoformat():
        raise error(
            f"{what} for {day} continue {state} of {prev}, which is not materialized (latest stored before it: "
            f"{before[-1]}); materialize {what} from the session after {before[-1]} through this one in order "
            "(one backfill range)"
        )
    return prev


def read_previous(lake: Lake, table: str, prev: dt.date, *, error: type[Exception], what: str) -> pl.DataFrame:
    """Partition ``prev`` of ``table``, which the session after it continues: a missing file is an error
    naming it, never an empty frame (an empty session is stored as an empty file, so absence means lost)."""
    if not lake.exists(table, prev):
        raise error(
            f"{what} for {calendar.session_offset(prev, 1)} continue {table} of {prev}, whose file is missing "
            f"({lake.path(table, prev)}); rematerialize {what} for {prev} first (`mqf run --date {prev}`)"
        )
    return lake.read(table, [prev])
