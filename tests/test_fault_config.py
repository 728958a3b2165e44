"""Config that cannot lie: every mistake in ``configs/*.yaml`` is refused with the file, the full key path and
the reason (a did-you-mean for a misspelt key), and ``mqf config check`` shows where each setting comes from.

A misspelt section file (``portfolo.yaml``) is refused with a did-you-mean by
``tests/test_config.py::test_fault_misspelt_section_file_is_refused``; renamed keys, still read with a
warning, by the ``OLD_KEYS`` tests there.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from mqf_cli.config_cmd import config_app
from mqf_pipeline.config import ConfigDeprecationWarning, ConfigError, SettingSource, effective_settings, load_settings

SHIPPED = Path(__file__).resolve().parents[1] / "configs"

app = typer.Typer()
app.add_typer(config_app, name="config")
runner = CliRunner()


def _copy(tmp_path: Path) -> Path:
    """A copy of the shipped configs to break."""
    config_dir = tmp_path / "configs"
    shutil.copytree(SHIPPED, config_dir)
    return config_dir


def _edit(config_dir: Path, name: str, **changes: object) -> None:
    """Set top-level keys of one section file (``None`` removes the key)."""
    path = config_dir / name
    data = yaml.safe_load(path.read_text()) or {}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _error_lines(config_dir: Path) -> list[str]:
    """The lines of the ConfigError ``load_settings`` raises (the header dropped)."""
    with pytest.raises(ConfigError) as err:
        load_settings(config_dir)
    header, *lines = str(err.value).splitlines()
    assert header == f"invalid configuration ({len(lines)} error{'s' if len(lines) != 1 else ''}):"
    return [line.strip() for line in lines]


def _row(output: str, key: str) -> list[str]:
    """The cells of the table row of ``key`` in ``mqf config check`` output."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == key:
            return cells
    raise AssertionError(f"no row {key!r} in:\n{output}")


# ----------------------------------------------------------------------------------------------- refusals
def test_fault_duplicate_key_is_refused_naming_both_lines(tmp_path):
    config_dir = _copy(tmp_path)
    (config_dir / "risk.yaml").write_text(
        "initial_nav: 1.0\nlimits:\n  var_95: 0.04\n  var_95: 0.05\ninitial_nav: 2.0\n"
    )
    assert _error_lines(config_dir) == [
        f"{config_dir}/risk.yaml: risk.limits.var_95: key given twice (lines 3 and 4): keep one",
        f"{config_dir}/risk.yaml: risk.initial_nav: key given twice (lines 1 and 5): keep one",
    ]


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        (
            "risk.yaml",
            "limits:\n  max_gros_leverage: 1.0\n",
            "risk.limits.max_gros_leverage: unknown key; did you mean max_gross_leverage?",
        ),
        (
            "fund.yaml",
            "mode: simulated\nstrategyy: institutional\n",
            "fund.strategyy: unknown key; did you mean strategy?",
        ),
        (
            "providers.yaml",
            "router:\n  rate_limits:\n    yahoo: {rate_per_sec: 5}\n",
            "providers.router.rate_limits.yahoo.rate_per_sec: unknown key; did you mean rate_per_s?",
        ),
        # an old key misspelt: the suggestion is where its value belongs now
        (
            "portfolio.yaml",
            "singel_name: 0.1\n",
            "portfolio.singel_name: unknown key; did you mean risk.limits.single_name?",
        ),
    ],
)
def test_fault_unknown_key_is_refused_with_did_you_mean_file_and_key_path(tmp_path, name, text, line):
    config_dir = _copy(tmp_path)
    (config_dir / name).write_text(text)
    assert _error_lines(config_dir) == [f"{config_dir}/{name}: {line}"]


def test_fault_an_unknown_key_with_no_close_match_lists_the_keys_allowed_there(tmp_path):
    config_dir = _copy(tmp_path)
    (config_dir / "risk.yaml").write_text("var:\n  zzz: 1\n")
    [line] = _error_lines(config_dir)
    assert line.startswith(
        f"{config_dir}/risk.yaml: risk.var.zzz: unknown key; known keys here: level, window_sessions"
    )


