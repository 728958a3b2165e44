"""Market-data assets: ingestion, macro series, quality gate, trading eligibility (group ``market_data``)."""

import dagster as dg

from assets.common import RETRY, materialize_stage, md_table, stage_context, stage_specs, write_metadata
from mqf_pipeline.market.metrics_store import save_provider_metrics
from mqf_pipeline.stages.ingest import MACRO_SERIES, IngestStage, MacroStage
from mqf_pipeline.stages.quality import EligibilityStage, QualityStage, quality_summary
from mqf_pipeline.storage.lake import LakeReadError
from resources import MarketDataResource, SettingsResource, StorageResource

GROUP = "market_data"
SINGLE_RUN = dg.BackfillPolicy.single_run()

#: The tables the ingest stage writes from the same provider calls, with their descriptions.
DESCRIPTIONS: dict[str, str] = {
    "price_history": "Daily OHLCV bars per symbol and session (seed 000 price_history), "
    "raw records archived with their sha256 in raw_hash.",
    "corporate_actions": "Splits and cash dividends by ex-date.",
    "fundamentals": "Quarterly fundamentals (EPS, book value, revenue, cash flow, dividends) by the session "
    "they are first known (report_date): point-in-time.",
    "news_headlines": "News headlines per symbol by the session they are first known.",
    "ingestion_audit": "One row per session: what was requested, received, retried and written.",
    "backfill_failures": "Symbol-sessions no provider could serve, with the providers tried.",
    "macro_series": "Macro inputs per session: a VIX-like index (points) and the short rate (decimal, annual), from "
    "the mode's macro providers only (FRED or files in real-data modes); a series none serves is absent, never "
    "made up (metadata absent_series says why).",
    "data_quality": "Quality score and flags per symbol and session (seed 000 sections 4.2-4.3).",
    "trading_eligibility": "Symbols allowed to trade: quality accepted (Phase 1) and >= min_history_rows bars "
    "(Phase 0).",
}
REJECTION_CHECK = dg.AssetCheckSpec(
    "rejection_rate_within_limit",
    asset="data_quality",
    blocking=True,
    description="Fails (ERROR, blocking) when a session rejects more than max_rejection_rate of symbols, or when a "
    "lake file the scoring reads cannot be read (named: table, session, file; `mqf lake verify --repair`).",
)


