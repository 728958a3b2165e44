"""Signal assets: features, regimes, alpha-agent signals (group ``signals``)."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.common import RETRY, md_table, partition_dates, write_metadata
from assets.partitions import TRADING_DAYS
from mqf_pipeline.agents.registry import build_agents
from mqf_pipeline.features import FEATURE_VERSION, feature_names
from mqf_pipeline.stages.features import feature_rows, features_for_dates
from mqf_pipeline.stages.regimes import regimes_for_dates
from mqf_pipeline.stages.signals import agent_signals_for_dates, coverage_table, ic_to_date, model_output_rows
from mqf_pipeline.universe import universe_frame
from resources import SettingsResource, StorageResource

GROUP = "signals"
SINGLE_RUN = dg.BackfillPolicy.single_run()
FEATURES_VERSION = f"1-{FEATURE_VERSION}"


@dg.asset(
    deps=["price_history", "data_quality"],
    partitions_def=TRADING_DAYS,
    backfill_policy=SINGLE_RUN,
    retry_policy=RETRY,
    group_name=GROUP,
    code_version=FEATURES_VERSION,
    kinds={"parquet", "polars"},
)
def features(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
    """Technical indicators per symbol and session (seed 000 section 4.4) from adjusted, quality-accepted
    bars: SMA, EMA, RSI, MACD, Bollinger, ATR, historical volatility, OBV, volume ratios, ADX and
    trend, returns and 12-1 momentum. TA-Lib-exact; long format (date, symbol, feature, value)."""
    cfg = settings.get()
    lake = storage.lake()
    days = partition_dates(context)
    wide = features_for_dates(lake, days, block_sessions=cfg.signals.feature_block_sessions, progress=context.log.info)
    rows = feature_rows(wide)
    written = lake.write_many("features", rows, days, now=dt.datetime.now(dt.UTC))
    last = wide.filter(wide["date"] == days[-1])
    return dg.MaterializeResult(
        metadata=write_metadata(
            written,
            features=len(feature_names()),
            feature_version=FEATURE_VERSION,
            symbols_last_session=last.height,
            defined_share_last_session=round(
                float(rows.filter(rows["date"] == days[-1]).height) / max(last.height * len(feature_names()), 1), 4
            ),
        )
    )


REGIME_VERSION = "1"


@dg.asset(
    deps=["price_history", "data_quality", "macro_series"],
    partitions_def=TRADING_DAYS,
    backfill_policy=SINGLE_RUN,
    retry_policy=RETRY,
    group_name=GROUP,
    code_version=REGIME_VERSION,
    kinds={"parquet", "hmmlearn"},
)
def regime(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
    """Market regime per session (seed 002 regime_history): a 3-state Gaussian HMM (NORMAL / VOLATILE /
    CRISIS) on market return and dispersion, refit every ``regime_refit_sessions`` on data strictly
    before, FILTERED probabilities only; mapped with the trend to seed 000 section 7.2's risk regimes."""
    cfg = settings.get()
    lake = storage.lake()
    days = partition_dates(context)
    rows = regimes_for_dates(
        lake,
        days,
        refit_every=cfg.signals.regime_refit_sessions,
        min_train=cfg.signals.regime_min_train_sessions,
        random_state=cfg.signals.regime_random_state,
    )
    written = lake.write_many("regime_history", rows, days, now=dt.datetime.now(dt.UTC))
    last = rows.filter(rows["date"] == days[-1]).to_dicts()
    meta = {"sessions_without_regime": len(days) - rows.height}
    if last:
        meta |= {
            "regime": last[0]["regime"],
            "regime_prob": round(last[0]["regime_prob"], 4),
            "hmm_state": last[0]["hmm_state"],
            "risk_multiplier": last[0]["risk_multiplier"],
        }
    return dg.MaterializeResult(metadata=write_metadata(written, **meta))


AGENTS_VERSION = "1"


@dg.asset(
    deps=["price_history", "data_quality", "fundamentals", "news_headlines", "macro_series", "trading_eligibility"],
    partitions_def=TRADING_DAYS,
    backfill_policy=SINGLE_RUN,
    retry_policy=RETRY,
    group_name=GROUP,
    code_version=AGENTS_VERSION,
    kinds={"parquet"},
)
def agent_signals(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
    """Signals of every enabled alpha agent per symbol and session (the model_outputs table): expected
    return mu over the agent's horizon, sigma, confidence, signal in [-1, 1] and reason codes. The preset
    and agent list come from configs/signals.yaml."""
    cfg = settings.get()
    lake = storage.lake()
    days = partition_dates(context)
    names = cfg.signals.enabled_agents()
    agents = build_agents(names, cfg.signals.agent_params)
    signals = agent_signals_for_dates(
        lake,
        universe_frame(cfg),
        days,
        agents,
        block_sessions=cfg.signals.feature_block_sessions,
        history=cfg.signals.agent_history_sessions,
        progress=context.log.info,
    )
    rows = model_output_rows(signals, cfg.fund.strategy, AGENTS_VERSION)
    written = lake.write_many("model_outputs", rows, days, now=dt.datetime.now(dt.UTC))
    eligible = lake.read("trading_eligibility", [days[-1]])
    n_eligible = int(eligible.get_column("eligible").sum()) if eligible.height else 0
    cover = coverage_table(signals, n_eligible, days[-1])
    ic = ic_to_date(lake, days[-1])
    table = (
        pl.DataFrame(
            [
                {**c, "ic_63d": ic.get(c["agent"], {}).get("mean_ic"), "ic_t": ic.get(c["agent"], {}).get("t_stat")}
                for c in cover
            ]
        )
        if cover
        else pl.DataFrame()
    )
    meta = {f"{c['agent']}/coverage": c["coverage"] for c in cover}
    meta |= {f"{c['agent']}/mean_confidence": c["mean_confidence"] for c in cover}
    meta |= {f"{a}/ic_to_date": v["mean_ic"] for a, v in ic.items() if v.get("mean_ic") == v.get("mean_ic")}
    return dg.MaterializeResult(
        metadata=write_metadata(
            written,
            preset=cfg.signals.preset,
            agents=", ".join(names),
            eligible_last_session=n_eligible,
            agents_table=dg.MetadataValue.md(md_table(table, max_rows=len(names))) if table.height else "none",
            **meta,
        )
    )