def test_fault_a_deprecated_key_is_still_accepted_with_its_warning(tmp_path):
    config_dir = _copy(tmp_path)
    _edit(config_dir, "portfolio.yaml", gross=0.9)
    (config_dir / "risk.yaml").write_text("limits:\n  sector_exposure: 0.15\n")
    with pytest.warns(ConfigDeprecationWarning, match="portfolio.gross is deprecated: use risk.limits.max_gross"):
        assert load_settings(config_dir).risk.limits.max_gross_leverage == 0.9


BROKEN = [
    # (file, its text, the expected line after the config directory): model validators across sections, of one
    # section, of one field, a union field, a list item, a wrong type for a section
    ("fund.yaml", "mode: paper\n", "universe.yaml: universe.symbols and {d}/fund.yaml: fund.mode: mode 'paper' needs"),
    ("simulator.yaml", "n_symbols: 3\nn_sectors: 5\n", "simulator.yaml: simulator.n_symbols, simulator.n_sectors: "),
    ("execution.yaml", "broker: alpaca\n", "execution.yaml: execution.broker and {d}/fund.yaml: fund.mode: "),
    ("portfolio.yaml", "allocator: kely\n", "portfolio.yaml: portfolio.allocator: unknown allocator 'kely'"),
    ("signals.yaml", "preset: momentm\n", "signals.yaml: signals.preset: unknown preset 'momentm'"),
    ("universe.yaml", "symbols: [A, B, A]\n", "universe.yaml: universe.symbols: duplicate symbols ['A']"),
    ("providers.yaml", "priority:\n  paper: [yahooo]\n", "providers.yaml: providers.priority: mode 'paper': unknown"),
    ("fund.yaml", "calendar:\n  partitions_start: soon\n", "fund.yaml: fund.calendar.partitions_start: "),
    ("risk.yaml", "breakers:\n  recovery_steps: [0.5, x]\n", "risk.yaml: risk.breakers.recovery_steps[1]: "),
    ("providers.yaml", "priority:\n  papr: [yahoo]\n", "providers.yaml: providers.priority.papr: invalid key: "),
    ("risk.yaml", "limits: 5\n", "risk.yaml: risk.limits: "),
]


@pytest.mark.parametrize(("name", "text", "expected"), BROKEN)
def test_fault_every_validation_error_names_file_and_key_path_never_top_level(tmp_path, name, text, expected):
    config_dir = _copy(tmp_path)
    (config_dir / name).write_text(text)
    [line] = _error_lines(config_dir)
    assert "(top level)" not in line
    assert line.startswith(f"{config_dir}/" + expected.format(d=config_dir)), line


def test_fault_a_union_field_is_one_line_with_the_value(tmp_path):
    config_dir = _copy(tmp_path)
    (config_dir / "fund.yaml").write_text("calendar:\n  partitions_start: soon\n")
    [line] = _error_lines(config_dir)
    assert line.endswith("; or Input should be 'auto' (got 'soon')") and "valid date" in line


def test_fault_several_errors_are_all_listed_one_per_line(tmp_path):
    config_dir = _copy(tmp_path)
    (config_dir / "quality.yaml").write_text("reject_below: 2\nwindow_sesions: 5\n")
    (config_dir / "execution.yaml").write_text("pov_rate: 0\n")
    (config_dir / "simulator.yaml").write_text("seed: [1\n")  # invalid YAML: reported with the other unreadable files
    assert _error_lines(config_dir) == [
        f"{config_dir}/simulator.yaml: not valid YAML (line 2, column 1): while parsing a flow sequence, expected ',' "
        "or ']', but got '<stream end>'"
    ]
    (config_dir / "simulator.yaml").write_text("seed: 1\n")
    lines = _error_lines(config_dir)
    assert lines == [
        f"{config_dir}/quality.yaml: quality.reject_below: Input should be less than or equal to 1 (got 2)",
        f"{config_dir}/quality.yaml: quality.window_sesions: unknown key; did you mean window_sessions?",
        f"{config_dir}/execution.yaml: execution.pov_rate: Input should be greater than 0 (got 0)",
    ]


