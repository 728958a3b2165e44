"""Portfolio tables of the trading cycle (group ``portfolio``, :mod:`assets.trading_cycle`): target weights,
constraint utilisation, optimization results; descriptions and the portfolio part's metadata.

Each session's targets start from the positions booked at its close (without execution, from the
previous session's targets: ``portfolio_targets`` depends on its own previous partition).
"""

import dagster as dg
import polars as pl

from assets.common import md_table, write_metadata
from mqf_pipeline.stages.base import StageRun

DESCRIPTIONS = {
    "portfolio_targets": "Target weight per symbol and session (seed 002 section 4.6): the meta-brain's views "
    "through the configured allocator (mean-variance with every seed 002 section 4.2 constraint"
    " by default), from the positions held (without execution, the previous targets), then the pre-trade"
    " risk check; marginal risk, expected return, Sharpe contribution, turnover cost, liquidation priority.",
    "portfolio_constraints": "Each constraint's limit, value, utilisation and binding flag per session.",
    "optimization_results": "Per session: rebalance (STRATEGIC / TACTICAL / EMERGENCY), allocator, solver status and "
    "method in the fallback chain, solve time, objective, expected return, volatility, Sharpe, "
    "violated constraints and named conflicts.",
}


def results(run: StageRun):
    """The portfolio part's MaterializeResults for a trading-cycle run."""
    last = run.last.detail
    held = last.targets.filter(pl.col("target_weight") != 0).sort("target_weight", descending=True)
    yield dg.MaterializeResult(
        asset_key="portfolio_targets",
        metadata=write_metadata(
            run.written["portfolio_targets"],
            session=str(last.day),
            positions=held.height,
            gross=round(float(held["target_weight"].abs().sum()), 6),
            turnover=round(float(last.targets["weight_change"].abs().sum()), 6),
            targets_preview=dg.MetadataValue.md(
                md_table(held.select("symbol", "target_weight", "current_weight", "expected_return"), 15)
            )
            if held.height
            else "none",
        ),
    )
    binding = last.constraints.filter(pl.col("binding") == 1)["constraint_type"].to_list()
    yield dg.MaterializeResult(
        asset_key="portfolio_constraints",
        metadata=write_metadata(
            run.written["portfolio_constraints"], session=str(last.day), binding=", ".join(binding) or "none"
        ),
    )
    r = last.result
    yield dg.MaterializeResult(
        asset_key="optimization_results",
        metadata=write_metadata(
            run.written["optimization_results"],
            session=str(last.day),
            rebalance=str(r["rebalance"]),
            allocator=str(r["allocator"]),
            status=str(r["optimizer_status"]),
            method=str(r["method"]),
            solve_time_ms=round(float(r["solve_time_ms"]), 1),
            volatility=round(float(r["portfolio_volatility"] or 0.0), 6),
            conflicts=str(r["conflicts"]),
        ),
    )
