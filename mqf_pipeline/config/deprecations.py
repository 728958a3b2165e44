"""Config keys renamed by a release: the old key keeps working for one more release, with a warning that
names the new key.

Each knob defined twice before (the meta-brain and the portfolio both had a single-name cap, shorts, a gross
and sector cap, a volatility target, an ADV window) now has one home. An old key found in a file is moved
to its new place before validation; the old and the new key given with different values is an error (the
fund would not know which one the operator meant).
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mqf_pipeline.config.base import ConfigError

logger = logging.getLogger(__name__)

#: old key -> new key, both as ``section.key.subkey`` paths (section = the YAML file's name).
RENAMED: dict[str, str] = {
    "risk.meta_brain.max_position": "risk.limits.single_name",
    "portfolio.single_name": "risk.limits.single_name",
    "risk.meta_brain.allow_shorts": "risk.limits.allow_shorts",
    "portfolio.allow_shorts": "risk.limits.allow_shorts",
    "portfolio.gross": "risk.limits.max_gross_leverage",
    "portfolio.sector": "risk.limits.sector_exposure",
    "portfolio.vol_target_ann": "risk.breakers.vol_target_ann",
    "portfolio.adv_window_sessions": "execution.adv_window_sessions",
}


#: keys a release replaced by something that is not a rename: the key is read, ignored, and named with what
#: replaced it (for one release; the warning says what to write instead).
REPLACED: dict[str, str] = {
    "fund.history.lookback_sessions": "the history before the inception is now fund.history.warm_up_sessions "
    "(sessions before calendar.partitions_start, materialized once by the warm-up) and the daily partitions run "
    "from calendar.partitions_start ('auto': the first run's last calendar.first_run_sessions sessions)",
}


class ConfigDeprecationWarning(DeprecationWarning):
    """A config key that still works but will be removed in the next release.

    A :class:`DeprecationWarning` (Python hides those outside ``__main__`` by default), so every one is also
    logged at WARNING level: the log line is what an operator sees.
    """


def move_deprecated_keys(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (section name -> its mapping) with every old key of :data:`RENAMED` moved to its new key and
    every key of :data:`REPLACED` dropped (see :func:`move_deprecated_keys_traced`)."""
    return move_deprecated_keys_traced(data)[0]


def move_deprecated_keys_traced(
    data: dict[str, Any], files: Mapping[str, Path] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``data`` with the old keys moved (as :func:`move_deprecated_keys`), and new key -> the old key its value
    came from (only where the new key was not set itself: where the effective value was read through the old key).

    Warns (:class:`ConfigDeprecationWarning` and a log line) once per old or replaced key found. Raises
    :class:`ConfigError` when an old and a new key (or two old keys of one new key) carry different values; with
    ``files`` (section -> its file) the error names the file of each key.
    """
    out = copy.deepcopy(data)
    for old, instead in REPLACED.items():
        found, _ = _pop(out, old)
        if found:
            message = f"{old} is no longer used and is ignored: {instead}"
            warnings.warn(message, ConfigDeprecationWarning, stacklevel=3)
            logger.warning(message)
    moved: dict[str, str] = {}  # new key -> the old key its value was moved from
    for old, new in RENAMED.items():
        found, value = _pop(out, old)
        if not found:
            continue
        message = f"{old} is deprecated: use {new} (the old key is accepted until the next release)"
        warnings.warn(message, ConfigDeprecationWarning, stacklevel=3)
        logger.warning(message)
        has_new, current = _get(out, new)
        if has_new and current != value:
            origin = moved.get(new, new)
            raise ConfigError(
                f"{_where(old, files)}{old} = {value!r} and {_where(origin, files)}{origin} = {current!r} are both "
                f"set and differ: keep only {new}"
            )
        _set(out, new, value)
        if not has_new:
            moved[new] = old
    return out, moved


def _where(key: str, files: Mapping[str, Path] | None) -> str:
    """``"<file>: "`` of the section of ``key`` (empty without ``files``)."""
    section = key.split(".", 1)[0]
    return f"{files[section]}: " if files and section in files else ""


def _walk(data: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The mapping holding the last part of ``path`` (None when a parent is missing or not a mapping)."""
    *parents, leaf = path.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None, leaf
    return (node if isinstance(node, dict) else None), leaf


def _pop(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    node, leaf = _walk(data, path)
    if node is None or leaf not in node:
        return False, None
    return True, node.pop(leaf)


def _get(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    node, leaf = _walk(data, path)
    if node is None or leaf not in node:
        return False, None
    return True, node[leaf]


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path``, creating missing parent mappings (a parent that is not a mapping is left for validation
    to report)."""
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node[leaf] = value
