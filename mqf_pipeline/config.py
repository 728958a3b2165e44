"""Typed settings loaded from ``configs/*.yaml``, validated by pydantic.

One YAML file per section (``fund.yaml``, ``universe.yaml``, ``providers.yaml``, ``quality.yaml``,
``simulator.yaml``, ``signals.yaml``, ``risk.yaml``, ``portfolio.yaml``); a missing file means that
section's defaults. A bad file fails with :class:`ConfigError` naming the file, the key and the
reason. Later stages add their own sections here.
"""

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mqf_pipeline.governance.quality import QualityThresholds
from mqf_pipeline.market.router_types import RouterSettings
from mqf_pipeline.market.sim import SimulatorParams

CONFIG_DIR_ENV = "MQF_CONFIG_DIR"
RUNTIME_DIR_ENV = "MQF_RUNTIME_DIR"


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names file, key and reason."""


class Mode(StrEnum):
    SIMULATED = "simulated"
    PAPER = "paper"
    LIVE = "live"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PathsSettings(_Section):
    """Where generated state lives; relative paths are under the runtime directory."""

    runtime: str = Field("runtime", description="root of generated state (git-ignored)")
    lake: str = Field("lake", description="Parquet lake root: a path under runtime, or an fsspec URL (s3://...)")
    raw: str = Field("raw", description="raw provider archive, under runtime")
    catalog: str = Field("mqf.duckdb", description="DuckDB catalog file, under runtime")
    kill_switch: str = Field("KILL_SWITCH", description="kill-switch file, under runtime")
    broker: str = Field("broker", description="the paper broker's order book (SQLite), under runtime")


class CalendarSettings(_Section):
    partitions_start: dt.date = Field(
        dt.date(2016, 1, 4), description="first XNYS session with a Dagster partition (about ten years back)"
    )


class HistorySettings(_Section):
    lookback_sessions: int = Field(
        1300, ge=1, description="sessions `mqf run` makes sure are ingested before the latest (~5.2 years)"
    )
    min_history_rows: int = Field(1260, ge=0, description="governance Phase 0: bars a symbol needs to trade")


class FundSettings(_Section):
    """configs/fund.yaml: the fund's mode, strategy and paths."""

    mode: Mode = Mode.SIMULATED
    strategy: str = Field("institutional", pattern=r"^[a-z_]+$")
    paths: PathsSettings = PathsSettings()
    calendar: CalendarSettings = CalendarSettings()
    history: HistorySettings = HistorySettings()


class ProvidersSettings(_Section):
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
        description="bar providers per mode, highest priority first",
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

    @model_validator(mode="after")
    def _known_providers(self) -> ProvidersSettings:
        known = {"simulated", "files", "yahoo", "alpaca", "fred"}
        for table in (self.priority, self.macro_priority):
            for mode, names in table.items():
                bad = [n for n in names if n not in known]
                if bad:
                    raise ValueError(f"mode {mode.value!r}: unknown provider(s) {bad}; known: {sorted(known)}")
        return self


class UniverseSettings(_Section):
    """configs/universe.yaml: the symbols the fund trades.

    In simulated mode the universe is the simulator's (``simulator.n_symbols`` symbols in
    ``simulator.n_sectors`` sectors) unless ``symbols`` is given; in paper and live mode
    ``symbols`` (with their sectors) is required.
    """

    symbols: list[str] = Field(default_factory=list)
    sectors: dict[str, str] = Field(default_factory=dict, description="symbol -> sector, for real symbols")

    @model_validator(mode="after")
    def _symbols_unique(self) -> UniverseSettings:
        seen: set[str] = set()
        dup = [s for s in self.symbols if s in seen or seen.add(s)]
        if dup:
            raise ValueError(f"duplicate symbols {dup[:5]}")
        return self


