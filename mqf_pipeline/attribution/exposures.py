"""Rolling factor exposures of each symbol (``security_factor_exposures``), with Newey-West HAC errors.

The row dated t regresses the symbol's decimal daily returns of sessions t - window + 1 .. t on a
constant (``alpha``: decimal daily, not annualised) and the factor returns of the same sessions:
``market`` and the five styles and, with ``include_sector``, the symbol's own sector factor
``sector:<its sector>`` (``beta_sector``; a symbol without a sector is fitted without it, ``beta_sector``
null). The numerics (vectorised across symbols and windows, HAC conventions) are in :mod:`.rolling`.
A window with too few observations or a singular design gives a row of nulls with its ``reason``; no
exception stops the other symbols. Nothing dated after t enters the row dated t. Window sums are
differences of cumulative sums from the first session passed, so a row's last bits (~1e-16 relative)
depend on how much history precedes its window: pass exactly the window's sessions when bit-identical
reruns matter (a session alone vs inside a range).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from mqf_pipeline.attribution.params import EXPOSURE_FACTORS, SECTOR, SECTOR_PREFIX, ExposureParams
from mqf_pipeline.attribution.rolling import COLLINEAR, CONSTANT, MISSING_FACTORS, SHORT, rolling_ols

_REASONS = {
    SHORT: "short history: {} valid returns in the window < min_obs {}",
    MISSING_FACTORS: "missing factor returns: {} complete observations in the window < min_obs {}",
    CONSTANT: "singular window: regressor {} is constant",
    COLLINEAR: "singular window: regressor {} is collinear with the others",
}


@dataclass(frozen=True)
class WideReturns:
    """Sorted sessions, sorted symbols and the (T, N) return matrix (NaN = missing): pivot once, slice per window."""

    dates: pl.Series
    symbols: list[str]
    y: np.ndarray

    def window(self, first: dt.date, last: dt.date) -> WideReturns:
        """The sessions ``first`` .. ``last`` (inclusive), every symbol kept."""
        keep = ((self.dates >= first) & (self.dates <= last)).to_numpy()
        return WideReturns(self.dates.filter(keep), self.symbols, self.y[keep])


def wide_returns(returns: pl.DataFrame) -> WideReturns:
    """``returns`` (date, symbol, ret: decimal daily) as a :class:`WideReturns`."""
    missing = [c for c in ("date", "symbol", "ret") if c not in returns.columns]
    if missing:
        raise ValueError(f"attribution returns: missing column(s) {missing}")
    df = returns.select(pl.col("date").cast(pl.Date), pl.col("symbol").cast(pl.String), pl.col("ret").cast(pl.Float64))
    if df.select(pl.struct("date", "symbol").is_duplicated().any()).item():
        raise ValueError("attribution returns: duplicated (date, symbol) rows")
    symbols = sorted(df["symbol"].unique().to_list())
    wide = df.pivot(on="symbol", index="date", values="ret").sort("date")
    y = wide.select(symbols).to_numpy().astype(np.float64)
    return WideReturns(wide["date"], symbols, np.where(np.isfinite(y), y, np.nan))


def _factor_matrix(factor_returns: pl.DataFrame, dates: pl.Series, names: list[str]) -> np.ndarray:
    """(T, len(names)) factor returns on ``dates`` (NaN where a factor has no row that session)."""
    if not names:
        return np.empty((dates.len(), 0))
    rows = factor_returns.select(
        pl.col("date").cast(pl.Date), pl.col("factor_name").cast(pl.String), pl.col("factor_return").cast(pl.Float64)
    ).filter(pl.col("factor_name").is_in(names))
    if rows.select(pl.struct("date", "factor_name").is_duplicated().any()).item():
        raise ValueError("attribution factor returns: duplicated (date, factor_name) rows")
    frame = dates.to_frame().join(rows, on="date", how="left")
    wide = frame.pivot(on="factor_name", index="date", values="factor_return").sort("date")
    out = np.full((dates.len(), len(names)), np.nan)
    for j, name in enumerate(names):
        if name in wide.columns:
            out[:, j] = wide[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return out


def exposures(
    returns: pl.DataFrame,
    factor_returns: pl.DataFrame,
    sectors: pl.DataFrame | None = None,
    params: ExposureParams | None = None,
    start: dt.date | None = None,
) -> pl.DataFrame:
    """Rolling exposures of every (symbol, session) of ``returns`` (date, symbol, ret: decimal daily).

    ``factor_returns``: date, factor_name, factor_return (the frame of :mod:`.factors`); ``sectors``:
    symbol, sector (used with ``include_sector``; a symbol whose sector has no factor return in the span, or
    no sector, is fitted without the sector term: beta_sector null). Columns: symbol, date, n_obs, alpha (daily decimal
    intercept), beta_market, beta_momentum, beta_value, beta_volatility, beta_size, beta_liquidity,
    beta_sector, their HAC standard errors se_alpha, se_market, ..., se_sector (null without ``hac``),
    residual_std (daily decimal, sqrt(SSR / (n - p))), r_squared (centered), reason (null when the row has
    values). Rows: every symbol x every session >= ``start`` (default: all sessions of ``returns``); the
    earlier sessions still feed the windows.
    """
    return exposures_wide(wide_returns(returns), factor_returns, sectors, params, start)


def exposures_wide(
    returns: WideReturns,
    factor_returns: pl.DataFrame,
    sectors: pl.DataFrame | None = None,
    params: ExposureParams | None = None,
    start: dt.date | None = None,
) -> pl.DataFrame:
    """:func:`exposures` of returns already pivoted (:func:`wide_returns`): the same rows."""
    p = params or ExposureParams()
    dates, symbols, y = returns.dates, returns.symbols, returns.y
    rows = np.arange(dates.len()) if start is None else np.flatnonzero((dates >= start).to_numpy())
    X = _factor_matrix(factor_returns, dates, list(EXPOSURE_FACTORS))
    group_X = group_of = None
    names = ["alpha", *EXPOSURE_FACTORS]
    if p.include_sector:
        names.append(SECTOR)
        sector_of = {} if sectors is None else dict(sectors.select("symbol", "sector").drop_nulls().iter_rows())
        sector_names = sorted({str(v) for v in sector_of.values()})
        index = {s: k for k, s in enumerate(sector_names)}
        group_of = np.array([index.get(str(sector_of.get(s)), -1) for s in symbols], dtype=np.int64)
        group_X = _factor_matrix(factor_returns, dates, [SECTOR_PREFIX + s for s in sector_names])
        if not sector_names:
            group_X = np.zeros((dates.len(), 1))
        else:  # a sector with no factor return in the span (too few names): its symbols are fitted without it
            absent = ~np.isfinite(group_X).any(axis=0)
            group_of = np.where((group_of >= 0) & absent[np.maximum(group_of, 0)], -1, group_of)
    fit = rolling_ols(
        y,
        X,
        window=p.window,
        min_obs=p.effective_min_obs,
        lags=p.effective_lags if p.hac else None,
        tol=p.singular_tol,
        group_X=group_X,
        group_of=group_of,
        rows=rows,
    )
    need = max(p.effective_min_obs, len(names) + 1)
    R, N = rows.size, y.shape[1]
    data: dict[str, object] = {
        "symbol": pl.Series(np.tile(np.asarray(symbols, dtype=object), R), dtype=pl.String),
        "date": dates.gather(np.repeat(rows, N)),
        "n_obs": fit.n_obs.ravel(),
    }
    for j, name in enumerate(names):
        data[name if j == 0 else f"beta_{name}"] = fit.coef[:, :, j].ravel()
    for j, name in enumerate(names):
        se = fit.se[:, :, j].ravel() if fit.se is not None else np.full(R * N, np.nan)
        data["se_alpha" if j == 0 else f"se_{name}"] = se
    data["residual_std"] = fit.residual_std.ravel()
    data["r_squared"] = fit.r_squared.ravel()
    status, offender = (
        pl.col("_status"),
        pl.col("_offender").replace_strict(dict(enumerate(names)), default="?", return_dtype=pl.String),
    )
    reason = (
        pl.when(status == SHORT)
        .then(pl.format(_REASONS[SHORT], pl.col("n_obs"), pl.lit(need)))
        .when(status == MISSING_FACTORS)
        .then(pl.format(_REASONS[MISSING_FACTORS], pl.col("n_obs"), pl.lit(need)))
        .when(status == CONSTANT)
        .then(pl.format(_REASONS[CONSTANT], offender))
        .when(status == COLLINEAR)
        .then(pl.format(_REASONS[COLLINEAR], offender))
    )
    frame = pl.DataFrame(data).with_columns(
        _status=pl.Series(fit.status.ravel()), _offender=pl.Series(fit.offender.ravel().astype(np.int64))
    )
    return frame.with_columns(reason=reason).drop("_status", "_offender").fill_nan(None)
