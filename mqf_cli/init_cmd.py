"""``mqf init --files DIR``: inspect a folder of your own data and write a fund config for it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)

ConfigDirOpt = Annotated[Path | None, typer.Option("--config-dir", help="configs directory (default ./configs)")]


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
        f"symbols, {plan.sessions} sessions: warm-up history from {plan.first_session}, daily partitions from "
        f"{plan.inception} to {plan.last_session}"
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
