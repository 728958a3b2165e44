"""The kill switch: file semantics, the audited events table (state = latest event, concurrent writers, fail
closed, the catalog view), the CLI, and the sensor that reports it."""

from __future__ import annotations

import json
import threading

import dagster as dg
import duckdb
import pytest
from typer.testing import CliRunner

from mqf_cli.main import app
from mqf_pipeline import kill_switch
from mqf_pipeline.storage.catalog import refresh_catalog
from mqf_pipeline.storage.lake import Lake
from resources import KillSwitchResource, SettingsResource
from sensors import kill_switch_sensor
from tests.deployment import settings_for, write_configs

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


def test_state_is_the_latest_event_and_a_present_file(tmp_path):
    path, lake = tmp_path / "KILL_SWITCH", Lake(str(tmp_path / "lake"))
    assert not kill_switch.status(path, lake).active and kill_switch.latest_event(lake) is None
    kill_switch.engage(path, "broker outage", "ops", lake=lake, source="cli")
    path.unlink()  # the file lost (or removed by hand): the recorded engagement stands
    state = kill_switch.status(path, lake)
    assert state.active and state.source == "cli" and state.reason == "broker outage" and not state.file_present
    with pytest.raises(kill_switch.KillSwitchEngagedError, match="broker outage"):
        kill_switch.require_off(path, "create orders", lake)
    assert kill_switch.release(path, lake=lake, released_by="ops", reason="outage over", source="cli")
    assert not kill_switch.status(path, lake).active
    path.touch()  # a present file engages whatever the table says
    assert kill_switch.status(path, lake).active and kill_switch.status(path, lake).source == "file"


def test_engaging_twice_and_releasing_while_off_are_recorded_as_such(tmp_path):
    path, lake = tmp_path / "KILL_SWITCH", Lake(str(tmp_path / "lake"))
    kill_switch.engage(path, "first", "a", lake=lake)
    kill_switch.engage(path, "second", "b", lake=lake)
    assert kill_switch.release(path, lake=lake, released_by="c")
    assert not kill_switch.release(path, lake=lake, released_by="d")
    log = kill_switch.events(lake)
    assert log["action"].to_list() == ["engaged", "engaged", "released", "released"]
    assert log["was_engaged"].to_list() == [False, True, True, False]
    assert log["actor"].to_list() == ["a", "b", "c", "d"] and log["source"].unique().to_list() == ["api"]
    assert "(already engaged)" in kill_switch.KillSwitchEvent(**log.row(1, named=True)).describe()
    assert kill_switch.events(lake, last=2)["actor"].to_list() == ["c", "d"]


def test_concurrent_writers_lose_no_event(tmp_path):
    """Each event is its own lake file: 24 writers at once, 24 events (no lock, no lost update)."""
    path, lake = tmp_path / "KILL_SWITCH", Lake(str(tmp_path / "lake"))
    barrier = threading.Barrier(24)

    def write(i: int) -> None:
        barrier.wait()
        kill_switch.append_event(Lake(lake.root), "engaged", reason=f"w{i}", source="api", was_engaged=False, path=path)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = kill_switch.events(lake)
    assert log.height == 24 and sorted(log["reason"]) == sorted(f"w{i}" for i in range(24))
    assert log["event_id"].is_unique().all()


def test_an_unreadable_events_table_fails_closed(tmp_path):
    path, lake = tmp_path / "KILL_SWITCH", Lake(str(tmp_path / "lake"))
    event = kill_switch.append_event(lake, "released", reason="", source="api", was_engaged=False)
    with open(lake.path("kill_switch_events", event.event_id), "wb") as handle:  # a damaged newest event
        handle.write(b"not parquet")
    state = kill_switch.status(path, lake)
    assert state.active and "failing closed" in state.reason and state.source == "error"


def test_the_catalog_shows_the_events_as_a_view(tmp_path):
    path, lake = tmp_path / "KILL_SWITCH", Lake(str(tmp_path / "lake"))
    kill_switch.engage(path, "audit me", "ops", lake=lake, source="cli")
    catalog = tmp_path / "mqf.duckdb"
    assert refresh_catalog(lake, catalog)["kill_switch_events"] == 1
    with duckdb.connect(str(catalog), read_only=True) as con:
        row = con.execute("SELECT action, reason, actor, source FROM kill_switch_events").fetchone()
    assert row == ("engaged", "audit me", "ops", "cli")


def test_cli_on_status_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MQF_RUNTIME_DIR", str(tmp_path / "runtime"))
    cfg = write_configs(tmp_path)
    lake = Lake(settings_for(cfg).lake_root)
    args = ["--config-dir", str(cfg)]
    first = runner.invoke(app, ["kill-switch", "status", *args])
    assert first.exit_code == 0 and "no event" in first.output
    result = runner.invoke(app, ["kill-switch", "on", "--reason", "fat finger", *args])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runtime" / "KILL_SWITCH").exists()
    status = runner.invoke(app, ["kill-switch", "status", *args])
    assert status.exit_code == 1 and "fat finger" in status.output
    assert "engaged by" in status.output and "via cli: fat finger" in status.output  # the events: who, how, why
    again = runner.invoke(app, ["kill-switch", "on", "--reason", "still fat", *args])
    assert again.exit_code == 0 and "already engaged" in again.output
    assert runner.invoke(app, ["kill-switch", "on", "--reason", " ", *args]).exit_code == 2
    off = runner.invoke(app, ["kill-switch", "off", "--reason", "fixed", *args])
    assert off.exit_code == 0 and "released" in off.output
    assert not (tmp_path / "runtime" / "KILL_SWITCH").exists()
    log = kill_switch.events(lake)
    assert log["action"].to_list() == ["engaged", "engaged", "released"]
    assert log["source"].unique().to_list() == ["cli"] and log["reason"].to_list()[-1] == "fixed"
    assert runner.invoke(app, ["kill-switch", "status", "--last", "1", *args]).exit_code == 0


def _tick(instance, resource, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"kill_switch": resource}) as ctx:
        return kill_switch_sensor(ctx)


def _resource(tmp_path):
    return KillSwitchResource(
        settings=SettingsResource(config_dir=str(tmp_path)),
        path=str(tmp_path / "KILL_SWITCH"),
        lake_root=str(tmp_path / "lake"),
    )


def test_sensor_notices_engage_and_release(tmp_path):
    path, resource = tmp_path / "KILL_SWITCH", _resource(tmp_path)
    lake = resource.lake()
    with dg.instance_for_test() as instance:
        result = _tick(instance, resource)
        assert result.cursor == "off" and not result.run_requests
        assert "OFF" in result.skip_reason.skip_message

        kill_switch.engage(path, "risk desk halt", lake=lake)
        result = _tick(instance, resource, cursor="off")
        assert result.cursor.startswith("on:") and not result.run_requests
        assert "ENGAGED" in result.skip_reason.skip_message and "risk desk halt" in result.skip_reason.skip_message

        kill_switch.engage(path, "risk desk halt, again", lake=lake)  # re-engaged: a new event, a new signature
        again = _tick(instance, resource, cursor=result.cursor)
        assert again.cursor != result.cursor and "again" in again.skip_reason.skip_message

        kill_switch.release(path, lake=lake)
        assert _tick(instance, resource, cursor=again.cursor).cursor == "off"
        assert resource.events()["action"].to_list() == ["engaged", "engaged", "released"]
