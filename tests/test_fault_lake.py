"""A corrupt lake file is a named, repairable fault: verify names table, session and file for garbage, truncated,
other-content and orphan temp files; a query names the damaged file; the blocking quality check fails naming it;
`mqf lake verify --repair` rematerializes exactly the broken partitions and nothing else changes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mqf_cli.lake_cmd import lake_app, plan_repairs
from mqf_pipeline.config import load_settings
from mqf_pipeline.storage.lake import Lake, LakeReadError
from mqf_pipeline.storage.lake_verify import LakeProblem, lake_health, verify_lake
from tests.deployment import definitions_for, materializations, run_market_data, write_configs

runner = CliRunner()
INCEPTION = dt.date(2024, 2, 27)
LAST = dt.date(2024, 3, 1)
WARM_UP = 30
WARM_DAY = "2024-02-01"  # a warm-up session (before the inception)


def _configs(root: Path) -> Path:
    cfg = write_configs(
        root,
        n_symbols=11,
        fund={
            "calendar": {"partitions_start": INCEPTION.isoformat()},
            "history": {"warm_up_sessions": WARM_UP, "min_history_rows": 10},
        },
    )
    (cfg / "dagster.yaml").write_text(Path("configs/dagster.yaml").read_text())
    return cfg


@pytest.fixture(scope="module")
def built_fund(tmp_path_factory) -> Path:
    """A small fund (11 symbols, 30 warm-up sessions, 4 daily ones) built once in this process: its root."""
    root = tmp_path_factory.mktemp("fund")
    cfg = _configs(root)
    defs = definitions_for(cfg)
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def("warm_up_job").execute_in_process(instance=instance).success
    assert run_market_data(cfg, INCEPTION, LAST, instance=instance).success
    return root


@pytest.fixture
def fund(built_fund, tmp_path, monkeypatch) -> Iterator[tuple[Path, Lake]]:
    """A copy of the built fund for one test (mtimes kept): its configs and its lake."""
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    cfg = _configs(tmp_path)
    shutil.copytree(built_fund / "runtime" / "lake", tmp_path / "runtime" / "lake")
    # the code location is built at import from MQF_CONFIG_DIR's settings: each fund of this process needs its own
    sys.modules.pop("mqf_pipeline.definitions", None)
    yield cfg, Lake(load_settings(cfg).lake_root)
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR"):
        os.environ.pop(var, None)
    sys.modules.pop("mqf_pipeline.definitions", None)


def _garble(path: str) -> None:
    with open(path, "wb") as fh:
        fh.write(b"this is no parquet file" * 20)


def _truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def _snapshot(lake: Lake) -> dict[str, tuple[int, str]]:
    """Every file of the lake: (mtime in ns, sha256 of its bytes)."""
    out = {}
    for folder, _, names in os.walk(lake.root):
        for name in names:
            path = os.path.join(folder, name)
            out[path] = (os.stat(path).st_mtime_ns, hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return out


def _only(problems, kind: str) -> LakeProblem:
    assert [p.kind for p in problems] == [kind], problems
    return problems[0]


@pytest.mark.parametrize(("damage", "kind"), [(_garble, "unreadable"), (_truncate, "truncated")])
def test_fault_damaged_file_is_found_with_table_date_and_path(fund, damage, kind):
    _, lake = fund
    path = lake.path("data_quality", "2024-02-28")
    damage(path)
    report = verify_lake(lake)
    problem = _only(report.problems, kind)
    assert (problem.table, problem.date, problem.path) == ("data_quality", dt.date(2024, 2, 28), path)
    assert report.remaining and report.files == sum(len(lake.partitions(t)) for t in os.listdir(lake.root))
    assert "1 problem(s)" in report.summary()
    with pytest.raises(LakeReadError, match=r"data_quality partition 2024-02-28: the file .*2024-02-28\.parquet"):
        lake.read("data_quality")


def test_fault_orphan_temp_files_older_than_an_hour_are_removed_younger_kept(fund):
    _, lake = fund
    old = Path(lake.path("features", "2024-02-28") + ".tmp-dead")
    young = Path(lake.path("features", "2024-02-29") + ".tmp-live")
    old.write_bytes(b"half a file")
    young.write_bytes(b"being written")
    two_hours_ago = old.stat().st_mtime - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    report = verify_lake(lake)
    problem = _only(report.problems, "orphan_temp")
    assert (problem.table, problem.partition, problem.path, problem.fixed) == ("features", "2024-02-28", str(old), True)
    assert "removed" in problem.detail and not report.remaining
    assert not old.exists() and young.exists()
    assert "1 stale temp file(s) removed" in report.summary()


def _other_content_same_footer(lake: Lake, path: str) -> None:
    """Rewrite ``path`` as valid Parquet with one value changed, keeping its footer's recorded hash."""
    table = pq.read_table(path)
    frame = pl.from_arrow(table).with_columns(pl.col("quality_score") * 0.5)
    pq.write_table(frame.to_arrow().replace_schema_metadata(table.schema.metadata), path)


