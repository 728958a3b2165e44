"""Registry of alpha agents by name, strategy presets (seed 000 §5.1), and a runner.

Agents are registered as import specs and imported on first use, so adding an agent is one module
plus one line in :data:`AGENTS`. A spec is ``"package.module:Class"`` or just ``"package.module"``, in
which case the module must define exactly one agent class whose ``name`` equals the registered name.

Presets name a set of registered agents with starting weights (summing to 1, each within
[0.05, 0.40] so they are feasible for the capped-simplex weight updates downstream).
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import polars as pl

from mqf_pipeline.agents.base import SIGNAL_SCHEMA, Agent, AgentData, validate_signals

log = logging.getLogger(__name__)

#: Registered agents: name -> import spec ("module:Class", or "module" to find the class by its ``name``).
AGENTS: dict[str, str] = {
    "momentum": "mqf_pipeline.agents.momentum:MomentumAgent",
    "mean_reversion": "mqf_pipeline.agents.mean_reversion:MeanReversionAgent",
    "volatility": "mqf_pipeline.agents.volatility:VolatilityAgent",
    "ts_momentum": "mqf_pipeline.agents.ts_momentum:TimeSeriesMomentumAgent",
    "trend": "mqf_pipeline.agents.trend:TrendAgent",
    "defensive": "mqf_pipeline.agents.defensive:DefensiveAgent",
    "risk": "mqf_pipeline.agents.risk:RiskAgent",
    "sentiment": "mqf_pipeline.agents.sentiment",
    "valuation": "mqf_pipeline.agents.valuation",
    "fundamental": "mqf_pipeline.agents.fundamental",
    "stat_arb": "mqf_pipeline.agents.stat_arb",
    "ml": "mqf_pipeline.agents.ml",
    "technical": "mqf_pipeline.agents.technical:TechnicalAgent",
}

#: Bounds every preset's starting weights respect (the weight updater's floor and cap).
WEIGHT_FLOOR, WEIGHT_CAP = 0.05, 0.40


class UnknownAgentError(ValueError):
    """A name that is not in the registry (the message lists the known names)."""


class AgentImportError(ImportError):
    """A registered agent whose module or class cannot be loaded (the message names agent and spec)."""


def known_agents() -> list[str]:
    """Registered agent names, sorted."""
    return sorted(AGENTS)


def register(name: str, target: str | type) -> None:
    """Register ``target`` (an import spec or an agent class) under ``name``, replacing any previous entry."""
    if isinstance(target, type):
        if getattr(target, "name", None) != name:
            raise ValueError(f"class {target.__qualname__} has name {getattr(target, 'name', None)!r}, not {name!r}")
        target = f"{target.__module__}:{target.__qualname__}"
    AGENTS[name] = target


def _check_known(name: str) -> str:
    if name not in AGENTS:
        raise UnknownAgentError(f"unknown agent {name!r}; known agents: {', '.join(known_agents())}")
    return AGENTS[name]


def agent_class(name: str) -> type:
    """The agent class registered as ``name``, imported on demand."""
    spec = _check_known(name)
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentImportError(f"agent {name!r}: cannot import {module_name!r} ({exc})") from exc
    if class_name:
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise AgentImportError(f"agent {name!r}: {module_name!r} has no class {class_name!r}")
    else:
        found = [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if obj.__module__ == module.__name__ and getattr(obj, "name", None) == name and hasattr(obj, "signals")
        ]
        if len(found) != 1:
            raise AgentImportError(
                f"agent {name!r}: {module_name!r} defines {len(found)} agent classes named {name!r} (need exactly 1)"
            )
        cls = found[0]
    if getattr(cls, "name", None) != name:
        raise AgentImportError(f"agent {name!r}: {spec} declares name {getattr(cls, 'name', None)!r}")
    return cls


def build_agents(names: Iterable[str], params: Mapping[str, Mapping[str, Any]] | None = None) -> list[Agent]:
    """Instantiate the named agents, each with ``params[name]`` as keyword arguments (defaults otherwise).

    Unknown names (in ``names`` or as keys of ``params``) raise :class:`UnknownAgentError`; a ``params`` key
    not among ``names`` raises ValueError (a likely typo).
    """
    names = list(names)
    params = params or {}
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate agent names in {names}")
    for name in [*names, *params]:
        _check_known(name)
    stray = sorted(set(params) - set(names))
    if stray:
        raise ValueError(f"params given for agent(s) {stray} that are not being built ({names})")
    agents: list[Agent] = []
    for name in names:
        cls = agent_class(name)
        try:
            agents.append(cls(**dict(params.get(name, {}))))
        except TypeError as exc:
            raise ValueError(f"agent {name!r}: bad parameters {dict(params.get(name, {}))} ({exc})") from exc
    return agents


@dataclass(frozen=True)
class Preset:
    """A strategy preset: registered agent names with starting weights (sum 1)."""

    name: str
    description: str
    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        total = math.fsum(self.weights.values())
        if abs(total - 1.0) > 1e-12:
            raise ValueError(f"preset {self.name!r}: weights sum to {total}, not 1")
        for agent, w in self.weights.items():
            if not WEIGHT_FLOOR <= w <= WEIGHT_CAP:
                raise ValueError(
                    f"preset {self.name!r}: weight {w} of {agent!r} outside [{WEIGHT_FLOOR}, {WEIGHT_CAP}]"
                )

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(self.weights)


#: Seed 000 §5.1 strategy types.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "institutional",
            "every agent: the planted-alpha families (momentum, news, value, ML) lead, risk keeps a voice",
            {
                "momentum": 0.15,
                "ts_momentum": 0.05,
                "trend": 0.05,
                "mean_reversion": 0.05,
                "volatility": 0.05,
                "defensive": 0.05,
                "risk": 0.10,
                "sentiment": 0.10,
                "valuation": 0.10,
                "fundamental": 0.10,
                "stat_arb": 0.05,
                "ml": 0.15,
            },
        ),
        Preset(
            "momentum",
            "pure momentum: cross-sectional, time-series and trend, with a risk overlay",
            {"momentum": 0.40, "ts_momentum": 0.25, "trend": 0.25, "risk": 0.10},
        ),
        Preset(
            "mean_reversion",
            "pure mean reversion: short-term reversal and pairs, with volatility and risk overlays",
            {"mean_reversion": 0.40, "stat_arb": 0.30, "volatility": 0.15, "risk": 0.15},
        ),
        Preset(
            "sentiment",
            "news-sentiment driven, confirmed by momentum and fundamentals",
            {"sentiment": 0.40, "momentum": 0.20, "valuation": 0.15, "fundamental": 0.15, "risk": 0.10},
        ),
        Preset(
            "hybrid",
            "a balanced mix of price, news, value and ML signals",
            {
                "momentum": 0.20,
                "sentiment": 0.20,
                "valuation": 0.20,
                "ml": 0.10,
                "mean_reversion": 0.05,
                "defensive": 0.05,
                "trend": 0.10,
                "risk": 0.10,
            },
        ),
    )
}


def preset(name: str) -> Preset:
    """The preset called ``name`` (ValueError listing the known presets otherwise)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def preset_agents(name: str, params: Mapping[str, Mapping[str, Any]] | None = None) -> list[Agent]:
    """Instantiate the agents of preset ``name`` (``params`` as in :func:`build_agents`)."""
    return build_agents(preset(name).agents, params)