# ------------------------------------------------------------------------------------------ mqf config check
def test_fault_config_check_on_the_shipped_configs_exits_0_and_shows_sources(monkeypatch):
    monkeypatch.chdir(SHIPPED.parent)
    result = runner.invoke(app, ["config", "check", "--config-dir", "configs"])
    assert result.exit_code == 0, result.output
    assert _row(result.output, "risk.limits.single_name") == ["risk.limits.single_name", "0.1", "configs/risk.yaml"]
    assert _row(result.output, "fund.history.warm_up_sessions")[2] == "configs/fund.yaml"
    assert _row(result.output, "fund.history.warm_up_signal_sessions") == [
        "fund.history.warm_up_signal_sessions",
        "63",
        "default",
    ]
    assert _row(result.output, "providers.router.cache.max_rows")[2] == "default"  # its siblings are in the file
    assert _row(result.output, "providers.router.cache.max_entries")[2] == "configs/providers.yaml"
    assert "configuration valid" in result.output


def test_fault_config_check_on_a_broken_dir_exits_2_with_the_message(tmp_path):
    config_dir = _copy(tmp_path)
    (config_dir / "risk.yaml").write_text("limits:\n  max_gros_leverage: 1.0\n")
    result = runner.invoke(app, ["config", "check", "--config-dir", str(config_dir)])
    assert result.exit_code == 2
    assert (
        f"{config_dir}/risk.yaml: risk.limits.max_gros_leverage: unknown key; did you mean max_gross_leverage?"
        in result.output
    )
    assert "effective settings" not in result.output


def test_fault_config_check_names_a_value_read_through_a_deprecated_key(tmp_path):
    config_dir = _copy(tmp_path)
    risk = yaml.safe_load((config_dir / "risk.yaml").read_text())
    risk["limits"].pop("max_gross_leverage")
    (config_dir / "risk.yaml").write_text(yaml.safe_dump(risk))
    _edit(config_dir, "portfolio.yaml", gross=0.8)
    result = runner.invoke(app, ["config", "check", "--config-dir", str(config_dir)])
    assert result.exit_code == 0, result.output
    assert _row(result.output, "risk.limits.max_gross_leverage")[1:] == [
        "0.8",
        f"deprecated key portfolio.gross in {config_dir}/portfolio.yaml",
    ]
    assert "warning: portfolio.gross is deprecated: use risk.limits.max_gross_leverage" in result.output
    assert "1 read through deprecated keys" in result.output


def test_fault_config_check_never_prints_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s3cr3t-value")
    monkeypatch.setenv("MQF_RUNTIME_DIR", str(tmp_path / "rt-hidden"))
    monkeypatch.delenv("FRED_API_KEY", raising=False)
    result = runner.invoke(app, ["config", "check", "--config-dir", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-value" not in result.output and "rt-hidden" not in result.output
    assert _row(result.output, "APCA_API_SECRET_KEY")[1:] == ["*** (set)", "environment"]
    assert _row(result.output, "FRED_API_KEY")[1:] == ["not set", "environment"]
    # a key path naming a secret is masked whatever its source
    assert SettingSource("providers.api_token", "abc", "configs/providers.yaml", secret=True).shown == "***"


def test_fault_effective_settings_cover_every_leaf_once():
    rows = effective_settings(SHIPPED)
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    assert {r.source for r in rows} - {"default", "environment"} == {str(p) for p in SHIPPED.glob("*.yaml")} - {
        str(SHIPPED / "dagster.yaml")
    }
    assert not any(re.search(r"\(top level\)", r.source) for r in rows)
