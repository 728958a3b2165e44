"""Real-data modes: the simulator never serves them, the local paper broker needs no keys, paths follow the
config directory, and what no provider serves is recorded, not made up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from mqf_pipeline.config import ConfigError, load_settings
from mqf_pipeline.execution.brokers.base import LiveTradingRefusedError
from mqf_pipeline.execution.live_guard import check_trading_allowed
from mqf_pipeline.market.ingest import _failure_rows, fetch_macro_window
from mqf_pipeline.modes import Mode
from mqf_pipeline.stages.providers import build_router
from mqf_pipeline.storage.archive import RawArchive

NOW = dt.datetime(2024, 3, 1, 22, tzinfo=dt.UTC)


def _configs(root: Path, **sections: dict) -> Path:
    cfg = root / "configs"
    cfg.mkdir(parents=True, exist_ok=True)
    for name, values in sections.items():
        (cfg / f"{name}.yaml").write_text(yaml.safe_dump(values))
    return cfg


def _paper_files(root: Path, files_root: Path, **extra: dict) -> Path:
    sections = {
        "fund": {"mode": "paper"},
        "universe": {"symbols": ["AAA", "ZZZ"]},
        "providers": {
            "priority": {"paper": ["files"]},
            "macro_priority": {"paper": ["files"]},
            "files_root": str(files_root),
        },
        "execution": {"broker": "local"},
    }
    for k, v in extra.items():
        sections[k] = {**sections.get(k, {}), **v}
    return _configs(root, **sections)


@pytest.mark.parametrize("key", ["priority", "macro_priority"])
def test_the_simulator_is_refused_in_a_real_data_mode(tmp_path, key):
    cfg = _configs(
        tmp_path,
        fund={"mode": "paper"},
        universe={"symbols": ["AAA"]},
        providers={key: {"paper": ["files", "simulated"]}, "files_root": str(tmp_path)},
    )
    with pytest.raises(ConfigError, match=f"providers.{key}.paper lists 'simulated'"):
        load_settings(cfg)


def test_broker_choice_is_validated(tmp_path):
    live = _configs(tmp_path / "a", fund={"mode": "live"}, universe={"symbols": ["AAA"]}, execution={"broker": "local"})
    with pytest.raises(ConfigError, match="mode 'live' trades at alpaca only"):
        load_settings(live)
    sim = _configs(tmp_path / "b", execution={"broker": "alpaca"})
    with pytest.raises(ConfigError, match="simulated prices"):
        load_settings(sim)
    bad = _configs(tmp_path / "c", execution={"broker": "ibkr"})
    with pytest.raises(ConfigError, match="unknown broker 'ibkr'"):
        load_settings(bad)


def test_local_broker_in_paper_mode_needs_no_keys(tmp_path):
    settings = load_settings(_paper_files(tmp_path, tmp_path))
    assert settings.broker_kind == "local"
    check_trading_allowed(Mode.PAPER, ["files"], env={}, broker="local")  # no keys: allowed
    with pytest.raises(LiveTradingRefusedError, match="APCA_API_KEY_ID"):
        check_trading_allowed(Mode.PAPER, ["files"], env={}, broker="alpaca")
    with pytest.raises(LiveTradingRefusedError, match="paper broker"):
        check_trading_allowed(Mode.LIVE, ["files"], env={}, broker="local")


def test_relative_runtime_is_under_the_config_dirs_parent(tmp_path, monkeypatch):
    monkeypatch.delenv("MQF_RUNTIME_DIR", raising=False)
    cfg = _configs(tmp_path / "fund", fund={"paths": {"runtime": "state"}})
    monkeypatch.chdir(tmp_path)  # anywhere else
    settings = load_settings(cfg)
    assert settings.runtime_dir == (tmp_path / "fund" / "state").resolve()
    assert Path(settings.lake_root) == (tmp_path / "fund" / "state" / "lake").resolve()


def test_router_asks_each_capability_only_of_its_own_list(tmp_path):
    settings = load_settings(_paper_files(tmp_path, tmp_path))
    router = build_router(settings)
    assert router.settings.routes["bars"] == ("files",)
    assert router.settings.routes["macro"] == ("files",)
    sim = load_settings(_configs(tmp_path / "sim"))
    sim_router = build_router(sim)
    assert sim_router.settings.routes["bars"] == ("simulated",)


def test_failure_rows_name_the_providers_tried():
    failures = pl.DataFrame(
        {
            "symbol": ["ZZZ"],
            "start": [dt.date(2024, 1, 2)],
            "end": [dt.date(2024, 1, 3)],
            "provider_attempts": [["files:error", "yahoo:no_rows"]],
            "error": ["files: no file holds ZZZ"],
        }
    )
    rows = _failure_rows(failures, [dt.date(2024, 1, 2), dt.date(2024, 1, 3)], "run", NOW)
    assert rows.height == 2
    assert rows.get_column("providers_tried").to_list() == ["files:error, yahoo:no_rows"] * 2


def test_a_macro_series_no_provider_serves_is_absent_not_made_up(tmp_path):
    """Paper mode with an empty macro list: no row, and the reason is returned."""
    cfg = _paper_files(tmp_path, tmp_path, providers={"macro_priority": {"paper": []}})
    router = build_router(load_settings(cfg))
    window = fetch_macro_window(router, RawArchive(tmp_path / "raw"), ("VIX", "SHORT_RATE"), [dt.date(2024, 1, 2)], NOW)
    assert window.rows.height == 0
    assert set(window.absent) == {"VIX", "SHORT_RATE"}
    assert "no available provider for macro" in window.absent["VIX"]
