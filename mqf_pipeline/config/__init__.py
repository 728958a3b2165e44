"""Typed settings loaded from ``configs/*.yaml``, validated by pydantic (one module per group of files).

``from mqf_pipeline.config import Settings, load_settings`` is the entry point; only the stage layer,
the orchestration folders and the CLI read settings (the domain takes parameter objects).
"""

from mqf_pipeline.config.base import CONFIG_DIR_ENV, RUNTIME_DIR_ENV, ConfigError, Section
from mqf_pipeline.config.deprecations import RENAMED, ConfigDeprecationWarning
from mqf_pipeline.config.fund import (
    CalendarSettings,
    FundSettings,
    HistorySettings,
    PathsSettings,
    ProvidersSettings,
    SignalsSettings,
    UniverseSettings,
)
from mqf_pipeline.config.provenance import SettingSource, effective_settings
from mqf_pipeline.config.risk import (
    BreakerSettings,
    LimitsSettings,
    MetaBrainSettings,
    RiskSettings,
    VarSettings,
)
from mqf_pipeline.config.settings import SECTION_FILES, Settings, default_config_dir, load_settings
from mqf_pipeline.config.trading import ExecutionSettings, PortfolioSettings
from mqf_pipeline.modes import Mode

__all__ = [
    "CONFIG_DIR_ENV",
    "RENAMED",
    "RUNTIME_DIR_ENV",
    "SECTION_FILES",
    "BreakerSettings",
    "CalendarSettings",
    "ConfigDeprecationWarning",
    "ConfigError",
    "ExecutionSettings",
    "FundSettings",
    "HistorySettings",
    "LimitsSettings",
    "MetaBrainSettings",
    "Mode",
    "PathsSettings",
    "PortfolioSettings",
    "ProvidersSettings",
    "RiskSettings",
    "Section",
    "SettingSource",
    "Settings",
    "SignalsSettings",
    "UniverseSettings",
    "VarSettings",
    "default_config_dir",
    "effective_settings",
    "load_settings",
]