def _another_session(lake: Lake, path: str) -> None:
    """Replace a price_history file by the previous session's: valid, its own footer hash consistent."""
    shutil.copyfile(lake.path("price_history", "2024-02-28"), path)


def _written_by_hand(lake: Lake, path: str) -> None:
    """A valid Parquet file written without the lake's writer (no recorded hash)."""
    pl.read_parquet(path).head(3).write_parquet(path)


@pytest.mark.parametrize(
    ("table", "replace", "recorded_in"),
    [
        ("data_quality", _other_content_same_footer, "its footer"),
        ("price_history", _another_session, "ingestion_audit of 2024-02-29"),
        ("data_quality", _written_by_hand, "no content hash in its footer"),
    ],
)
def test_fault_valid_parquet_with_other_content_is_a_hash_mismatch(fund, table, replace, recorded_in):
    _, lake = fund
    path = lake.path(table, "2024-02-29")
    replace(lake, path)
    assert lake.read(table, ["2024-02-29"]).height  # it reads: only the hash tells
    problem = _only(verify_lake(lake).problems, "hash_mismatch")
    assert (problem.table, problem.partition, problem.path) == (table, "2024-02-29", path)
    assert recorded_in in problem.detail


def test_fault_clean_lake_counts_files_and_hashes(fund):
    _, lake = fund
    report = verify_lake(lake)
    assert not report.problems and report.hashes > report.files > 400
    audited = len(lake.partitions("ingestion_audit"))
    assert report.hashes == report.files + audited  # every footer, and price_history against its audit
    assert report.summary() == f"all {report.files} files readable, {report.hashes} hashes match"


def test_fault_lake_query_names_the_damaged_file(fund):
    _, lake = fund
    path = lake.path("features", "2024-02-28")
    _truncate(path)
    atr = lambda f: f.filter(pl.col("feature") == "atr_14").select("date", "symbol", "value")  # noqa: E731
    with pytest.raises(LakeReadError, match=r"features partition 2024-02-28: the file .*features/2024-02-28") as err:
        lake.query("features", build=atr)
    assert (err.value.table, err.value.partition, err.value.path) == ("features", "2024-02-28", path)
    assert lake.query("price_history", build=lambda f: f.select("date", "close")).height  # undamaged: read as before


def test_fault_garbled_page_behind_a_good_footer_is_named(fund):
    _, lake = fund
    path = lake.path("price_history", "2024-02-28")
    data = bytearray(Path(path).read_bytes())
    data[8:200] = b"\xff" * 192  # the first data page; the footer at the end is intact
    Path(path).write_bytes(bytes(data))
    lake.footer(path)  # the footer still reads
    with pytest.raises(LakeReadError, match="price_history partition 2024-02-28"):
        lake.query("price_history", build=lambda f: f.select("date", "close"))
    problem = _only(verify_lake(lake, ["price_history"]).problems, "unreadable")
    assert problem.path == path and "footer reads but a page does not" in problem.detail


def test_fault_lake_health_lists_corrupt_partitions(fund):
    _, lake = fund
    assert lake_health(lake).summary().startswith("all ")
    _garble(lake.path("macro_series", "2024-02-28"))
    _truncate(lake.path("features", WARM_DAY))
    health = lake_health(lake)
    assert not health.ok
    summary = health.summary()
    assert summary.startswith("2 corrupt partitions: features 2024-02-01 ")
    assert lake.path("macro_series", "2024-02-28") in summary and "mqf lake verify --repair" in summary
    assert len(health.lines()) == 3


def test_fault_repair_plan_maps_tables_to_their_assets():
    def problem(table: str, partition: str) -> LakeProblem:
        return LakeProblem(table, partition, f"/lake/{table}/{partition}.parquet", "truncated", "")

    repairs, unrepairable = plan_repairs(
        (
            problem("decisions", "2024-02-29"),
            problem("price_history", "2024-02-29"),
            problem("features", WARM_DAY),
            problem("provider_metrics", "run-1-ingest_market_data"),
        ),
        INCEPTION,
    )
    assert [(r.job, r.session) for r in repairs] == [("warm_up_job", None), ("daily_cycle_job", dt.date(2024, 2, 29))]
    assert repairs[0].assets == ("fund_history",) and "warm-up" in repairs[0].label
    assert {"decisions", "audit_log", "risk_state", "price_history", "ingestion_audit"} <= set(repairs[1].assets)
    assert "positions" not in repairs[1].assets  # execution is another part of the trading cycle
    assert [p.table for p, _ in unrepairable] == ["provider_metrics"]


