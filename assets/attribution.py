"""Attribution assets (group ``attribution``, seed 002 Part 1): the factor returns, every symbol's exposures,
the book's return of each session decomposed into market, styles, sectors, alpha and the rest, and each
agent's share of each position's PnL."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.common import RETRY, materialize_stage, md_table, stage_context, stage_specs, write_metadata
from mqf_pipeline.attribution import PARTS, carino_link
from mqf_pipeline.stages.attribution import AttributionDetail, AttributionStage
from mqf_pipeline.storage.lake import Lake
from resources import SettingsResource, StorageResource

GROUP = "attribution"
DESCRIPTIONS = {
    "factor_returns": "Daily long-short factor returns from the universe (seed 002 section 1.2): market, momentum "
    "(12-1, top 30% long / bottom 30% short), value (book-to-market from point-in-time fundamentals), "
    "volatility (low minus high), size (small minus large), liquidity (liquid minus illiquid) and one per "
    "sector, characteristics measured at the previous close; with the t-stat, p-value, names and R^2 of the "
    "session's cross-sectional regression on the characteristic.",
    "security_factor_exposures": "Each symbol's betas to the factors, alpha, residual volatility and R^2 from "
    "the 252-session rolling regression ending at the session (Newey-West standard errors, lag "
    "floor(4 (T/100)^(2/9)) = 4); null with too short a history or a singular window.",
    "portfolio_attribution": "The return of the book held during the session (positions at the previous close) "
    "split into market, each style, sector, alpha and idiosyncratic contributions that sum to it exactly; with "
    "volatility, beta, tracking error and information ratio against the market factor, the top contributor "
    "and the worst detractor.",
    "agent_pnl": "Each agent's share of each position's PnL by its weight in the ensemble for the symbol at the "
    "decision that held it (agent weight x confidence, normalised), with the factor-adjusted return.",
}
IDENTITY_CHECK = dg.AssetCheckSpec(
    "contributions_sum_to_the_total",
    asset="portfolio_attribution",
    blocking=True,
    description="Every session's market, style, sector, alpha and idiosyncratic contributions sum to the book's "
    "return within 1e-10.",
)


def identity_check(rows: pl.DataFrame) -> dg.AssetCheckResult:
    """Seed 002's decomposition identity on every attributed session."""
    if rows.height:
        parts = pl.sum_horizontal([pl.col(f"{p}_contribution") for p in PARTS])
        gap = rows.select((parts - pl.col("total_portfolio_return")).abs().max()).item()
    else:
        gap = 0.0
    return dg.AssetCheckResult(
        check_name=IDENTITY_CHECK.name,
        asset_key="portfolio_attribution",
        passed=bool(gap <= 1e-10),
        description=f"{rows.height} session(s) attributed; largest |sum of parts - total| {gap:.3g}",
        metadata={"sessions": rows.height, "max_abs_gap": float(gap)},
    )


def month_to_date(lake: Lake, day: dt.date) -> pl.DataFrame:
    """The stored sessions of ``day``'s month up to it, linked (Carino): parts that sum to the compounded
    month-to-date return, in percent (an empty frame when nothing is attributed yet)."""
    keys = [p for p in lake.partitions("portfolio_attribution") if day.replace(day=1).isoformat() <= p <= str(day)]
    rows = lake.read("portfolio_attribution", keys)
    if not rows.height:
        return pl.DataFrame()
    linked = carino_link(rows.sort("date"))
    return linked.with_columns(pl.exclude("n_sessions") * 100)


def build(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The attribution over ``partitions_def``."""

    @dg.multi_asset(
        specs=stage_specs(AttributionStage, descriptions=DESCRIPTIONS, group=GROUP, kinds={"parquet", "numpy"}),
        check_specs=[IDENTITY_CHECK],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=RETRY,
        name="attribution",
    )
    def attribution(context: dg.AssetExecutionContext, settings: SettingsResource, storage: StorageResource):
        """Factor returns, exposures, the book's attribution and the agents' PnL shares, session by session."""
        run = materialize_stage(context, AttributionStage(), stage_context(context, settings.get(), storage.lake()))
        last: AttributionDetail = run.last.detail
        rows = [s.detail.row for s in run.steps if s.detail.row.height]
        attributed = pl.concat(rows, how="vertical_relaxed") if rows else pl.DataFrame()
        today = (
            last.row.unpivot(on=[f"{p}_contribution" for p in PARTS], variable_name="part", value_name="return")
            if last.row.height
            else pl.DataFrame()
        )
        yield dg.MaterializeResult(
            asset_key="factor_returns", metadata=write_metadata(run.written["factor_returns"], factors=last.factors)
        )
        yield dg.MaterializeResult(
            asset_key="security_factor_exposures", metadata=write_metadata(run.written["security_factor_exposures"])
        )
        meta: dict[str, object] = {"notes": last.notes.height}
        if last.row.height:
            r = last.row.row(0, named=True)
            meta |= {
                "total_return_pct": round(100 * r["total_portfolio_return"], 4),
                "top_contributor": f"{r['top_contributor_symbol']} ({100 * (r['top_contributor_pnl'] or 0):+.3f}%)",
                "worst_detractor": f"{r['worst_detractor_symbol']} ({100 * (r['worst_detractor_pnl'] or 0):+.3f}%)",
                "attribution": dg.MetadataValue.md(md_table(today.with_columns(pl.col("return") * 100))),
            }
        linked = month_to_date(storage.lake(), run.last.day)
        if linked.height:
            meta["month_to_date_linked_pct"] = dg.MetadataValue.md(
                md_table(linked.unpivot(variable_name="part", value_name="value"), max_rows=15)
            )
        yield dg.MaterializeResult(
            asset_key="portfolio_attribution", metadata=write_metadata(run.written["portfolio_attribution"], **meta)
        )
        yield dg.MaterializeResult(asset_key="agent_pnl", metadata=write_metadata(run.written["agent_pnl"]))
        yield identity_check(attributed)

    return [attribution]