def coverage(signals: pl.DataFrame, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
    """Per agent: rows, dates and symbols covered, and ``coverage`` = rows / (date, symbol) pairs with a bar."""
    wanted = pl.Series("d", list(dates), dtype=pl.Date).implode()
    possible = data.bars.filter(pl.col("date").is_in(wanted)).select("date", "symbol").unique().height
    return (
        signals.group_by("agent")
        .agg(
            rows=pl.len().cast(pl.Int64),
            dates=pl.col("date").n_unique().cast(pl.Int64),
            symbols=pl.col("symbol").n_unique().cast(pl.Int64),
        )
        .with_columns(coverage=pl.col("rows") / max(possible, 1))
        .sort("agent")
    )


def run_agents(
    agents: Sequence[Agent], data: AgentData, dates: Sequence[dt.date], *, log_coverage: bool = True
) -> pl.DataFrame:
    """Run every agent for ``dates``, validate each against the Signal contract, and concatenate.

    Per-agent coverage is logged (:func:`log_agent_coverage`) unless ``log_coverage`` is False (a caller
    running blocks logs it once over all of them); an agent that raises or breaks the contract stops the
    run with its name in the error.
    """
    frames = []
    for agent in agents:
        try:
            out = agent.signals(data, dates)
        except Exception as exc:
            raise RuntimeError(f"agent {agent.name!r} failed: {exc}") from exc
        frames.append(validate_signals(agent.name, out))
    result = pl.concat(frames) if frames else pl.DataFrame(schema=SIGNAL_SCHEMA)
    if log_coverage:
        log_agent_coverage([a.name for a in agents], coverage(result, data, dates), len(dates))
    return result


def log_agent_coverage(
    names: Sequence[str], stats: pl.DataFrame, n_dates: int, explained: Collection[str] = ()
) -> None:
    """Per-agent coverage from :func:`coverage` ``stats``: one INFO line per agent with signals, and one WARNING
    for all the agents without any (unless in ``explained``: their caller already warned why), saying what it
    means: their look-back is not filled yet (warm-up), so their ensemble weight goes to the others."""
    rows = {row["agent"]: row for row in stats.iter_rows(named=True)}
    silent = [name for name in names if name not in rows and name not in explained]
    if silent:
        log.warning(
            "%d agent(s) produced no signals on any of the %d session(s) of this run: %s. Warm-up: their look-back "
            "(history or training window) is not filled yet at these sessions, so the ensemble gives their weight "
            "to the agents that scored",
            len(silent),
            n_dates,
            ", ".join(silent),
        )
    for name in names:
        row = rows.get(name)
        if row is None:
            continue
        log.info(
            "agent %s: %d rows, %d dates, %d symbols, coverage %.1f%%",
            name,
            row["rows"],
            row["dates"],
            row["symbols"],
            100 * row["coverage"],
        )
