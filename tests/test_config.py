"""Config files are validated; a bad file names the file, the key and the reason."""

from __future__ import annotations

import pytest

from mqf_pipeline.config import ConfigError, Mode, load_settings
from tests.deployment import write_configs


def test_shipped_configs_load():
    settings = load_settings("configs")
    assert settings.fund.mode is Mode.SIMULATED
    assert settings.simulator.n_symbols == 500
    assert settings.simulator.n_sectors == 11
    assert settings.quality.reject_below == 0.6
    assert settings.quality.max_rejection_rate == 0.05
    assert settings.fund.history.min_history_rows == 1260
    assert settings.providers.router.rate_limits["yahoo"].rate_per_s == 5


def test_bad_value_names_file_key_and_reason(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "quality.yaml").write_text("window_sessions: 0\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config_dir)
    msg = str(err.value)
    assert "quality.yaml" in msg and "window_sessions" in msg and "greater than or equal to 1" in msg


def test_unknown_key_is_refused(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "fund.yaml").write_text("mode: simulated\nstrategy: institutional\nmodee: live\n")
    with pytest.raises(ConfigError, match=r"fund.yaml: key 'modee': Extra inputs are not permitted"):
        load_settings(config_dir)


def test_nested_key_path(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "providers.yaml").write_text("router:\n  retries:\n    max_attempts: 0\n")
    with pytest.raises(ConfigError, match=r"providers.yaml: key 'router.retries.max_attempts'"):
        load_settings(config_dir)


def test_invalid_yaml_names_file(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "universe.yaml").write_text("symbols: [AAPL\n")
    with pytest.raises(ConfigError, match=r"universe.yaml: not valid YAML"):
        load_settings(config_dir)


def test_paper_mode_needs_symbols(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "fund.yaml").write_text("mode: paper\n")
    with pytest.raises(ConfigError, match=r"needs universe.symbols"):
        load_settings(config_dir)


def test_unknown_provider_is_refused(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "providers.yaml").write_text("priority:\n  paper: [yahoo, polygonx]\n")
    with pytest.raises(ConfigError, match=r"providers.yaml.*unknown provider\(s\) \['polygonx'\]"):
        load_settings(config_dir)


def test_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope")
