"""Shared pieces of the settings models: the frozen section base, the error type, environment names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

CONFIG_DIR_ENV = "MQF_CONFIG_DIR"
RUNTIME_DIR_ENV = "MQF_RUNTIME_DIR"


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names file, key and reason."""


class Section(BaseModel):
    """A settings section: immutable, and an unknown key is an error (a typo never passes silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
