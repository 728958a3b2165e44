"""Progress of a Dagster run on the terminal: the stage running, sessions done of total, elapsed and ETA.

A run's steps may run in other processes (the multiprocess executor), so the display follows the run
through the instance's event log, the one place every process writes to: a background thread polls the
run's new records, turns the stages' progress lines (:func:`~mqf_pipeline.stages.base.parse_progress`)
into a rich progress bar, and prints warnings and failures above it. Dagster's own console logger is
left quiet while it runs (the full log stays in the UI). Without a terminal (CI, pipes) the same events
print as plain lines.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mqf_cli.failures import error_text
from mqf_pipeline.stages.base import parse_progress


@contextmanager
def step_output_to(path: Path, console: Console) -> Iterator[None]:
    """On a terminal, send what step processes write to stderr (Dagster's step-worker lines, which its
    context-free logger prints at DEBUG whatever the run's log level) to ``path``, and keep ``console`` on the
    terminal, so the live display is not torn. Not on a terminal (CI, pipes, tests): nothing changes."""
    if not console.is_terminal:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
    console.file = terminal
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        console.file = None  # type: ignore[assignment]  # back to sys.stderr
        terminal.close()


#: The tag that lets the display find the run ``execute_job`` creates.
PROGRESS_TAG = "mqf/progress"
POLL_SECONDS = 0.5


@dataclass
class StepTiming:
    """When a step started and ended (epoch seconds), and how many materializations it recorded."""

    started: float
    ended: float | None = None
    materializations: int = 0
    first_materialization: float | None = None


@dataclass
class RunTimeline:
    """What the display saw of one run: its steps' timings, warnings and failures."""

    run_id: str | None = None
    created: float | None = None
    steps: dict[str, StepTiming] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class RunProgress:
    """Follow one run (started with :attr:`tags`) and show its progress until the context exits."""

    def __init__(self, instance: dg.DagsterInstance, console: Console, title: str, n_steps: int | None = None):
        self.instance = instance
        self.console = console
        self.title = title
        self.token = uuid.uuid4().hex
        self.timeline = RunTimeline()
        self.live = console.is_terminal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mqf-progress", daemon=True)
        self._cursor: str | None = None
        self._seen_warnings: set[str] = set()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=28),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}", style="dim"),
            console=console,
            transient=False,
            disable=not self.live,
        )
        self._steps_task: TaskID = self._progress.add_task(title, total=n_steps, unit="steps", note="planning")
        self._stage_task: TaskID | None = None

    @property
    def tags(self) -> dict[str, str]:
        return {PROGRESS_TAG: self.token}

    def __enter__(self) -> RunProgress:
        self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._poll()  # the last records
        self._progress.stop()

    # ------------------------------------------------------------------ polling
    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._poll()
            except Exception as exc:
                self._say(f"progress display: {exc}", "yellow")
                return

    def _poll(self) -> None:
        if self.timeline.run_id is None and not self._find_run():
            return
        assert self.timeline.run_id is not None
        while True:
            conn = self.instance.get_records_for_run(self.timeline.run_id, cursor=self._cursor, limit=500)
            for record in conn.records:
                self._handle(record.event_log_entry)
            self._cursor = conn.cursor
            if not conn.has_more:
                return

    def _find_run(self) -> bool:
        records = self.instance.get_run_records(filters=dg.RunsFilter(tags={PROGRESS_TAG: self.token}), limit=1)
        if not records:
            return False
        run = records[0].dagster_run
        self.timeline.run_id = run.run_id
        self.timeline.created = records[0].create_timestamp.timestamp()
        if run.execution_plan_snapshot_id:
            plan = self.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            self._progress.update(self._steps_task, total=len(run.step_keys_to_execute or plan.step_keys_to_execute))
        return True

    # ------------------------------------------------------------------ events
    def _handle(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            self._log_message(entry)
            return
        kind = event.event_type
        step = entry.step_key or ""
        if kind == DagsterEventType.STEP_START:
            self.timeline.steps[step] = StepTiming(started=entry.timestamp)
            self._start_stage(step)
        elif kind == DagsterEventType.ASSET_MATERIALIZATION and step in self.timeline.steps:
            timing = self.timeline.steps[step]
            timing.materializations += 1
            if timing.first_materialization is None:
                timing.first_materialization = entry.timestamp
                self._update_stage(note="recording materializations")
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            timing = self.timeline.steps.setdefault(step, StepTiming(started=entry.timestamp))
            timing.ended = entry.timestamp
            self._progress.advance(self._steps_task)
            took = timing.ended - timing.started
            if kind == DagsterEventType.STEP_FAILURE:
                message = _failure_message(event)
                self.timeline.failures.append(f"{step}: {message}")
                self._say(f"step {step} FAILED after {took:.1f}s: {message}", "red")
            elif not self.live:
                self._say(f"  {step} done in {took:.1f}s")
        elif kind == DagsterEventType.RUN_START:
            self._progress.update(self._steps_task, note="")

    def _log_message(self, entry) -> None:
        message = entry.user_message or ""
        level = entry.level if isinstance(entry.level, int) else 20
        if level >= 30:
            first = message.split("\n", 1)[0]
            if first not in self._seen_warnings:
                self._seen_warnings.add(first)
                self.timeline.warnings.append(first)
                self._say(f"warning ({entry.step_key or 'run'}): {first}", "yellow")
            return
        progress = parse_progress(message)
        if progress is None:
            return
        note = progress.note if len(progress.note) <= 40 else progress.note[:37] + "..."
        if self.live:
            label = progress.stage if progress.unit == "sessions" else f"{progress.stage} {progress.unit}"
            self._update_stage(label=label, done=progress.done, total=progress.total, unit=progress.unit, note=note)
        else:
            self._say(f"  {progress.stage}: {progress.done}/{progress.total} {progress.unit} {note}".rstrip())

    # ------------------------------------------------------------------ display
    def _start_stage(self, step: str) -> None:
        self._progress.update(self._steps_task, note=f"step {step}")
        if self._stage_task is not None:
            self._progress.remove_task(self._stage_task)
        self._stage_task = self._progress.add_task(f"  {step}", total=None, unit="", note="starting")
        if not self.live:
            self._say(f"  {step} started")

    def _update_stage(
        self,
        *,
        label: str | None = None,
        done: int | None = None,
        total: int | None = None,
        unit: str | None = None,
        note: str | None = None,
    ) -> None:
        if self._stage_task is None:
            return
        task = self._progress.tasks[[t.id for t in self._progress.tasks].index(self._stage_task)]
        if total is not None and task.total != total:  # a new counter (blocks, then sessions): restart timing
            self._progress.reset(self._stage_task, total=total)
        fields: dict[str, object] = {}
        if unit is not None:
            fields["unit"] = unit
        if note is not None:
            fields["note"] = note
        self._progress.update(
            self._stage_task,
            description=f"  {label}" if label else None,
            completed=done if done is not None else task.completed,
            **fields,
        )

    def _say(self, text: str, style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False, highlight=False)


def _failure_message(event) -> str:
    """The root cause of a step failure in one line: the innermost error's class and message."""
    data = event.step_failure_data
    error = data.error if data is not None else None
    if error is None:
        return "no error recorded"
    described = data.user_failure_data.description if data.user_failure_data else None
    if described:
        return described.strip().splitlines()[0]
    while error.cause is not None:
        error = error.cause
    return f"{error.cls_name}: {error_text(error)}"
