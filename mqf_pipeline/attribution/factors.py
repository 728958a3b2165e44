"""Daily long-short factor returns from the universe (seed 002 §1.2), with each date's cross-sectional test.

Every factor return of session t uses characteristics measured at the close of t - 1 (the previous
session of the bars' calendar, :mod:`.characteristics`) and the decimal daily returns of t, so nothing
after t enters a row dated t. Rows (``factor_returns`` columns): date, factor_name, factor_return,
t_stat, p_value, n_observations, r_squared.

* ``market``: the universe return of t, cap-weighted by market cap at t - 1 (``market_weighting="cap"``;
  names without a known cap are left out) or equal-weighted. t_stat / p_value: the weighted least-squares
  regression of the names' returns on a constant (weights = the market weights; with equal weights the
  one-sample t-test of the mean), Student t with n - 1 degrees of freedom; r_squared null (a constant
  explains nothing).
* styles (``momentum``, ``value``, ``volatility``, ``size``, ``liquidity``): names are ranked by a score
  (momentum 12-1; book-to-market; minus realized volatility: long low vol; minus market cap, or minus
  dollar volume with ``size_measure="dollar_volume"``: long small; the volume / ADV ratio: long liquid),
  ordinal ranks with ties broken by symbol; the factor return is the equal-weighted mean return of the
  top ``quantile`` (k = floor(quantile x n) >= 1 names) minus that of the bottom k. t_stat, p_value and
  r_squared are those of the date's OLS of the returns on the rank score u = (rank - 0.5) / n in (0, 1)
  (``scipy.stats.linregress``: slope t-test with n - 2 degrees of freedom, two-sided).
* sectors (``sector:<name>``): equal-weighted mean return of the sector's names minus that of all other
  names (long the sector, short the rest), which is the slope of the OLS of returns on the sector dummy;
  t_stat, p_value and r_squared are that regression's.

A (date, factor) with too few names (fewer than ``min_names``, or ``min_sector_names`` in the sector or
in the rest), zero weight, or no characteristic is omitted (``factor_return`` is NOT NULL in the
schema) and listed in the diagnostics frame with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from mqf_pipeline.attribution.characteristics import characteristics
from mqf_pipeline.attribution.params import MARKET, SECTOR_PREFIX, STYLES, FactorParams

FACTOR_RETURN_COLUMNS: tuple[str, ...] = (
    "date",
    "factor_name",
    "factor_return",
    "t_stat",
    "p_value",
    "n_observations",
    "r_squared",
)
DIAGNOSTIC_COLUMNS: tuple[str, ...] = ("date", "factor_name", "n_observations", "reason")
_SCHEMA = {
    "date": pl.Date,
    "factor_name": pl.String,
    "factor_return": pl.Float64,
    "t_stat": pl.Float64,
    "p_value": pl.Float64,
    "n_observations": pl.Int64,
    "r_squared": pl.Float64,
}


@dataclass(frozen=True)
class FactorReturns:
    """``returns``: one row per (date, factor) with a return (:data:`FACTOR_RETURN_COLUMNS`);
    ``diagnostics``: one row per omitted (date, factor): date, factor_name, n_observations, reason."""

    returns: pl.DataFrame
    diagnostics: pl.DataFrame


def _style_scores(params: FactorParams) -> dict[str, pl.Expr]:
    """Score per style, oriented so the long leg has the highest scores."""
    size = "market_cap" if params.size_measure == "market_cap" else "dollar_volume"
    return {
        "momentum": pl.col("momentum"),
        "value": pl.col("book_to_market"),
        "volatility": -pl.col("volatility"),
        "size": -pl.col(size),
        "liquidity": pl.col("liquidity"),
    }


def _t_and_p(df: pl.DataFrame, dof: pl.Expr) -> pl.DataFrame:
    """Adds p_value = two-sided Student-t tail of ``t_stat`` with ``dof`` degrees of freedom."""
    df = df.with_columns(dof=dof.cast(pl.Float64))
    t = df["t_stat"].to_numpy().astype(np.float64)
    p = 2.0 * stats.t.sf(np.abs(t), df["dof"].to_numpy())
    return df.with_columns(p_value=pl.Series(p, dtype=pl.Float64).fill_nan(None)).drop("dof")


def _regression_stats(sxy: pl.Expr, sxx: pl.Expr, syy: pl.Expr, n: pl.Expr) -> list[pl.Expr]:
    """t_stat and r_squared of the simple OLS slope from centered sums (null if x or y is constant)."""
    r2 = pl.when((sxx > 0) & (syy > 0)).then(sxy * sxy / (sxx * syy))
    t = pl.when(r2 < 1.0).then((sxy / (sxx * syy).sqrt()) * ((n - 2) / (1.0 - r2)).sqrt())
    return [t.alias("t_stat"), r2.alias("r_squared")]


def _style_returns(panel: pl.DataFrame, params: FactorParams) -> pl.DataFrame:
    """Long-short returns and rank regressions of every style and date (dates with >= min_names only)."""
    panel = panel.sort("date", "symbol")
    n = pl.len().over("date")
    k = (n.cast(pl.Float64) * params.quantile + 1e-9).floor().clip(lower_bound=1)
    rank = pl.col("score").rank("ordinal").over("date")
    y, u = pl.col("ret"), pl.col("u")
    frames = []
    for style in STYLES:  # five styles, each vectorised over dates and names
        df = (
            panel.select("date", "ret", score=pl.col(style))
            .filter(pl.col("ret").is_not_null() & pl.col("score").is_finite())
            .with_columns(n=n, k=k, rank=rank)
            .filter(pl.col("n") >= params.min_names)
            .with_columns(u=(pl.col("rank") - 0.5) / pl.col("n"))
        )
        agg = df.group_by("date").agg(
            factor_return=y.filter(pl.col("rank") > pl.col("n") - pl.col("k")).mean()
            - y.filter(pl.col("rank") <= pl.col("k")).mean(),
            n_observations=pl.len().cast(pl.Int64),
            sxy=((u - u.mean()) * (y - y.mean())).sum(),
            sxx=((u - u.mean()) ** 2).sum(),
            syy=((y - y.mean()) ** 2).sum(),
        )
        frames.append(agg.with_columns(factor_name=pl.lit(style)))
    agg = pl.concat(frames)
    agg = agg.with_columns(_regression_stats(pl.col("sxy"), pl.col("sxx"), pl.col("syy"), pl.col("n_observations")))
    return _t_and_p(agg, pl.col("n_observations") - 2)


def _market_returns(panel: pl.DataFrame, params: FactorParams) -> pl.DataFrame:
    """Cap- or equal-weighted universe return per date and its weighted-mean t-test."""
    weight = pl.col("cap_prev") if params.market_weighting == "cap" else pl.lit(1.0)
    df = panel.with_columns(w=weight).filter(pl.col("ret").is_not_null() & pl.col("w").is_finite() & (pl.col("w") > 0))
    df = df.filter(pl.len().over("date") >= params.min_names)
    w, y = pl.col("w"), pl.col("ret")
    mean = (w * y).sum() / w.sum()
    agg = df.group_by("date").agg(
        factor_return=mean,
        n_observations=pl.len().cast(pl.Int64),
        ssr=(w * (y - mean) ** 2).sum(),
        sw=w.sum(),
    )
    scale = pl.col("ssr") / (pl.col("n_observations") - 1)
    agg = agg.with_columns(
        factor_name=pl.lit(MARKET),
        t_stat=pl.when(scale > 0).then(pl.col("factor_return") / (scale / pl.col("sw")).sqrt()),
        r_squared=pl.lit(None, pl.Float64),
    )
    return _t_and_p(agg, pl.col("n_observations") - 1)


def _sector_returns(panel: pl.DataFrame, sectors: pl.DataFrame, params: FactorParams) -> pl.DataFrame:
    """Sector-minus-rest returns per (date, sector) with the dummy regression's statistics."""
    df = panel.filter(pl.col("ret").is_not_null()).join(sectors, on="symbol", how="inner")
    day = df.group_by("date").agg(
        n=pl.len(), total=pl.col("ret").sum(), syy=((pl.col("ret") - pl.col("ret").mean()) ** 2).sum()
    )
    sec = df.group_by("date", "sector").agg(n_s=pl.len(), sum_s=pl.col("ret").sum())
    m = params.min_sector_names
    agg = (
        sec.join(day, on="date")
        .with_columns(n_r=pl.col("n") - pl.col("n_s"))
        .filter((pl.col("n") >= params.min_names) & (pl.col("n_s") >= m) & (pl.col("n_r") >= m))
        .with_columns(
            factor_name=pl.lit(SECTOR_PREFIX) + pl.col("sector"),
            factor_return=pl.col("sum_s") / pl.col("n_s") - (pl.col("total") - pl.col("sum_s")) / pl.col("n_r"),
            n_observations=pl.col("n").cast(pl.Int64),
            sxx=pl.col("n_s") * pl.col("n_r") / pl.col("n"),
        )
        .with_columns(sxy=pl.col("sxx") * pl.col("factor_return"))
    )
    agg = agg.with_columns(_regression_stats(pl.col("sxy"), pl.col("sxx"), pl.col("syy"), pl.col("n_observations")))
    return _t_and_p(agg, pl.col("n_observations") - 2)


