"""The stage contract: every stage declares its tables, lineage is derived from them alone, and the one fold
runs any stage in session order with its carried state and the kill switch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mqf_pipeline import calendar, kill_switch
from mqf_pipeline.definitions import defs
from mqf_pipeline.stages import registry
from mqf_pipeline.stages.base import KillSwitch, RunContext, Stage, StepOutput, materialize, run_stage
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_specs

DAYS = calendar.sessions(dt.date(2024, 3, 4), dt.date(2024, 3, 8))


def test_every_stage_declares_known_tables() -> None:
    known = set(table_specs())
    for stage in registry.STAGES:
        assert stage.NAME and stage.CODE_VERSION, stage
        assert stage.WRITES and set(stage.WRITES) <= known, stage.NAME
        assert set(stage.READS) <= known, (stage.NAME, set(stage.READS) - known)
        assert set(stage.CARRIES) <= set(stage.WRITES), stage.NAME
        for table, reads in stage.TABLE_READS.items():
            assert table in stage.WRITES and set(reads) <= set(stage.READS), (stage.NAME, table)
    assert len(registry.writers()) == sum(len(s.WRITES) for s in registry.STAGES)  # one writer per table


def test_asset_lineage_is_derived_from_reads_and_writes() -> None:
    """Each asset's parents are exactly the writers of the tables its stage reads, plus itself (previous
    partition) when the table is carried: nothing is listed by hand."""
    graph = defs.resolve_asset_graph()
    for stage in registry.STAGES:
        for table in stage.WRITES:
            key = stage.asset_key(table)
            parents = {k.to_user_string() for k in graph.get(dg.AssetKey(key)).parent_keys}
            expected = set(registry.upstream_assets(stage, table)) | ({key} if table in stage.CARRIES else set())
            assert parents == expected, key
    catalog = {k.to_user_string() for k in graph.get(dg.AssetKey("duckdb_catalog")).parent_keys}
    assert catalog == {registry.asset_key(t) for t in registry.written_tables()}


class CountingStage(Stage):
    """A toy stage: carries a running count, writes it, and records the kill switch it saw."""

    NAME = "counting"
    READS = ()
    WRITES = ("macro_series",)
    CARRIES = ()
    CODE_VERSION = "test"
    PROGRESS_EVERY = 2

    def load_inputs(self, ctx: RunContext, days):
        return {d: i * 10.0 for i, d in enumerate(days)}

    def load_carried(self, ctx: RunContext, first_day):
        return 0

    def step(self, day, inputs, carried, ctx):
        rows = pl.DataFrame(
            {
                "date": [day],
                "series_id": ["COUNT"],
                "value": [inputs[day] + carried],
                "provider": ["test"],
                "raw_hash": ["-"],
                "ingestion_timestamp": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)],
            }
        )
        return StepOutput(day, {"macro_series": rows}, carried + 1, ctx.kill_switch.reason())


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append(msg)


def test_the_fold_runs_sessions_in_order_and_carries_state(tmp_path: Path) -> None:
    log = Log()
    ctx = RunContext(lake=Lake(str(tmp_path / "lake")), settings=None, log=log)
    steps = run_stage(CountingStage(), ctx, list(reversed(DAYS)))
    assert [s.day for s in steps] == DAYS
    assert [s.carried for s in steps] == [1, 2, 3, 4, 5]
    assert [s.rows["macro_series"]["value"][0] for s in steps] == [0.0, 11.0, 22.0, 33.0, 44.0]
    assert len(log.lines) == 3  # every 2 sessions and after the last
    with pytest.raises(ValueError, match="no sessions"):
        run_stage(CountingStage(), ctx, [])


def test_materialize_writes_one_partition_per_session(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    run = materialize(CountingStage(), RunContext(lake=lake, settings=None), DAYS)
    assert [r.partition for r in run.written["macro_series"]] == [d.isoformat() for d in DAYS]
    assert lake.read("macro_series")["value"].to_list() == [0.0, 11.0, 22.0, 33.0, 44.0]


def test_the_kill_switch_reaches_every_step_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "KILL_SWITCH"

    class Engaging(CountingStage):
        def step(self, day, inputs, carried, ctx):
            if day == DAYS[2]:
                kill_switch.engage(path, "test: mid-run halt", "pytest")
            return super().step(day, inputs, carried, ctx)

    ctx = RunContext(lake=Lake(str(tmp_path / "lake")), settings=None, kill_switch=KillSwitch(path))
    seen = [s.detail for s in run_stage(Engaging(), ctx, DAYS)]
    assert seen[:2] == [None, None]
    assert all(s and "ENGAGED" in s and "mid-run halt" in s for s in seen[3:])
    assert KillSwitch(None).reason() is None
