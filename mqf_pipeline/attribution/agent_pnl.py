"""Each agent's share of each position's PnL (``agent_pnl``), by its weight in the ensemble for the symbol.

The ensemble weight of agent k on symbol i is the meta-brain's (:func:`mqf_pipeline.decisions.ensemble
.ensemble`): ``v_ik = agent_weight_k x confidence_ik / sum_j agent_weight_j x confidence_ij`` over the
agents with ``agent_weight > 0`` covering the symbol. ``pnl_contribution_ik = v_ik x pnl_i`` (decimal of
NAV), so the shares of a position sum to its PnL (exactly up to rounding). ``realized_return`` is the
symbol's decimal return of the day and ``factor_adjusted_return = realized_return - factor_part`` (the
symbol's ``beta' f`` including the sector term, from :class:`.decomposition.DayAttribution`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

_SIGNAL_COLUMNS = ("symbol", "agent_name", "mu_hat", "sigma_hat", "confidence", "agent_weight")
_POSITION_COLUMNS = ("symbol", "ret", "pnl", "factor_part")


@dataclass(frozen=True)
class AgentPnl:
    """``rows``: ``agent_pnl`` columns (cycle_id when given, symbol, agent_name, mu_hat, sigma_hat,
    confidence, agent_weight, realized_return, pnl_contribution, factor_adjusted_return) plus
    ensemble_weight; ``unattributed``: symbol, pnl, reason for positions no weighted agent covers."""

    rows: pl.DataFrame
    unattributed: pl.DataFrame


def agent_pnl(signals: pl.DataFrame, positions: pl.DataFrame, cycle_id: str | None = None) -> AgentPnl:
    """Split each position's PnL among the agents by ensemble weight (see the module docstring).

    ``signals``: one row per (symbol, agent_name) with mu_hat, sigma_hat (the agent's, daily decimal),
    confidence in [0, 1] and agent_weight >= 0; ``positions``: symbol, ret, pnl, factor_part (the
    ``contributions`` frame of :func:`.decomposition.attribute_day`).
    """
    missing = [c for c in _SIGNAL_COLUMNS if c not in signals.columns]
    missing += [c for c in _POSITION_COLUMNS if c not in positions.columns]
    if missing:
        raise ValueError(f"agent_pnl: missing column(s) {missing}")
    sig = signals.select(pl.col("symbol", "agent_name").cast(pl.String), pl.col(_SIGNAL_COLUMNS[2:]).cast(pl.Float64))
    if sig.select(pl.struct("symbol", "agent_name").is_duplicated().any()).item():
        raise ValueError("agent_pnl: duplicated (symbol, agent_name) signals")
    bad = sig.filter(~pl.col("confidence").is_between(0.0, 1.0) | ~(pl.col("agent_weight") >= 0))
    if bad.height:
        raise ValueError(f"agent_pnl: confidence must be in [0, 1] and agent_weight >= 0: {bad.row(0, named=True)}")
    pos = positions.select(pl.col("symbol").cast(pl.String), pl.col("ret", "pnl", "factor_part").cast(pl.Float64))
    raw = pl.col("agent_weight") * pl.col("confidence")
    rows = (
        sig.join(pos, on="symbol", how="inner")
        .with_columns(total=raw.sum().over("symbol"))
        .with_columns(ensemble_weight=pl.when(pl.col("total") > 0).then(raw / pl.col("total")))
        .select(
            *([pl.lit(cycle_id, pl.String).alias("cycle_id")] if cycle_id is not None else []),
            "symbol",
            "agent_name",
            "mu_hat",
            "sigma_hat",
            "confidence",
            "agent_weight",
            realized_return=pl.col("ret"),
            pnl_contribution=pl.col("ensemble_weight") * pl.col("pnl"),
            factor_adjusted_return=pl.col("ret") - pl.col("factor_part"),
            ensemble_weight=pl.col("ensemble_weight"),
        )
        .sort("symbol", "agent_name")
    )
    covered = rows.filter(pl.col("ensemble_weight").is_not_null()).select("symbol").unique()
    unattributed = (
        pos.join(covered, on="symbol", how="anti")
        .select("symbol", "pnl", reason=pl.lit("no agent with weight x confidence > 0 covers the symbol"))
        .sort("symbol")
    )
    return AgentPnl(rows=rows, unattributed=unattributed)