class SignalsSettings(_Section):
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

    @model_validator(mode="after")
    def _known_agents(self) -> SignalsSettings:
        from mqf_pipeline.agents.registry import PRESETS, known_agents

        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(PRESETS)}")
        unknown = [a for a in [*self.agents, *self.disabled, *self.agent_params] if a not in known_agents()]
        if unknown:
            raise ValueError(f"unknown agent(s) {unknown}; registered: {known_agents()}")
        return self

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


class VarSettings(_Section):
    """How VaR/CVaR are measured (seed 000 section 7.3): 1-day, on the last ``window_sessions`` returns."""

    level: float = Field(0.95, gt=0.5, lt=1.0, description="VaR/CVaR confidence level")
    window_sessions: int = Field(252, ge=60, description="sessions of returns behind VaR/CVaR")
    hist_weight: float = Field(0.6, ge=0.0, le=1.0, description="hybrid VaR: historical share (rest parametric)")
    evt_threshold_quantile: float = Field(0.90, gt=0.5, lt=1.0, description="GPD peaks-over-threshold quantile")
    vol_window_sessions: int = Field(63, ge=20, description="sessions behind the book's ex-ante volatility")


class LimitsSettings(_Section):
    """Seed 000 section 7.4 (values as fractions of NAV); the actions (SCALE / REJECT) are the seed's."""

    max_gross_leverage: float = Field(1.0, gt=0.0, description="sum |w| (SCALE)")
    max_drawdown: float = Field(0.18, gt=0.0, lt=1.0, description="peak-to-trough NAV loss (REJECT)")
    var_95: float = Field(0.04, gt=0.0, description="1-day 95% VaR (SCALE)")
    cvar_95: float = Field(0.06, gt=0.0, description="1-day 95% CVaR (SCALE)")
    stress_loss: float = Field(0.25, gt=0.0, description="worst historical stress scenario loss (REJECT)")
    sector_exposure: float = Field(0.15, gt=0.0, le=1.0, description="gross exposure per sector (SCALE)")
    correlation_shock: float = Field(0.70, gt=0.0, le=1.0, description="average pairwise correlation (SCALE)")


class MetaBrainSettings(_Section):
    """Seed 000 sections 3.1 and 6: ensemble, disagreement penalty, Kelly and the decision rules."""

    beta: float = Field(0.5, ge=0.0, description="disagreement penalty strength (on standardised views)")
    gamma: float = Field(0.3, gt=0.0, le=1.0, description="fractional Kelly factor")
    risk_free_annual: float = Field(0.02, ge=0.0, lt=1.0, description="annual risk-free rate (decimal)")
    periods_per_year: int = Field(252, ge=1, description="sessions per year (risk-free per period)")
    max_position: float = Field(0.10, gt=0.0, le=1.0, description="max |weight| of one position")
    allow_shorts: bool = Field(False, description="short selling (seed default off)")
    z_entry: float = Field(1.0, ge=0.0, description="robust z needed to open or increase a position")
    min_trade: float = Field(0.0025, ge=0.0, description="smallest weight change worth an order")
    cost_bps: float = Field(10.0, ge=0.0, description="round-trip cost the expected edge must beat (bps)")
    cost_horizon_days: int = Field(21, ge=1, description="sessions over which the edge must beat the cost")
    max_marginal_cvar: float = Field(0.01, gt=0.0, description="per-position component CVaR limit (fraction of NAV)")
    stop_atr_multiple: float = Field(2.0, gt=0.0, description="stop loss distance in ATR(14)")


class BreakerSettings(_Section):
    """Seed 000 sections 7.5-7.6: circuit breakers and the recovery protocol after a freeze."""

    vol_target_ann: float = Field(0.10, gt=0.0, description="the book's annualised volatility target")
    tier2_var_multiple: float = Field(1.5, gt=1.0, description="Tier 2 when VaR > this x the VaR limit")
    tier2_vol_multiple: float = Field(2.0, gt=1.0, description="Tier 2 when vol > this x target")
    tier3_vol_multiple: float = Field(1.0, gt=0.0, description="Tier 3 needs drawdown > limit and vol > this x target")
    kill_drawdown: float = Field(0.25, gt=0.0, lt=1.0, description="drawdown that freezes regardless of vol")
    defensive_sizing: float = Field(0.25, gt=0.0, le=1.0, description="Tier 2 sizing")
    cooldown_sessions: int = Field(10, ge=0, description="sessions frozen before recovery may start")
    recovery_steps: list[float] = Field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8, 1.0])
    recovery_step_sessions: int = Field(5, ge=1, description="calm sessions per recovery step")
    recovery_vol_multiple: float = Field(1.5, gt=0.0, description="recovery needs vol below this x target")


