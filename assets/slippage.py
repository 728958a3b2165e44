"""Slippage assets (group ``slippage``, seed 002 Part 5): the slippage model refitted on the fills up to each
session, and how well the previous fit predicted the session's fills."""

import dagster as dg
import polars as pl

from assets.common import RETRY, materialize_stage, md_table, stage_context, stage_specs, write_metadata
from mqf_pipeline.stages.slippage import SlippageDetail, SlippageStage
from resources import SettingsResource, StorageResource

GROUP = "slippage"
DESCRIPTIONS = {
    "slippage_model_coeffs": "The slippage model of seed 002 section 5.3 refitted at each session's close on every "
    "fill up to it: slippage_bps = a0 + a1 Q/ADV + a2 sigma + a3 spread_bps + a4 (Q/ADV) sigma, per symbol by "
    "least squares shrunk toward the pooled fit (symbol '*'; execution.slippage_model.shrinkage pseudo-fills), "
    "with R^2, fills and status (own fit, shrunk, pooled only, or too few fills: the static default cost).",
    "slippage_prediction_errors": "Each session's fills predicted by the model fitted before the session "
    "(walk-forward, no lookahead) against what they cost: error in bps and percent per symbol (notional-"
    "weighted over its fills) and the market condition (regime) they traded in.",
}


def build(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The slippage refit over ``partitions_def``."""

    @dg.multi_asset(
        specs=stage_specs(SlippageStage, descriptions=DESCRIPTIONS, group=GROUP, kinds={"parquet", "numpy"}),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=RETRY,
        name="slippage_refit",
    )
    def slippage_refit(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Refit the slippage model per session; score the previous fit on the session's fills."""
        run = materialize_stage(context, SlippageStage(), stage_context(context, settings.get(), storage.lake()))
        last: SlippageDetail = run.last.detail
        coeffs = run.last.rows["slippage_model_coeffs"]
        yield dg.MaterializeResult(
            asset_key="slippage_model_coeffs",
            metadata=write_metadata(
                run.written["slippage_model_coeffs"],
                pooled_status=last.pooled_status,
                pooled_r_squared=last.pooled_r_squared,
                fills_used=last.fills_used,
                symbols_with_own_fit=last.symbols_fitted,
                pooled_coefficients=dg.MetadataValue.md(md_table(coeffs.filter(pl.col("symbol") == "*"))),
            ),
        )
        yield dg.MaterializeResult(
            asset_key="slippage_prediction_errors",
            metadata=write_metadata(
                run.written["slippage_prediction_errors"],
                fills_last_session=last.fills_today,
                mean_abs_error_bps_last_session=last.mean_abs_error_bps,
            ),
        )

    return [slippage_refit]
