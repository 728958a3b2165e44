"""Per (symbol, session) returns and factor characteristics, each measured at that session's close.

Pure polars over the bars (``price_history`` columns), the point-in-time ``fundamentals`` and the splits
of ``corporate_actions``. Every value on a row dated t uses data dated <= t only (rolling windows end at
t, reports are those with ``report_date <= t``, splits those with ex-date <= t); :mod:`.factors` applies
the characteristics of t - 1 to the return of t.
"""

from __future__ import annotations

import polars as pl

from mqf_pipeline.attribution.params import FactorParams

_BAR_COLUMNS = ("date", "symbol", "close", "adjusted_close", "volume")
_FUNDAMENTAL_COLUMNS = ("report_date", "symbol", "fiscal_period_end", "book_value_per_share", "shares_outstanding")
#: Characteristic columns of :func:`characteristics` (besides date, symbol, close, volume, ret).
CHARACTERISTICS: tuple[str, ...] = (
    "momentum",
    "book_to_market",
    "volatility",
    "market_cap",
    "dollar_volume",
    "liquidity",
)


def returns_grid(bars: pl.DataFrame) -> pl.DataFrame:
    """The full (symbol, session) grid of the bars' sessions, sorted by symbol then date, with ``ret``.

    Columns: symbol, date, close, adjusted_close, volume (null where a bar is missing), ret: the decimal
    simple total return (daily, not annualised) from the previous session's ``adjusted_close`` to this
    one; null on the first session or when either bar is missing or not positive. Sessions are the
    distinct dates of ``bars``. Raises ValueError on a missing column or a duplicated (symbol, date).
    """
    missing = [c for c in _BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"attribution bars: missing column(s) {missing}")
    df = bars.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        pl.col("close", "adjusted_close").cast(pl.Float64),
        pl.col("volume").cast(pl.Float64),
    )
    if df.select(pl.struct("symbol", "date").is_duplicated().any()).item():
        raise ValueError("attribution bars: duplicated (symbol, date) rows")
    dates = df.select(pl.col("date").unique().sort())
    symbols = df.select(pl.col("symbol").unique().sort())
    positive = pl.when(pl.col("adjusted_close") > 0).then(pl.col("adjusted_close"))
    return (
        symbols.join(dates, how="cross")
        .join(df, on=["symbol", "date"], how="left")
        .sort("symbol", "date")
        .with_columns(adjusted_close=positive)
        .with_columns(ret=pl.col("adjusted_close") / pl.col("adjusted_close").shift(1).over("symbol") - 1.0)
    )


def _split_index(splits: pl.DataFrame | None) -> pl.DataFrame:
    """symbol, date, log_split: cumulative log of the split ratios (new shares per old) with ex-date <= date."""
    schema = {"symbol": pl.String, "date": pl.Date, "log_split": pl.Float64}
    if splits is None or splits.height == 0:
        return pl.DataFrame(schema=schema)
    df = splits
    if "action_type" in df.columns:
        df = df.filter(pl.col("action_type") == "SPLIT")
    return (
        df.select(pl.col("symbol").cast(pl.String), pl.col("date").cast(pl.Date), pl.col("value").cast(pl.Float64))
        .filter(pl.col("value") > 0)
        .group_by("symbol", "date")
        .agg(pl.col("value").log().sum())
        .sort("symbol", "date")
        .select("symbol", "date", log_split=pl.col("value").cum_sum().over("symbol"))
        .sort("date")
    )


