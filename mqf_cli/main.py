"""``mqf``: run the fund's cycle, backfill history, open the Dagster UI.

Every run goes through the Dagster instance in ``runtime/dagster/`` so it is visible in the UI
(``mqf ui``) with its lineage, logs and partition status.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mqf_cli.config_cmd import config_app
from mqf_cli.init_cmd import init
from mqf_cli.lake_cmd import lake_app
from mqf_cli.refusals import session_or_exit, today_new_york, trading_allowed_or_exit, valid_range
from mqf_cli.status_cmd import status
from mqf_pipeline import calendar
from mqf_pipeline.config import ConfigError, Settings, load_settings
from mqf_pipeline.report import market_data_summary
from mqf_pipeline.stages.plan import (
    InceptionError,
    contiguous_ranges,
    daily_sessions,
    default_session,
    fund_inception,
    inception_path,
    missing_sessions,
    recorded_inception,
    warm_up_days,
)
from mqf_pipeline.stages.warm_up import missing_tables, warm_up_spans
from mqf_pipeline.storage.lake import Lake

app = typer.Typer(help="MQF pipeline: a systematic equity fund run as a Dagster code location.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

ConfigDirOpt = Annotated[Path | None, typer.Option("--config-dir", help="configs directory (default ./configs)")]
InProcessOpt = Annotated[
    bool, typer.Option("--in-process", help="run steps in this process (no multiprocess executor)")
]
ChunkOpt = Annotated[int, typer.Option("--chunk", min=1, help="max sessions per backfill run")]


def _settings(config_dir: Path | None) -> Settings:
    try:
        return load_settings(config_dir)
    except ConfigError as exc:
        console.print(f"configuration error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc


def _parse_date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name} must be YYYY-MM-DD, got {value!r}") from exc


@dataclass(frozen=True)
class PlannedRun:
    """One Dagster run ``mqf`` is about to start: the job, its sessions (None: not partitioned), what it is."""

    job: str
    start: dt.date | None
    end: dt.date | None
    sessions: int
    label: str


def _warm_up_run(days: list[dt.date]) -> PlannedRun:
    return PlannedRun("warm_up_job", None, None, len(days), f"warm-up, {len(days)} sessions {days[0]} .. {days[-1]}")


def _daily_run(start: dt.date, end: dt.date) -> PlannedRun:
    n = len(calendar.sessions(start, end))
    what = f"{start}" if start == end else f"{n} sessions {start} .. {end}"
    return PlannedRun("daily_cycle_job", start, end, n, f"daily cycle, {what}")


CATALOG_RUN = PlannedRun("catalog_job", None, None, 0, "catalog: DuckDB views over the lake")


def _run_planned(settings: Settings, planned: list[PlannedRun], in_process: bool) -> list:
    """Start each planned run in order, stopping at the first failure, then refresh the catalog over what the
    lake holds; each with a progress display (:mod:`mqf_cli.progress`)."""
    from mqf_cli.progress import RunProgress, step_output_to
    from mqf_cli.runner import prepare_instance, run_job
    from sensors.dead_runs import end_dead_runs

    instance = prepare_instance(settings)
    for dead in end_dead_runs(instance):  # without a daemon running, nobody else ends them
        console.print(
            f"ended dead run {dead.run_id} ({dead.job_name}, {dead.partitions}): its worker (pid {dead.pid}) is gone",
            style="yellow",
            markup=False,
        )
    outcomes = []
    runs = [*planned, CATALOG_RUN]
    for i, item in enumerate(runs, start=1):
        if outcomes and not outcomes[-1].success and item is not CATALOG_RUN:
            console.print(f"not started: {item.label}", style="yellow", markup=False)
            continue
        title = f"run {i}/{len(runs)}: {item.label}"
        if not console.is_terminal:
            console.print(title, style="bold", markup=False)
        step_log = settings.dagster_home / "mqf_step_output.log"
        with step_output_to(step_log, console), RunProgress(instance, console, title) as progress:
            # Dagster's console logger stays quiet: the display prints progress, warnings and failures
            outcome = run_job(
                instance,
                item.job,
                start=item.start,
                end=item.end,
                # one session (or the catalog) gains nothing from a process per step, whose start costs ~3 s each
                in_process=in_process or item.sessions <= 1,
                log_level="CRITICAL",
                extra_tags=progress.tags,
            )
        _report_outcome(outcome, instance, settings)
        outcomes.append(outcome)
    return outcomes


def _report_outcome(outcome, instance, settings: Settings) -> None:
    """One line per run; for a failure, one line per failed step (stage, partitions, root cause) and the file
    with the full tracebacks (:mod:`mqf_cli.failures`)."""
    from mqf_cli.failures import failure_report

    colour = "green" if outcome.success else "red"
    status = "ok" if outcome.success else "FAILED"
    console.print(f"  [{colour}]{outcome.job} {status}[/{colour}] in {outcome.seconds:.1f}s, run {outcome.run_id}")
    if not outcome.success:
        report = failure_report(instance, outcome.run_id, settings.dagster_home / "failures")
        for line in report.lines:
            console.print(f"  cause: {line}", style="red", markup=False)
        console.print(f"  full log: {report.log_path} (or mqf ui, run {outcome.run_id})", markup=False)


def _announce(settings: Settings, inception: dt.date, first_time: bool, planned: list[PlannedRun]) -> None:
    """Say up front what the runs will do and roughly how long they take (:func:`estimate_seconds`)."""
    from mqf_cli.estimate import estimate_seconds

    symbols = len(settings.universe.symbols) or settings.simulator.n_symbols
    if first_time:
        console.print(
            f"first run: the fund's inception (first daily partition) is {inception}, fixed now and recorded in "
            f"{inception_path(settings)}",
            markup=False,
        )
    total = 0.0
    for i, item in enumerate([*planned, CATALOG_RUN], start=1):
        secs = estimate_seconds(item.job, item.sessions, symbols)
        total += secs
        console.print(f"  {i}. {item.label} (~{_duration(secs)})", markup=False)
    console.print(f"about {_duration(total)} in all on 2 cores, {symbols} symbols", style="bold", markup=False)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _print_summary(settings: Settings, latest: dt.date, outcomes: list, seconds: float) -> None:
    summary = market_data_summary(Lake(settings.lake_root), latest, settings.signals.starting_weights())
    table = Table(title=f"MQF cycle {latest} - mode {settings.fund.mode.value}", show_header=False)
    table.add_column("item")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    table.add_row("runs", f"{sum(o.success for o in outcomes)}/{len(outcomes)} succeeded")
    table.add_row("wall time", f"{seconds:.1f} s")
    table.add_row("lake", settings.lake_root)
    table.add_row("catalog", str(settings.catalog_path))
    table.add_row("dagster home", str(settings.dagster_home))
    Console().print(table)


@app.command()
def run(
    date: Annotated[
        str | None,
        typer.Option(help="session to run (default: the latest closed XNYS session; on files alone, their last one)"),
    ] = None,
    config_dir: ConfigDirOpt = None,
    backfill: Annotated[bool, typer.Option(help="first materialize missing warm-up history and sessions")] = True,
    in_process: InProcessOpt = False,
    chunk: ChunkOpt = 1500,
) -> None:
    """The main job: the warm-up history and the daily cycles since the inception if missing, then the session."""
    began = time.monotonic()
    settings = _settings(config_dir)
    trading_allowed_or_exit(settings)
    latest = session_or_exit(_parse_date(date, "--date") if date else default_session(settings), "--date", settings)
    if not date and latest != calendar.latest_closed_session():
        console.print(f"session: {latest}, the last one in the files (--date picks another)")
    try:
        first_time = settings.fund.calendar.partitions_start == "auto" and recorded_inception(settings) is None
        inception = fund_inception(settings, latest, record=True)
        daily = daily_sessions(inception, latest)
    except InceptionError as exc:
        console.print(f"--date: {exc}; {valid_range(settings)}", style="red", markup=False)
        raise typer.Exit(2) from exc
    lake = Lake(settings.lake_root)
    planned: list[PlannedRun] = []
    if backfill:
        warm = warm_up_days(settings, inception)
        if warm and missing_tables(lake, warm, warm_up_spans(settings)):
            planned.append(_warm_up_run(warm))
        missing = [d for d in missing_sessions(lake, daily) if d != latest]
        planned += [_daily_run(a, b) for a, b in contiguous_ranges(daily, missing, chunk)]
    planned.append(_daily_run(latest, latest))
    _announce(settings, inception, first_time, planned)
    outcomes = _run_planned(settings, planned, in_process)
    _print_summary(settings, latest, outcomes, time.monotonic() - began)
    if not all(o.success for o in outcomes):
        raise typer.Exit(1)


@app.command("backfill")
def backfill_cmd(
    start: Annotated[str, typer.Option(help="first session, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last session, YYYY-MM-DD")],
    config_dir: ConfigDirOpt = None,
    in_process: InProcessOpt = False,
    chunk: ChunkOpt = 1500,
    only_missing: Annotated[bool, typer.Option(help="skip sessions already in the lake")] = False,
) -> None:
    """Materialize the daily cycle over a session range since the inception (single-run chunks)."""
    began = time.monotonic()
    settings = _settings(config_dir)
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    if last < first:
        raise typer.BadParameter(f"--end {last} is before --start {first}")
    trading_allowed_or_exit(settings)
    if last > today_new_york():
        console.print(
            f"--end {last} is after today's date in New York: no partition or bars yet; {valid_range(settings)}",
            style="red",
            markup=False,
        )
        raise typer.Exit(2)
    try:
        inception = fund_inception(settings)
    except InceptionError as exc:
        console.print(f"{exc}; {valid_range(settings)}", style="red", markup=False)
        raise typer.Exit(2) from exc
    if first < inception:
        console.print(
            f"--start {first} is before the fund's inception {inception} (its first daily partition): the sessions "
            f"before it are warm-up history, materialized by `mqf run` (asset fund_history); {valid_range(settings)}",
            style="red",
            markup=False,
        )
        raise typer.Exit(2)
    sessions = calendar.sessions(first, last)
    if not sessions:
        console.print(f"[red]no XNYS sessions between {first} and {last}[/red]")
        raise typer.Exit(2)
    wanted = missing_sessions(Lake(settings.lake_root), sessions) if only_missing else sessions
    if not wanted:
        console.print("nothing to do: every session is already in the lake")
        return
    planned = [_daily_run(a, b) for a, b in contiguous_ranges(sessions, wanted, chunk)]
    _announce(settings, inception, False, planned)
    outcomes = _run_planned(settings, planned, in_process)
    _print_summary(settings, sessions[-1], outcomes, time.monotonic() - began)
    if not all(o.success for o in outcomes):
        raise typer.Exit(1)


app.command()(init)
app.add_typer(config_app, name="config")
app.add_typer(lake_app, name="lake")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="port for the web UI")] = 3000,
    config_dir: ConfigDirOpt = None,
) -> None:
    """Start `dagster dev` on 127.0.0.1 with DAGSTER_HOME=runtime/dagster (UI, daemon, schedules)."""
    from mqf_cli.runner import dagster_dev_command, prepare_instance

    settings = _settings(config_dir)
    prepare_instance(settings)
    cmd = dagster_dev_command(Path("workspace.yaml"), "127.0.0.1", port)
    console.print(f"starting {' '.join(cmd)} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    os.execvpe(cmd[0], cmd, os.environ)


app.command()(status)


kill_app = typer.Typer(help="The kill switch: while engaged, nothing creates orders (seed 000 section 12.2).")
app.add_typer(kill_app, name="kill-switch")


@kill_app.command("on")
def kill_on(
    reason: Annotated[str, typer.Option("--reason", help="why (shown in the UI and in every refusal)")],
    config_dir: ConfigDirOpt = None,
) -> None:
    """Engage the kill switch (an audited ``engaged`` event in kill_switch_events, then the switch file):
    decisions become REJECT (KILL_SWITCH) and no order is submitted. Engaging it again is recorded too."""
    from mqf_pipeline import kill_switch

    settings = _settings(config_dir)
    path, lake = settings.kill_switch_path, Lake(settings.lake_root)
    try:
        before = kill_switch.status(path, lake).active
        state = kill_switch.engage(path, reason, lake=lake, source="cli")
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except kill_switch.KillSwitchAuditError as exc:  # the file is written: engaged, but not audited
        console.print(str(exc), style="bold yellow", markup=False)
        before, state = False, kill_switch.status(path)
    if before:
        console.print("it was already engaged: recorded as a re-engagement with this reason", markup=False)
    console.print(state.describe(), style="bold red", markup=False)


@kill_app.command("off")
def kill_off(
    reason: Annotated[str, typer.Option("--reason", help="why it is released (recorded)")] = "",
    config_dir: ConfigDirOpt = None,
) -> None:
    """Release the kill switch: remove the file, then record a ``released`` event in kill_switch_events; the
    next order submission may go again. Releasing it while off is recorded too."""
    from mqf_pipeline import kill_switch

    settings = _settings(config_dir)
    path = settings.kill_switch_path
    try:
        was_on = kill_switch.release(path, lake=Lake(settings.lake_root), reason=reason, source="cli")
    except kill_switch.KillSwitchAuditError as exc:
        console.print(f"{exc}: the switch stays ENGAGED until a release is recorded", style="bold red", markup=False)
        raise typer.Exit(1) from exc
    note = "released" if was_on else "was not engaged (the release is recorded)"
    console.print(f"kill switch {note} ({path})", markup=False)


@kill_app.command("status")
def kill_status(
    last: Annotated[int, typer.Option("--last", help="how many of the latest events to show")] = 5,
    config_dir: ConfigDirOpt = None,
) -> None:
    """Show whether the kill switch is engaged and its latest events (when, who, how, why); exit code 1 while
    engaged (for scripts)."""
    from mqf_pipeline import kill_switch

    settings = _settings(config_dir)
    lake, out = Lake(settings.lake_root), Console(soft_wrap=True)
    state = kill_switch.status(settings.kill_switch_path, lake)
    out.print(state.describe(), style="bold red" if state.active else "green", markup=False)
    try:
        recent = kill_switch.events(lake, last) if last > 0 else None
    except (OSError, ValueError) as exc:
        out.print(f"kill_switch_events unreadable: {exc}", style="yellow", markup=False)
        recent = None
    if recent is not None:
        out.print(f"latest {recent.height} event(s) in kill_switch_events (UTC):" if recent.height else "no event")
        for row in recent.iter_rows(named=True):
            out.print(f"  {kill_switch.KillSwitchEvent(**row).describe()}", markup=False)
    if state.active:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    app()
