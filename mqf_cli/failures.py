"""What the CLI says when a run fails: one line per failure (stage, partitions, root cause), the rest in a file.

The line comes from the run's event log, so it is the same whether the step ran in this process or another:
a step that failed through :func:`assets.common.retry_only_transient` carries its own line (stage,
partitions, category and root cause) as the failure's description; any other step failure is reported by
its innermost error; a run that failed outside its steps (a dead worker, a resource that did not start) by
its run-failure message. Every error's full traceback goes to ``runtime/dagster/failures/<run_id>.log``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType

from sensors.dead_runs import run_partitions


@dataclass(frozen=True)
class FailureReport:
    """The one-line causes of a failed run and the file holding the full tracebacks."""

    lines: list[str]
    log_path: Path


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else "(no message)"


def error_text(error) -> str:
    """An error's message without the ``module.Class: `` prefix Dagster records it with, on one line."""
    message = error.message.strip()
    head, sep, rest = message.partition(": ")
    if sep and head.rsplit(".", 1)[-1] == error.cls_name:
        message = rest
    return _first_line(message)


def step_failure_line(event: dg.DagsterEvent, partitions: str) -> str:
    """``step [partitions]: cause``: the failure's own description if it has one, else its innermost error."""
    data = event.step_failure_data
    described = data.user_failure_data.description if data is not None and data.user_failure_data else None
    if described:
        return f"{event.step_key}: {_first_line(described)}"
    error = data.error if data is not None else None
    if error is None:
        return f"{event.step_key} {partitions}: no error recorded".replace("  ", " ")
    while error.cause is not None:
        error = error.cause
    where = f"{event.step_key} {partitions}".strip()
    return f"{where}: {error.cls_name}: {error_text(error)}"


def failure_report(instance: dg.DagsterInstance, run_id: str, log_dir: Path) -> FailureReport:
    """Read the run's failures from the event log; write their full text to ``log_dir/<run_id>.log``."""
    run = instance.get_run_by_id(run_id)
    partitions = run_partitions(run)
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    ).records
    lines: list[str] = []
    full: list[str] = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE:
            lines.append(step_failure_line(event, partitions))
            error = event.step_failure_data.error if event.step_failure_data else None
            full.append(f"== step {event.step_key} ({partitions})\n{error.to_string() if error else '(no error)'}")
        else:
            message = event.message or "run failed"
            data = event.job_failure_data
            if not lines:  # a step failure already explains the run's failure
                lines.append(f"run {partitions}: {_first_line(message)}".replace("run :", "run:"))
            full.append(f"== run\n{message}\n{data.error.to_string() if data and data.error else ''}")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{run_id}.log"
    log_path.write_text("\n\n".join(full) or "no failure event recorded\n", encoding="utf-8")
    return FailureReport(lines or ["no failure event recorded"], log_path)
