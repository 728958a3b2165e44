"""Portfolio targets per session: the meta-brain's views through the optimizer, checked by the risk engine.

For session D (seed 002 sections 4.3-4.7): expected returns are the decisions' penalised ``mu_hat``
(annualised x252); names the meta-brain REJECTed get none, and the risk state's sizing multiplier
scales the rest (limits applied before). The covariance (annualised, last ``cov_window_sessions``
returns) is a statistical factor model (top ``n_factors`` principal components + specific variance,
solved in factor form) or dense Ledoit-Wolf, by config. The configured allocator (mean-variance optimizer by
default, with every constraint of seed 002 section 4.2 and its fallback chain) turns them into
target weights from the positions held at D's close (booked by execution; without execution, research
mode, from the previous session's targets), with the turnover budget of the session's
rebalance (strategic, tactical or emergency); the pre-trade check then scales the book if its
parametric VaR or gross exceeds the limits. With the kill switch engaged, or when the cycle made no
decisions, the previous targets are held.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.portfolio import allocators, optimizer, risk_integration
from mqf_pipeline.portfolio.covariance import FactorCovariance, ledoit_wolf_covariance, statistical_factor_covariance
from mqf_pipeline.portfolio.rebalance import rebalance_mode
from mqf_pipeline.risk.book import daily_returns_wide
from mqf_pipeline.stages.base import RunContext, Stage, StageStateError, StepOutput, previous_partition, read_previous
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.stages.held_book import Held, held_books
from mqf_pipeline.stages.params import allocator_caps, allocator_params, constraints_for
from mqf_pipeline.stages.portfolio_rows import PortfolioRows, SessionBook, Solved, session_rows
from mqf_pipeline.storage.lake import Lake

SESSIONS_PER_YEAR = 252
CODE_VERSION = "portfolio-1"


class PortfolioStateError(StageStateError):
    """The previous session's targets, which this session starts from, are missing."""


@dataclass(frozen=True)
class PortfolioInputs:
    """What the sessions of a range read, loaded once."""

    decisions: pl.DataFrame
    risk: pl.DataFrame
    returns: pl.DataFrame  # wide: date, <symbol>...
    traded: pl.DataFrame  # date, symbol, traded (close x volume, currency)
    sectors: dict[str, str]
    held: dict[dt.date, Held]  # positions booked at each session's close, where execution has run


@dataclass(frozen=True)
class SessionMarket:
    """One session's symbols with the covariance model over them and their ADV (currency)."""

    symbols: list[str]
    prev: np.ndarray
    sectors: list[str]
    cov_model: np.ndarray | FactorCovariance
    cov: np.ndarray
    adv: np.ndarray


def load_inputs(lake: Lake, settings, days: Sequence[dt.date], universe: pl.DataFrame) -> PortfolioInputs:
    days = sorted(days)
    cfg = settings.portfolio
    adv_window = settings.execution.adv_window_sessions
    back = calendar.session_offset(days[0], -(max(cfg.cov_window_sessions, adv_window) + 1))
    bars = usable_bars(lake, back, days[-1]).select("date", "symbol", "close", "adjusted_close", "volume")
    returns = daily_returns_wide(bars)
    traded = bars.sort("symbol", "date").select("date", "symbol", (pl.col("close") * pl.col("volume")).alias("traded"))
    return PortfolioInputs(
        decisions=lake.read_range("decisions", days[0], days[-1]),
        risk=lake.read_range("risk_state", days[0], days[-1]),
        returns=returns,
        traded=traded,
        sectors=dict(zip(universe["symbol"].to_list(), universe["sector"].to_list(), strict=True)),
        held=held_books(lake, days[0], days[-1]),
    )


def load_previous(lake: Lake, day: dt.date) -> dict[str, float]:
    """Targets of the session before ``day`` ({} when no targets are stored before it; a gap is an error)."""
    prev = previous_partition(
        lake, "portfolio_targets", day, error=PortfolioStateError, what="portfolio targets", state="the targets"
    )
    if prev is None:
        return {}
    rows = read_previous(lake, "portfolio_targets", prev, error=PortfolioStateError, what="portfolio targets")
    return {r["symbol"]: float(r["target_weight"]) for r in rows.iter_rows(named=True) if r["target_weight"]}


def session_market(
    day: dt.date, inputs: PortfolioInputs, symbols: list[str], previous: dict[str, float], settings
) -> SessionMarket:
    """The covariance (annualised, last ``cov_window_sessions`` returns) and ADV of ``symbols`` at ``day``."""
    cfg = settings.portfolio
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
    first = dates[max(0, idx - settings.execution.adv_window_sessions + 1)]
    adv_rows = (
        inputs.traded.filter(pl.col("date").is_between(first, day)).group_by("symbol").agg(pl.col("traded").mean())
    )
    adv_of = dict(zip(adv_rows["symbol"].to_list(), adv_rows["traded"].to_list(), strict=True))
    adv = np.array([adv_of.get(s) or 0.0 for s in symbols])
    return SessionMarket(symbols, prev, sectors, cov_model, cov, adv)