def _panel(chars: pl.DataFrame, params: FactorParams) -> pl.DataFrame:
    """date, symbol, ret of t, each style's score and the market cap measured at the close of t - 1."""
    scores = _style_scores(params)
    lagged = [e.shift(1).over("symbol").alias(name) for name, e in scores.items()]
    return chars.sort("symbol", "date").select(
        "date", "symbol", "ret", *lagged, cap_prev=pl.col("market_cap").shift(1).over("symbol")
    )


def _counts(panel: pl.DataFrame, sectors: pl.DataFrame | None, params: FactorParams) -> pl.DataFrame:
    """date, factor_name, n (names with a return and the factor's input), n_s (names in the sector)."""
    weight = pl.col("cap_prev") if params.market_weighting == "cap" else pl.lit(1.0)
    has_ret = pl.col("ret").is_not_null()
    exprs = [(has_ret & weight.is_finite() & (weight > 0)).sum().alias(MARKET)]
    exprs += [(has_ret & pl.col(s).is_finite()).sum().alias(s) for s in STYLES]
    out = panel.group_by("date").agg(exprs).unpivot(index="date", variable_name="factor_name", value_name="n")
    out = out.with_columns(n_s=pl.lit(None, pl.UInt32))
    if sectors is not None and sectors.height:
        df = panel.filter(has_ret).join(sectors, on="symbol", how="inner")
        n_day = df.group_by("date").agg(n=pl.len())
        sec = (
            df.group_by("date", "sector")
            .agg(n_s=pl.len())
            .join(n_day, on="date")
            .select("date", factor_name=pl.lit(SECTOR_PREFIX) + pl.col("sector"), n=pl.col("n"), n_s=pl.col("n_s"))
        )
        out = pl.concat([out, sec], how="vertical_relaxed")
    return out