def _damaged_file(exc: BaseException) -> LakeReadError | None:
    """The :class:`LakeReadError` behind ``exc`` (``materialize_stage`` wraps it in a ``dg.Failure``), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, LakeReadError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _unreadable_input_check(damaged: LakeReadError) -> dg.AssetCheckResult:
    """The blocking check failed on a damaged input file: which table, session and file, and how to repair it."""
    return dg.AssetCheckResult(
        check_name="rejection_rate_within_limit",
        asset_key="data_quality",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"cannot score quality: {damaged}",
        metadata={
            "unreadable_table": damaged.table,
            "unreadable_partition": damaged.partition,
            "unreadable_path": dg.MetadataValue.path(damaged.path),
            "repair": "mqf lake verify --repair",
        },
    )


def _common(partitions_def: dg.PartitionsDefinition) -> dict:
    """Partitions, single-run backfills and retries: the same for every asset of this module."""
    return {"partitions_def": partitions_def, "backfill_policy": SINGLE_RUN, "retry_policy": RETRY}


def _specs(stage) -> list[dg.AssetSpec]:
    return stage_specs(stage, descriptions=DESCRIPTIONS, group=GROUP, kinds={"parquet"})


def _ingest_market_data_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(specs=_specs(IngestStage), can_subset=False, name="ingest_market_data", **_common(partitions_def))
    def ingest_market_data(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        storage: StorageResource,
        market_data: MarketDataResource,
    ):
        """Fetch bars, corporate actions, fundamentals and headlines through the provider router."""
        cfg = settings.get()
        ctx = stage_context(context, cfg, storage.lake())
        router = market_data.router()
        run = materialize_stage(context, IngestStage(router, storage.archive()), ctx)
        fetched = run.last.detail
        save_provider_metrics(ctx.lake, router.metrics_frame(), context.run.run_id, "ingest_market_data")
        extra = {
            "price_history": {
                "symbols": fetched.n_symbols,
                "providers": ", ".join(fetched.providers),
                "failed_symbols": fetched.n_failed_symbols,
                "off_calendar_rows": fetched.n_off_calendar,
                "requests": int(fetched.request_stats["requests"]),
                "retries": int(fetched.request_stats["retries"]),
                "mode": cfg.fund.mode.value,
            }
        }
        for table in IngestStage.WRITES:
            yield dg.MaterializeResult(
                asset_key=table, metadata=write_metadata(run.written[table], **extra.get(table, {}))
            )

    return ingest_market_data


def _macro_series_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(specs=_specs(MacroStage), name="macro_series", **_common(partitions_def))
    def macro_series(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        storage: StorageResource,
        market_data: MarketDataResource,
    ):
        """Macro inputs per session: a VIX-like index (points) and the short rate (decimal, annual)."""
        ctx = stage_context(context, settings.get(), storage.lake())
        router = market_data.router()
        run = materialize_stage(context, MacroStage(router, storage.archive()), ctx)
        save_provider_metrics(ctx.lake, router.metrics_frame(), context.run.run_id, "macro_series")
        absent = run.last.detail["absent"]
        served = [s for s in MACRO_SERIES if s not in absent]
        return dg.MaterializeResult(
            asset_key="macro_series",
            metadata=write_metadata(
                run.written["macro_series"],
                series=", ".join(served) or "none",
                absent_series=", ".join(f"{k}: {v}" for k, v in absent.items()) or "none",
            ),
        )

    return macro_series


def _data_quality_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=_specs(QualityStage), check_specs=[REJECTION_CHECK], name="data_quality", **_common(partitions_def)
    )
    def data_quality(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Quality score and flags per symbol and session (seed 000 sections 4.2-4.3)."""
        cfg = settings.get()
        th = cfg.quality
        try:
            run = materialize_stage(context, QualityStage(), stage_context(context, cfg, storage.lake()))
        except (dg.Failure, LakeReadError) as exc:
            damaged = _damaged_file(exc)
            if damaged is None:
                raise
            yield _unreadable_input_check(damaged)  # the blocking check names the file, then the step fails
            if isinstance(exc, dg.Failure):
                raise
            raise dg.Failure(description=str(damaged), allow_retries=False) from exc
        summary, failing, mean_score = quality_summary(run.steps, th)
        worst = summary.sort("rejection_rate", descending=True).head(1).to_dicts()
        yield dg.MaterializeResult(
            asset_key="data_quality",
            metadata=write_metadata(
                run.written["data_quality"],
                mean_quality_score=round(mean_score, 6),
                max_rejection_rate=float(worst[0]["rejection_rate"]) if worst else 0.0,
                sessions_over_limit=failing.height,
            ),
        )
        yield dg.AssetCheckResult(
            check_name="rejection_rate_within_limit",
            asset_key="data_quality",
            passed=failing.height == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                "all sessions within the rejection limit"
                if failing.height == 0
                else f"{failing.height} session(s) reject more than {th.max_rejection_rate:.0%} of symbols"
            ),
            metadata={
                "limit": th.max_rejection_rate,
                "sessions_over_limit": failing.height,
                "failing_sessions": dg.MetadataValue.md(md_table(failing.head(20))) if failing.height else "none",
            },
        )

    return data_quality


def _trading_eligibility_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(specs=_specs(EligibilityStage), name="trading_eligibility", **_common(partitions_def))
    def trading_eligibility(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Symbols allowed to trade: quality accepted (Phase 1) and >= min_history_rows bars (Phase 0)."""
        cfg = settings.get()
        run = materialize_stage(context, EligibilityStage(), stage_context(context, cfg, storage.lake()))
        last = run.last.detail
        return dg.MaterializeResult(
            asset_key="trading_eligibility",
            metadata=write_metadata(
                run.written["trading_eligibility"],
                eligible_last_session=int(last.get_column("eligible").sum()) if last is not None else 0,
                symbols_last_session=last.height if last is not None else 0,
                min_history_rows=cfg.fund.history.min_history_rows,
            ),
        )

    return trading_eligibility


def build(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The market-data assets over ``partitions_def``."""
    return [
        _ingest_market_data_asset(partitions_def),
        _macro_series_asset(partitions_def),
        _data_quality_asset(partitions_def),
        _trading_eligibility_asset(partitions_def),
    ]
