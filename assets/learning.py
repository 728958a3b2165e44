"""Learning assets (group ``learning``, seed 002 Part 2): each agent's outcome per session and the ensemble
weights learned from them, which the meta-brain of the same session uses."""

import dagster as dg
import polars as pl

from assets.common import RETRY, materialize_stage, md_table, stage_context, stage_specs, write_metadata
from mqf_pipeline.stages.learning import LearningDetail, LearningStage
from resources import SettingsResource, StorageResource

GROUP = "learning"
DESCRIPTIONS = {
    "agent_weights": "The ensemble's agent weights per session, learned from every agent outcome known at the "
    "session's close: exponentiated gradient (eta 0.1) on rewards (realized - lambda x risk, mapped to [0, 1]), "
    "projected exactly (KL) onto the capped simplex [0.05, 0.40], or discounted Thompson sampling per regime once "
    "the regime's posterior holds enough trials; the preset's static weights until learning.min_sessions outcome "
    "sessions exist. With rolling Sharpe, hit rate, regime and the algorithm used.",
    "agent_performance": "Each agent's outcome per session: its signal portfolio of the session before (weights "
    "proportional to mu per day, gross 1) against the session's returns: predicted and actual return, hit, and "
    "its PnL share (its weight x actual return).",
}
WEIGHT_CHECK = dg.AssetCheckSpec(
    "weights_within_limits_and_sum_to_one",
    asset="agent_weights",
    blocking=True,
    description="Every session's learned weights lie in [learning.floor, learning.cap] and sum to 1 (1e-9).",
)


def weight_check(weights: pl.DataFrame, floor: float, cap: float) -> dg.AssetCheckResult:
    """The seed's constraints on every session's weights (preset weights outside them are reported too)."""
    learned = weights.filter(~pl.col("algorithm_used").str.starts_with("static"))
    per_day = learned.group_by("date").agg(
        total=pl.col("weight").sum(), low=pl.col("weight").min(), high=pl.col("weight").max()
    )
    bad = per_day.filter(
        ((pl.col("total") - 1).abs() > 1e-9) | (pl.col("low") < floor - 1e-12) | (pl.col("high") > cap + 1e-12)
    )
    return dg.AssetCheckResult(
        check_name=WEIGHT_CHECK.name,
        asset_key="agent_weights",
        passed=bad.height == 0,
        description=f"{per_day.height} learned session(s), {bad.height} outside [{floor}, {cap}] or not summing to 1",
        metadata={"sessions_checked": per_day.height, "sessions_failing": bad.height},
    )


def build(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """Agent outcomes and learned weights over ``partitions_def``."""

    @dg.multi_asset(
        specs=stage_specs(LearningStage, descriptions=DESCRIPTIONS, group=GROUP, kinds={"parquet", "numpy"}),
        check_specs=[WEIGHT_CHECK],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=RETRY,
        name="agent_weight_learning",
    )
    def agent_weight_learning(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Outcomes of each agent's signals and the weights learned from them, session by session."""
        cfg = settings.get()
        run = materialize_stage(context, LearningStage(), stage_context(context, cfg, storage.lake()))
        last: LearningDetail = run.last.detail
        weights = pl.concat([s.rows["agent_weights"] for s in run.steps], how="vertical_relaxed")
        table = pl.DataFrame({"agent": list(last.weights), "weight": [round(w, 4) for w in last.weights.values()]})
        yield dg.MaterializeResult(
            asset_key="agent_weights",
            metadata=write_metadata(
                run.written["agent_weights"],
                algorithm=last.algorithm,
                weights=dg.MetadataValue.md(md_table(table, max_rows=25)),
            ),
        )
        yield dg.MaterializeResult(
            asset_key="agent_performance",
            metadata=write_metadata(run.written["agent_performance"], agents_with_outcome=last.agents_with_outcome),
        )
        yield weight_check(weights, cfg.signals.learning.floor, cfg.signals.learning.cap)

    return [agent_weight_learning]
