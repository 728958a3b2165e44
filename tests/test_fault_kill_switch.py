"""Faults around the kill switch (issue 21, point 7): the switch lives in the audited table kill_switch_events,
so a reset sensor, a restarted process or a lost file does not forget an engaged switch, and every order
submission reads it afresh."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
from typer.testing import CliRunner

from bench.crash import build_lake
from mqf_cli.main import app
from mqf_pipeline import kill_switch
from mqf_pipeline.config import load_settings
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.execution.orders import BrokerOrder, OrderRequest
from mqf_pipeline.stages.base import run_stage
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.execution import ExecutionStage
from mqf_pipeline.stages.params import cost_params
from mqf_pipeline.storage.lake import Lake
from resources import KillSwitchResource, SettingsResource
from sensors import kill_switch_sensor
from tests.deployment import settings_for, write_configs

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = load_settings(ROOT / "configs")
NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _resource(root: Path) -> KillSwitchResource:
    """A fresh resource over ``root``'s switch file and lake (new objects: nothing carried over)."""
    return KillSwitchResource(
        settings=SettingsResource(config_dir=str(root)), path=str(root / "KILL_SWITCH"), lake_root=str(root / "lake")
    )


def _tick(resource: KillSwitchResource, cursor: str | None = None) -> dg.SensorResult:
    """One sensor evaluation on a fresh ephemeral instance (``cursor=None``: a reset sensor)."""
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), cursor=cursor, resources={"kill_switch": resource}
    ) as ctx:
        return kill_switch_sensor(ctx)


def _broker(path: Path) -> PaperBroker:
    return PaperBroker(path, initial_cash=SETTINGS.risk.initial_nav, params=cost_params(SETTINGS.execution), seed=11)


def test_fault_sensor_reset_with_the_switch_engaged_still_reports_it_and_no_order_goes(tmp_path: Path) -> None:
    days = build_lake(tmp_path / "lake", symbols=20, sessions=2)
    switch = tmp_path / "KILL_SWITCH"
    kill_switch.engage(switch, "desk halt", "ops", lake=Lake(str(tmp_path / "lake")), source="cli")
    first = _tick(_resource(tmp_path))
    assert "ENGAGED" in first.skip_reason.skip_message and first.cursor.startswith("on:")
    switch.unlink()  # even the file gone: the state is the table's
    for cursor in (None, first.cursor):  # a reset sensor, then a running one
        again = _tick(_resource(tmp_path), cursor=cursor)
        assert "ENGAGED" in again.skip_reason.skip_message and "desk halt" in again.skip_reason.skip_message
        assert again.cursor == first.cursor
    broker = _broker(tmp_path / "broker")
    ctx = run_context(Lake(str(tmp_path / "lake")), SETTINGS, kill_switch_path=switch, now=NOW)
    orders = run_stage(ExecutionStage(broker, latest_session=days[-1]), ctx, days[:1])[0].detail.orders
    assert orders.height and (orders["status"] == "REJECTED").all()
    assert orders["reason"].str.starts_with("KILL_SWITCH").all() and orders["reason"].str.contains("desk halt").all()
    assert broker.submit_log() == []


class _EngagingBroker(PaperBroker):
    """A paper broker during whose first submission another process engages the switch (table only)."""

    switch: Path
    lake_root: str

    def submit(self, order: OrderRequest, *, session: dt.date) -> BrokerOrder:
        placed = super().submit(order, session=session)
        if len(self.submit_log()) == 1:
            other = Lake(self.lake_root)  # another writer's own objects
            kill_switch.engage(self.switch, "engaged mid-cycle", "risk", lake=other, source="api")
            self.switch.unlink()  # only the table holds it
        return placed


