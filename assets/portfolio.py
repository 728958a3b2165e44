"""Portfolio assets (group ``portfolio``): target weights, constraint utilisation, optimization results.

One step walks the sessions in order: each session's targets start from the previous session's
(``portfolio_targets`` depends on its own previous partition).
"""

import dagster as dg
import polars as pl

from assets.common import RETRY, materialize_stage, md_table, stage_context, stage_specs, write_metadata
from mqf_pipeline.stages.portfolio import PortfolioStage
from resources import SettingsResource, StorageResource

DESCRIPTIONS = {
    "portfolio_targets": "Target weight per symbol and session (seed 002 section 4.6): the meta-brain's views "
    "through the configured allocator (mean-variance with every seed 002 section 4.2 constraint"
    " by default), from the previous session's targets, then the pre-trade risk check; marginal"
    " risk, expected return, Sharpe contribution, turnover cost, liquidation priority.",
    "portfolio_constraints": "Each constraint's limit, value, utilisation and binding flag per session.",
    "optimization_results": "Per session: rebalance (STRATEGIC / TACTICAL / EMERGENCY), allocator, solver status and "
    "method in the fallback chain, solve time, objective, expected return, volatility, Sharpe, "
    "violated constraints and named conflicts.",
}


def build(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The portfolio multi-asset over ``partitions_def``."""

    @dg.multi_asset(
        specs=stage_specs(PortfolioStage, descriptions=DESCRIPTIONS, group="portfolio", kinds={"parquet", "cvxpy"}),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=RETRY,
        name="optimize_portfolio",
    )
    def optimize_portfolio(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Walk the sessions in order: views, covariance, allocator with fallbacks, pre-trade check."""
        run = materialize_stage(context, PortfolioStage(), stage_context(context, settings.get(), storage.lake()))
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

    return [optimize_portfolio]
