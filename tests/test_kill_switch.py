"""The kill switch: file semantics, the CLI, and the sensor that notices it."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest
from typer.testing import CliRunner

from mqf_cli.main import app
from mqf_pipeline import kill_switch
from resources import KillSwitchResource, SettingsResource
from sensors import kill_switch_sensor
from tests.deployment import write_configs

runner = CliRunner()


def test_engage_status_release(tmp_path):
    path = tmp_path / "runtime" / "KILL_SWITCH"
    assert not kill_switch.status(path).active
    state = kill_switch.engage(path, "broker outage", engaged_by="ops")
    assert state.active and state.reason == "broker outage" and state.engaged_by == "ops"
    assert "ENGAGED" in state.describe() and "broker outage" in state.describe()
    assert json.loads(path.read_text())["reason"] == "broker outage"
    with pytest.raises(kill_switch.KillSwitchEngagedError, match=r"refusing to create orders: kill switch ENGAGED"):
        kill_switch.require_off(path, "create orders")
    assert kill_switch.release(path) and not kill_switch.release(path)
    kill_switch.require_off(path, "create orders")  # no error once released


def test_a_touched_file_engages_too(tmp_path):
    path = tmp_path / "KILL_SWITCH"
    path.touch()
    state = kill_switch.status(path)
    assert state.active and state.since is not None
    path.write_text("not json {")
    assert "not a kill-switch record" in kill_switch.status(path).reason


def test_engage_needs_a_reason(tmp_path):
    with pytest.raises(ValueError, match="reason is required"):
        kill_switch.engage(tmp_path / "KILL_SWITCH", "  ")


def test_cli_on_status_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MQF_RUNTIME_DIR", str(tmp_path / "runtime"))
    cfg = write_configs(tmp_path)
    args = ["--config-dir", str(cfg)]
    assert runner.invoke(app, ["kill-switch", "status", *args]).exit_code == 0
    result = runner.invoke(app, ["kill-switch", "on", "--reason", "fat finger", *args])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runtime" / "KILL_SWITCH").exists()
    status = runner.invoke(app, ["kill-switch", "status", *args])
    assert status.exit_code == 1 and "fat finger" in status.output
    assert runner.invoke(app, ["kill-switch", "on", "--reason", " ", *args]).exit_code == 2
    off = runner.invoke(app, ["kill-switch", "off", *args])
    assert off.exit_code == 0 and "released" in off.output
    assert not (tmp_path / "runtime" / "KILL_SWITCH").exists()


def _tick(instance, resource, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"kill_switch": resource}) as ctx:
        return kill_switch_sensor(ctx)


def test_sensor_notices_engage_and_release(tmp_path):
    path = tmp_path / "KILL_SWITCH"
    resource = KillSwitchResource(settings=SettingsResource(config_dir=str(tmp_path)), path=str(path))
    with dg.instance_for_test() as instance:
        result = _tick(instance, resource)
        assert result.cursor == "off" and not result.run_requests
        assert "OFF" in result.skip_reason.skip_message

        kill_switch.engage(path, "risk desk halt")
        result = _tick(instance, resource, cursor="off")
        assert result.cursor.startswith("on:") and not result.run_requests
        assert "ENGAGED" in result.skip_reason.skip_message and "risk desk halt" in result.skip_reason.skip_message

        os.utime(path, (1, 1))  # re-engaged (new mtime): a new signature
        again = _tick(instance, resource, cursor=result.cursor)
        assert again.cursor != result.cursor

        kill_switch.release(path)
        assert _tick(instance, resource, cursor=again.cursor).cursor == "off"