def allocate(
    market: SessionMarket,
    mu: np.ndarray,
    blocked: np.ndarray,
    sizing: float,
    nav: float,
    constraints: optimizer.OptimizerConstraints,
    settings,
) -> Solved:
    """The configured allocator on the risk-limited views, REJECTed names held, then the pre-trade check."""
    cfg = settings.portfolio
    prev, cov = market.prev, market.cov
    views = risk_integration.apply_risk_limits(mu, blocked=blocked, sizing_multiplier=min(max(sizing, 0.0), 1.0))
    if cfg.allocator == "mean_variance":
        # a fresh optimizer per session: a re-solve of a cached compiled problem lands ~1e-8 away from a
        # cold solve, and a session must give identical rows alone or inside a backfill
        res = optimizer.PortfolioOptimizer(constraints).solve(
            views, market.cov_model, prev, market.adv, nav, market.sectors
        )
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
        allocate_with = allocators.ALLOCATORS[cfg.allocator]
        weights = allocate_with(
            views, cov, caps=allocator_caps(settings), prev=prev, params=allocator_params(settings) or None
        )
        solved = Solved(weights, "optimal", cfg.allocator)
    # names the meta-brain REJECTed are not traded: they keep their current weight (mu = 0 alone would
    # still let a mean-variance book hold them as a hedge)
    solved.weights = np.where(blocked, prev, solved.weights)
    check = risk_integration.pre_trade_check(
        solved.weights,
        cov,
        var_limit_daily=settings.risk.limits.var_95,
        max_gross=settings.risk.limits.max_gross_leverage,
    )
    if not check.ok:
        solved.weights = risk_integration.scale_weights(solved.weights, check.scale_factor)
        solved.conflicts += [f"pre-trade: {r}; scaled x{check.scale_factor:.4f}" for r in check.reasons]
    return solved


def optimise_session(
    day: dt.date,
    decided: pl.DataFrame,
    risk_row: dict | None,
    inputs: PortfolioInputs,
    previous: dict[str, float],
    settings,
) -> PortfolioRows:
    """Target weights of session ``day`` from the session's ``decided`` rows and risk state, starting from
    ``previous`` (the weights held: the booked positions, else the previous targets; module docstring)."""
    mode = rebalance_mode(day, risk_row)
    symbols = sorted(set(decided["symbol"].to_list()) | {s for s, w in previous.items() if w})
    market = session_market(day, inputs, symbols, previous, settings)
    nav = float(risk_row["nav"]) if risk_row else settings.risk.initial_nav
    kill = bool(risk_row and risk_row["kill_switch"])
    hold_reason = "kill switch engaged" if kill else ("no decisions this session" if decided.height == 0 else None)

    constraints = constraints_for(settings, mode)
    mu_of = dict(zip(decided["symbol"].to_list(), decided["mu_hat"].to_list(), strict=True))
    outcome = dict(zip(decided["symbol"].to_list(), decided["final_decision"].to_list(), strict=True))
    mu = np.array([(mu_of.get(s) or 0.0) * SESSIONS_PER_YEAR for s in symbols])
    if hold_reason or not symbols:
        solved = Solved(market.prev.copy(), "hold", "hold")
    else:
        blocked = np.array([outcome.get(s, "REJECT") == "REJECT" for s in symbols])
        sizing = float(risk_row["sizing_multiplier"]) if risk_row else 1.0
        solved = allocate(market, mu, blocked, sizing, nav, constraints, settings)
    report = (
        optimizer.constraint_report(solved.weights, market.prev, market.adv, nav, market.sectors, constraints)
        if symbols
        else {}
    )
    book = SessionBook(day, symbols, market.prev, mu, market.cov, mode, hold_reason)
    return session_rows(
        book,
        solved,
        report,
        strategy=settings.fund.strategy,
        cost_bps=settings.risk.meta_brain.cost_bps,
        risk_free_annual=settings.risk.meta_brain.risk_free_annual,
        allocator=settings.portfolio.allocator,
    )


class PortfolioStage(Stage):
    """Views, covariance, allocator with its fallbacks and the pre-trade check, session by session."""

    NAME = "portfolio"
    READS = ("decisions", "risk_state", "positions", "account", "price_history", "data_quality")
    WRITES = ("portfolio_targets", "portfolio_constraints", "optimization_results")
    CARRIES = ("portfolio_targets",)
    CODE_VERSION = CODE_VERSION
    PROGRESS_EVERY = 100

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> PortfolioInputs:
        return load_inputs(ctx.lake, ctx.settings, days, ctx.universe)

    def load_carried(self, ctx: RunContext, first_day: dt.date) -> dict[str, float]:
        return load_previous(ctx.lake, first_day)

    def step(self, day: dt.date, inputs: PortfolioInputs, carried: dict[str, float], ctx: RunContext) -> StepOutput:
        """Session ``day`` from its stored decisions and risk state, starting from the positions booked at
        its close when execution has run, else from the previous targets ``carried``."""
        risk = inputs.risk.filter(pl.col("date") == day)
        held = inputs.held.get(day)
        return self.optimise(
            day,
            inputs,
            carried,
            ctx,
            decided=inputs.decisions.filter(pl.col("date") == day),
            risk_row=risk.row(0, named=True) if risk.height else None,
            held=held.book if held is not None else None,
        )

    def optimise(
        self,
        day: dt.date,
        inputs: PortfolioInputs,
        carried: dict[str, float],
        ctx: RunContext,
        *,
        decided: pl.DataFrame,
        risk_row: dict | None,
        held: dict[str, float] | None,
    ) -> StepOutput:
        """Session ``day`` from ``decided`` and ``risk_row``, starting from ``held`` (weights of the positions
        at D's close) or, without execution, from the previous targets ``carried``."""
        start = held if held is not None else carried
        res = optimise_session(day, decided, risk_row, inputs, start, ctx.settings)
        rows = {
            "portfolio_targets": res.targets,
            "portfolio_constraints": res.constraints,
            "optimization_results": pl.DataFrame([res.result], infer_schema_length=None),
        }
        return StepOutput(day, rows, {s: w for s, w in res.weights.items() if w}, res)

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        r = step.detail.result
        return (
            f"portfolio: {i}/{n} sessions ({step.day}: {r['optimizer_status']}, {r['rebalance']}, "
            f"{sum(1 for w in step.carried.values() if w)} positions)"
        )
