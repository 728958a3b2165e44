"""Split- and dividend-adjusted OHLCV from canonical bars (:mod:`mqf_pipeline.market.bars`)."""

from __future__ import annotations

import polars as pl


def adjust_ohlc(bars: pl.DataFrame, splits: pl.DataFrame | None = None) -> pl.DataFrame:
    """Bars with open/high/low/close on the adjusted scale and volume as Float64.

    Each row's open, high and low are multiplied by its own factor ``adjusted_close / close``
    (null where ``close`` is null or 0) and ``close`` becomes ``adjusted_close``; no other row is
    read, so the adjustment adds no lookahead beyond the provider's ``adjusted_close`` itself.

    Volume (shares) cannot be split-adjusted from the bars alone, because the factor mixes splits
    and dividends. When ``splits`` is given (corporate_actions rows: date = ex-date, symbol,
    action_type, value = new shares per old share; non-SPLIT rows are ignored), each bar's volume
    is multiplied by the product of the split ratios with ex-date after the bar's date, which puts
    it in today's share count. Without ``splits`` volume is left in raw shares. All other columns
    are kept unchanged.
    """
    factor = pl.when(pl.col("close") != 0).then(pl.col("adjusted_close") / pl.col("close"))
    out = bars.with_columns(
        (pl.col("open") * factor).alias("open"),
        (pl.col("high") * factor).alias("high"),
        (pl.col("low") * factor).alias("low"),
        pl.col("adjusted_close").alias("close"),
        pl.col("volume").cast(pl.Float64),
    )
    if splits is None:
        return out
    ratios = (
        splits.filter((pl.col("action_type") == "SPLIT") & (pl.col("value") > 0))
        .group_by("symbol", "date")
        .agg(pl.col("value").product().alias("_ratio"))
        .sort("symbol", "date")
        .with_columns(pl.col("_ratio").cum_prod(reverse=True).over("symbol").alias("_after"))
        .select("symbol", pl.col("date").alias("_ex_date"), "_after")
    )
    if ratios.height == 0:
        return out
    order = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
    joined = (
        out.with_columns(order)
        .sort("date")
        .join_asof(
            ratios.sort("_ex_date"),
            left_on="date",
            right_on="_ex_date",
            by="symbol",
            strategy="forward",
            allow_exact_matches=False,
            check_sortedness=False,  # both sides are sorted by date above
        )
        .sort("_row")
    )
    return joined.with_columns(pl.col("volume") * pl.col("_after").fill_null(1.0)).drop("_row", "_ex_date", "_after")
