"""Signal assets: features, regimes, alpha-agent signals (group ``signals``)."""

import dagster as dg
import polars as pl

from assets.common import RETRY, materialize_stage, md_table, stage_context, stage_specs, write_metadata
from mqf_pipeline.features import FEATURE_VERSION, feature_names
from mqf_pipeline.stages.features import FeaturesStage
from mqf_pipeline.stages.regimes import RegimeStage
from mqf_pipeline.stages.signals import SignalStage, no_data_note, signal_report
from resources import SettingsResource, StorageResource

GROUP = "signals"
SINGLE_RUN = dg.BackfillPolicy.single_run()
DESCRIPTIONS = {
    "features": "Technical indicators per symbol and session (seed 000 section 4.4) from adjusted, "
    "quality-accepted bars: SMA, EMA, RSI, MACD, Bollinger, ATR, historical volatility, OBV, volume ratios, ADX "
    "and trend, returns and 12-1 momentum. TA-Lib-exact; long format (date, symbol, feature, value).",
    "regime_history": "Market regime per session (seed 002 regime_history): a 3-state Gaussian HMM (NORMAL / "
    "VOLATILE / CRISIS) on market return and dispersion (return only on a universe of one symbol: metadata "
    "observations, universe_size, small_universe), refit every regime_refit_sessions on data strictly before, "
    "FILTERED probabilities only; mapped with the trend to seed 000 section 7.2's risk regimes.",
    "model_outputs": "Signals of every enabled alpha agent per symbol and session (the model_outputs table): "
    "expected return mu over the agent's horizon, sigma, confidence, signal in [-1, 1] and reason codes, from "
    "bars, the stored features (e.g. the technical agent's RSI, MACD and Bollinger %B), fundamentals, news and "
    "macro. The preset and agent list come from configs/signals.yaml.",
}


def _common(partitions_def: dg.PartitionsDefinition) -> dict:
    """Partitions, single-run backfills and retries: the same for every asset of this module."""
    return {"partitions_def": partitions_def, "backfill_policy": SINGLE_RUN, "retry_policy": RETRY}


def _features_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=stage_specs(FeaturesStage, descriptions=DESCRIPTIONS, group=GROUP, kinds={"parquet", "polars"}),
        name="features",
        **_common(partitions_def),
    )
    def features(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Technical indicators per symbol and session, block-anchored so reruns give identical rows."""
        run = materialize_stage(context, FeaturesStage(), stage_context(context, settings.get(), storage.lake()))
        wide, rows = run.last.detail, run.last.rows.get("features", pl.DataFrame())
        return dg.MaterializeResult(
            asset_key="features",
            metadata=write_metadata(
                run.written["features"],
                features=len(feature_names()),
                feature_version=FEATURE_VERSION,
                symbols_last_session=wide.height,
                defined_share_last_session=round(float(rows.height) / max(wide.height * len(feature_names()), 1), 4),
            ),
        )

    return features


def _regime_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=stage_specs(RegimeStage, descriptions=DESCRIPTIONS, group=GROUP, kinds={"parquet", "hmmlearn"}),
        name="regime",
        **_common(partitions_def),
    )
    def regime(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Market regime per session from the walk-forward filtered HMM."""
        run = materialize_stage(context, RegimeStage(), stage_context(context, settings.get(), storage.lake()))
        with_regime = sum(s.detail.rows is not None for s in run.steps)
        meta: dict[str, object] = {"sessions_without_regime": len(run.steps) - with_regime}
        meta |= run.last.detail.run.metadata()  # observations, universe_size, small_universe
        last = run.last.detail.rows.to_dicts() if run.last.detail.rows is not None else []
        if last:
            meta |= {
                "regime": last[0]["regime"],
                "regime_prob": round(last[0]["regime_prob"], 4),
                "hmm_state": last[0]["hmm_state"],
                "risk_multiplier": last[0]["risk_multiplier"],
            }
        return dg.MaterializeResult(asset_key="regime", metadata=write_metadata(run.written["regime_history"], **meta))

    return regime


def _agent_signals_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=stage_specs(SignalStage, descriptions=DESCRIPTIONS, group=GROUP, kinds={"parquet"}),
        name="agent_signals",
        **_common(partitions_def),
    )
    def agent_signals(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Signals of every enabled alpha agent per symbol and session, with coverage and IC to date."""
        cfg = settings.get()
        ctx = stage_context(context, cfg, storage.lake())
        run = materialize_stage(context, SignalStage(), ctx)
        names = cfg.signals.enabled_agents()
        cover, ic, n_eligible = signal_report(ctx, run.steps)
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
        meta |= {
            f"{c['agent']}/mean_confidence": c["mean_confidence"] for c in cover if c["mean_confidence"] is not None
        }
        meta |= {f"{c['agent']}/reason": c["reason"] for c in cover if c["status"] == "no data"}
        weights = cfg.signals.starting_weights()
        silent = [
            {"agent": c["agent"], "weight": weights.get(str(c["agent"]), 0.0), "reason": c["detail"]}
            for c in cover
            if c["status"] == "no data"
        ]
        notes = run.last.detail.notes
        meta |= {f"{a}/ic_to_date": v["mean_ic"] for a, v in ic.items() if v.get("mean_ic") == v.get("mean_ic")}
        return dg.MaterializeResult(
            asset_key="agent_signals",
            metadata=write_metadata(
                run.written["model_outputs"],
                preset=cfg.signals.preset,
                agents=", ".join(names),
                eligible_last_session=n_eligible,
                universe_size=notes.universe_size,
                small_universe=notes.small_universe,
                agents_without_data=no_data_note(silent) or "none",
                agents_table=dg.MetadataValue.md(md_table(table, max_rows=len(names))) if table.height else "none",
                **meta,
            ),
        )

    return agent_signals


def build(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The signal assets over ``partitions_def``."""
    return [_features_asset(partitions_def), _regime_asset(partitions_def), _agent_signals_asset(partitions_def)]
