"""``mqf config check``: validate the configuration without running anything and show every effective setting
with where it came from (a section file, a deprecated key, the default); secrets are masked."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mqf_pipeline.config import ConfigDeprecationWarning, ConfigError, SettingSource, effective_settings
from mqf_pipeline.config.deprecations import logger as deprecation_log
from mqf_pipeline.config.provenance import DEFAULT, ENVIRONMENT

config_app = typer.Typer(
    help="Check the configuration (configs/*.yaml) without running anything.", no_args_is_help=True
)
err_console = Console(stderr=True, soft_wrap=True)

ConfigDirOpt = Annotated[Path | None, typer.Option("--config-dir", help="configs directory (default ./configs)")]


@config_app.callback()
def config() -> None:
    """Check the configuration (configs/*.yaml) without running anything."""


@config_app.command("check")
def check(config_dir: ConfigDirOpt = None) -> None:
    """Validate every config file and print each effective setting, its value and its source; exit 2 if invalid."""
    # each deprecation is both a warning and a log line: print it once, from the warning
    was_disabled, deprecation_log.disabled = deprecation_log.disabled, True
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigDeprecationWarning)
            rows = effective_settings(config_dir)
    except ConfigError as exc:
        err_console.print(f"configuration error: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    finally:
        deprecation_log.disabled = was_disabled
    # wide when piped (a table cut to 80 columns would wrap the key paths); the terminal's width otherwise
    out = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    out.print(_table(rows))
    for warning in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, ConfigDeprecationWarning)):
        err_console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    settings = [r for r in rows if r.source != ENVIRONMENT]
    defaults = sum(r.source == DEFAULT for r in settings)
    deprecated = sum(r.source.startswith("deprecated key") for r in settings)
    summary = (
        f"configuration valid: {len(settings)} settings, {len(settings) - defaults - deprecated} set in files, "
        f"{defaults} defaults" + (f", {deprecated} read through deprecated keys (rename them)" if deprecated else "")
    )
    out.print(summary, style="green", markup=False)


def _table(rows: list[SettingSource]) -> Table:
    """The settings as a table: key, value (secrets masked), source (defaults dimmed)."""
    table = Table(title="effective settings", title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", no_wrap=True)
    for row in rows:
        style = "dim" if row.source == DEFAULT else "yellow" if row.source.startswith("deprecated key") else ""
        table.add_row(Text(row.key), Text(row.shown), Text(row.source), style=style)
    return table
