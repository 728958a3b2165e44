"""The market-data job end to end on a small simulated deployment (in process)."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import duckdb
import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.market.sim import MarketSimulator
from mqf_pipeline.storage.catalog import refresh_catalog
from mqf_pipeline.storage.lake import Lake
from tests.deployment import materializations, run_market_data, settings_for, write_configs

START, END = dt.date(2024, 1, 2), dt.date(2024, 2, 14)
SESSIONS = calendar.sessions(START, END)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    config_dir = write_configs(root)
    instance = dg.DagsterInstance.ephemeral()
    result = run_market_data(config_dir, START, END, instance)
    return config_dir, instance, result


def test_backfill_range_materializes_every_table(deployment):
    config_dir, _, result = deployment
    assert result.success
    mats = materializations(result)
    for key in (
        "price_history",
        "corporate_actions",
        "fundamentals",
        "news_headlines",
        "ingestion_audit",
        "backfill_failures",
        "macro_series",
        "data_quality",
        "trading_eligibility",
    ):
        assert len(mats[key]) == len(SESSIONS), key  # one materialization per partition in the range
    lake = Lake(settings_for(config_dir).lake_root)
    for table in ("price_history", "data_quality", "trading_eligibility", "macro_series", "ingestion_audit"):
        assert lake.partitions(table) == [d.isoformat() for d in SESSIONS], table
    bars = lake.read("price_history")
    assert bars.height == 20 * len(SESSIONS)
    assert bars.get_column("raw_hash").str.len_chars().min() == 64


def test_quality_clean_and_check_passes(deployment):
    config_dir, _, result = deployment
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    quality = Lake(settings_for(config_dir).lake_root).read("data_quality")
    assert quality.get_column("status").eq("ACCEPT").all()


def test_eligibility_phase0(deployment):
    config_dir, _, _ = deployment
    elig = Lake(settings_for(config_dir).lake_root).read("trading_eligibility")
    # min_history_rows = 10: sessions 1..9 fail Phase 0, from the 10th on every symbol is eligible
    by_day = elig.group_by("date").agg(pl.col("eligible").sum()).sort("date")
    assert by_day.get_column("eligible").to_list()[:9] == [0] * 9
    assert by_day.get_column("eligible").to_list()[9:] == [20] * (len(SESSIONS) - 9)


def test_rematerializing_a_partition_gives_the_same_content_hash(deployment):
    config_dir, instance, _result = deployment
    day = SESSIONS[5]
    lake = Lake(settings_for(config_dir).lake_root)
    before = {t: lake.stored_hash(t, day) for t in ("price_history", "data_quality", "macro_series")}
    mtime = lake.fs.info(lake.path("price_history", day))["mtime"]
    rerun = run_market_data(config_dir, day, day, instance)
    assert rerun.success
    after = {t: lake.stored_hash(t, day) for t in before}
    assert after == before
    mats = materializations(rerun)
    assert mats["price_history"][0].metadata["content_hash"].value == before["price_history"]
    assert mats["price_history"][0].metadata["files_unchanged"].value == 1
    assert lake.fs.info(lake.path("price_history", day))["mtime"] == mtime  # file untouched


def test_catalog_views_answer_sql(deployment):
    config_dir, _, _ = deployment
    settings = settings_for(config_dir)
    counts = refresh_catalog(Lake(settings.lake_root), settings.catalog_path)
    assert counts["price_history"] == 20 * len(SESSIONS)
    assert counts["cycle_meta"] == 0  # declared, typed, empty (no stage writes it yet)
    con = duckdb.connect(str(settings.catalog_path), read_only=True)
    try:
        n = con.execute("SELECT count(DISTINCT symbol) FROM price_history WHERE date = ?", [END]).fetchone()[0]
        cols = [r[0] for r in con.execute("DESCRIBE decisions").fetchall()]
    finally:
        con.close()
    assert n == 20
    assert cols[:4] == ["id", "cycle_id", "symbol", "timestamp"]


def test_faulty_partition_fails_blocking_check_and_blocks_eligibility(tmp_path):
    """3 of 20 symbols (15% > 5%) get a NaN close on the last day, served by the files provider."""
    faulty_day = SESSIONS[-1]
    files = tmp_path / "files"
    files.mkdir()
    sim_root = tmp_path / "sim"
    config_dir = write_configs(sim_root)
    bars = MarketSimulator(settings_for(config_dir).simulator).bars(START, faulty_day)
    bad = ["S0001", "S0002", "S0003"]
    bars = bars.with_columns(
        pl.when(pl.col("symbol").is_in(bad) & (pl.col("date") == faulty_day))
        .then(float("nan"))
        .otherwise(pl.col("close"))
        .alias("close")
    )
    bars.write_parquet(files / "bars.parquet")
    config_dir = write_configs(
        tmp_path,
        providers={
            "priority": {"simulated": ["files"]},
            "macro_priority": {"simulated": ["simulated"]},
            "files_root": str(files),
        },
    )
    ok = run_market_data(config_dir, START, SESSIONS[-2])
    assert ok.success
    result = run_market_data(config_dir, faulty_day, faulty_day)
    assert not result.success
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [False]
    assert checks[0].metadata["sessions_over_limit"].value == 1
    mats = materializations(result)
    assert "data_quality" in mats and "trading_eligibility" not in mats
    lake = Lake(settings_for(config_dir).lake_root)
    assert not lake.exists("trading_eligibility", faulty_day)
    quality = lake.read("data_quality", [faulty_day])
    rejected = quality.filter(pl.col("status") == "REJECT")
    assert sorted(rejected.get_column("symbol")) == bad
    assert all("NAN_VALUE" in json.loads(f) for f in rejected.get_column("validation_flags"))


def test_provider_metrics_persist_and_seed_the_next_router(deployment):
    config_dir, _, _ = deployment
    lake = Lake(settings_for(config_dir).lake_root)
    stored = lake.read("provider_metrics")
    assert set(stored.get_column("source_step")) >= {"ingest_market_data", "macro_series"}
    assert set(stored.get_column("capability")) >= {"bars", "macro"}
    from mqf_pipeline.market.metrics_store import load_provider_metrics
    from resources import MarketDataResource, SettingsResource

    latest = load_provider_metrics(lake)
    bars = latest.filter(pl.col("capability") == "bars").row(0, named=True)
    assert bars["provider"] == "simulated" and bars["requests"] >= 1 and bars["successes"] >= 1
    router = MarketDataResource(settings=SettingsResource(config_dir=str(config_dir))).router()
    loaded = router.metrics_frame().filter(pl.col("capability") == "bars").row(0, named=True)
    assert loaded["bandit_alpha"] == bars["bandit_alpha"] and loaded["requests"] == bars["requests"]


def test_features_identical_alone_or_in_a_backfill(deployment):
    """Block-anchored features: a single-partition rerun reproduces the range run's rows exactly."""
    config_dir, instance, _ = deployment
    lake = Lake(settings_for(config_dir).lake_root)
    day = SESSIONS[-3]
    before = lake.read("features", [day])
    assert before.height > 0 and set(before.get_column("symbol")) == {f"S{i:04d}" for i in range(20)}
    stored_hash = lake.stored_hash("features", day)
    assert run_market_data(config_dir, day, day, instance).success
    assert lake.stored_hash("features", day) == stored_hash
    assert lake.read("features", [day]).equals(before)
