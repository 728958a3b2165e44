"""The fund's inception and warm-up: the first `mqf run` plans warm-up, daily range, session and catalog;
later runs only the new session; a warm-up session equals the same session run as a daily partition."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console
from typer.testing import CliRunner

from bench.compare_lakes import PER_RUN_COLUMNS
from mqf_cli.main import app
from mqf_pipeline import calendar
from mqf_pipeline.config import load_settings
from mqf_pipeline.config.files_fund import _inception
from mqf_pipeline.stages.base import parse_progress
from mqf_pipeline.stages.plan import InceptionError, daily_sessions, fund_inception, warm_up_days
from mqf_pipeline.stages.registry import warm_up_tables
from mqf_pipeline.storage.lake import Lake, content_hash
from tests.deployment import write_configs

runner = CliRunner()
SESSION = dt.date(2024, 3, 1)
FIRST_RUN = 5
WARM_UP = 30


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR"):
        os.environ.pop(var, None)


def _configs(root: Path, partitions_start: str, warm_up: int) -> Path:
    cfg = write_configs(
        root,
        fund={
            "calendar": {"partitions_start": partitions_start, "first_run_sessions": FIRST_RUN},
            "history": {"warm_up_sessions": warm_up, "min_history_rows": 10},
        },
    )
    (cfg / "dagster.yaml").write_text(Path("configs/dagster.yaml").read_text())
    return cfg


def _run(cfg: Path, *args: str):
    # `mqf` is one process per fund; here funds share a process, so the code location is rebuilt for each
    sys.modules.pop("mqf_pipeline.definitions", None)
    return runner.invoke(app, ["run", *args, "--in-process", "--config-dir", str(cfg)])


def _result_hashes(lake: Lake, table: str, days: list[dt.date]) -> list[str]:
    out = []
    for d in days:
        frame = lake.read(table, [d])
        out.append(content_hash(frame.drop([c for c in frame.columns if c in PER_RUN_COLUMNS])))
    return out


@pytest.mark.slow
def test_first_run_then_one_new_session(tmp_path, clean_env):
    cfg = _configs(tmp_path, "auto", WARM_UP)
    settings = load_settings(cfg)
    first = _run(cfg, "--date", SESSION.isoformat())
    assert first.exit_code == 0, first.output
    inception = calendar.session_offset(SESSION, 1 - FIRST_RUN)
    recorded = json.loads((settings.runtime_dir / "inception.json").read_text())
    assert recorded["inception"] == inception.isoformat()
    assert f"the fund's inception (first daily partition) is {inception}" in first.output
    assert "1. warm-up, 30 sessions" in first.output and "about" in first.output

    lake = Lake(settings.lake_root)
    warm = warm_up_days(settings, inception)
    assert len(warm) == WARM_UP and warm[-1] == calendar.previous_session(inception)
    for table in ("price_history", "features", "trading_eligibility"):
        assert lake.partitions(table) == [d.isoformat() for d in [*warm, *daily_sessions(inception, SESSION)]]
    assert lake.partitions("decisions") == [d.isoformat() for d in daily_sessions(inception, SESSION)]

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    jobs = [r.job_name for r in reversed(instance.get_runs())]
    assert jobs == ["warm_up_job", "daily_cycle_job", "daily_cycle_job", "catalog_job"]
    history = instance.fetch_materializations(dg.AssetKey("fund_history"), limit=10).records
    assert len(history) == 1
    meta = history[0].asset_materialization.metadata
    assert meta["sessions"].value == WARM_UP and meta["inception"].value == inception.isoformat()

    nxt = calendar.session_offset(SESSION, 1)
    second = _run(cfg, "--date", nxt.isoformat())
    assert second.exit_code == 0, second.output
    assert "warm-up" not in second.output.split("run 1/")[0]
    assert len(instance.get_runs()) == 6  # one daily session and the catalog
    assert lake.partitions("decisions")[-1] == nxt.isoformat()
    assert fund_inception(load_settings(cfg)) == inception  # recorded: the partitions do not move

    before = _run(cfg, "--date", calendar.previous_session(inception).isoformat())
    assert before.exit_code == 2 and "before the fund's inception" in before.output
    back = runner.invoke(
        app, ["backfill", "--start", warm[-1].isoformat(), "--end", SESSION.isoformat(), "--config-dir", str(cfg)]
    )
    assert back.exit_code == 2 and "warm-up history" in back.output


@pytest.mark.slow
def test_a_warm_up_session_equals_the_same_session_as_a_daily_partition(tmp_path, clean_env):
    """Fund A warms up over 30 sessions; fund B, with the same history start, warms up over 10 and runs the
    next 20 as daily partitions. Those 20 sessions' data and signal rows are the same in both."""
    a_cfg = _configs(tmp_path / "a", SESSION.isoformat(), WARM_UP)
    assert _run(a_cfg, "--date", SESSION.isoformat()).exit_code == 0
    a = load_settings(a_cfg)
    start = warm_up_days(a, SESSION)[0]
    b_inception = calendar.session_offset(start, 10)
    b_cfg = _configs(tmp_path / "b", b_inception.isoformat(), 10)
    result = _run(b_cfg, "--date", SESSION.isoformat())
    assert result.exit_code == 0, result.output
    b = load_settings(b_cfg)
    assert warm_up_days(b, b_inception)[0] == start
    compared = calendar.sessions(b_inception, calendar.previous_session(SESSION))
    assert len(compared) == 20
    lake_a, lake_b = Lake(a.lake_root), Lake(b.lake_root)
    for table in warm_up_tables():
        assert _result_hashes(lake_a, table, compared) == _result_hashes(lake_b, table, compared), table


