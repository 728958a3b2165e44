"""The settings of one deployment and how they are loaded from ``configs/*.yaml``.

One YAML file per section (:data:`SECTION_FILES`); a missing file means that section's defaults. A bad
file fails with :class:`ConfigError` naming the file, the key and the reason. Keys renamed by a release
keep working for one more with a warning naming the new key (:mod:`mqf_pipeline.config.deprecations`).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from mqf_pipeline.config.base import CONFIG_DIR_ENV, RUNTIME_DIR_ENV, ConfigError, Section
from mqf_pipeline.config.deprecations import move_deprecated_keys
from mqf_pipeline.config.fund import FundSettings, ProvidersSettings, SignalsSettings, UniverseSettings
from mqf_pipeline.config.risk import RiskSettings
from mqf_pipeline.config.trading import ExecutionSettings, PortfolioSettings
from mqf_pipeline.governance.quality import QualityThresholds
from mqf_pipeline.market.sim import SimulatorParams
from mqf_pipeline.modes import Mode


class Settings(Section):
    """All settings of one deployment."""

    config_dir: Path
    fund: FundSettings = FundSettings()
    universe: UniverseSettings = UniverseSettings()
    providers: ProvidersSettings = ProvidersSettings()
    quality: QualityThresholds = QualityThresholds()
    simulator: SimulatorParams = SimulatorParams()
    signals: SignalsSettings = SignalsSettings()
    risk: RiskSettings = RiskSettings()
    portfolio: PortfolioSettings = PortfolioSettings()
    execution: ExecutionSettings = ExecutionSettings()

    # ---------------------------------------------------------------- derived paths
    @property
    def runtime_dir(self) -> Path:
        """``$MQF_RUNTIME_DIR``, else ``fund.paths.runtime``; a relative path is under the folder holding the
        config directory (``<project>/configs`` -> ``<project>/runtime``), whatever the current directory (the
        environment variable is taken as given, relative to the current directory)."""
        env = os.environ.get(RUNTIME_DIR_ENV)
        if env:
            return Path(env).expanduser()
        path = Path(self.fund.paths.runtime).expanduser()
        return path if path.is_absolute() else self.config_dir.resolve().parent / path

    @property
    def broker_kind(self) -> str:
        """Where orders go: ``local`` (the built-in paper broker) or ``alpaca`` (``execution.broker``)."""
        if self.execution.broker != "auto":
            return self.execution.broker
        return "local" if self.fund.mode is Mode.SIMULATED else "alpaca"

    def _under_runtime(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.runtime_dir / path

    @property
    def lake_root(self) -> str:
        value = self.fund.paths.lake
        return value if "://" in value else str(self._under_runtime(value))

    @property
    def raw_dir(self) -> Path:
        return self._under_runtime(self.fund.paths.raw)

    @property
    def catalog_path(self) -> Path:
        return self._under_runtime(self.fund.paths.catalog)

    @property
    def kill_switch_path(self) -> Path:
        return self._under_runtime(self.fund.paths.kill_switch)

    @property
    def broker_dir(self) -> Path:
        return self._under_runtime(self.fund.paths.broker)

    @property
    def dagster_home(self) -> Path:
        return self.runtime_dir / "dagster"

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """Old config keys move to their new place (with a deprecation warning naming it)."""
        return move_deprecated_keys(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _mode_needs_symbols(self) -> Settings:
        mode = self.fund.mode
        if mode is not Mode.SIMULATED and not self.universe.symbols:
            raise ValueError(f"mode {mode.value!r} needs universe.symbols (configs/universe.yaml)")
        if mode is not Mode.SIMULATED:
            for key in ("priority", "macro_priority"):
                if "simulated" in getattr(self.providers, key).get(mode, []):
                    raise ValueError(
                        f"providers.{key}.{mode.value} lists 'simulated': in mode {mode.value!r} the simulator "
                        "never serves bars or macro series (use mode: simulated, or remove it)"
                    )
        if mode is Mode.LIVE and self.broker_kind == "local":
            raise ValueError("execution.broker 'local' is the paper broker: mode 'live' trades at alpaca only")
        if mode is Mode.SIMULATED and self.broker_kind == "alpaca":
            raise ValueError("execution.broker 'alpaca' with mode 'simulated' would send orders for simulated prices")
        return self


SECTION_FILES: dict[str, str] = {
    "fund": "fund.yaml",
    "universe": "universe.yaml",
    "providers": "providers.yaml",
    "quality": "quality.yaml",
    "simulator": "simulator.yaml",
    "signals": "signals.yaml",
    "risk": "risk.yaml",
    "portfolio": "portfolio.yaml",
    "execution": "execution.yaml",
}


def default_config_dir() -> Path:
    env = os.environ.get(CONFIG_DIR_ENV)
    return Path(env) if env else Path.cwd() / "configs"


#: Files of a config directory that are not settings sections (the Dagster instance's own settings).
OTHER_FILES = frozenset({"dagster.yaml"})


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice (lines {seen[key]} and {key_node.start_mark.line + 1}): keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _check_file_names(directory: Path) -> None:
    """Refuse YAML files that are no section file: a misspelt or renamed one would otherwise be ignored and that
    section's defaults used silently."""
    known = set(SECTION_FILES.values()) | OTHER_FILES
    stray = sorted(p.name for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.name not in known)
    if stray:
        hints = []
        for name in stray:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hints.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise ConfigError(
            f"{directory}: file(s) that are no settings section: {', '.join(hints)}; the sections are "
            f"{', '.join(SECTION_FILES.values())} (rename or remove the file: its settings would be ignored)"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _describe(exc: ValidationError, files: dict[str, Path]) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        section = loc[0] if loc and loc[0] in files else None
        where = str(files[section]) if section else "settings"
        key = ".".join(loc[1:] if section else loc) or "(top level)"
        lines.append(f"{where}: key '{key}': {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(config_dir: str | os.PathLike[str] | None = None, **overrides: dict[str, Any]) -> Settings:
    """Read and validate every section file in ``config_dir`` (default ``$MQF_CONFIG_DIR`` or ``./configs``).

    ``overrides`` maps a section name to keys merged over its file (used by tests and the CLI).
    """
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    if not directory.is_dir():
        raise ConfigError(
            f"config directory {directory} does not exist (set {CONFIG_DIR_ENV} or run from the project root)"
        )
    _check_file_names(directory)
    files = {section: directory / name for section, name in SECTION_FILES.items()}
    data: dict[str, Any] = {"config_dir": directory}
    for section, path in files.items():
        values = _read_yaml(path) if path.exists() else {}
        for key, value in overrides.get(section, {}).items():
            values[key] = value
        data[section] = values
    unknown = sorted(set(overrides) - set(SECTION_FILES))
    if unknown:
        raise ConfigError(f"unknown settings section(s) {unknown}; known: {sorted(SECTION_FILES)}")
    data = move_deprecated_keys(data)  # here too, so a conflict names the keys without pydantic's wrapping
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, files)) from exc
