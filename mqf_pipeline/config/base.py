"""Shared pieces of the settings models: the frozen section base, the error types, environment names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

CONFIG_DIR_ENV = "MQF_CONFIG_DIR"
RUNTIME_DIR_ENV = "MQF_RUNTIME_DIR"
#: Credentials the fund reads from the environment only (never from a config file); never printed.
CREDENTIAL_ENV: tuple[str, ...] = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "FRED_API_KEY")


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names file, key and reason."""


class KeyedError(ValueError):
    """A check across fields that names the keys it concerns (``section.key`` paths, the first one the key to
    change), so the error message names their files and keys instead of the model that ran the check."""

    def __init__(self, message: str, *keys: str) -> None:
        super().__init__(message)
        self.keys = keys


class Section(BaseModel):
    """A settings section: immutable, and an unknown key is an error (a typo never passes silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the closest of ``choices`` to a misspelt ``word`` (difflib), else ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
