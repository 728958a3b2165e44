"""Config files are validated; a bad file names the file, the key and the reason."""

from __future__ import annotations

import logging
import re
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from mqf_pipeline.config import RENAMED, ConfigDeprecationWarning, ConfigError, Mode, Settings, load_settings
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
    with pytest.raises(ConfigError, match=r"fund.yaml: fund.modee: unknown key; did you mean mode\?"):
        load_settings(config_dir)


def test_nested_key_path(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "providers.yaml").write_text("router:\n  retries:\n    max_attempts: 0\n")
    with pytest.raises(ConfigError, match=r"providers.yaml: providers.router.retries.max_attempts: .* \(got 0\)"):
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


# ---------------------------------------------------------------------------------------------- renamed keys
OLD_KEYS = [
    # (old key, file, yaml text with the old key, new attribute path, value)
    ("risk.meta_brain.max_position", "risk", "meta_brain:\n  max_position: 0.07\n", "risk.limits.single_name", 0.07),
    ("portfolio.single_name", "portfolio", "single_name: 0.07\n", "risk.limits.single_name", 0.07),
    ("risk.meta_brain.allow_shorts", "risk", "meta_brain:\n  allow_shorts: true\n", "risk.limits.allow_shorts", True),
    ("portfolio.allow_shorts", "portfolio", "allow_shorts: true\n", "risk.limits.allow_shorts", True),
    ("portfolio.gross", "portfolio", "gross: 0.8\n", "risk.limits.max_gross_leverage", 0.8),
    ("portfolio.sector", "portfolio", "sector: 0.2\n", "risk.limits.sector_exposure", 0.2),
    ("portfolio.vol_target_ann", "portfolio", "vol_target_ann: 0.12\n", "risk.breakers.vol_target_ann", 0.12),
    ("portfolio.adv_window_sessions", "portfolio", "adv_window_sessions: 30\n", "execution.adv_window_sessions", 30),
]


def _attr(settings, path: str):
    value = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_every_renamed_key_is_tested():
    assert {old: new for old, _, _, new, _ in OLD_KEYS} == RENAMED


def test_a_renamed_key_warning_is_a_deprecation_warning():
    assert issubclass(ConfigDeprecationWarning, DeprecationWarning)


@pytest.mark.parametrize(("old", "section", "text", "new", "value"), OLD_KEYS)
def test_a_renamed_key_still_works_and_warns_naming_the_new_key(tmp_path, caplog, old, section, text, new, value):
    config_dir = write_configs(tmp_path)
    (config_dir / f"{section}.yaml").write_text(text)
    expected = f"{old} is deprecated: use {new} (the old key is accepted until the next release)"
    with caplog.at_level(logging.WARNING, logger="mqf_pipeline.config"), pytest.warns(DeprecationWarning) as record:
        settings = load_settings(config_dir)
    assert _attr(settings, new) == value
    assert [str(w.message) for w in record if issubclass(w.category, ConfigDeprecationWarning)] == [expected]
    assert expected in caplog.text  # the log line operators see


def test_a_renamed_key_in_overrides_still_works(tmp_path):
    config_dir = write_configs(tmp_path)
    with pytest.warns(
        ConfigDeprecationWarning, match=re.escape("portfolio.single_name is deprecated: use risk.limits.single_name")
    ):
        settings = load_settings(config_dir, portfolio={"single_name": 0.05})
    assert settings.risk.limits.single_name == 0.05
    assert "single_name" not in type(settings.portfolio).model_fields


def test_the_settings_model_itself_moves_a_renamed_key(tmp_path):
    """Settings(...) validated without load_settings (the model's own before-validator) accepts an old key."""
    with pytest.warns(ConfigDeprecationWarning, match=re.escape("use risk.limits.allow_shorts")):
        settings = Settings.model_validate({"config_dir": tmp_path, "risk": {"meta_brain": {"allow_shorts": True}}})
    assert settings.risk.limits.allow_shorts is True


def test_old_and_new_key_with_different_values_is_an_error(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "portfolio.yaml").write_text("single_name: 0.07\n")
    (config_dir / "risk.yaml").write_text("limits:\n  single_name: 0.05\n")
    with pytest.warns(ConfigDeprecationWarning), pytest.raises(ConfigError) as err:
        load_settings(config_dir)
    msg = str(err.value)
    assert "portfolio.single_name = 0.07" in msg and "risk.limits.single_name = 0.05" in msg


