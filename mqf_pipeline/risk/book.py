"""Risk of a book of weights over a window of returns: VaR/CVaR, contributions, vol, correlation, stress.

The book is a mapping symbol -> weight (fraction of NAV). Returns are simple daily decimal returns
in a (T, N) matrix whose columns follow ``symbols``; missing returns count as 0 (a symbol that did
not trade contributes no P&L that day). VaR and CVaR are 1-day positive loss fractions of NAV;
volatilities are annualised with 252 sessions.

Two VaR models can drive the seed 000 section 7.4 "var_95" limit (``RiskParams.var_model``): the seed's
unconditional ``"hybrid"`` VaR of the window, or the conditional ``"fhs_evt"`` forecast for the next session
(EWMA-filtered historical simulation with a GPD residual tail, :mod:`.conditional_var`), which is calibrated
where the hybrid is not (bench/var_calibration.py). Both are always computed; ``BookRisk.var_for_limits`` is
the selected one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import polars as pl

from mqf_pipeline.risk import evt, stress, var
from mqf_pipeline.risk import limits as lim
from mqf_pipeline.risk.conditional_var import fhs_var_next

SESSIONS_PER_YEAR = 252

#: The VaR models the limits can use: the seed's unconditional hybrid, or the conditional FHS with a GPD tail.
VarModel = Literal["hybrid", "fhs_evt"]
VAR_MODELS: tuple[str, ...] = get_args(VarModel)
#: ``BookRisk.var_model`` when ``"fhs_evt"`` is selected but the window is too short for it (the hybrid is used).
HYBRID_FALLBACK = "hybrid_fallback"


@dataclass(frozen=True)
class RiskParams:
    """How a book's risk is measured and limited: VaR/CVaR ``level`` and the hybrid VaR's historical share
    ``hist_weight``, the GPD threshold quantile, the sessions behind the ex-ante volatility, the seed 000
    section 7.4 limits (:data:`limits.DEFAULT_LIMITS` with the configured values), and ``var_model``, the VaR
    the "var_95" limit and the breakers see (one of :data:`VAR_MODELS`)."""

    level: float = 0.95
    hist_weight: float = 0.6
    evt_threshold_quantile: float = 0.90
    vol_window_sessions: int = 63
    limits: tuple[lim.Limit, ...] = lim.DEFAULT_LIMITS
    var_model: VarModel = "fhs_evt"

    def __post_init__(self) -> None:
        if self.var_model not in VAR_MODELS:
            raise ValueError(f"var_model must be one of {list(VAR_MODELS)}, got {self.var_model!r}")

    def limit(self, name: str) -> float:
        """The value of limit ``name`` (a KeyError names an unknown limit)."""
        for item in self.limits:
            if item.name == name:
                return item.value
        raise KeyError(f"unknown limit {name!r}; known: {[item.name for item in self.limits]}")


@dataclass(frozen=True)
class ReturnsWindow:
    """Returns of ``symbols`` over the sessions ending at a date (oldest first); market = equal-weight mean."""

    symbols: tuple[str, ...]
    returns: np.ndarray  # (T, N), NaN replaced by 0
    market: np.ndarray  # (T,)

    def columns(self, names: Sequence[str]) -> np.ndarray:
        index = {s: i for i, s in enumerate(self.symbols)}
        out = np.zeros((self.returns.shape[0], len(names)))
        for j, name in enumerate(names):
            i = index.get(name)
            if i is not None:
                out[:, j] = self.returns[:, i]
        return out


@dataclass(frozen=True)
class BookRisk:
    """Every risk figure of one book (see the module docstring for units).

    ``var_conditional``: the book's conditional VaR for the next session, :func:`.conditional_var.fhs_var_next`
    (GPD tail) of its portfolio returns over the whole window (it is ``var_hybrid`` where that falls back, on
    windows under 120 sessions). ``var_model``: the model behind :attr:`var_for_limits`, ``"hybrid"`` or
    ``"fhs_evt"`` as selected, or :data:`HYBRID_FALLBACK` when ``"fhs_evt"`` is selected and fell back."""

    gross: float
    net: float
    n_positions: int
    var_historical: float | None
    var_parametric: float | None
    var_hybrid: float | None
    var_conditional: float | None
    var_model: str
    cvar_evt: float | None
    cvar_historical: float | None
    vol_ann: float | None
    avg_correlation: float | None
    correlation_shock_vol_ann: float | None
    sector_exposure: dict[str, float]
    stress: pl.DataFrame
    contributions: pl.DataFrame  # symbol, weight, sector, beta, component_cvar, marginal_cvar

    @property
    def var_for_limits(self) -> float:
        """The VaR of the selected model (1-day positive loss fraction of NAV; 0 when missing): what the seed
        000 section 7.4 "var_95" limit and the circuit breakers see."""
        value = self.var_hybrid if self.var_model == "hybrid" else self.var_conditional
        return value or 0.0

    @property
    def max_sector(self) -> tuple[str | None, float]:
        if not self.sector_exposure:
            return None, 0.0
        name = max(sorted(self.sector_exposure), key=lambda s: self.sector_exposure[s])
        return name, self.sector_exposure[name]

    @property
    def stress_worst(self) -> tuple[str | None, float]:
        if self.stress.height == 0:
            return None, 0.0
        row = self.stress.sort(["loss", "scenario"], descending=[True, False]).row(0, named=True)
        return row["scenario"], float(row["loss"])

    def stress_json(self) -> str:
        return json.dumps({r["scenario"]: round(r["loss"], 8) for r in self.stress.iter_rows(named=True)})


def daily_returns_wide(bars: pl.DataFrame) -> pl.DataFrame:
    """Simple daily returns of adjusted closes, wide: ``date`` then one column per symbol (sorted)."""
    wide = (
        bars.sort("symbol", "date")
        .with_columns(ret=pl.col("adjusted_close") / pl.col("adjusted_close").shift(1).over("symbol") - 1.0)
        .pivot(on="symbol", index="date", values="ret")
        .sort("date")
    )
    return wide.select("date", *sorted(c for c in wide.columns if c != "date"))


def returns_window(wide: pl.DataFrame, day_index: int, length: int) -> ReturnsWindow:
    """The ``length`` rows of a wide (date, <symbol>...) returns frame ending at row ``day_index``."""
    lo = max(0, day_index - length + 1)
    block = wide.slice(lo, day_index - lo + 1).drop("date")
    values = np.nan_to_num(block.to_numpy().astype(np.float64), nan=0.0)
    market = values.mean(axis=1) if values.shape[1] else np.zeros(values.shape[0])
    return ReturnsWindow(tuple(block.columns), values, market)


def cvar_function(window: ReturnsWindow, symbols: Sequence[str], params: RiskParams):
    """``weights (N,) -> (CVaR, components (N,))`` over ``symbols``: the meta-brain's CVaR oracle."""
    matrix = window.columns(symbols)
    level, q = params.level, params.evt_threshold_quantile

    def cvar_fn(weights: np.ndarray) -> tuple[float, np.ndarray]:
        held = np.flatnonzero(weights)
        comps = np.zeros(len(symbols))
        if held.size == 0:
            return 0.0, comps
        total, part = evt.scaled_component_cvar(weights[held], matrix[:, held], level=level, threshold_quantile=q)
        comps[held] = part
        return float(total), comps

    return cvar_fn


