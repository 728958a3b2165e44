"""The warm-up history: the sessions before the fund's inception, as one asset (group ``warm_up``).

``mqf_pipeline/stages/warm_up.py`` says what and why. One materialization records the whole range, so the
first run is not tens of thousands of per-partition events; the daily assets whose look-back reaches into
the warm-up depend on this asset (the lineage comes from the stage registry).
"""

import dagster as dg
import polars as pl

from assets.common import RETRY, combined_hash, describe_days, md_table, retry_only_transient, stage_context
from mqf_pipeline.market.metrics_store import save_provider_metrics
from mqf_pipeline.stages.features import FeaturesStage
from mqf_pipeline.stages.ingest import IngestStage, MacroStage
from mqf_pipeline.stages.plan import fund_inception, warm_up_days
from mqf_pipeline.stages.quality import EligibilityStage, QualityStage, quality_summary
from mqf_pipeline.stages.regimes import RegimeStage
from mqf_pipeline.stages.registry import HISTORY_ASSET, WARM_UP_STAGES
from mqf_pipeline.stages.signals import SignalStage
from mqf_pipeline.stages.warm_up import run_warm_up, stage_days, warm_up_spans
from resources import MarketDataResource, SettingsResource, StorageResource

GROUP = "warm_up"
CODE_VERSION = "warm-up-1:" + "+".join(s.CODE_VERSION for s in WARM_UP_STAGES)
DESCRIPTION = (
    "The fund's history before its inception (its first daily partition): history.warm_up_sessions sessions "
    "of bars, corporate actions, fundamentals, headlines, macro, quality, eligibility, features and regimes, "
    "and the agent signals of its last history.warm_up_signal_sessions sessions (all that is read of them), "
    "made by the same stages as the daily cycle in one run, one lake file per table and session. It is the "
    "look-back of the daily cycle (governance Phase 0's bars, the regime model's training window, "
    "the agents' history). Nothing trades in it: the fund did not exist yet."
)


@dg.asset(
    name=HISTORY_ASSET,
    group_name=GROUP,
    kinds={"parquet"},
    code_version=CODE_VERSION,
    retry_policy=RETRY,
    description=DESCRIPTION,
)
def fund_history(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    market_data: MarketDataResource,
) -> dg.MaterializeResult:
    """Materialize the warm-up sessions before the inception with the daily cycle's own stages."""
    cfg = settings.get()
    inception = fund_inception(cfg, record=True)
    days = warm_up_days(cfg, inception)
    ctx = stage_context(context, cfg, storage.lake())
    router = market_data.router()
    archive = storage.archive()
    stages = [
        IngestStage(router, archive),
        MacroStage(router, archive),
        QualityStage(),
        EligibilityStage(),
        FeaturesStage(),
        RegimeStage(),
        SignalStage(),
    ]
    context.log.info(
        f"warm-up: {len(days)} sessions {days[0]} .. {days[-1]} before the inception {inception}, {len(stages)} stages"
    )
    with retry_only_transient(f"warm-up {describe_days(days)}"):
        result = run_warm_up(
            ctx,
            stages,
            days,
            on_stage=lambda name, i, n: context.log.info(f"warm-up: stage {i}/{n} {name}"),
            spans=warm_up_spans(cfg),
        )
    save_provider_metrics(ctx.lake, router.metrics_frame(), context.run.run_id, HISTORY_ASSET)
    written = [r for run in result.runs.values() for results in run.written.values() for r in results]
    tables = pl.DataFrame(
        [
            {
                "table": table,
                "partitions": len(results),
                "rows": sum(r.rows for r in results),
                "files_written": sum(r.written for r in results),
                "content_hash": combined_hash(results)[:16],
            }
            for run in result.runs.values()
            for table, results in run.written.items()
        ]
    )
    _, failing, mean_score = quality_summary(result.runs["quality"].steps, cfg.quality)
    content_hash = combined_hash(written)
    return dg.MaterializeResult(
        metadata={
            "inception": inception.isoformat(),
            "first_session": days[0].isoformat(),
            "last_session": days[-1].isoformat(),
            "sessions": len(days),
            "sessions_per_stage": dg.MetadataValue.json(
                {k: len(v) for k, v in stage_days(days, warm_up_spans(cfg)).items()}
            ),
            "dagster/row_count": sum(r.rows for r in written),
            "content_hash": content_hash,
            "files_written": sum(r.written for r in written),
            "files_unchanged": sum(not r.written for r in written),
            "mean_quality_score": round(mean_score, 6),
            "sessions_over_rejection_limit": failing.height,
            "tables": dg.MetadataValue.md(md_table(tables, max_rows=tables.height)),
            "seconds_per_stage": dg.MetadataValue.json(result.seconds),
        },
        data_version=dg.DataVersion(content_hash),
    )
