"""Pydantic validation errors of the settings as lines an operator can act on: ``<file>: <section.key.path>: why``.

Every line names the section file and the full key path (list items as ``key[2]``), never the model that ran the
check: an unknown key gets a did-you-mean among the keys allowed where it stands, a check across fields names the
keys it concerns (:class:`~mqf_pipeline.config.base.KeyedError`, or the fields its message mentions), and the
alternatives of a union field (``date | 'auto'``) are one line.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mqf_pipeline.config.base import ConfigError, KeyedError, did_you_mean
from mqf_pipeline.config.deprecations import RENAMED

_SECRET_PARTS = ("key", "secret", "token", "password")


def is_secret_key(path: str) -> bool:
    """Whether a key path names a secret (a part containing key, secret, token or password): never printed."""
    return any(word in part.lower() for part in path.split(".") for word in _SECRET_PARTS)


def combined_error(messages: Sequence[str]) -> ConfigError:
    """One :class:`ConfigError` listing every error of ``messages`` (each may hold several lines), one per line."""
    lines = [line for message in messages for line in message.splitlines()]
    count = f"{len(lines)} error{'s' if len(lines) != 1 else ''}"
    return ConfigError(f"invalid configuration ({count}):\n  " + "\n  ".join(lines))


def describe_validation_error(exc: ValidationError, root: type[BaseModel], files: Mapping[str, Path]) -> list[str]:
    """Every error of ``exc`` (raised validating ``root`` from section -> mapping) as ``<file>: <key path>: why``."""
    lines: dict[str, tuple[list[str], str]] = {}  # where -> (reasons, got): a union's alternatives share one where
    for err in exc.errors():
        where, reason, got = _line(err, root, files)
        reasons, _ = lines.setdefault(where, ([], got))
        reasons.append(reason)
    out = []
    for where, (reasons, got) in lines.items():
        text = "; or ".join(dict.fromkeys(reasons))
        named = got[:1] in "'\"" and got in text  # a quoted value the message already names
        out.append(f"{where}: {text}" + (f" (got {got})" if got and not named else ""))
    return out


def _line(err: ErrorDetails, root: type[BaseModel], files: Mapping[str, Path]) -> tuple[str, str, str]:
    """(``<file>: <key path>``, the reason, the offending value or ``""``) of one pydantic error."""
    path, holder, at_key, key_error = _key_path(err["loc"], root)
    message = _message(err)
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError) and cause.keys:
        return _places(cause.keys, files), message, ""
    dotted = ".".join(path)
    if err["type"] == "extra_forbidden":
        return _places([dotted], files), f"unknown key{_suggest(path, holder)}", ""
    if isinstance(at_key, type) and issubclass(at_key, BaseModel) and err["type"] in ("value_error", "assertion_error"):
        # a check of a whole model: name the fields its message mentions (the model itself if none)
        fields = [w for w in dict.fromkeys(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message)) if w in at_key.model_fields]
        return _places([".".join([*path, f]) for f in fields] or [dotted or "settings"], files), message, ""
    if not dotted:
        return str(_directory(files)), message, ""
    if key_error:
        return _places([dotted], files), f"invalid key: {message}", ""
    return _places([dotted], files), message, _got(err, dotted)


def _places(keys: Sequence[str], files: Mapping[str, Path]) -> str:
    """``<file>: key, key and <file>: key``: the keys grouped by the file they belong in."""
    by_file: dict[str, list[str]] = {}
    for key in keys:
        by_file.setdefault(_file(key, files), []).append(key)
    return " and ".join(f"{file}: {', '.join(group)}" for file, group in by_file.items())


def _message(err: ErrorDetails) -> str:
    """Pydantic's message without its ``Value error, `` prefix (the reason is the validator's own text)."""
    return re.sub(r"^(Value|Assertion) error, ", "", err["msg"])


def _got(err: ErrorDetails, dotted: str) -> str:
    """The offending scalar value (a secret's masked); nothing for a mapping or a list (their items are named)."""
    value = err.get("input")
    if isinstance(value, (dict, list, tuple)):
        return ""
    return "***" if is_secret_key(dotted) else repr(value)


def _file(dotted: str, files: Mapping[str, Path]) -> str:
    section = dotted.split(".", 1)[0].split("[", 1)[0]
    return str(files[section]) if section in files else str(_directory(files))


def _directory(files: Mapping[str, Path]) -> Path | str:
    return next(iter(files.values())).parent if files else "settings"


def _suggest(path: list[str], holder: type[BaseModel] | None) -> str:
    """``"; did you mean X?"`` among the keys allowed where an unknown key stands (a renamed key: its new key)."""
    if holder is None or not path:
        return ""
    leaf, parent = path[-1], ".".join(path[:-1])
    hint = did_you_mean(leaf, holder.model_fields)
    if hint:
        return hint
    renamed = {old.rsplit(".", 1)[1]: new for old, new in RENAMED.items() if old.rsplit(".", 1)[0] == parent}
    close = difflib.get_close_matches(leaf, sorted(renamed), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {renamed[close[0]]}?"
    return f"; known keys here: {', '.join(holder.model_fields)}"


def _key_path(loc: Sequence[int | str], root: type[BaseModel]) -> tuple[list[str], type[BaseModel] | None, Any, bool]:
    """Walk pydantic's ``loc`` through the annotations from ``root``.

    Returns the key path (list indices as ``key[i]``, union member tags and ``[key]`` markers dropped), the
    model holding the last key, the annotation at the end, and whether the error is about a mapping's key.
    """
    path: list[str] = []
    ann: Any = root
    holder: type[BaseModel] | None = None
    key_error = False
    for part in loc:
        ann = _unwrap(ann)
        if part == "[key]":
            key_error = True
            continue
        if isinstance(part, int) and path:
            path[-1] += f"[{part}]"
            ann = _item_type(ann, part)
            continue
        if _is_union(ann):
            ann = None  # a union member's tag ('date', "literal['auto']"): not a key
            continue
        path.append(str(part))
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            holder = ann
            field = ann.model_fields.get(str(part))
            ann = field.annotation if field is not None else None
        elif get_origin(ann) in (dict, Mapping):
            ann = get_args(ann)[1] if get_args(ann) else None
        else:
            ann = None
    return path, holder, _unwrap(ann), key_error


def _unwrap(ann: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None``; anything else as it is."""
    while True:
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
        elif _is_union(ann, count_none=False) and len([a for a in get_args(ann) if a is not type(None)]) == 1:
            ann = next(a for a in get_args(ann) if a is not type(None))
        else:
            return ann


def _is_union(ann: Any, count_none: bool = True) -> bool:
    """Whether ``ann`` is a union (of more than one type besides None, unless ``count_none`` is False)."""
    if get_origin(ann) not in (Union, types.UnionType):
        return False
    return not count_none or len([a for a in get_args(ann) if a is not type(None)]) > 1


def _item_type(ann: Any, index: int) -> Any:
    """The annotation of item ``index`` of a list or tuple annotation (None when unknown)."""
    args = get_args(ann)
    if get_origin(ann) is tuple and args and args[-1] is not Ellipsis:
        return args[index] if index < len(args) else None
    return args[0] if args and get_origin(ann) is not Literal else None