def test_fault_each_submission_reads_the_table_afresh(tmp_path: Path) -> None:
    days = build_lake(tmp_path / "lake", symbols=20, sessions=2)
    broker = _EngagingBroker(
        tmp_path / "broker", initial_cash=SETTINGS.risk.initial_nav, params=cost_params(SETTINGS.execution), seed=11
    )
    broker.switch, broker.lake_root = tmp_path / "KILL_SWITCH", str(tmp_path / "lake")
    ctx = run_context(Lake(str(tmp_path / "lake")), SETTINGS, kill_switch_path=broker.switch, now=NOW)
    orders = run_stage(ExecutionStage(broker, latest_session=days[-1]), ctx, days[:1])[0].detail.orders
    assert orders.height > 2 and len(broker.submit_log()) == 1
    blocked = orders.filter(pl.col("status") == "REJECTED")
    assert blocked.height == orders.height - 1 and blocked["reason"].str.contains("engaged mid-cycle").all()


def test_fault_a_restarted_process_reads_the_switch_engaged(tmp_path: Path) -> None:
    switch, lake_root = tmp_path / "KILL_SWITCH", str(tmp_path / "lake")
    kill_switch.engage(switch, "before the restart", "ops", lake=Lake(lake_root), source="cli")
    switch.unlink()
    code = (
        "import json, sys; from pathlib import Path; from mqf_pipeline import kill_switch; "
        "from mqf_pipeline.storage.lake import Lake; "
        "s = kill_switch.status(Path(sys.argv[1]), Lake(sys.argv[2])); "
        "print(json.dumps({'active': s.active, 'reason': s.reason, 'by': s.by, 'source': s.source}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(switch), lake_root], cwd=ROOT, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    assert seen["active"] and seen["reason"] == "before the restart" and seen["by"].startswith("ops@")
    assert seen["source"] == "cli" and _resource(tmp_path).status().active


def test_fault_events_are_audited_with_actor_reason_and_time(tmp_path: Path) -> None:
    switch, lake = tmp_path / "KILL_SWITCH", Lake(str(tmp_path / "lake"))
    before = dt.datetime.now(dt.UTC)
    kill_switch.engage(switch, "broker outage", "alice", lake=lake, source="cli")
    kill_switch.release(switch, lake=lake, released_by="bob", reason="broker back", source="cli")
    after = dt.datetime.now(dt.UTC)
    log = kill_switch.events(Lake(lake.root))
    assert log.select("action", "actor", "reason", "source").rows() == [
        ("engaged", "alice", "broker outage", "cli"),
        ("released", "bob", "broker back", "cli"),
    ]
    assert all(before <= t <= after for t in log["event_time"]) and log["event_time"].is_sorted()
    assert log["host"].str.len_chars().min() > 0 and log["pid"].min() > 0
    assert len(Lake(lake.root).partitions("kill_switch_events")) == 2  # one file per event


def test_fault_a_touched_file_is_recorded_once_by_the_sensor(tmp_path: Path) -> None:
    switch = tmp_path / "KILL_SWITCH"
    switch.touch()  # the emergency path: no CLI
    cursor = None
    for reset in (False, False, True):  # two ticks, then a reset sensor
        result = _tick(_resource(tmp_path), cursor=None if reset else cursor)
        assert "ENGAGED" in result.skip_reason.skip_message
        cursor = result.cursor
    log = _resource(tmp_path).events()
    assert log.height == 1 and log.row(0, named=True)["source"] == "file"
    assert log.row(0, named=True)["file_mtime"] is not None and log.row(0, named=True)["actor"]


def test_fault_cli_release_appends_an_event_and_removes_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MQF_RUNTIME_DIR", str(tmp_path / "runtime"))
    cfg = write_configs(tmp_path)
    settings = settings_for(cfg)
    switch, lake = settings.kill_switch_path, Lake(settings.lake_root)
    switch.parent.mkdir(parents=True, exist_ok=True)
    switch.touch()  # engaged by hand, never seen by the sensor
    off = CliRunner().invoke(app, ["kill-switch", "off", "--reason", "all clear", "--config-dir", str(cfg)])
    assert off.exit_code == 0 and "released" in off.output, off.output
    assert not switch.exists() and not kill_switch.status(switch, lake).active
    log = kill_switch.events(lake)
    assert log.select("action", "source").rows() == [("engaged", "file"), ("released", "cli")]
    assert log.row(1, named=True)["reason"] == "all clear" and log.row(1, named=True)["was_engaged"]
