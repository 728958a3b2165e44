"""Portfolio targets per session: the meta-brain's views through the optimizer, checked by the risk engine.

For session D (seed 002 sections 4.3-4.7): expected returns are the decisions' penalised ``mu_hat``
(annualised x252); names the meta-brain REJECTed get none, and the risk state's sizing multiplier
scales the rest (limits applied before). The covariance (annualised, last ``cov_window_sessions``
returns) is a statistical factor model (top ``n_factors`` principal components + specific variance,
solved in factor form) or dense Ledoit-Wolf, by config. The configured allocator (mean-variance optimizer by
default, with every constraint of seed 002 section 4.2 and its fallback chain) turns them into
target weights from the previous session's targets, with the turnover budget of the session's
rebalance (strategic, tactical or emergency); the pre-trade check then scales the book if its
parametric VaR or gross exceeds the limits. With the kill switch engaged, or when the cycle made no
decisions, the previous targets are held.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.config import Settings
from mqf_pipeline.decisions.audit import cycle_id
from mqf_pipeline.portfolio import allocators, optimizer, risk_integration
from mqf_pipeline.portfolio.covariance import FactorCovariance, ledoit_wolf_covariance, statistical_factor_covariance
from mqf_pipeline.portfolio.rebalance import EMERGENCY, STRATEGIC, rebalance_mode
from mqf_pipeline.risk.book import daily_returns_wide
from mqf_pipeline.stages.base import previous_partition
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.storage.lake import Lake

ProgressFn = Callable[[str], None]
SESSIONS_PER_YEAR = 252
CODE_VERSION = "portfolio-1"


class PortfolioStateError(RuntimeError):
    """The previous session's targets, which this session starts from, are missing."""


@dataclass(frozen=True)
class PortfolioInputs:
    """What the sessions of a range read, loaded once."""

    decisions: pl.DataFrame
    risk: pl.DataFrame
    returns: pl.DataFrame  # wide: date, <symbol>...
    traded: pl.DataFrame  # date, symbol, traded (close x volume, currency)
    sectors: dict[str, str]


@dataclass
class Solved:
    """What the allocator produced for one session (before rows are built)."""

    weights: np.ndarray
    status: str
    method: str
    solve_ms: float = 0.0
    objective: float | None = None
    violated: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SessionBook:
    """One session's universe and inputs, aligned on ``symbols``."""

    day: dt.date
    symbols: list[str]
    prev: np.ndarray
    mu: np.ndarray  # annualised expected returns (decimal)
    cov: np.ndarray  # annualised
    mode: str
    hold_reason: str | None


@dataclass
class PortfolioResult:
    """Rows of one session for portfolio_targets, portfolio_constraints and optimization_results."""

    day: dt.date
    targets: pl.DataFrame
    constraints: pl.DataFrame
    result: dict[str, object]
    weights: dict[str, float]


def load_inputs(lake: Lake, settings: Settings, days: Sequence[dt.date], universe: pl.DataFrame) -> PortfolioInputs:
    days = sorted(days)
    cfg = settings.portfolio
    back = calendar.session_offset(days[0], -(max(cfg.cov_window_sessions, cfg.adv_window_sessions) + 1))
    bars = usable_bars(lake, back, days[-1]).select("date", "symbol", "close", "adjusted_close", "volume")
    returns = daily_returns_wide(bars)
    traded = bars.sort("symbol", "date").select("date", "symbol", (pl.col("close") * pl.col("volume")).alias("traded"))
    return PortfolioInputs(
        decisions=lake.read_range("decisions", days[0], days[-1]),
        risk=lake.read_range("risk_state", days[0], days[-1]),
        returns=returns,
        traded=traded,
        sectors=dict(zip(universe["symbol"].to_list(), universe["sector"].to_list(), strict=True)),
    )


def load_previous(lake: Lake, day: dt.date) -> dict[str, float]:
    """Targets of the session before ``day`` ({} when no targets are stored before it; a gap is an error)."""
    prev = previous_partition(
        lake, "portfolio_targets", day, error=PortfolioStateError, what="portfolio targets", state="the targets"
    )
    if prev is None:
        return {}
    rows = lake.read("portfolio_targets", [prev])
    return {r["symbol"]: float(r["target_weight"]) for r in rows.iter_rows(named=True) if r["target_weight"]}


def constraints_for(settings: Settings, mode: str) -> optimizer.OptimizerConstraints:
    cfg = settings.portfolio
    turnover = {STRATEGIC: cfg.turnover_strategic, EMERGENCY: cfg.turnover_emergency}.get(mode, cfg.turnover_tactical)
    return optimizer.OptimizerConstraints(
        gross=cfg.gross,
        long=cfg.long,
        short=cfg.short,
        sector=cfg.sector,
        turnover=turnover,
        adv_fraction=cfg.adv_fraction,
        single_name=cfg.single_name,
        allow_shorts=cfg.allow_shorts,
        risk_aversion=cfg.risk_aversion,
    )


