"""The three tables a portfolio session writes: portfolio_targets (with marginal risk, Sharpe contribution
and liquidation priority), portfolio_constraints (utilisation) and optimization_results."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mqf_pipeline.decisions.audit import cycle_id
from mqf_pipeline.portfolio import optimizer


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
class PortfolioRows:
    """Rows of one session for portfolio_targets, portfolio_constraints and optimization_results."""

    day: dt.date
    targets: pl.DataFrame
    constraints: pl.DataFrame
    result: dict[str, object]
    weights: dict[str, float]


def session_rows(
    book: SessionBook,
    solved: Solved,
    report: dict[str, optimizer.ConstraintUsage],
    *,
    strategy: str,
    cost_bps: float,
    risk_free_annual: float,
    allocator: str,
) -> PortfolioRows:
    """The three tables' rows for one session (``cost_bps``: round-trip cost per unit turnover; ``risk_free_annual``:
    decimal, annual)."""
    day, symbols, prev, mu, cov, weights = book.day, book.symbols, book.prev, book.mu, book.cov, solved.weights
    cid = cycle_id(strategy, day)
    cost = cost_bps / 1e4
    var_w = float(weights @ cov @ weights) if len(symbols) else 0.0
    vol = float(np.sqrt(max(var_w, 0.0)))
    marginal = (cov @ weights) / vol if vol > 0 else np.zeros(len(symbols))
    rf = risk_free_annual
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
        "allocator": allocator,
        "method": solved.method,
        "conflicts": json.dumps([*solved.conflicts, *([book.hold_reason] if book.hold_reason else [])]),
    }
    return PortfolioRows(day, targets, constraints, result, dict(zip(symbols, weights.tolist(), strict=True)))
