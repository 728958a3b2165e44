"""README "Your own data", end to end: `mqf init --files examples/own_data`, then the full cycle from those
files to orders that fill at the local paper broker, with no synthetic row anywhere; and a files run with
a symbol the files lack records it in backfill_failures and serves no simulated bars."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from mqf_cli.main import app
from mqf_pipeline import calendar
from mqf_pipeline.config import load_settings
from mqf_pipeline.stages.plan import default_session
from mqf_pipeline.stages.registry import written_tables
from mqf_pipeline.storage.lake import Lake
from tests.deployment import definitions_for, materializations, run_market_data

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_data"
runner = CliRunner()


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR", "MQF_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR"):
        os.environ.pop(var, None)


def _init(tmp_path: Path, files: Path, *extra: str) -> tuple[object, Path]:
    out = tmp_path / "fund"
    result = runner.invoke(app, ["init", "--files", str(files), "--out", str(out), *extra])
    return result, out / "configs"


def test_init_reports_the_example_and_writes_a_files_fund(tmp_path, clean_env):
    result, cfg = _init(tmp_path, EXAMPLE, "--min-history", "60")
    assert result.exit_code == 0, result.output
    for symbol in ("ALFA", "BRVO", "CHRL", "DLTA", "ECHO", "FXTR"):
        assert symbol in result.output
    assert "MM/DD/YYYY" in result.output  # the spreadsheet export's dates, as detected
    assert f"mqf run --config-dir {cfg} --date 2024-09-30" in result.output.replace("\n", "")
    assert default_session(load_settings(cfg)) == dt.date(2024, 9, 30)  # `mqf run` without --date: the files end
    settings = load_settings(cfg)
    assert settings.fund.mode.value == "paper" and settings.broker_kind == "local"
    assert settings.providers.priority[settings.fund.mode] == ["files"]
    # 188 sessions from 2024-01-02: the last 60 are daily partitions, the 128 before them the warm-up
    assert settings.fund.calendar.partitions_start == calendar.session_offset(dt.date(2024, 1, 2), 128)
    assert settings.fund.history.warm_up_sessions == 128
    assert settings.runtime_dir == (tmp_path / "fund" / "runtime").resolve()
    again, _ = _init(tmp_path, EXAMPLE)
    assert again.exit_code == 2 and "exists" in again.output  # never clobbers a fund's edited config


def test_init_on_a_folder_without_bars_says_why(tmp_path, clean_env):
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "notes.csv").write_text("a,b\n1,2\n")
    result, _ = _init(tmp_path, empty)
    assert result.exit_code == 1
    assert "no usable daily bars" in result.output and "notes.csv" in result.output


def _tables_with_provider(lake: Lake) -> dict[str, set[str]]:
    out = {}
    for table in written_tables():
        if not lake.partitions(table):
            continue
        frame = lake.scan(table).collect()
        if "provider" in frame.columns:
            out[table] = set(frame.get_column("provider").drop_nulls().unique().to_list())
    return out


@pytest.mark.slow
def test_example_runs_the_full_cycle_from_files_to_fills(tmp_path, clean_env):
    result, cfg = _init(tmp_path, EXAMPLE, "--min-history", "60")
    assert result.exit_code == 0, result.output
    settings = load_settings(cfg)
    first, last = settings.fund.calendar.partitions_start, dt.date(2024, 9, 30)
    instance = dg.DagsterInstance.ephemeral()
    warm = definitions_for(cfg).resolve_job_def("warm_up_job").execute_in_process(instance=instance)
    assert warm.success
    run = run_market_data(cfg, first, last, instance=instance)
    assert run.success
    lake = Lake(settings.lake_root)
    providers = _tables_with_provider(lake)
    assert providers["price_history"] == {"files"}
    assert all(p <= {"files"} for p in providers.values()), providers  # nothing synthetic anywhere
    assert providers["macro_series"] == {"files"}
    macro = lake.scan("macro_series").collect()
    assert set(macro.get_column("series_id").unique()) == {"VIX", "SHORT_RATE"}
    outcomes = lake.scan("execution_outcomes").collect()
    filled = outcomes.filter(pl.col("filled_qty") > 0)
    assert filled.height > 0, outcomes.group_by("status", "cancel_reason").len()
    assert set(filled.get_column("spread_source").unique()) <= {"estimated_edge", "default"}  # the files hold none
    assert "NO_BAR" not in set(outcomes.get_column("cancel_reason").drop_nulls().to_list())


def test_a_symbol_the_files_lack_is_a_failure_row_not_simulated_bars(tmp_path, clean_env):
    files = tmp_path / "files"
    shutil.copytree(EXAMPLE, files)
    result, cfg = _init(tmp_path, files, "--min-history", "60")
    assert result.exit_code == 0, result.output
    universe = yaml.safe_load((cfg / "universe.yaml").read_text())
    universe["symbols"].append("GHST")
    (cfg / "universe.yaml").write_text(yaml.safe_dump(universe))
    day = dt.date(2024, 9, 30)
    run = run_market_data(cfg, day, day, instance=dg.DagsterInstance.ephemeral(), job_name="market_data_job")
    # ingestion succeeds; the quality gate then rejects the symbol without a bar (1 of 7 > 5%: its blocking check)
    assert "price_history" in materializations(run)
    lake = Lake(load_settings(cfg).lake_root)
    bars = lake.read("price_history", [day.isoformat()])
    assert "GHST" not in bars.get_column("symbol").to_list()
    assert set(bars.get_column("provider")) == {"files"}
    failures = lake.read("backfill_failures", [day.isoformat()])
    row = failures.filter(pl.col("symbol") == "GHST").row(0, named=True)
    assert "files" in row["providers_tried"] and "simulated" not in row["providers_tried"]
    assert "GHST" in row["error"]
