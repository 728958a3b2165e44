"""configs/fund.yaml, universe.yaml, providers.yaml and signals.yaml: the fund's mode, paths and calendar,
its symbols, where market data comes from, and the agents that make its signals."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator

from mqf_pipeline.config.base import Section, did_you_mean
from mqf_pipeline.market.router_types import RouterSettings
from mqf_pipeline.modes import Mode


class PathsSettings(Section):
    """Where generated state lives; relative paths are under the runtime directory."""

    runtime: str = Field("runtime", description="root of generated state (git-ignored)")
    lake: str = Field("lake", description="Parquet lake root: a path under runtime, or an fsspec URL (s3://...)")
    raw: str = Field("raw", description="raw provider archive, under runtime")
    catalog: str = Field("mqf.duckdb", description="DuckDB catalog file, under runtime")
    kill_switch: str = Field("KILL_SWITCH", description="kill-switch file, under runtime")
    broker: str = Field("broker", description="the paper broker's order book (SQLite), under runtime")


class CalendarSettings(Section):
    """The fund's daily partitions: from its inception (its first daily cycle) on."""

    partitions_start: dt.date | Literal["auto"] = Field(
        "auto",
        description="the fund's inception: its first XNYS session with a Dagster partition. 'auto': the first "
        "run fixes it at the first of `first_run_sessions` sessions ending at the session it runs, and records "
        "it in runtime/inception.json (it never moves after that)",
    )
    first_run_sessions: int = Field(
        60, ge=1, description="with partitions_start 'auto': daily partitions the first run materializes"
    )


class HistorySettings(Section):
    """The history before the inception: the fund's look-back, materialized once (asset fund_history)."""

    warm_up_sessions: int = Field(
        1240,
        ge=0,
        description="sessions before the inception the warm-up materializes as one range (bars, quality, "
        "features, regimes, signals): the look-back of features, regimes, agents and governance Phase 0",
    )
    min_history_rows: int = Field(1260, ge=0, description="governance Phase 0: bars a symbol needs to trade")
    warm_up_signal_sessions: int = Field(
        63,
        ge=0,
        description="the warm-up's last sessions that get agent signals: what is read of them (the signals' "
        "IC to date looks back 63 sessions); the agents learn from features, so older signals would be computed "
        "and never read",
    )


class FundSettings(Section):
    """configs/fund.yaml: the fund's mode, strategy and paths."""

    mode: Mode = Mode.SIMULATED
    strategy: str = Field("institutional", pattern=r"^[a-z_]+$")
    paths: PathsSettings = PathsSettings()
    calendar: CalendarSettings = CalendarSettings()
    history: HistorySettings = HistorySettings()


#: The market-data providers a priority list may name.
KNOWN_PROVIDERS = frozenset({"simulated", "files", "yahoo", "alpaca", "fred"})


class ProvidersSettings(Section):
    """configs/providers.yaml: which providers serve each mode, in priority order, and how to reach them.

    Keys and secrets never live here: they come from environment variables only
    (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``, ``FRED_API_KEY``).
    """

    priority: dict[Mode, list[str]] = Field(
        default_factory=lambda: {
            Mode.SIMULATED: ["simulated"],
            Mode.PAPER: ["yahoo", "alpaca", "files"],
            Mode.LIVE: ["alpaca", "yahoo", "files"],
        },
        description="providers per mode, highest priority first, for bars, corporate actions, fundamentals "
        "(yahoo, files) and headlines: each request goes to the listed providers with that capability",
    )
    macro_priority: dict[Mode, list[str]] = Field(
        default_factory=lambda: {Mode.SIMULATED: ["simulated"], Mode.PAPER: ["fred"], Mode.LIVE: ["fred"]},
        description="macro-series providers per mode",
    )
    files_root: str | None = Field(None, description="directory of CSV/Parquet history for the files provider")
    alpaca_url_override: str | None = Field(None, description="Alpaca market-data base URL (tests, proxies)")
    alpaca_feed: str = Field("iex", description="Alpaca data feed: iex (free) or sip")
    fred_root_url: str | None = Field(None, description="FRED API root URL override (tests, proxies)")
    router: RouterSettings = Field(
        default_factory=RouterSettings,
        description="retries/backoff, token buckets (seed 000 4.2 rates), RAM cache, bandit, request chunking",
    )

    @field_validator("priority", "macro_priority")
    @classmethod
    def _known_providers(cls, value: dict[Mode, list[str]]) -> dict[Mode, list[str]]:
        for mode, names in value.items():
            bad = [n for n in names if n not in KNOWN_PROVIDERS]
            if bad:
                hint = did_you_mean(bad[0], KNOWN_PROVIDERS)
                raise ValueError(
                    f"mode {mode.value!r}: unknown provider(s) {bad}; known: {sorted(KNOWN_PROVIDERS)}{hint}"
                )
        return value