def optimise_session(
    day: dt.date,
    inputs: PortfolioInputs,
    previous: dict[str, float],
    settings: Settings,
) -> PortfolioResult:
    """Target weights of session ``day`` from ``previous`` (module docstring)."""
    cfg = settings.portfolio
    risk = inputs.risk.filter(pl.col("date") == day)
    risk_row = risk.row(0, named=True) if risk.height else None
    mode = rebalance_mode(day, risk_row)
    decided = inputs.decisions.filter(pl.col("date") == day)
    symbols = sorted(set(decided["symbol"].to_list()) | {s for s, w in previous.items() if w})
    prev = np.array([previous.get(s, 0.0) for s in symbols])
    sectors = [inputs.sectors.get(s, "UNKNOWN") for s in symbols]
    dates = inputs.returns.get_column("date")
    idx = int(dates.search_sorted(day))
    lo = max(0, idx - cfg.cov_window_sessions + 1)
    window = inputs.returns.slice(lo, idx - lo + 1)
    matrix = (
        np.column_stack(
            [
                window[s].to_numpy().astype(np.float64) if s in window.columns else np.zeros(window.height)
                for s in symbols
            ]
        )
        if symbols
        else np.zeros((window.height, 0))
    )
    if not symbols:
        cov_model: np.ndarray | FactorCovariance = np.zeros((0, 0))
    elif cfg.covariance == "factor":
        cov_model = statistical_factor_covariance(matrix, cfg.n_factors)
    else:
        cov_model = ledoit_wolf_covariance(matrix)
    cov = cov_model.matrix() if isinstance(cov_model, FactorCovariance) else cov_model
    # ADV: mean traded value over the last adv_window_sessions sessions, summed per window (not a running
    # mean, whose rounding would depend on where the loaded history starts)
    first = dates[max(0, idx - cfg.adv_window_sessions + 1)]
    adv_rows = (
        inputs.traded.filter(pl.col("date").is_between(first, day)).group_by("symbol").agg(pl.col("traded").mean())
    )
    adv_of = dict(zip(adv_rows["symbol"].to_list(), adv_rows["traded"].to_list(), strict=True))
    adv = np.array([adv_of.get(s) or 0.0 for s in symbols])
    nav = float(risk_row["nav"]) if risk_row else settings.risk.initial_nav
    kill = bool(risk_row and risk_row["kill_switch"])
    hold_reason = "kill switch engaged" if kill else ("no decisions this session" if decided.height == 0 else None)

    constraints = constraints_for(settings, mode)
    mu_of = dict(zip(decided["symbol"].to_list(), decided["mu_hat"].to_list(), strict=True))
    outcome = dict(zip(decided["symbol"].to_list(), decided["final_decision"].to_list(), strict=True))
    mu = np.array([(mu_of.get(s) or 0.0) * SESSIONS_PER_YEAR for s in symbols])
    if hold_reason or not symbols:
        solved = Solved(prev.copy(), "hold", "hold")
    else:
        blocked = np.array([outcome.get(s, "REJECT") == "REJECT" for s in symbols])
        sizing = float(risk_row["sizing_multiplier"]) if risk_row else 1.0
        views = risk_integration.apply_risk_limits(mu, blocked=blocked, sizing_multiplier=min(max(sizing, 0.0), 1.0))
        if cfg.allocator == "mean_variance":
            # a fresh optimizer per session: a re-solve of a cached compiled problem lands ~1e-8 away from a
            # cold solve, and a session must give identical rows alone or inside a backfill
            res = optimizer.PortfolioOptimizer(constraints).solve(views, cov_model, prev, adv, nav, sectors)
            solved = Solved(
                res.weights,
                res.status,
                res.method,
                res.solve_time_ms,
                res.objective,
                list(res.constraints_violated),
                list(res.conflicts),
            )
        else:
            caps = {"max_position": cfg.single_name, "max_gross": cfg.gross, "allow_shorts": cfg.allow_shorts}
            weights = allocators.ALLOCATORS[cfg.allocator](views, cov, caps=caps, prev=prev)
            solved = Solved(weights, "optimal", cfg.allocator)
        # names the meta-brain REJECTed are not traded: they keep their current weight (mu = 0 alone would
        # still let a mean-variance book hold them as a hedge)
        solved.weights = np.where(blocked, prev, solved.weights)
        check = risk_integration.pre_trade_check(
            solved.weights, cov, var_limit_daily=settings.risk.limits.var_95, max_gross=cfg.gross
        )
        if not check.ok:
            solved.weights = risk_integration.scale_weights(solved.weights, check.scale_factor)
            solved.conflicts += [f"pre-trade: {r}; scaled x{check.scale_factor:.4f}" for r in check.reasons]
    report = optimizer.constraint_report(solved.weights, prev, adv, nav, sectors, constraints) if symbols else {}
    return _rows(settings, SessionBook(day, symbols, prev, mu, cov, mode, hold_reason), solved, report)


