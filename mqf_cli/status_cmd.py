"""``mqf status``: what the lake holds, whether any of it is damaged, and whether the catalog can be opened."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mqf_pipeline.config import ConfigError, load_settings
from mqf_pipeline.stages.registry import written_tables
from mqf_pipeline.storage.catalog import CatalogLockedError, connect_with_retry
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.lake_verify import lake_health

#: ``mqf status`` only looks: it does not wait long for a catalog another process holds.
CATALOG_WAIT_SECONDS = 2.0

console = Console(stderr=True, soft_wrap=True)


ConfigDirOpt = Annotated[Path | None, typer.Option("--config-dir", help="configs directory (default ./configs)")]


def status(config_dir: ConfigDirOpt = None) -> None:
    """Partitions per table in the lake, any corrupt partition, and the catalog; exit 1 if something is wrong."""
    try:
        settings = load_settings(config_dir)
    except ConfigError as exc:
        console.print(f"configuration error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc
    lake = Lake(settings.lake_root)
    table = Table(title=f"lake {settings.lake_root}")
    for col in ("table", "partitions", "first", "last"):
        table.add_column(col)
    for name in written_tables():
        parts = lake.partitions(name)
        table.add_row(name, str(len(parts)), parts[0] if parts else "-", parts[-1] if parts else "-")
    Console().print(table)
    health = lake_health(lake)
    console.print(health.summary(), style="green" if health.ok else "red", markup=False)
    catalog_ok = _catalog_line(settings.catalog_path)
    if not (health.ok and catalog_ok):
        raise typer.Exit(1)


def _catalog_line(path: Path) -> bool:
    """Say whether the catalog opens (read-only); a lock held by another process names that process."""
    if not path.exists():
        console.print(f"catalog {path}: not created yet (the catalog run makes it)", markup=False)
        return True
    try:
        con = connect_with_retry(path, read_only=True, timeout_s=CATALOG_WAIT_SECONDS)
    except CatalogLockedError as exc:
        console.print(str(exc), style="red", markup=False)
        return False
    try:
        views = con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0]
    finally:
        con.close()
    console.print(f"catalog {path}: {views} views", markup=False)
    return True
