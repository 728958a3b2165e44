"""Portfolio assets (group ``portfolio``): target weights, constraint utilisation, optimization results.

One step walks the sessions in order: each session's targets start from the previous session's
(``portfolio_targets`` depends on its own previous partition).
"""

import datetime as dt

import dagster as dg
import polars as pl

from assets.common import RETRY, md_table, partition_dates, write_metadata
from assets.partitions import TRADING_DAYS
from mqf_pipeline.stages.portfolio import CODE_VERSION, PortfolioStateError, run_portfolio
from mqf_pipeline.universe import universe_frame
from resources import SettingsResource, StorageResource

PREVIOUS = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
INPUTS = ["decisions", "risk_state", "price_history"]
OUTPUTS: tuple[tuple[str, str], ...] = (
    (
        "portfolio_targets",
        "Target weight per symbol and session (seed 002 section 4.6): the meta-brain's views through the "
        "configured allocator (mean-variance with every seed 002 section 4.2 constraint by default), from the "
        "previous session's targets, then the pre-trade risk check; marginal risk, expected return, Sharpe "
        "contribution, turnover cost, liquidation priority.",
    ),
    (
        "portfolio_constraints",
        "Each constraint's limit, value, utilisation and binding flag per session.",
    ),
    (
        "optimization_results",
        "Per session: rebalance (STRATEGIC / TACTICAL / EMERGENCY), allocator, solver status and method in the "
        "fallback chain, solve time, objective, expected return, volatility, Sharpe, violated constraints and "
        "named conflicts.",
    ),
)
SPECS = [
    dg.AssetSpec(
        key,
        group_name="portfolio",
        deps=[*INPUTS, dg.AssetDep("portfolio_targets", partition_mapping=PREVIOUS)]
        if key == "portfolio_targets"
        else INPUTS,
        code_version=CODE_VERSION,
        kinds={"parquet", "cvxpy"},
        description=text,
    )
    for key, text in OUTPUTS
]


@dg.multi_asset(
    specs=SPECS,
    partitions_def=TRADING_DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=RETRY,
    name="optimize_portfolio",
)
def optimize_portfolio(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
    """Walk the sessions in order: views, covariance, allocator with fallbacks, pre-trade check."""
    cfg = settings.get()
    lake = storage.lake()
    days = partition_dates(context)
    try:
        results = run_portfolio(lake, cfg, days, universe_frame(cfg), progress=context.log.info)
    except PortfolioStateError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    now = dt.datetime.now(dt.UTC)
    target_rows = pl.concat([r.targets for r in results], how="vertical_relaxed")
    constraint_rows = pl.concat([r.constraints for r in results], how="vertical_relaxed")
    targets = lake.write_many("portfolio_targets", target_rows, days, now=now)
    constraints = lake.write_many("portfolio_constraints", constraint_rows, days, now=now)
    summary = pl.DataFrame([r.result for r in results], infer_schema_length=None)
    written = lake.write_many("optimization_results", summary, days, now=now)
    last = results[-1]
    held = last.targets.filter(pl.col("target_weight") != 0).sort("target_weight", descending=True)
    yield dg.MaterializeResult(
        asset_key="portfolio_targets",
        metadata=write_metadata(
            targets,
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
        metadata=write_metadata(constraints, session=str(last.day), binding=", ".join(binding) or "none"),
    )
    r = last.result
    yield dg.MaterializeResult(
        asset_key="optimization_results",
        metadata=write_metadata(
            written,
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
