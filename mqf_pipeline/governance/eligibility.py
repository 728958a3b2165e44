"""Trading eligibility per symbol and session: governance Phases 0 and 1 (seed 000 section 10.4).

Phase 0: at least ``min_history_rows`` bars of history up to and including the session.
Phase 1: the session's bar passed the quality gate (ACCEPT: score >= 0.6, no hard flag).
"""

from __future__ import annotations

import polars as pl

from mqf_pipeline.governance.quality import ACCEPT


def history_counts(bar_keys: pl.DataFrame) -> pl.DataFrame:
    """Cumulative bar count per symbol at each of its dates, from (date, symbol) keys of price_history."""
    return (
        bar_keys.select("date", "symbol")
        .unique()
        .sort("symbol", "date")
        .with_columns(history_rows=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("symbol"))
    )


def trading_eligibility(quality: pl.DataFrame, bar_keys: pl.DataFrame, min_history_rows: int) -> pl.DataFrame:
    """One row per quality row: ``eligible`` = Phase 0 and Phase 1, with the reasons when not.

    ``bar_keys`` must contain every price_history (date, symbol) up to the last quality date.
    Symbols with no bar on a date carry the count of their last bar before it.
    """
    counts = history_counts(bar_keys)
    joined = (
        quality.sort("symbol", "date")
        .join_asof(
            counts.rename({"date": "bar_date"}).sort("symbol", "bar_date"),
            left_on="date",
            right_on="bar_date",
            by="symbol",
            strategy="backward",
            check_sortedness=False,
        )
        .with_columns(pl.col("history_rows").fill_null(0))
    )
    phase0 = pl.col("history_rows") >= min_history_rows
    phase1 = pl.col("status") == ACCEPT
    reasons = pl.format(
        "[{}]",
        pl.concat_list(
            pl.when(~phase0).then(
                pl.format('"PHASE0_HISTORY {} < {}"', pl.col("history_rows"), pl.lit(min_history_rows))
            ),
            pl.when(~phase1).then(
                pl.format(
                    '"PHASE1_QUALITY {} {}"',
                    pl.col("quality_score").round(4),
                    pl.col("validation_flags").str.replace_all('"', "'"),
                )
            ),
        )
        .list.drop_nulls()
        .list.join(","),
    )
    return joined.select(
        "date",
        "symbol",
        (phase0 & phase1).alias("eligible"),
        "quality_score",
        "history_rows",
        phase0.alias("phase0_pass"),
        phase1.alias("phase1_pass"),
        reasons.alias("reasons_json"),
    ).sort("date", "symbol")
