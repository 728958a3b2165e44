"""Asset jobs: the data layer alone, the daily cycle, the cycle without execution (research), and the
catalog refresh."""

from __future__ import annotations

import dagster as dg

warm_up_job = dg.define_asset_job(
    "warm_up_job",
    selection=dg.AssetSelection.assets("fund_history"),
    description="The fund's history before its inception, once: the sessions its first daily cycle looks back "
    "on (bars, quality, features, regimes, signals), made by the daily cycle's own stages in one run.",
)

market_data_job = dg.define_asset_job(
    "market_data_job",
    selection=dg.AssetSelection.groups("market_data"),
    description="Ingest bars, corporate actions, fundamentals, headlines and macro series, score quality, "
    "gate eligibility.",
)

daily_cycle_job = dg.define_asset_job(
    "daily_cycle_job",
    selection=dg.AssetSelection.groups(
        "market_data",
        "signals",
        "learning",
        "decisions",
        "risk",
        "portfolio",
        "execution",
        "slippage",
        "attribution",
    ),
    description="The fund's cycle for a session (or a range): the data layer, features, regimes and agent "
    "signals, the agent weights learned from the outcomes up to the session, the meta-brain's decisions with "
    "their audit, the risk state, the portfolio targets, then execution: fills of the previous session's orders, "
    "positions, and this session's orders at the broker; then the loop back: the slippage model refitted on the "
    "fills and the session's return attributed to factors, sectors, alpha and agents.",
)

daily_attribution_job = dg.define_asset_job(
    "daily_attribution_job",
    selection=dg.AssetSelection.groups("attribution"),
    description="Why the fund made or lost money in a session (seed 002 Part 1): factor returns, exposures, the "
    "book's return split into market, styles, sectors, alpha and the rest, and each agent's PnL share.",
)

slippage_refit_job = dg.define_asset_job(
    "slippage_refit_job",
    selection=dg.AssetSelection.groups("slippage"),
    description="Refit the slippage model (seed 002 Part 5) on the fills stored up to a session and score the "
    "previous fit on that session's fills. Requested by slippage_refit_sensor when enough new fills arrived, "
    "and weekly by slippage_weekly_refit.",
)

research_cycle_job = dg.define_asset_job(
    "research_cycle_job",
    selection=dg.AssetSelection.groups("market_data", "signals", "learning", "decisions", "risk", "portfolio"),
    description="The cycle without execution (research): data, signals, decisions with the risk state and the "
    "portfolio targets. Decisions measure risk on the positions stored for a session where execution has "
    "booked it, else on the decided book marked with returns (risk_state.book_source says which).",
)

catalog_job = dg.define_asset_job(
    "catalog_job",
    selection=dg.AssetSelection.assets("duckdb_catalog"),
    description="Refresh the DuckDB catalog views over the lake (pool duckdb_writer).",
)