#: Columns of :attr:`BookRisk.contributions`.
CONTRIBUTION_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "weight": pl.Float64(),
    "sector": pl.String(),
    "beta": pl.Float64(),
    "component_cvar": pl.Float64(),
    "marginal_cvar": pl.Float64(),
}


def book_risk(
    book: Mapping[str, float], window: ReturnsWindow, sectors: Mapping[str, str], params: RiskParams
) -> BookRisk:
    """VaR (historical, parametric, hybrid, conditional), EVT CVaR with Euler contributions, vol, correlation,
    stress. An empty book has every VaR 0 and ``var_model`` the selected one."""
    names = sorted(s for s, w in book.items() if w != 0.0)
    w = np.array([book[s] for s in names], dtype=np.float64)
    gross, net = float(np.abs(w).sum()), float(w.sum())
    sector_of = [sectors.get(s, "UNKNOWN") for s in names]
    exposures = lim.sector_exposures(dict(zip(names, w, strict=True)), dict(zip(names, sector_of, strict=True)))
    empty_contrib = pl.DataFrame(schema=CONTRIBUTION_SCHEMA)
    if not names:
        return BookRisk(
            gross=0.0,
            net=0.0,
            n_positions=0,
            var_historical=0.0,
            var_parametric=0.0,
            var_hybrid=0.0,
            var_conditional=0.0,
            var_model=params.var_model,
            cvar_evt=0.0,
            cvar_historical=0.0,
            vol_ann=0.0,
            avg_correlation=None,
            correlation_shock_vol_ann=0.0,
            sector_exposure={},
            stress=_no_stress(),
            contributions=empty_contrib,
        )
    R = window.columns(names)
    p = R @ w
    cfg = params
    vol_rows = R[-cfg.vol_window_sessions :]
    vols = vol_rows.std(axis=0, ddof=1) * math.sqrt(SESSIONS_PER_YEAR) if vol_rows.shape[0] > 1 else np.zeros(len(w))
    cvar_evt, comps = evt.scaled_component_cvar(w, R, level=cfg.level, threshold_quantile=cfg.evt_threshold_quantile)
    betas = stress.estimate_betas(R, window.market)
    table = stress.stress_losses(
        dict(zip(names, w, strict=True)), dict(zip(names, betas, strict=True)), dict(zip(names, sector_of, strict=True))
    )
    contributions = pl.DataFrame(
        {
            "symbol": names,
            "weight": w,
            "sector": sector_of,
            "beta": betas,
            "component_cvar": comps,
            "marginal_cvar": comps / w,
        },
        schema=empty_contrib.schema,
    )
    conditional = fhs_var_next(
        p, cfg.level, window=p.size, threshold_quantile=cfg.evt_threshold_quantile, hist_weight=cfg.hist_weight
    )
    fell_back = cfg.var_model == "fhs_evt" and conditional.fallback is not None
    return BookRisk(
        gross=gross,
        net=net,
        n_positions=len(names),
        var_historical=float(var.historical_var(p, cfg.level)),
        var_parametric=float(var.parametric_var(p, cfg.level)),
        var_hybrid=float(var.hybrid_var(p, cfg.level, hist_weight=cfg.hist_weight)),
        var_conditional=conditional.var,
        var_model=HYBRID_FALLBACK if fell_back else cfg.var_model,
        cvar_evt=float(cvar_evt),
        cvar_historical=float(var.historical_cvar(p, cfg.level)),
        vol_ann=float(np.std(vol_rows @ w, ddof=1) * math.sqrt(SESSIONS_PER_YEAR)) if vol_rows.shape[0] > 1 else 0.0,
        avg_correlation=float(lim.average_correlation(vol_rows, w)) if len(w) > 1 else None,
        correlation_shock_vol_ann=float(lim.correlation_shock_vol(w, vols, rho=params.limit("correlation_shock"))),
        sector_exposure=exposures,
        stress=table,
        contributions=contributions,
    )


def limit_checks(risk: BookRisk, drawdown: float, params: RiskParams) -> list[dict[str, object]]:
    """Seed 000 section 7.4 limits (values from configs/risk.yaml) on a book: name, value, limit, breached,
    action, scale. "var_95" checks :attr:`BookRisk.var_for_limits`, the VaR of the selected model."""
    _, max_sector = risk.max_sector
    _, worst = risk.stress_worst
    metrics = {
        "max_gross_leverage": risk.gross,
        "max_drawdown": drawdown,
        "var_95": risk.var_for_limits,
        "cvar_95": risk.cvar_evt or 0.0,
        "stress_loss": worst,
        "sector_exposure": max_sector,
        "correlation_shock": risk.avg_correlation or 0.0,
    }
    return [dataclasses.asdict(c) for c in lim.check_limits(metrics, params.limits)]


def _no_stress() -> pl.DataFrame:
    return pl.DataFrame(
        {"scenario": [s.name for s in stress.SCENARIOS], "loss": [0.0] * len(stress.SCENARIOS)},
        schema={"scenario": pl.String, "loss": pl.Float64},
    )