def _reported(grid: pl.DataFrame, fundamentals: pl.DataFrame | None, splits: pl.DataFrame | None) -> pl.DataFrame:
    """``grid`` plus book_to_market and market_cap from the latest report with ``report_date <= date``.

    Shares at date = reported shares x the splits with ex-date in (fiscal_period_end, date]; book equity
    = book_value_per_share x reported shares (both on the period-end share basis); market cap = close x
    shares (USD); book_to_market = book equity / market cap. Null before a symbol's first report.
    """
    if fundamentals is None or fundamentals.height == 0:
        return grid.with_columns(book_to_market=pl.lit(None, pl.Float64), market_cap=pl.lit(None, pl.Float64))
    missing = [c for c in _FUNDAMENTAL_COLUMNS if c not in fundamentals.columns]
    if missing:
        raise ValueError(f"attribution fundamentals: missing column(s) {missing}")
    reports = (
        fundamentals.select(
            pl.col("report_date", "fiscal_period_end").cast(pl.Date),
            pl.col("symbol").cast(pl.String),
            pl.col("book_value_per_share", "shares_outstanding").cast(pl.Float64),
        )
        .sort("symbol", "report_date", "fiscal_period_end")
        .unique(subset=["symbol", "report_date"], keep="last", maintain_order=True)
        .sort("report_date")
    )
    index = _split_index(splits)
    out = (
        grid.sort("date")
        .join_asof(
            reports, left_on="date", right_on="report_date", by="symbol", strategy="backward", check_sortedness=False
        )
        .join_asof(index, on="date", by="symbol", strategy="backward", check_sortedness=False)
        .rename({"log_split": "split_now"})
        .sort("fiscal_period_end")
        .join_asof(
            index.rename({"date": "period_split_date"}),
            left_on="fiscal_period_end",
            right_on="period_split_date",
            by="symbol",
            strategy="backward",
            check_sortedness=False,
        )
        .rename({"log_split": "split_then"})
    )
    factor = (pl.col("split_now").fill_null(0.0) - pl.col("split_then").fill_null(0.0)).exp()
    shares = pl.col("shares_outstanding") * factor
    cap = pl.when((pl.col("close") > 0) & (shares > 0)).then(pl.col("close") * shares)
    book = pl.col("book_value_per_share") * pl.col("shares_outstanding")
    return (
        out.with_columns(market_cap=cap)
        .with_columns(book_to_market=book / pl.col("market_cap"))
        .select(*grid.columns, "book_to_market", "market_cap")
        .sort("symbol", "date")
    )


def characteristics(
    bars: pl.DataFrame,
    fundamentals: pl.DataFrame | None = None,
    splits: pl.DataFrame | None = None,
    params: FactorParams | None = None,
) -> pl.DataFrame:
    """The returns grid (:func:`returns_grid`) with the characteristics measured at each session's close.

    ``momentum``: decimal return from ``momentum_lookback`` to ``momentum_skip`` sessions earlier
    (adjusted closes; 12-1 by default); ``volatility``: sample std (ddof 1) of the last ``vol_window``
    daily returns, daily decimal, not annualised; ``liquidity``: mean volume over ``liquidity_window``
    sessions / mean volume (ADV) over ``adv_window`` sessions (dimensionless); ``dollar_volume``: mean
    close x volume over ``adv_window`` (USD); ``market_cap`` (USD) and ``book_to_market`` from the
    latest report known (see :func:`_reported`; ``splits``: ``corporate_actions`` rows or date, symbol,
    value with the SPLIT ratio; without them no split is assumed). Windows need every session present.
    """
    p = params or FactorParams()
    grid = returns_grid(bars)
    adj = pl.col("adjusted_close")
    mean_volume = pl.col("volume").rolling_mean(p.liquidity_window, min_samples=p.liquidity_window)
    adv = pl.col("volume").rolling_mean(p.adv_window, min_samples=p.adv_window)
    grid = grid.with_columns(
        momentum=(adj.shift(p.momentum_skip) / adj.shift(p.momentum_lookback) - 1.0).over("symbol"),
        volatility=pl.col("ret").rolling_std(p.vol_window, min_samples=p.vol_window).over("symbol"),
        liquidity=pl.when(adv > 0).then(mean_volume / adv).over("symbol"),
        dollar_volume=(pl.col("close") * pl.col("volume"))
        .rolling_mean(p.adv_window, min_samples=p.adv_window)
        .over("symbol"),
    )
    return _reported(grid, fundamentals, splits).select(
        "symbol", "date", "close", "adjusted_close", "volume", "ret", *CHARACTERISTICS
    )