def _rows(
    settings: Settings, book: SessionBook, solved: Solved, report: dict[str, optimizer.ConstraintUsage]
) -> PortfolioResult:
    """The three tables' rows for one session."""
    day, symbols, prev, mu, cov, weights = book.day, book.symbols, book.prev, book.mu, book.cov, solved.weights
    cid = cycle_id(settings.fund.strategy, day)
    cost = settings.risk.meta_brain.cost_bps / 1e4
    var_w = float(weights @ cov @ weights) if len(symbols) else 0.0
    vol = float(np.sqrt(max(var_w, 0.0)))
    marginal = (cov @ weights) / vol if vol > 0 else np.zeros(len(symbols))
    rf = settings.risk.meta_brain.risk_free_annual
    risk_order = np.argsort(-(np.abs(weights) * np.abs(marginal)), kind="stable")
    priority = np.empty(len(symbols), dtype=np.int32)
    priority[risk_order] = np.arange(1, len(symbols) + 1, dtype=np.int32)
    targets = pl.DataFrame(
        {
            "cycle_id": [cid] * len(symbols),
            "symbol": symbols,
            "target_weight": weights.astype(np.float64),
            "current_weight": prev.astype(np.float64),
            "weight_change": (weights - prev).astype(np.float64),
            "marginal_risk": marginal.astype(np.float64),
            "expected_return": mu,
            "sharpe_contribution": weights * mu / vol if vol > 0 else np.zeros(len(symbols)),
            "turnover_cost": np.abs(weights - prev) * cost,
            "liquidation_priority": priority,
            "date": [day] * len(symbols),
        },
        schema_overrides={"liquidation_priority": pl.Int32, "date": pl.Date},
    )
    constraints = pl.DataFrame(
        [
            {
                "date": day,
                "constraint_type": name,
                "limit_value": float(v.limit),
                "current_value": float(v.value),
                "utilization_pct": float(v.utilisation_pct),
                "binding": int(bool(v.binding)),
            }
            for name, v in sorted(report.items())
        ],
        schema={
            "date": pl.Date,
            "constraint_type": pl.String,
            "limit_value": pl.Float64,
            "current_value": pl.Float64,
            "utilization_pct": pl.Float64,
            "binding": pl.Int32,
        },
    )
    result = {
        "cycle_id": cid,
        "optimizer_status": solved.status,
        "solve_time_ms": float(solved.solve_ms),
        "objective_value": None if solved.objective is None else float(solved.objective),
        "constraints_violated": json.dumps(sorted(solved.violated)),
        "portfolio_return": float(weights @ mu) if len(symbols) else 0.0,
        "portfolio_volatility": vol,
        "portfolio_sharpe": (float(weights @ mu) - rf * float(np.abs(weights).sum())) / vol if vol > 0 else None,
        "date": day,
        "rebalance": book.mode,
        "allocator": settings.portfolio.allocator,
        "method": solved.method,
        "conflicts": json.dumps([*solved.conflicts, *([book.hold_reason] if book.hold_reason else [])]),
    }
    return PortfolioResult(day, targets, constraints, result, dict(zip(symbols, weights.tolist(), strict=True)))


def run_portfolio(
    lake: Lake,
    settings: Settings,
    days: Sequence[dt.date],
    universe: pl.DataFrame,
    progress: ProgressFn = lambda _m: None,
) -> list[PortfolioResult]:
    """Sessions ``days`` in order, each starting from the previous one's targets."""
    days = sorted(days)
    inputs = load_inputs(lake, settings, days, universe)
    previous = load_previous(lake, days[0])
    out = []
    for i, day in enumerate(days, start=1):
        res = optimise_session(day, inputs, previous, settings)
        previous = {s: w for s, w in res.weights.items() if w}
        out.append(res)
        if i % 100 == 0 or i == len(days):
            progress(
                f"portfolio: {i}/{len(days)} sessions ({day}: {res.result['optimizer_status']}, "
                f"{res.result['rebalance']}, {sum(1 for w in previous.values() if w)} positions)"
            )
    return out