class RiskSettings(_Section):
    """configs/risk.yaml: decisions (meta-brain), risk measurement, limits and circuit breakers."""

    initial_nav: float = Field(1_000_000.0, gt=0.0, description="starting NAV of the book (account currency)")
    var: VarSettings = VarSettings()
    limits: LimitsSettings = LimitsSettings()
    meta_brain: MetaBrainSettings = MetaBrainSettings()
    breakers: BreakerSettings = BreakerSettings()


class ExecutionSettings(_Section):
    """configs/execution.yaml: orders from target weights, the execution policy and its guards (seed 002
    section 3.4), and the paper broker's cost model."""

    default_strategy: str = Field("VWAP", description="MARKET | LIMIT | TWAP | POV | VWAP | WAIT")
    limit_offset_bps: float = Field(5.0, ge=0.0, description="LIMIT: passive offset from the mid, bps")
    pov_rate: float = Field(0.10, gt=0.0, le=1.0, description="POV: share of each bucket's volume")
    twap_above_size_adv: float = Field(0.25, gt=0.0, description="a MARKET order above this size/ADV becomes TWAP")
    max_estimated_slippage_bps: float = Field(
        50.0, gt=0.0, description="an action whose expected cost exceeds this becomes LIMIT (seed 002 section 3.4)"
    )
    slippage_spike_bps: float = Field(
        100.0, gt=0.0, description="a fill costing more than this vs the mid engages the execution kill switch"
    )
    spike_cooldown_sessions: int = Field(5, ge=1, description="sessions the execution kill switch stays engaged")
    slippage_spike_action: str = Field(
        "fallback", description="fallback: orders go MARKET for the cooldown | halt: also engage the fund kill switch"
    )
    price_away_cancel: float = Field(0.05, gt=0.0, description="cancel the rest once the mid is this far from arrival")
    volume_anomaly_ratio: float = Field(3.0, gt=1.0, description="abort once session volume exceeds this x ADV")
    min_order_notional: float = Field(100.0, ge=0.0, description="dollars; smaller trades are not sent")
    adv_window_sessions: int = Field(20, ge=1, description="sessions behind ADV (shares)")
    vol_window_sessions: int = Field(20, ge=2, description="sessions behind the daily volatility")
    impact_coef: float = Field(0.7, gt=0.0, description="Y in the square-root impact Y sigma sqrt(Q/V)")
    commission_per_share: float = Field(0.0035, ge=0.0, description="paper broker commission, dollars per share")
    max_participation: float = Field(0.25, gt=0.0, le=1.0, description="an aggressive child's share of bucket volume")
    limit_max_participation: float = Field(0.10, gt=0.0, le=1.0, description="a passive child's share")
    alpaca_url_override: str | None = Field(None, description="Alpaca trading base URL (tests, proxies)")

    @model_validator(mode="after")
    def _known_strategy(self) -> ExecutionSettings:
        known = ("MARKET", "LIMIT", "TWAP", "POV", "VWAP", "WAIT")
        if self.default_strategy not in known:
            raise ValueError(f"unknown execution strategy {self.default_strategy!r}; known: {list(known)}")
        if self.slippage_spike_action not in ("fallback", "halt"):
            raise ValueError(f"unknown slippage_spike_action {self.slippage_spike_action!r}; known: fallback, halt")
        return self


