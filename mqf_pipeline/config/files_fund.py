"""A fund on the user's own files: the configuration ``mqf init --files DIR`` writes from a folder scan.

The files are the only data source: mode ``paper`` with the files provider alone for bars and macro
series (so the simulator never serves a row), orders at the local paper broker (no keys, nothing leaves
the machine), partitions from the data's first session, and the whole history in the files ingested so
governance Phase 0 counts every bar the files hold.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mqf_pipeline import calendar
from mqf_pipeline.market.providers.files_scan import FolderScan
from mqf_pipeline.regimes.features import SMALL_UNIVERSE

#: The seed's governance Phase 0 history (seed 000): bars a symbol needs before it may trade.
SEED_MIN_HISTORY_ROWS = 1260
#: daily partitions of a files fund (its last sessions); the sessions before them are its warm-up
FIRST_RUN_SESSIONS = 60
#: the shipped history.warm_up_sessions
DEFAULT_WARM_UP_SESSIONS = 1240
#: Section files ``mqf init`` writes; the others are copied from the shipped configs unchanged.
WRITTEN_SECTIONS = ("fund", "universe", "providers", "execution")


@dataclass
class FilesFundPlan:
    """What ``mqf init`` found usable and the settings it will write (section -> values)."""

    symbols: list[str]
    first_session: dt.date  # the first session of the warm-up
    inception: dt.date  # the first daily partition
    last_session: dt.date
    sessions: int
    sections: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # symbol -> why it is not in the universe


def plan_files_fund(
    scan: FolderScan, files_root: Path, min_history_rows: int = SEED_MIN_HISTORY_ROWS, shipped: Path | None = None
) -> FilesFundPlan:
    """The settings of a fund trading the daily symbols of ``scan`` (raises ValueError when none is usable).

    ``shipped``: the shipped config directory whose execution settings are kept (only ``broker`` changes).
    """
    excluded: dict[str, str] = {}
    daily_files = {f.path for f in scan.files if f.problem is None and f.frequency == "daily"}
    for f in scan.files:
        if f.problem is None and f.frequency != "daily":
            for s in f.symbols:
                excluded[s] = f"{f.path.name}: {f.frequency} data (daily bars expected)"
    coverage = {s: c for s, c in scan.symbols.items() if any(p in daily_files for p in c.files)}
    symbols = sorted(coverage)
    if not symbols:
        problems = "; ".join(f"{p}: {m}" for p, m in scan.problems) or "no CSV or Parquet files"
        raise ValueError(f"no usable daily bars under {files_root}: {problems}")
    first = min(c.first_date for c in coverage.values())
    last = max(c.last_date for c in coverage.values())
    sessions = calendar.sessions(first, last)
    if not sessions:
        raise ValueError(f"the files under {files_root} span {first}..{last}, which holds no XNYS session")
    warnings = _coverage_warnings(coverage, len(sessions), min_history_rows)
    macro_series = sorted({s for f in scan.macro if f.problem is None for s in f.symbols})
    missing_macro = [s for s in ("VIX", "SHORT_RATE") if s not in macro_series]
    if missing_macro:
        warnings.append(
            f"no macro file for {', '.join(missing_macro)} under {files_root}/macro: absent in the lake "
            "(regimes run without VIX; add <SERIES>.csv with date,value to provide them)"
        )
    inception, warm_up = _inception(len(sessions), min_history_rows)
    sections = {
        "fund": {
            "mode": "paper",
            "paths": {"runtime": "runtime"},
            "calendar": {"partitions_start": sessions[inception].isoformat()},
            "history": {"warm_up_sessions": warm_up, "min_history_rows": min_history_rows},
        },
        "universe": {"symbols": symbols, "sectors": {}},
        "providers": {
            "priority": {"paper": ["files"], "live": ["files"]},
            "macro_priority": {"paper": ["files"] if macro_series else [], "live": []},
            "files_root": str(files_root.resolve()),
        },
        "execution": {**_shipped_section(shipped, "execution"), "broker": "local"},
    }
    first = sessions[inception - warm_up]
    n = len(sessions) - inception + warm_up
    return FilesFundPlan(symbols, first, sessions[inception], sessions[-1], n, sections, warnings, excluded)


def _inception(n_sessions: int, min_history_rows: int) -> tuple[int, int]:
    """Where the daily partitions start (an index into the files' sessions) and the warm-up before it.

    The daily partitions are the last ``FIRST_RUN_SESSIONS`` sessions (all of them for shorter files); the
    warm-up is what comes before, at most the look-back the fund needs (governance Phase 0's
    ``min_history_rows``, and no less than the shipped warm-up): older bars would be computed and never used.
    """
    inception = max(n_sessions - FIRST_RUN_SESSIONS, 0)
    return inception, min(inception, max(min_history_rows, DEFAULT_WARM_UP_SESSIONS))


def _coverage_warnings(coverage: dict, n_sessions: int, min_history_rows: int) -> list[str]:
    """What will limit the fund on this data: short history, close-only or volume-less symbols, few names."""
    out: list[str] = []
    short = sorted(s for s, c in coverage.items() if c.n_rows < min_history_rows)
    if short:
        out.append(
            f"{len(short)} symbol(s) hold fewer than {min_history_rows} bars ({', '.join(short[:5])}): governance "
            f"Phase 0 keeps them from trading until they do (--min-history sets the threshold)"
        )
    no_ohlc = sorted(s for s, c in coverage.items() if not c.has_ohlc)
    if no_ohlc:
        out.append(
            f"close-only data for {', '.join(no_ohlc[:5])}: stages that need OHLC say 'no OHLC', and orders in "
            "them cannot fill at the paper broker (it fills at the session's open)"
        )
    no_volume = sorted(s for s, c in coverage.items() if not c.has_volume)
    if no_volume:
        out.append(f"no volume for {', '.join(no_volume[:5])}: no ADV, so no order can be sized or filled")
    if len(coverage) < SMALL_UNIVERSE:
        out.append(
            f"a universe of {len(coverage)} symbol(s): cross-sectional agents and regimes are unreliable below "
            f"{SMALL_UNIVERSE}"
        )
    return out


def _shipped_section(shipped: Path | None, name: str) -> dict[str, Any]:
    path = shipped / f"{name}.yaml" if shipped else None
    if path is None or not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def write_config_dir(plan: FilesFundPlan, out: Path, shipped: Path | None) -> list[Path]:
    """``out`` as a config directory: the plan's sections, the other shipped section files copied.

    Refuses (FileExistsError) to overwrite an existing config file, so a re-run never clobbers edits.
    """
    out.mkdir(parents=True, exist_ok=True)
    targets = {f"{name}.yaml": plan.sections[name] for name in WRITTEN_SECTIONS}
    copies = sorted(p for p in shipped.glob("*.yaml") if p.name not in targets) if shipped and shipped.is_dir() else []
    existing = [out / n for n in [*targets, *(p.name for p in copies)] if (out / n).exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} exists: pick another --out, or remove it to start over")
    written = []
    for name, values in targets.items():
        header = f"# Written by `mqf init --files` on {dt.date.today()}; edit freely.\n"
        (out / name).write_text(header + yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
        written.append(out / name)
    for p in copies:
        shutil.copyfile(p, out / p.name)
        written.append(out / p.name)
    return written
