"""The settings of one deployment and how they are loaded from ``configs/*.yaml``.

One YAML file per section (:data:`SECTION_FILES`); a missing file means that section's defaults. Bad files
fail with one :class:`ConfigError` listing every error, one per line, as ``<file>: <section.key.path>: reason``
(an unknown key, a key given twice, a stray file: each with a did-you-mean or both lines;
:mod:`mqf_pipeline.config.errors`). Keys renamed by a release keep working for one more with a warning naming
the new key (:mod:`mqf_pipeline.config.deprecations`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from mqf_pipeline.config.base import CONFIG_DIR_ENV, RUNTIME_DIR_ENV, ConfigError, KeyedError, Section
from mqf_pipeline.config.deprecations import move_deprecated_keys, move_deprecated_keys_traced
from mqf_pipeline.config.errors import combined_error, describe_validation_error
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
        """Checks across sections; each error names the keys it concerns (the one to change first)."""
        mode = self.fund.mode
        if mode is not Mode.SIMULATED and not self.universe.symbols:
            raise KeyedError(
                f"mode {mode.value!r} needs universe.symbols (the symbols the fund trades)",
                "universe.symbols",
                "fund.mode",
            )
        if mode is not Mode.SIMULATED:
            for key in ("priority", "macro_priority"):
                if "simulated" in getattr(self.providers, key).get(mode, []):
                    raise KeyedError(
                        f"providers.{key}.{mode.value} lists 'simulated': in mode {mode.value!r} the simulator "
                        "never serves bars or macro series (use mode: simulated, or remove it)",
                        f"providers.{key}.{mode.value}",
                        "fund.mode",
                    )
        if mode is Mode.LIVE and self.broker_kind == "local":
            raise KeyedError(
                "execution.broker 'local' is the paper broker: mode 'live' trades at alpaca only",
                "execution.broker",
                "fund.mode",
            )
        if mode is Mode.SIMULATED and self.broker_kind == "alpaca":
            raise KeyedError(
                "execution.broker 'alpaca' with mode 'simulated' would send orders for simulated prices",
                "execution.broker",
                "fund.mode",
            )
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
    """A safe YAML loader that refuses a key given twice in one mapping (plain YAML keeps the last silently),
    naming each repeated key's full path and both lines (:func:`_duplicate_keys`)."""

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text)
        self.path = path
        self.name = str(path)  # YAML error marks name the file, not "<unicode string>"

    def load_checked(self, section: str) -> Any:
        """The document of ``section``'s file, or :class:`ConfigError` listing every repeated key."""
        try:
            node = self.get_single_node()
            if node is None:
                return None
            duplicates = _duplicate_keys(node, section)
            if duplicates:
                raise ConfigError("\n".join(f"{self.path}: {line}" for line in duplicates))
            return self.construct_document(node)
        finally:
            self.dispose()


def _duplicate_keys(node: yaml.Node, path: str) -> list[str]:
    """``<key path>: key given twice (lines a and b): keep one`` for every repeated key under ``node``, in file
    order."""
    found: list[tuple[int, str]] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, path: str) -> None:
        if id(node) in seen:  # an alias of a node already walked
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is not None and key != "<<":  # a merge key may repeat keys: that is its purpose
                    if key in lines:
                        found.append((line, f"{path}.{key}: key given twice (lines {lines[key]} and {line}): keep one"))
                    lines.setdefault(key, line)
                walk(value_node, f"{path}.{key}" if key is not None else path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    walk(node, path)
    return [text for _, text in sorted(found)]


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


def _read_yaml(path: Path, section: str) -> dict[str, Any]:
    """The mapping of one section file; :class:`ConfigError` naming the file (and key path) when it is no valid
    YAML, repeats a key or is not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = _UniqueKeyLoader(text, path).load_checked(section)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        why = ", ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{path}: not valid YAML{at}: {why}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of {section} keys (key: value lines), got {type(data).__name__}")
    return data


def config_directory(config_dir: str | os.PathLike[str] | None = None) -> Path:
    """``config_dir`` (default ``$MQF_CONFIG_DIR`` or ``./configs``), checked to exist and hold only section files."""
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    if not directory.is_dir():
        raise ConfigError(
            f"config directory {directory} does not exist (set {CONFIG_DIR_ENV} or run from the project root)"
        )
    _check_file_names(directory)
    return directory


def read_sections(
    directory: Path, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Section -> its file's mapping (a missing file: empty) with ``overrides`` merged, and section -> its file.

    Every unreadable file is reported in one :class:`ConfigError`, one line each.
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(SECTION_FILES))
    if unknown:
        raise ConfigError(f"unknown settings section(s) {unknown}; known: {sorted(SECTION_FILES)}")
    files = {section: directory / name for section, name in SECTION_FILES.items()}
    data: dict[str, Any] = {}
    errors: list[str] = []
    for section, path in files.items():
        try:
            values = _read_yaml(path, section) if path.exists() else {}
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        data[section] = {**values, **overrides.get(section, {})}
    if errors:
        raise combined_error(errors)
    return data, files


def validate_sections(data: dict[str, Any], directory: Path, files: Mapping[str, Path]) -> Settings:
    """The settings of ``data`` (section -> mapping, deprecated keys already moved); every error in one
    :class:`ConfigError` naming file and key path, one per line."""
    try:
        return Settings.model_validate({"config_dir": directory, **data})
    except ValidationError as exc:
        raise combined_error(describe_validation_error(exc, Settings, files)) from exc


def load_settings(config_dir: str | os.PathLike[str] | None = None, **overrides: dict[str, Any]) -> Settings:
    """Read and validate every section file in ``config_dir`` (default ``$MQF_CONFIG_DIR`` or ``./configs``).

    ``overrides`` maps a section name to keys merged over its file (used by tests and the CLI).
    """
    directory = config_directory(config_dir)
    data, files = read_sections(directory, overrides)
    # moved here too (the model moves them as well), so a conflict names the files without pydantic's wrapping
    moved, _ = move_deprecated_keys_traced(data, files)
    return validate_sections(moved, directory, files)