def test_old_key_in_overrides_against_new_key_in_the_file_is_an_error(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "execution.yaml").write_text("adv_window_sessions: 20\n")
    with pytest.warns(ConfigDeprecationWarning), pytest.raises(ConfigError) as err:
        load_settings(config_dir, portfolio={"adv_window_sessions": 30})
    msg = str(err.value)
    assert "portfolio.adv_window_sessions = 30" in msg and "execution.adv_window_sessions = 20" in msg


def test_two_old_keys_of_one_knob_that_disagree_are_an_error(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "portfolio.yaml").write_text("single_name: 0.07\n")
    (config_dir / "risk.yaml").write_text("meta_brain:\n  max_position: 0.05\n")
    with pytest.warns(ConfigDeprecationWarning), pytest.raises(ConfigError) as err:
        load_settings(config_dir)
    msg = str(err.value)
    assert "risk.meta_brain.max_position = 0.05" in msg and "portfolio.single_name = 0.07" in msg


def test_old_and_new_key_with_equal_values_load(tmp_path):
    config_dir = write_configs(tmp_path)
    (config_dir / "portfolio.yaml").write_text("gross: 0.9\n")
    (config_dir / "risk.yaml").write_text("limits:\n  max_gross_leverage: 0.9\n")
    with pytest.warns(ConfigDeprecationWarning):
        assert load_settings(config_dir).risk.limits.max_gross_leverage == 0.9


def test_shipped_configs_use_no_renamed_key():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        settings = load_settings("configs")
    assert [str(w.message) for w in record if issubclass(w.category, DeprecationWarning)] == []
    assert settings.risk.limits.single_name == 0.10 and settings.risk.limits.allow_shorts is False


def _old_layout(tmp_path: Path) -> Path:
    """The shipped configs written the way they were before the merge: every twin under both keys."""
    config_dir = tmp_path / "configs"
    shutil.copytree("configs", config_dir)
    risk = yaml.safe_load((config_dir / "risk.yaml").read_text())
    portfolio = yaml.safe_load((config_dir / "portfolio.yaml").read_text())
    execution = yaml.safe_load((config_dir / "execution.yaml").read_text())
    single_name, allow_shorts = risk["limits"].pop("single_name"), risk["limits"].pop("allow_shorts")
    risk["meta_brain"] |= {"max_position": single_name, "allow_shorts": allow_shorts}
    portfolio |= {
        "gross": risk["limits"]["max_gross_leverage"],
        "sector": risk["limits"]["sector_exposure"],
        "single_name": single_name,
        "allow_shorts": allow_shorts,
        "adv_window_sessions": execution["adv_window_sessions"],
        "vol_target_ann": risk["breakers"]["vol_target_ann"],
    }
    (config_dir / "risk.yaml").write_text(yaml.safe_dump(risk, sort_keys=False))
    (config_dir / "portfolio.yaml").write_text(yaml.safe_dump(portfolio, sort_keys=False))
    return config_dir


def test_the_old_layout_loads_to_the_same_settings_and_parameters(tmp_path):
    """Round trip: the pre-merge layout of the shipped configs (each twin set twice, to equal values) gives the
    same settings, and the same parameter objects for the domain, as the shipped canonical configs."""
    from mqf_pipeline.portfolio.rebalance import EMERGENCY, STRATEGIC, TACTICAL
    from mqf_pipeline.stages import params

    shipped = load_settings("configs")
    with pytest.warns(ConfigDeprecationWarning) as record:
        old = load_settings(_old_layout(tmp_path))
    assert len({str(w.message) for w in record}) == len(RENAMED)
    assert old.model_dump(exclude={"config_dir"}) == shipped.model_dump(exclude={"config_dir"})
    for build in (params.breaker_params, params.meta_brain_params, params.risk_params, params.policy_params):
        assert build(old) == build(shipped)
    for mode in (STRATEGIC, TACTICAL, EMERGENCY):
        assert params.constraints_for(old, mode) == params.constraints_for(shipped, mode)
    assert params.allocator_caps(old) == params.allocator_caps(shipped)


def test_the_regime_model_has_its_own_random_state():
    settings = load_settings("configs", signals={"regime_random_state": 99})
    assert settings.signals.regime_random_state == 99 and settings.simulator.seed != 99


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        # a misspelt section file: its settings would be ignored and the defaults used (a key given twice, which
        # plain YAML would keep the last of silently: tests/test_fault_config.py)
        ("portfolo.yaml", "max_weight: 0.05\n", r"portfolo.yaml \(did you mean portfolio.yaml\?\)"),
    ],
)
def test_fault_misspelt_section_file_is_refused(tmp_path, name, text, match):
    config_dir = write_configs(tmp_path)
    (config_dir / name).write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(config_dir)