def test_fault_repair_rematerializes_exactly_the_broken_partitions(fund):
    cfg, lake = fund
    broken = {("features", "2024-02-29"), ("data_quality", "2024-02-28")}
    hashes = {key: lake.stored_hash(*key) for key in broken}
    _truncate(lake.path("features", "2024-02-29"))
    _garble(lake.path("data_quality", "2024-02-28"))
    before = _snapshot(lake)
    found = runner.invoke(lake_app, ["verify", "--json", "--config-dir", str(cfg)])
    assert found.exit_code == 1
    assert {(p["table"], p["partition"]) for p in json.loads(found.stdout)["problems"]} == broken

    repaired = runner.invoke(lake_app, ["verify", "--repair", "--json", "--config-dir", str(cfg)])
    assert repaired.exit_code == 0, repaired.output
    result = json.loads(repaired.stdout)
    assert [(r["session"], r["success"]) for r in result["repairs"]] == [("2024-02-28", True), ("2024-02-29", True)]
    assert result["after_repair"]["problems"] == []
    assert {key: lake.stored_hash(*key) for key in broken} == hashes  # the same content as before the damage
    after = _snapshot(lake)
    changed = {p for p in before if after.get(p) != before[p]}
    assert changed == {lake.path(*key) for key in broken}
    assert set(after) == set(before)  # no file added (quality and features save no provider metrics)

    instance = dg.DagsterInstance.from_config(str(load_settings(cfg).dagster_home))
    runs = sorted(instance.get_runs(), key=lambda r: r.tags["dagster/partition"])
    assert [(r.tags["dagster/partition"], sorted(k.to_user_string() for k in r.asset_selection)) for r in runs] == [
        ("2024-02-28", ["data_quality"]),
        ("2024-02-29", ["features"]),
    ]
    clean = runner.invoke(lake_app, ["verify", "--config-dir", str(cfg)])
    assert clean.exit_code == 0 and "files readable" in clean.stdout and "hashes match" in clean.stdout


def test_fault_repair_of_a_warm_up_session_rematerializes_fund_history(fund):
    cfg, lake = fund
    digest = lake.stored_hash("features", WARM_DAY)
    _garble(lake.path("features", WARM_DAY))
    result = runner.invoke(lake_app, ["verify", "--repair", "--config-dir", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "fund_history (features 2024-02-01): the warm-up before the inception" in result.output
    assert lake.stored_hash("features", WARM_DAY) == digest
    instance = dg.DagsterInstance.from_config(str(load_settings(cfg).dagster_home))
    assert [r.job_name for r in instance.get_runs()] == ["warm_up_job"]


def test_fault_verify_exit_codes_and_unknown_table(fund):
    cfg, lake = fund
    ok = runner.invoke(lake_app, ["verify", "--table", "features", "--config-dir", str(cfg)])
    assert ok.exit_code == 0 and ok.stdout.startswith(f"all {len(lake.partitions('features'))} files readable")
    _garble(lake.path("features", "2024-02-28"))
    bad = runner.invoke(
        lake_app, ["verify", "--table", "features", "--table", "macro_series", "--config-dir", str(cfg)]
    )
    assert bad.exit_code == 1 and "features" in bad.stdout and "unreadable" in bad.stdout
    unknown = runner.invoke(lake_app, ["verify", "--table", "nope", "--config-dir", str(cfg)])
    assert unknown.exit_code == 2 and "unknown table 'nope'" in unknown.output


def test_fault_blocking_quality_check_names_the_unreadable_file(fund):
    cfg, lake = fund
    path = lake.path("price_history", "2024-02-28")
    _truncate(path)
    day = dt.date(2024, 2, 29)
    result = run_market_data(cfg, day, day)
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "rejection_rate_within_limit" and not check.passed
    assert path in check.description and "price_history partition 2024-02-28" in check.description
    meta = check.metadata
    assert (meta["unreadable_table"].value, meta["unreadable_partition"].value) == ("price_history", "2024-02-28")
    assert meta["unreadable_path"].value == path
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["data_quality"]
    assert path in failures[0].step_failure_data.error.message
    assert "data_quality" not in materializations(result) and "trading_eligibility" not in materializations(result)