class UniverseSettings(Section):
    """configs/universe.yaml: the symbols the fund trades.

    In simulated mode the universe is the simulator's (``simulator.n_symbols`` symbols in
    ``simulator.n_sectors`` sectors) unless ``symbols`` is given; in paper and live mode
    ``symbols`` (with their sectors) is required.
    """

    symbols: list[str] = Field(default_factory=list)
    sectors: dict[str, str] = Field(default_factory=dict, description="symbol -> sector, for real symbols")

    @field_validator("symbols")
    @classmethod
    def _symbols_unique(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        dup = [s for s in value if s in seen or seen.add(s)]
        if dup:
            raise ValueError(f"duplicate symbols {dup[:5]}")
        return value


class LearningSettings(Section):
    """signals.learning: the online agent-weight learning of seed 002 Part 2 (:mod:`mqf_pipeline.learning`)."""

    eta: float = Field(0.1, gt=0.0, description="exponentiated-gradient learning rate on rewards in [0, 1]")
    floor: float = Field(0.05, ge=0.0, lt=1.0, description="minimum agent weight")
    cap: float = Field(0.40, gt=0.0, le=1.0, description="maximum agent weight")
    lookback_sessions: int = Field(21, ge=2, description="sessions behind the rolling Sharpe and hit rate")
    half_life_sessions: float = Field(10.0, gt=0.0, description="decay half-life of those statistics")
    risk_aversion: float = Field(0.1, ge=0.0, description="lambda in reward = realized - lambda x risk")
    min_sessions: int = Field(21, ge=1, description="outcome sessions before learned weights replace the preset's")
    ts_discount: float = Field(0.99, gt=0.0, le=1.0, description="Thompson sampling: discount per session")
    ts_min_trials: float = Field(
        10.0, gt=0.0, description="Thompson sampling: discounted trials per agent a regime needs before it is used"
    )
    ts_share_stable: float = Field(
        1.0, ge=0.0, le=1.0, description="Thompson sampling's share of the EG/TS blend while the regime is stable"
    )


class SignalsSettings(Section):
    """configs/signals.yaml: features, regimes and the alpha agents.

    ``preset`` (seed 000 section 5.1) picks the agent set and starting weights; ``agents`` adds
    registered agents to it (weight 0 until learned) and ``disabled`` removes some. Adding an agent
    is one module under mqf_pipeline/agents/ plus one line in the registry and here.
    """

    preset: str = Field("institutional", description="institutional | momentum | mean_reversion | sentiment | hybrid")
    agents: list[str] = Field(default_factory=list, description="extra registered agents to run")
    disabled: list[str] = Field(default_factory=list, description="agents of the preset not to run")
    agent_params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="constructor arguments by agent")
    feature_block_sessions: int = Field(63, ge=1, description="sessions per feature anchoring block")
    regime_refit_sessions: int = Field(21, ge=1, description="refit the HMM every this many sessions")
    regime_min_train_sessions: int = Field(504, ge=30, description="sessions of history before the first fit")
    regime_random_state: int = Field(
        20240101, ge=0, description="random state of the HMM fits (its own setting, not the simulator's seed)"
    )
    agent_history_sessions: int = Field(300, ge=30, description="sessions of bars/features handed to the agents")
    learning: LearningSettings = Field(default_factory=LearningSettings)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        from mqf_pipeline.agents.registry import PRESETS

        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; known: {sorted(PRESETS)}{did_you_mean(value, PRESETS)}")
        return value

    @field_validator("agents", "disabled", "agent_params")
    @classmethod
    def _known_agents(cls, value: list[str] | dict[str, dict[str, Any]]) -> list[str] | dict[str, dict[str, Any]]:
        from mqf_pipeline.agents.registry import known_agents

        unknown = [a for a in value if a not in known_agents()]
        if unknown:
            hint = did_you_mean(unknown[0], known_agents())
            raise ValueError(f"unknown agent(s) {unknown}; registered: {known_agents()}{hint}")
        return value

    def enabled_agents(self) -> list[str]:
        """The preset's agents plus the extra ones, minus the disabled, in a stable order."""
        from mqf_pipeline.agents.registry import PRESETS

        names = [*PRESETS[self.preset].agents, *self.agents]
        return [a for a in dict.fromkeys(names) if a not in self.disabled]

    def starting_weights(self) -> dict[str, float]:
        """Static weights of the enabled agents: the preset's, renormalised; extras get none."""
        from mqf_pipeline.agents.registry import PRESETS

        weights = {a: PRESETS[self.preset].weights.get(a, 0.0) for a in self.enabled_agents()}
        total = sum(weights.values())
        return {a: w / total for a, w in weights.items()} if total > 0 else weights