def test_inception_refuses_a_session_before_it(tmp_path):
    settings = load_settings(_configs(tmp_path, "2024-02-01", WARM_UP))
    assert fund_inception(settings) == dt.date(2024, 2, 1)
    with pytest.raises(InceptionError, match="before the fund's inception 2024-02-01"):
        daily_sessions(dt.date(2024, 2, 1), dt.date(2024, 1, 31))


@pytest.mark.parametrize(
    ("n", "min_history", "want"),
    [(188, 60, (128, 128)), (2000, 1260, (1940, 1260)), (40, 10, (0, 0)), (1400, 10, (1340, 1240))],
)
def test_files_fund_inception(n, min_history, want):
    """Daily partitions: the files' last 60 sessions; warm-up: the look-back before them, at most what is used."""
    assert _inception(n, min_history) == want


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("ingest: 50/1240 sessions 2021-12-09", ("ingest", 50, 1240, "sessions", "2021-12-09")),
        ("features: block 2/21 2021-10-14 .. 2022-01-12", ("features", 2, 21, "blocks", "2021-10-14 .. 2022-01-12")),
        ("warm-up: stage 5/7 features", ("warm-up", 5, 7, "stages", "features")),
        ("trading_cycle: 3/59 sessions (2026-09-14)\nmore", ("trading_cycle", 3, 59, "sessions", "2026-09-14")),
    ],
)
def test_parse_progress(line, want):
    p = parse_progress(line)
    assert p is not None and (p.stage, p.done, p.total, p.unit, p.note) == want


@pytest.mark.parametrize("line", ["fund_history started", "ingest: 3 rows", "note: 1/2 of the book"])
def test_other_messages_are_not_progress(line):
    assert parse_progress(line) is None


def test_progress_display_without_a_terminal_prints_lines(tmp_path):
    """Not a terminal (CI, a pipe): plain lines per step and progress message, failures with their cause."""
    from mqf_cli.progress import RunProgress

    @dg.op
    def counted(context) -> int:
        context.log.info("ingest: 1/2 sessions 2024-01-02")
        context.log.info("ingest: 2/2 sessions 2024-01-03")
        return 2

    @dg.op
    def broken(context, _after) -> None:
        raise ValueError("symbol S0001 has no close on 2024-01-03")

    @dg.job
    def sample():
        broken(counted())

    out = Console(file=open(tmp_path / "out.txt", "w"), force_terminal=False, width=200)  # noqa: SIM115
    with dg.instance_for_test() as instance, RunProgress(instance, out, "sample") as progress:
        sample.execute_in_process(instance=instance, tags=progress.tags, raise_on_error=False)
    out.file.close()
    text = (tmp_path / "out.txt").read_text()
    assert "ingest: 2/2 sessions" in text
    assert progress.timeline.failures and "symbol S0001 has no close on 2024-01-03" in progress.timeline.failures[0]
    assert set(progress.timeline.steps) == {"counted", "broken"}


def test_lookback_sessions_is_dropped_with_a_warning(tmp_path):
    """`fund.history.lookback_sessions` (before issue 14) is read, ignored, and named with what replaced it."""
    from mqf_pipeline.config.deprecations import ConfigDeprecationWarning

    cfg = _configs(tmp_path, "2024-02-01", WARM_UP)
    text = (cfg / "fund.yaml").read_text().replace("history:\n", "history:\n  lookback_sessions: 1300\n")
    (cfg / "fund.yaml").write_text(text)
    with pytest.warns(ConfigDeprecationWarning, match="lookback_sessions is no longer used.*warm_up_sessions"):
        settings = load_settings(cfg)
    assert settings.fund.history.warm_up_sessions == WARM_UP
