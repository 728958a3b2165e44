"""``mqf``: run the fund's cycle, backfill history, open the Dagster UI.

Every run goes through the Dagster instance in ``runtime/dagster/`` so it is visible in the UI
(``mqf ui``) with its lineage, logs and partition status.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mqf_pipeline import calendar
from mqf_pipeline.config import ConfigError, Settings, load_settings
from mqf_pipeline.report import market_data_summary
from mqf_pipeline.stages.plan import contiguous_ranges, history_sessions, missing_sessions
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


def _session_or_exit(day: dt.date, name: str) -> dt.date:
    if not calendar.is_session(day):
        console.print(f"[red]{name} {day} is not an XNYS trading session[/red]")
        raise typer.Exit(2)
    return day


def _run_ranges(settings: Settings, ranges: list[tuple[dt.date, dt.date]], in_process: bool) -> list:
    from mqf_cli.runner import prepare_instance, run_job

    instance = prepare_instance(settings)
    outcomes = []
    for i, (start, end) in enumerate(ranges, start=1):
        n = len(calendar.sessions(start, end))
        console.print(f"[bold]run {i}/{len(ranges)}[/bold]: daily_cycle_job over {start} .. {end} ({n} sessions)")
        outcome = run_job(instance, "daily_cycle_job", start=start, end=end, in_process=in_process)
        _report_outcome(outcome)
        outcomes.append(outcome)
        if not outcome.success:
            break
    console.print("[bold]catalog[/bold]: refreshing DuckDB views")
    outcome = run_job(instance, "catalog_job", in_process=in_process)
    _report_outcome(outcome)
    outcomes.append(outcome)
    return outcomes


def _report_outcome(outcome) -> None:
    colour = "green" if outcome.success else "red"
    status = "ok" if outcome.success else f"FAILED (steps: {', '.join(outcome.failed_steps) or 'see UI'})"
    console.print(f"  [{colour}]{outcome.job} {status}[/{colour}] in {outcome.seconds:.1f}s, run {outcome.run_id}")


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


def _default_session(settings: Settings) -> dt.date:
    """The latest closed XNYS session; for a fund on files alone, the last session the files hold."""
    closed = calendar.latest_closed_session()
    if settings.providers.priority.get(settings.fund.mode) != ["files"] or not settings.providers.files_root:
        return closed
    from mqf_pipeline.market.providers.files_scan import scan_folder

    last = scan_folder(Path(settings.providers.files_root).expanduser()).last_date
    if last is None:
        return closed
    end = min(last, closed)
    day = calendar.sessions(end - dt.timedelta(days=15), end)[-1]
    console.print(f"session: {day}, the last one in the files (--date picks another)")
    return day


@app.command()
def run(
    date: Annotated[
        str | None,
        typer.Option(help="session to run (default: the latest closed XNYS session; on files alone, their last one)"),
    ] = None,
    config_dir: ConfigDirOpt = None,
    backfill: Annotated[bool, typer.Option(help="first ingest any missing history")] = True,
    in_process: InProcessOpt = False,
    chunk: ChunkOpt = 1500,
) -> None:
    """The main job: backfill the configured history if missing, then materialize the latest session."""
    began = time.monotonic()
    settings = _settings(config_dir)
    latest = _session_or_exit(_parse_date(date, "--date") if date else _default_session(settings), "--date")
    ranges: list[tuple[dt.date, dt.date]] = []
    if backfill:
        wanted = history_sessions(
            latest, settings.fund.history.lookback_sessions, settings.fund.calendar.partitions_start
        )
        missing = [d for d in missing_sessions(Lake(settings.lake_root), wanted) if d != latest]
        if missing:
            console.print(
                f"history: {len(missing)} of the {len(wanted) - 1} sessions before {latest} missing; backfilling"
            )
            ranges = contiguous_ranges(wanted, missing, chunk)
        else:
            console.print(f"history: all {len(wanted)} sessions present")
    ranges.append((latest, latest))
    outcomes = _run_ranges(settings, ranges, in_process)
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
    """Materialize the market-data job over a session range (single-run chunks)."""
    began = time.monotonic()
    settings = _settings(config_dir)
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    if last < first:
        raise typer.BadParameter(f"--end {last} is before --start {first}")
    if first < settings.fund.calendar.partitions_start:
        console.print(
            f"[red]--start {first} is before partitions_start {settings.fund.calendar.partitions_start}"
            " (configs/fund.yaml calendar.partitions_start)[/red]"
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
    outcomes = _run_ranges(settings, contiguous_ranges(sessions, wanted, chunk), in_process)
    _print_summary(settings, sessions[-1], outcomes, time.monotonic() - began)
    if not all(o.success for o in outcomes):
        raise typer.Exit(1)


@app.command()
def init(
    files: Annotated[Path, typer.Option("--files", help="folder of your daily bars (CSV/Parquet, any layout)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the new fund (configs/ and runtime/ inside)")] = Path(
        "my-fund"
    ),
    min_history: Annotated[
        int, typer.Option("--min-history", min=1, help="governance Phase 0: bars a symbol needs before it trades")
    ] = 1260,
    config_dir: ConfigDirOpt = None,
) -> None:
    """Inspect a folder of your own data, report what is usable, write a fund config for it."""
    from mqf_pipeline.config.files_fund import plan_files_fund, write_config_dir
    from mqf_pipeline.market.providers.files_scan import scan_folder

    root = files.expanduser().resolve()
    if not root.is_dir():
        console.print(f"[red]--files {files}: no such folder[/red]")
        raise typer.Exit(2)
    shipped = (config_dir or Path("configs")).resolve()
    scan = scan_folder(root)
    _print_scan(scan, root)
    try:
        plan = plan_files_fund(scan, root, min_history, shipped if shipped.is_dir() else None)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]", markup=False)
        raise typer.Exit(1) from exc
    for symbol, why in plan.excluded.items():
        console.print(f"not in the universe: {symbol} ({why})", style="yellow", markup=False)
    for warning in plan.warnings:
        console.print(f"warning: {warning}", style="yellow", markup=False)
    target = out / "configs"
    try:
        write_config_dir(plan, target, shipped if shipped.is_dir() else None)
    except FileExistsError as exc:
        console.print(f"[red]{exc}[/red]", markup=False)
        raise typer.Exit(2) from exc
    console.print(
        f"wrote {target}: mode paper on the files provider alone, the local paper broker, {len(plan.symbols)} "
        f"symbols, partitions from {plan.first_session}, {plan.sessions} sessions of history to {plan.last_session}"
    )
    console.print("next:", style="bold")
    # one line whatever the terminal's width, so it can be copied as it is
    Console(soft_wrap=True).print(f"mqf run --config-dir {target} --date {plan.last_session}", markup=False)


def _print_scan(scan, root: Path) -> None:
    """What the folder holds, file by file (one line each, readable at any width), and what cannot be used."""
    console.print(f"{root}: {len(scan.files)} bar file(s), {len(scan.macro)} macro file(s)", style="bold", markup=False)
    for f in scan.macro:
        if not f.problem:
            console.print(f"  {f.path.relative_to(root)}: macro {', '.join(f.symbols)}, {f.first_date}..{f.last_date}")
    for f in scan.files:
        if f.problem:
            continue
        syms = ", ".join(f.symbols[:5]) + (f" +{len(f.symbols) - 5}" if len(f.symbols) > 5 else "")
        missing = [name for name, ok in (("OHLC", f.has_ohlc), ("volume", f.has_volume)) if not ok]
        console.print(
            f"  {f.path.relative_to(root)}: {f.layout}, dates {f.date_format}, {f.n_rows} rows, {syms}, "
            f"{f.first_date}..{f.last_date}, {f.frequency}"
            + (f", no {' or '.join(missing)}" if missing else "")
            + ("" if f.has_spread else ", spread estimated"),
            markup=False,
        )
    symbols = sorted(scan.symbols)
    if symbols:
        console.print(f"{len(symbols)} symbol(s): {', '.join(symbols)}", markup=False)
    for path, message in scan.problems:
        console.print(f"cannot use {path}: {message}", style="red", markup=False)


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


@app.command()
def status(config_dir: ConfigDirOpt = None) -> None:
    """What the lake holds: partitions per table."""
    settings = _settings(config_dir)
    lake = Lake(settings.lake_root)
    from mqf_pipeline.stages.registry import written_tables

    table = Table(title=f"lake {settings.lake_root}")
    for col in ("table", "partitions", "first", "last"):
        table.add_column(col)
    for name in written_tables():
        parts = lake.partitions(name)
        table.add_row(name, str(len(parts)), parts[0] if parts else "-", parts[-1] if parts else "-")
    Console().print(table)


kill_app = typer.Typer(help="The kill switch: while engaged, nothing creates orders (seed 000 section 12.2).")
app.add_typer(kill_app, name="kill-switch")


@kill_app.command("on")
def kill_on(
    reason: Annotated[str, typer.Option("--reason", help="why (shown in the UI and in every refusal)")],
    config_dir: ConfigDirOpt = None,
) -> None:
    """Engage the kill switch: decisions become REJECT (KILL_SWITCH) and order steps refuse."""
    from mqf_pipeline import kill_switch

    settings = _settings(config_dir)
    try:
        state = kill_switch.engage(settings.kill_switch_path, reason)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"[bold red]{state.describe()}[/bold red]")


@kill_app.command("off")
def kill_off(config_dir: ConfigDirOpt = None) -> None:
    """Release the kill switch (remove the file); the next cycle may create orders again."""
    from mqf_pipeline import kill_switch

    settings = _settings(config_dir)
    was_on = kill_switch.release(settings.kill_switch_path)
    note = "released" if was_on else "was not engaged"
    console.print(f"kill switch {note} ({settings.kill_switch_path})")


@kill_app.command("status")
def kill_status(config_dir: ConfigDirOpt = None) -> None:
    """Show whether the kill switch is engaged; exit code 1 when it is (for scripts)."""
    from mqf_pipeline import kill_switch

    settings = _settings(config_dir)
    state = kill_switch.status(settings.kill_switch_path)
    Console().print(state.describe(), style="bold red" if state.active else "green", markup=False)
    if state.active:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    app()
