"""Market-level daily features and the HMM observation matrix built from them.

Units: returns are decimal daily unless named ``*_pct`` (percent, i.e. x100); volatilities are
annualised decimal with 252 sessions a year; VIX is in index points. Every value dated D uses
bars and macro values dated <= D only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

SESSIONS_PER_YEAR = 252
#: HMM observation columns available from :func:`hmm_observations`.
OBSERVATION_COLUMNS: tuple[str, ...] = ("return_pct", "log_dispersion", "breadth", "log_vix")
#: Default HMM observations: index return (percent) and log cross-sectional dispersion.
DEFAULT_OBSERVATIONS: tuple[str, ...] = ("return_pct", "log_dispersion")
#: Columns and dtypes of :func:`market_features`.
FEATURES_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "n_symbols": pl.Int64(),
    "index_return": pl.Float64(),
    "index_level": pl.Float64(),
    "realized_vol": pl.Float64(),
    "breadth": pl.Float64(),
    "breadth_sma50": pl.Float64(),
    "dispersion": pl.Float64(),
    "spy_ma200_position": pl.Float64(),
    "volatility_percentile": pl.Float64(),
    "vix_level": pl.Float64(),
}


def _trailing_percentile(x: np.ndarray, window: int, min_samples: int) -> np.ndarray:
    """Fraction of the last ``window`` non-missing values (current included) that are <= the current one."""
    out = np.full(x.size, np.nan)
    for t in np.flatnonzero(np.isfinite(x)):
        past = x[max(0, t - window + 1) : t + 1]
        past = past[np.isfinite(past)]
        if past.size >= min_samples:
            out[t] = np.count_nonzero(past <= x[t]) / past.size
    return out


def market_features(
    bars: pl.DataFrame,
    macro: pl.DataFrame | None = None,
    *,
    vol_window: int = 21,
    trend_window: int = 200,
    percentile_window: int = 252,
    breadth_window: int = 50,
) -> pl.DataFrame:
    """Market-level daily features from long bars (one row per date and symbol), one row per date.

    Columns (:data:`FEATURES_SCHEMA`): ``index_return`` equal-weight mean of the symbols' daily
    adjusted-close returns (decimal; null on the first date); ``index_level`` its compounded level
    (1.0 before the first return); ``realized_vol`` the ``vol_window``-session standard deviation of
    ``index_return`` annualised; ``breadth`` the fraction of symbols with a positive return;
    ``breadth_sma50`` the fraction above their ``breadth_window``-session simple mean;
    ``dispersion`` the cross-sectional standard deviation of returns (decimal daily);
    ``spy_ma200_position`` = index_level / mean(index_level over ``trend_window`` sessions) - 1;
    ``volatility_percentile`` the fraction of the trailing ``percentile_window`` realized vols (at
    least 63) that are <= today's; ``vix_level`` the latest macro ``VIX`` value dated <= D (index
    points; null without macro). Every value dated D uses data dated <= D only.
    """
    prices = (
        bars.select("date", "symbol", "adjusted_close")
        .filter(pl.col("adjusted_close").is_not_null() & pl.col("adjusted_close").is_not_nan())
        .filter(pl.col("adjusted_close") > 0)
        .sort("symbol", "date")
        .with_columns(
            (pl.col("adjusted_close") / pl.col("adjusted_close").shift(1) - 1).over("symbol").alias("ret"),
            pl.col("adjusted_close")
            .rolling_mean(breadth_window, min_samples=breadth_window)
            .over("symbol")
            .alias("sma"),
        )
    )
    daily = (
        prices.group_by("date")
        .agg(
            pl.len().cast(pl.Int64).alias("n_symbols"),
            pl.col("ret").mean().alias("index_return"),
            (pl.col("ret") > 0).mean().alias("breadth"),
            (pl.col("adjusted_close") > pl.col("sma"))
            .filter(pl.col("sma").is_not_null())
            .mean()
            .alias("breadth_sma50"),
            pl.col("ret").std().alias("dispersion"),
        )
        .sort("date")
        .with_columns(
            (1.0 + pl.col("index_return").fill_null(0.0)).cum_prod().alias("index_level"),
            (pl.col("index_return").rolling_std(vol_window, min_samples=vol_window) * np.sqrt(SESSIONS_PER_YEAR)).alias(
                "realized_vol"
            ),
        )
        .with_columns(
            (
                pl.col("index_level") / pl.col("index_level").rolling_mean(trend_window, min_samples=trend_window) - 1
            ).alias("spy_ma200_position")
        )
    )
    vol = daily["realized_vol"].fill_null(np.nan).to_numpy()
    daily = daily.with_columns(
        pl.Series("volatility_percentile", _trailing_percentile(vol, percentile_window, 63)).fill_nan(None)
    )
    if macro is not None and macro.height:
        vix = (
            macro.filter((pl.col("series_id") == "VIX") & pl.col("value").is_not_null() & pl.col("value").is_not_nan())
            .select(pl.col("date").cast(pl.Date), pl.col("value").cast(pl.Float64).alias("vix_level"))
            .unique("date", keep="last")
            .sort("date")
        )
        daily = daily.join_asof(vix, on="date", strategy="backward")
    else:
        daily = daily.with_columns(pl.lit(None, dtype=pl.Float64).alias("vix_level"))
    return daily.select([pl.col(c).cast(t) for c, t in FEATURES_SCHEMA.items()])


def hmm_observations(features: pl.DataFrame, columns: Sequence[str] = DEFAULT_OBSERVATIONS) -> np.ndarray:
    """HMM observation matrix (n_dates, len(columns)) from :func:`market_features`; NaN where missing.

    ``return_pct`` index return in percent (x100); ``log_dispersion`` log of the cross-sectional
    dispersion in percent; ``breadth`` fraction of advancing symbols; ``log_vix`` log VIX points.
    """
    exprs = {
        "return_pct": pl.col("index_return") * 100.0,
        "log_dispersion": (pl.col("dispersion") * 100.0).log(),
        "breadth": pl.col("breadth"),
        "log_vix": pl.col("vix_level").log(),
    }
    unknown = [c for c in columns if c not in exprs]
    if unknown:
        raise ValueError(f"unknown observation column(s) {unknown}; choose from {OBSERVATION_COLUMNS}")
    if not columns or columns[0] != "return_pct":
        raise ValueError("the first observation column must be 'return_pct' (states are ordered by its volatility)")
    frame = features.select([exprs[c].cast(pl.Float64).alias(c) for c in columns])
    return frame.fill_null(np.nan).to_numpy().astype(np.float64)


__all__ = [
    "DEFAULT_OBSERVATIONS",
    "FEATURES_SCHEMA",
    "OBSERVATION_COLUMNS",
    "SESSIONS_PER_YEAR",
    "hmm_observations",
    "market_features",
]
