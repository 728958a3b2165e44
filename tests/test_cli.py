"""The `mqf` command: clear errors on bad input, and a real backfill through the Dagster instance."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from mqf_cli.main import app
from mqf_pipeline.config import load_settings
from mqf_pipeline.storage.lake import Lake
from tests.deployment import write_configs

runner = CliRunner()


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    cfg = write_configs(tmp_path)
    (cfg / "dagster.yaml").write_text(Path("configs/dagster.yaml").read_text())
    # the code location is built at import from the settings of MQF_CONFIG_DIR: `mqf` is one process per fund,
    # but tests run many funds in one process, so each gets its own (else an earlier fund's partitions apply)
    sys.modules.pop("mqf_pipeline.definitions", None)
    yield cfg
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR"):
        os.environ.pop(var, None)


def test_run_refuses_a_non_session(config_dir):
    result = runner.invoke(app, ["run", "--date", "2024-01-06", "--config-dir", str(config_dir)])
    assert result.exit_code == 2
    assert "2024-01-06 is not an XNYS trading session" in result.output


def test_backfill_refuses_reversed_range(config_dir):
    result = runner.invoke(
        app, ["backfill", "--start", "2024-02-01", "--end", "2024-01-02", "--config-dir", str(config_dir)]
    )
    assert result.exit_code != 0
    assert "before --start" in result.output


def test_bad_date_format(config_dir):
    result = runner.invoke(
        app, ["backfill", "--start", "01/02/2024", "--end", "2024-01-05", "--config-dir", str(config_dir)]
    )
    assert result.exit_code != 0
    assert "YYYY-MM-DD" in result.output


def test_bad_config_exits_with_file_and_key(config_dir):
    (config_dir / "quality.yaml").write_text("reject_below: 2\n")
    result = runner.invoke(app, ["status", "--config-dir", str(config_dir)])
    assert result.exit_code == 2
    assert "quality.yaml" in result.output and "reject_below" in result.output


def test_backfill_runs_through_the_instance(config_dir):
    result = runner.invoke(
        app,
        ["backfill", "--start", "2024-01-02", "--end", "2024-01-05", "--in-process", "--config-dir", str(config_dir)],
    )
    assert result.exit_code == 0, result.output
    settings = load_settings(config_dir)
    lake = Lake(settings.lake_root)
    assert lake.partitions("trading_eligibility") == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    assert settings.catalog_path.exists()
    # the runs are in the instance under runtime/dagster, where `mqf ui` shows them
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    jobs = sorted(r.job_name for r in instance.get_runs())
    assert jobs == ["catalog_job", "daily_cycle_job"]
    assert all(r.is_success for r in instance.get_runs())
    again = runner.invoke(
        app,
        ["backfill", "--start", "2024-01-02", "--end", "2024-01-05", "--only-missing", "--config-dir", str(config_dir)],
    )
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_ui_command_finds_dagster_beside_the_interpreter(monkeypatch):
    """`.venv/bin/mqf ui` must work without an activated venv (dagster not on PATH)."""
    from mqf_cli.runner import dagster_dev_command

    monkeypatch.setenv("PATH", "/nonexistent")
    cmd = dagster_dev_command(Path("workspace.yaml"), "127.0.0.1", 3000)
    assert Path(cmd[0]).is_file() and cmd[1:] == ["dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", "3000"]


def test_run_and_backfill_refuse_sessions_after_today(config_dir):
    """The daily partitions end at today's session (New York): a later date is refused up front."""
    import datetime as dt

    from mqf_pipeline import calendar

    future = calendar.session_offset(calendar.latest_closed_session(), 5)
    result = runner.invoke(app, ["run", "--date", future.isoformat(), "--config-dir", str(config_dir)])
    assert result.exit_code == 2 and "after today's date in New York" in result.output
    back = runner.invoke(
        app,
        ["backfill", "--start", "2024-01-02", "--end", future.isoformat(), "--config-dir", str(config_dir)],
    )
    assert back.exit_code == 2 and "after today's date" in back.output
    assert future > dt.date.today()
