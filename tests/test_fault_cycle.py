"""Fault drill on a small simulated fund: missing state, a bad config and an unguarded live run are refused
at once (no retry), name what is wrong, and leave no duplicate order once repaired."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from mqf_cli.failures import failure_report
from mqf_pipeline.storage.lake import Lake
from tests.deployment import run_market_data, settings_for, write_configs

START, D_MINUS_1, D = dt.date(2023, 11, 20), dt.date(2024, 1, 4), dt.date(2024, 1, 5)
RETRY_EVENTS = {dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_RESTARTED}


@pytest.fixture(scope="module")
def fund(tmp_path_factory) -> Path:
    config_dir = write_configs(tmp_path_factory.mktemp("fault_cycle"), n_symbols=12)
    result = run_market_data(config_dir, START, D)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return config_dir


def _failures(result: dg.ExecuteInProcessResult) -> list[str]:
    out = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            out.append(data.user_failure_data.description if data.user_failure_data else data.error.message)
    return out


def _retried(result: dg.ExecuteInProcessResult) -> bool:
    return any(e.event_type in RETRY_EVENTS for e in result.all_events)


@pytest.mark.slow
def test_fault_deleted_previous_orders_are_named_not_read_as_empty(fund: Path, tmp_path: Path) -> None:
    lake = Lake(settings_for(fund).lake_root)
    orders_before = lake.read("orders", [D_MINUS_1])
    assert lake.delete("orders", D_MINUS_1)
    instance = dg.DagsterInstance.ephemeral()
    result = run_market_data(fund, D, D, instance=instance)
    assert not result.success
    (message,) = _failures(result)
    assert f"orders of {D_MINUS_1}" in message and "missing" in message and "orders/" in message
    assert "ReconciliationError" not in message and "missing state" in message
    assert not _retried(result)
    report = failure_report(instance, result.run_id, tmp_path / "failures")
    assert report.lines == [f"trading_cycle: {message}"] and f"trading_cycle {D}" in message
    assert "Traceback" in report.log_path.read_text() or "File " in report.log_path.read_text()
    # the repair the message names: rematerialize D-1, then D; the same orders, no duplicate
    assert run_market_data(fund, D_MINUS_1, D_MINUS_1).success
    assert run_market_data(fund, D, D).success
    repaired = lake.read("orders", [D_MINUS_1])
    assert repaired.drop("recorded_at", strict=False).equals(orders_before.drop("recorded_at", strict=False))
    assert orders_before.height > 0  # the fund traded on D-1
    both = lake.read("orders", [D_MINUS_1, D])
    assert both["order_id"].n_unique() == both.height
    sent = both.filter(pl.col("broker_order_id").is_not_null())
    assert sent["broker_order_id"].n_unique() == sent.height


@pytest.mark.slow
def test_fault_bad_config_fails_once_with_file_and_key(fund: Path, tmp_path: Path) -> None:
    broken = tmp_path / "configs"
    shutil.copytree(fund, broken)
    risk = yaml.safe_load((broken / "risk.yaml").read_text()) if (broken / "risk.yaml").exists() else {}
    (broken / "risk.yaml").write_text(yaml.safe_dump({**(risk or {}), "initial_nav": -5}))
    from resources import SettingsResource

    with pytest.raises(dg.Failure) as caught:
        SettingsResource(config_dir=str(broken)).get()
    assert caught.value.allow_retries is False
    assert "risk.yaml" in caught.value.description and "initial_nav" in caught.value.description


def test_fault_live_without_keys_refused_before_the_first_stage(tmp_path: Path, monkeypatch) -> None:
    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "MQF_LIVE_TRADING_CONFIRM"):
        monkeypatch.delenv(name, raising=False)
    config_dir = write_configs(tmp_path, n_symbols=12, universe={"symbols": ["AAPL", "MSFT"]})
    fund_yaml = yaml.safe_load((config_dir / "fund.yaml").read_text())
    fund_yaml["mode"] = "paper"
    (config_dir / "fund.yaml").write_text(yaml.safe_dump(fund_yaml))
    result = run_market_data(config_dir, D, D)
    assert not result.success
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    succeeded = [e.step_key for e in result.all_events if e.is_step_success]
    assert failed and not succeeded  # refused by the first stages, before anything was computed
    assert all("refused before its first stage" in m and "APCA_API_KEY_ID" in m for m in _failures(result))
    assert not _retried(result)
    assert not Path(settings_for(config_dir).lake_root, "bars").exists()


def test_fault_live_without_keys_refused_by_the_cli(tmp_path: Path, monkeypatch) -> None:
    from mqf_cli.main import app

    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "MQF_LIVE_TRADING_CONFIRM"):
        monkeypatch.delenv(name, raising=False)
    config_dir = write_configs(tmp_path, n_symbols=12, universe={"symbols": ["AAPL", "MSFT"]})
    fund_yaml = yaml.safe_load((config_dir / "fund.yaml").read_text())
    fund_yaml["mode"] = "live"
    (config_dir / "fund.yaml").write_text(yaml.safe_dump(fund_yaml))
    providers = {"priority": {"live": ["yahoo"]}}
    (config_dir / "providers.yaml").write_text(yaml.safe_dump(providers))
    out = CliRunner().invoke(app, ["run", "--config-dir", str(config_dir), "--date", D.isoformat()])
    assert out.exit_code == 2, out.output
    text = " ".join(out.output.split())
    assert "refused before the first stage" in text and "MQF_LIVE_TRADING_CONFIRM" in text
    assert not (tmp_path / "runtime" / "dagster").exists()  # no run was started


def test_fault_future_date_refused_with_the_valid_range(tmp_path: Path) -> None:
    from mqf_cli.main import app
    from mqf_pipeline import calendar

    config_dir = write_configs(tmp_path, n_symbols=12)
    future = calendar.session_offset(calendar.latest_closed_session(), 5)
    out = CliRunner().invoke(app, ["run", "--config-dir", str(config_dir), "--date", future.isoformat()])
    assert out.exit_code == 2
    text = " ".join(out.output.split())
    assert "after today's date in New York" in text and "valid sessions: 2016-01-04 .." in text
