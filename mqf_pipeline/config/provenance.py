"""Where each effective setting comes from: the section file that sets it, a deprecated key read in its place, or
the model's default (``mqf config check`` prints this; nothing here prints).

A secret (a key path with key, secret, token or password in it, and anything read from the environment) is
flagged and never shown: :attr:`SettingSource.shown` masks it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqf_pipeline.config.base import CONFIG_DIR_ENV, CREDENTIAL_ENV, RUNTIME_DIR_ENV
from mqf_pipeline.config.deprecations import move_deprecated_keys_traced
from mqf_pipeline.config.errors import is_secret_key
from mqf_pipeline.config.settings import SECTION_FILES, config_directory, read_sections, validate_sections

DEFAULT = "default"
ENVIRONMENT = "environment"
#: The environment variables the settings read, shown as set or not (their values are never shown).
SETTINGS_ENV: tuple[str, ...] = (CONFIG_DIR_ENV, RUNTIME_DIR_ENV, *CREDENTIAL_ENV)


@dataclass(frozen=True)
class SettingSource:
    """One effective setting: its full key path (or environment variable), value and origin.

    ``source`` is the section file's path, ``default``, ``deprecated key <old> in <file>`` or ``environment``.
    An environment variable's ``value`` is only whether it is set (its text is never kept).
    """

    key: str
    value: Any
    source: str
    secret: bool = False

    @property
    def shown(self) -> str:
        """The value as YAML would write it, or ``***`` for a secret (``not set`` for an absent variable)."""
        if self.source == ENVIRONMENT:
            return "*** (set)" if self.value else "not set"
        if self.secret:
            return "***"
        return self.value if isinstance(self.value, str) else json.dumps(self.value)


def effective_settings(config_dir: str | os.PathLike[str] | None = None) -> list[SettingSource]:
    """Every leaf setting of ``config_dir`` (validated as :func:`~mqf_pipeline.config.load_settings` does, so
    an invalid directory raises :class:`~mqf_pipeline.config.ConfigError`) with its source, section by section
    in file order, then the environment variables the settings read."""
    directory = config_directory(config_dir)
    data, files = read_sections(directory)
    moved, origins = move_deprecated_keys_traced(data, files)
    settings = validate_sections(moved, directory, files)
    rows = []
    for section in SECTION_FILES:
        dumped = getattr(settings, section).model_dump(mode="json")
        for parts, value in _leaves(dumped, (section,)):
            key = ".".join(parts)
            rows.append(SettingSource(key, value, _source(parts, data, origins, files), is_secret_key(key)))
    rows += [SettingSource(name, bool(os.environ.get(name)), ENVIRONMENT, True) for name in SETTINGS_ENV]
    return rows


def _leaves(value: Any, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, value) of every leaf: a mapping is walked (an empty one is a leaf), a list is one leaf."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, (*parts, str(key)))
    else:
        yield parts, value


def _source(
    parts: tuple[str, ...], data: Mapping[str, Any], origins: Mapping[str, str], files: Mapping[str, Path]
) -> str:
    """Where the leaf at ``parts`` was set: its section file, a deprecated key's file, or the default."""
    if _is_set(data, parts):
        return str(files[parts[0]])
    for end in range(len(parts), 1, -1):
        old = origins.get(".".join(parts[:end]))
        if old is not None:
            return f"deprecated key {old} in {files[old.split('.', 1)[0]]}"
    return DEFAULT


def _is_set(data: Mapping[str, Any], parts: tuple[str, ...]) -> bool:
    """Whether the files' mappings (section -> mapping, keys compared as text) hold the key path ``parts``."""
    node: Any = data
    for part in parts:
        if not isinstance(node, Mapping):
            return False
        keys = {str(k): k for k in node}
        if part not in keys:
            return False
        node = node[keys[part]]
    return True