class PortfolioSettings(_Section):
    """configs/portfolio.yaml: the allocator, the optimizer's constraints (seed 002 section 4.2) and rebalancing."""

    allocator: str = Field("mean_variance", description="mean_variance | risk_parity | kelly | volatility_target")
    risk_aversion: float = Field(1.0, gt=0.0, description="lambda in mu'w - lambda w'Sigma w (annualised units)")
    gross: float = Field(1.0, gt=0.0, description="sum |w|")
    long: float = Field(0.6, ge=0.0, description="sum of long weights")
    short: float = Field(0.4, ge=0.0, description="sum of |short weights|")
    sector: float = Field(0.15, gt=0.0, description="gross exposure per sector")
    single_name: float = Field(0.10, gt=0.0, le=1.0, description="|w| per name")
    adv_fraction: float = Field(0.02, gt=0.0, description="|w_i| <= adv_fraction x ADV_i / NAV")
    allow_shorts: bool = Field(False, description="short positions (seed default off)")
    turnover_strategic: float = Field(0.20, gt=0.0, description="turnover budget of the weekly (Friday) rebalance")
    turnover_tactical: float = Field(0.10, gt=0.0, description="turnover budget of the daily rebalance")
    turnover_emergency: float = Field(1.0, gt=0.0, description="turnover budget of an emergency (risk) rebalance")
    covariance: str = Field("factor", description="factor (statistical, top principal components) | ledoit_wolf")
    n_factors: int = Field(20, ge=1, description="factor covariance: principal components kept")
    cov_window_sessions: int = Field(252, ge=30, description="sessions of returns behind the covariance")
    adv_window_sessions: int = Field(20, ge=1, description="sessions behind average daily dollar volume")
    vol_target_ann: float = Field(0.10, gt=0.0, description="volatility_target allocator: annualised target")

    @model_validator(mode="after")
    def _known_allocator(self) -> PortfolioSettings:
        known = ("mean_variance", "risk_parity", "kelly", "volatility_target")
        if self.allocator not in known:
            raise ValueError(f"unknown allocator {self.allocator!r}; known: {list(known)}")
        if self.covariance not in ("factor", "ledoit_wolf"):
            raise ValueError(f"unknown covariance {self.covariance!r}; known: ['factor', 'ledoit_wolf']")
        return self


class Settings(_Section):
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
        env = os.environ.get(RUNTIME_DIR_ENV)
        return Path(env) if env else Path(self.fund.paths.runtime)

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

    @model_validator(mode="after")
    def _mode_needs_symbols(self) -> Settings:
        if self.fund.mode is not Mode.SIMULATED and not self.universe.symbols:
            raise ValueError(f"mode {self.fund.mode.value!r} needs universe.symbols (configs/universe.yaml)")
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


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _describe(exc: ValidationError, files: dict[str, Path]) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        section = loc[0] if loc and loc[0] in files else None
        where = str(files[section]) if section else "settings"
        key = ".".join(loc[1:] if section else loc) or "(top level)"
        lines.append(f"{where}: key '{key}': {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(config_dir: str | os.PathLike[str] | None = None, **overrides: dict[str, Any]) -> Settings:
    """Read and validate every section file in ``config_dir`` (default ``$MQF_CONFIG_DIR`` or ``./configs``).

    ``overrides`` maps a section name to keys merged over its file (used by tests and the CLI).
    """
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    if not directory.is_dir():
        raise ConfigError(
            f"config directory {directory} does not exist (set {CONFIG_DIR_ENV} or run from the project root)"
        )
    files = {section: directory / name for section, name in SECTION_FILES.items()}
    data: dict[str, Any] = {"config_dir": directory}
    for section, path in files.items():
        values = _read_yaml(path) if path.exists() else {}
        for key, value in overrides.get(section, {}).items():
            values[key] = value
        data[section] = values
    unknown = sorted(set(overrides) - set(SECTION_FILES))
    if unknown:
        raise ConfigError(f"unknown settings section(s) {unknown}; known: {sorted(SECTION_FILES)}")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, files)) from exc
