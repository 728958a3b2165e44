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
#: Observations measured across the symbols of a session: undefined (dispersion) or a coin flip (breadth)
#: with fewer than :data:`MIN_CROSS_SECTION` symbols.
CROSS_SECTIONAL_OBSERVATIONS: frozenset[str] = frozenset({"log_dispersion", "breadth"})
#: Symbols with usable bars a universe needs for the cross-sectional observations.
MIN_CROSS_SECTION = 2
#: Universe size (symbols with usable bars) below which the stages warn: cross-sectional z-scores, the
#: dispersion and breadth of a session and rank-based agents rest on a handful of names, so one symbol's
#: idiosyncratic move dominates them (the sampling sd of a log dispersion of n names is about
#: 1 / sqrt(2 (n - 1)), 0.24 at 10 names, against 0.1-0.3 between the fitted states' means).
SMALL_UNIVERSE = 10
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


def universe_size(bars: pl.DataFrame) -> int:
    """Symbols of long ``bars`` with at least one usable (finite, positive) adjusted close."""
    price = pl.col("adjusted_close")
    usable = bars.filter(price.is_not_null() & price.is_not_nan() & (price > 0))
    return usable.get_column("symbol").n_unique() if usable.height else 0


def supported_observations(n_symbols: int, observations: Sequence[str] = DEFAULT_OBSERVATIONS) -> tuple[str, ...]:
    """``observations`` a universe of ``n_symbols`` can give: without :data:`MIN_CROSS_SECTION` symbols the
    cross-sectional ones (:data:`CROSS_SECTIONAL_OBSERVATIONS`) are dropped (the defaults become return-only)."""
    if n_symbols >= MIN_CROSS_SECTION:
        return tuple(observations)
    return tuple(c for c in observations if c not in CROSS_SECTIONAL_OBSERVATIONS)


def small_universe_warning(n_symbols: int) -> str | None:
    """The one-line warning for a universe smaller than :data:`SMALL_UNIVERSE`, else None."""
    if n_symbols >= SMALL_UNIVERSE:
        return None
    return (
        f"universe of {n_symbols} symbol{'s' if n_symbols != 1 else ''} < {SMALL_UNIVERSE}: cross-sectional agents "
        "and regimes are unreliable"
    )


def _null_causes(features: pl.DataFrame, column: str) -> str:
    """Why ``column`` of :func:`hmm_observations` is missing on the rows of ``features`` where it is."""
    n = features.get_column("n_symbols")
    if column == "log_dispersion":
        few, zero = int((n < MIN_CROSS_SECTION).sum()), int((features.get_column("dispersion") == 0).sum())
        causes = [f"needs >= {MIN_CROSS_SECTION} symbols per session ({few} session(s) had fewer)"] if few else []
        return "; ".join(causes + ([f"zero dispersion on {zero} session(s)"] if zero else [])) or "first session"
    if column == "log_vix":
        return "no VIX in macro_series on or before those sessions"
    if column == "breadth":
        return "no symbol with two consecutive usable closes"
    return "first session, or no symbol with two consecutive usable closes"


def missing_observations(features: pl.DataFrame, columns: Sequence[str]) -> str:
    """Per observation column missing on some rows of ``features``: how many rows and why ("" if none)."""
    X = hmm_observations(features, columns)
    parts = [
        f"{c} missing on {int((~np.isfinite(X[:, j])).sum())} row(s): {_null_causes(features, c)}"
        for j, c in enumerate(columns)
        if not np.isfinite(X[:, j]).all()
    ]
    return "; ".join(parts)


__all__ = [
    "CROSS_SECTIONAL_OBSERVATIONS",
    "DEFAULT_OBSERVATIONS",
    "FEATURES_SCHEMA",
    "MIN_CROSS_SECTION",
    "OBSERVATION_COLUMNS",
    "SESSIONS_PER_YEAR",
    "SMALL_UNIVERSE",
    "hmm_observations",
    "market_features",
    "missing_observations",
    "small_universe_warning",
    "supported_observations",
    "universe_size",
]
