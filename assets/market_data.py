"""Market-data assets: ingestion, macro series, quality gate, trading eligibility."""

import datetime as dt

import dagster as dg

from assets.common import RETRY, md_table, partition_dates, write_metadata
from assets.partitions import TRADING_DAYS
from mqf_pipeline.market.ingest import ingest_bars_window, ingest_macro_window
from mqf_pipeline.market.metrics_store import save_provider_metrics
from mqf_pipeline.stages.quality import eligibility_window, score_window
from mqf_pipeline.universe import universe_frame
from resources import MarketDataResource, SettingsResource, StorageResource

GROUP = "market_data"
SINGLE_RUN = dg.BackfillPolicy.single_run()
MACRO_SERIES = ("VIX", "SHORT_RATE")

INGEST_VERSION = "1"
QUALITY_VERSION = "1"
ELIGIBILITY_VERSION = "1"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: The tables the ingest step writes from the same provider calls, with their descriptions.
INGEST_TABLES: dict[str, str] = {
    "price_history": "Daily OHLCV bars per symbol and session (seed 000 price_history), "
    "raw records archived with their sha256 in raw_hash.",
    "corporate_actions": "Splits and cash dividends by ex-date.",
    "fundamentals": "Quarterly fundamentals (EPS, book value, revenue, cash flow, dividends) by the session "
    "they are first known (report_date): point-in-time.",
    "news_headlines": "News headlines per symbol by the session they are first known.",
    "ingestion_audit": "One row per session: what was requested, received, retried and written.",
    "backfill_failures": "Symbol-sessions no provider could serve, with the providers tried.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(key, group_name=GROUP, code_version=INGEST_VERSION, kinds={"parquet"}, description=text)
        for key, text in INGEST_TABLES.items()
    ],
    partitions_def=TRADING_DAYS,
    backfill_policy=SINGLE_RUN,
    retry_policy=RETRY,
    can_subset=False,
    name="ingest_market_data",
)
def ingest_market_data(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    market_data: MarketDataResource,
):
    """Fetch bars and corporate actions through the provider router for the partition's sessions."""
    cfg = settings.get()
    symbols = universe_frame(cfg).get_column("symbol").to_list()
    router = market_data.router()
    result = ingest_bars_window(
        router,
        storage.lake(),
        storage.archive(),
        symbols,
        partition_dates(context),
        context.run.run_id,
        _now(),
        progress=context.log.info,
    )
    yield dg.MaterializeResult(
        asset_key="price_history",
        metadata=write_metadata(
            result.price_history,
            symbols=len(symbols),
            providers=", ".join(result.providers),
            failed_symbols=result.n_failed_symbols,
            off_calendar_rows=result.n_off_calendar,
            requests=int(result.request_stats["requests"]),
            retries=int(result.request_stats["retries"]),
            mode=cfg.fund.mode.value,
        ),
    )
    save_provider_metrics(storage.lake(), router.metrics_frame(), context.run.run_id, "ingest_market_data")
    yield dg.MaterializeResult(asset_key="corporate_actions", metadata=write_metadata(result.corporate_actions))
    yield dg.MaterializeResult(asset_key="fundamentals", metadata=write_metadata(result.fundamentals))
    yield dg.MaterializeResult(asset_key="news_headlines", metadata=write_metadata(result.news_headlines))
    yield dg.MaterializeResult(asset_key="ingestion_audit", metadata=write_metadata(result.ingestion_audit))
    yield dg.MaterializeResult(asset_key="backfill_failures", metadata=write_metadata(result.backfill_failures))


@dg.asset(
    partitions_def=TRADING_DAYS,
    backfill_policy=SINGLE_RUN,
    retry_policy=RETRY,
    group_name=GROUP,
    code_version=INGEST_VERSION,
    kinds={"parquet"},
)
def macro_series(context: dg.AssetExecutionContext, storage: StorageResource, market_data: MarketDataResource):
    """Macro inputs per session: a VIX-like index (points) and the short rate (decimal, annual)."""
    router = market_data.router()
    written = ingest_macro_window(
        router, storage.lake(), storage.archive(), MACRO_SERIES, partition_dates(context), _now()
    )
    save_provider_metrics(storage.lake(), router.metrics_frame(), context.run.run_id, "macro_series")
    return dg.MaterializeResult(metadata=write_metadata(written, series=", ".join(MACRO_SERIES)))


@dg.asset(
    deps=["price_history"],
    partitions_def=TRADING_DAYS,
    backfill_policy=SINGLE_RUN,
    retry_policy=RETRY,
    group_name=GROUP,
    code_version=QUALITY_VERSION,
    kinds={"parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "rejection_rate_within_limit",
            asset="data_quality",
            blocking=True,
            description="Fails (ERROR, blocking) when a session rejects more than max_rejection_rate of symbols.",
        )
    ],
)
def data_quality(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
    """Quality score and flags per symbol and session (seed 000 sections 4.2-4.3)."""
    cfg = settings.get()
    symbols = universe_frame(cfg).get_column("symbol").to_list()
    th = cfg.quality
    result = score_window(storage.lake(), symbols, partition_dates(context), th, _now())
    worst = result.summary.sort("rejection_rate", descending=True).head(1).to_dicts()
    yield dg.MaterializeResult(
        metadata=write_metadata(
            result.written,
            mean_quality_score=round(result.mean_score, 6),
            max_rejection_rate=float(worst[0]["rejection_rate"]) if worst else 0.0,
            sessions_over_limit=result.failing.height,
        )
    )
    failing = result.failing.head(20)
    yield dg.AssetCheckResult(
        check_name="rejection_rate_within_limit",
        passed=result.failing.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "all sessions within the rejection limit"
            if result.failing.height == 0
            else f"{result.failing.height} session(s) reject more than {th.max_rejection_rate:.0%} of symbols"
        ),
        metadata={
            "limit": th.max_rejection_rate,
            "sessions_over_limit": result.failing.height,
            "failing_sessions": dg.MetadataValue.md(md_table(failing)) if failing.height else "none",
        },
    )


@dg.asset(
    deps=["data_quality", "price_history"],
    partitions_def=TRADING_DAYS,
    backfill_policy=SINGLE_RUN,
    retry_policy=RETRY,
    group_name=GROUP,
    code_version=ELIGIBILITY_VERSION,
    kinds={"parquet"},
)
def trading_eligibility(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
    """Symbols allowed to trade: quality accepted (Phase 1) and >= min_history_rows bars (Phase 0)."""
    cfg = settings.get()
    result = eligibility_window(storage.lake(), partition_dates(context), cfg.fund.history.min_history_rows, _now())
    return dg.MaterializeResult(
        metadata=write_metadata(
            result.written,
            eligible_last_session=result.n_eligible_last,
            symbols_last_session=result.n_symbols_last,
            min_history_rows=cfg.fund.history.min_history_rows,
        )
    )