def _diagnostics(
    panel: pl.DataFrame, sectors: pl.DataFrame | None, kept: pl.DataFrame, params: FactorParams
) -> pl.DataFrame:
    """Every expected (date, factor) without a row in ``kept``, with its count and the reason."""
    names = [MARKET, *STYLES]
    if sectors is not None and sectors.height:
        in_grid = sectors.join(panel.select("symbol").unique(), on="symbol", how="semi")
        names += sorted(SECTOR_PREFIX + s for s in in_grid["sector"].unique().to_list())
    expected = panel.select(pl.col("date").unique()).join(pl.DataFrame({"factor_name": names}), how="cross")
    n, n_s = pl.col("n"), pl.col("n_s")
    is_sector = pl.col("factor_name").str.starts_with(SECTOR_PREFIX)
    small_sector = is_sector & ((n_s < params.min_sector_names) | (n - n_s < params.min_sector_names))
    reason = (
        pl.when(n == 0)
        .then(pl.lit("no names with a return and the factor's input at the previous close"))
        .when(n < params.min_names)
        .then(pl.format("too few names: {} < min_names {}", n, pl.lit(params.min_names)))
        .when(small_sector)
        .then(pl.format("too few names in the sector or the rest (< {})", pl.lit(params.min_sector_names)))
        .otherwise(pl.lit("no valid cross-section"))
    )
    return (
        expected.join(kept.select("date", "factor_name"), on=["date", "factor_name"], how="anti")
        .join(_counts(panel, sectors, params), on=["date", "factor_name"], how="left")
        .with_columns(n=n.fill_null(0))
        .select("date", "factor_name", n_observations=n.cast(pl.Int64), reason=reason)
        .sort("date", "factor_name")
    )


def factor_returns_from_characteristics(
    chars: pl.DataFrame, sectors: pl.DataFrame | None, params: FactorParams | None = None
) -> FactorReturns:
    """Factor returns of every session of ``chars`` (the frame of :func:`.characteristics.characteristics`).

    ``sectors``: symbol, sector (static; None: no sector factors). See the module docstring for each
    factor's definition and the meaning of t_stat, p_value and r_squared.
    """
    p = params or FactorParams()
    panel = _panel(chars, p)
    sec = None
    if sectors is not None:
        sec = sectors.select(pl.col("symbol").cast(pl.String), pl.col("sector").cast(pl.String)).drop_nulls()
        if sec.select(pl.col("symbol").is_duplicated().any()).item():
            raise ValueError("attribution sectors: a symbol has more than one sector")
    parts = [_market_returns(panel, p), _style_returns(panel, p)]
    if sec is not None and sec.height:
        parts.append(_sector_returns(panel, sec, p))
    kept = pl.concat([df.select(pl.col(c).cast(t) for c, t in _SCHEMA.items()) for df in parts])
    kept = kept.filter(pl.col("factor_return").is_finite()).sort("date", "factor_name")
    return FactorReturns(returns=kept, diagnostics=_diagnostics(panel, sec, kept, p))


def factor_returns(
    bars: pl.DataFrame,
    sectors: pl.DataFrame | None,
    fundamentals: pl.DataFrame | None = None,
    splits: pl.DataFrame | None = None,
    params: FactorParams | None = None,
) -> FactorReturns:
    """Daily factor returns from bars (``price_history`` columns), sectors, fundamentals and splits.

    Equals ``factor_returns_from_characteristics(characteristics(bars, fundamentals, splits, params), ...)``.
    Without ``fundamentals`` the value factor (and size / cap-weighted market unless the dollar-volume
    proxy or equal weights are chosen) has no cross-section and appears only in the diagnostics.
    """
    p = params or FactorParams()
    return factor_returns_from_characteristics(characteristics(bars, fundamentals, splits, p), sectors, p)
