"""Daily portfolio attribution (``portfolio_attribution``) and Carino multi-period linking.

For the attributed session D, the book is the start-of-day weights ``w_i`` (fractions of NAV, from the
positions at the close of D - 1; cash earns 0), ``r_i`` the symbols' decimal returns of D, the betas and
``alpha_i`` the exposures of the latest session before D (:mod:`.exposures`) and ``f`` the factor
returns of D (:mod:`.factors`). Per held symbol:

    pnl_i = w_i r_i
    market_i = w_i beta_market_i f_market,  style_i = w_i beta_style_i f_style (each of the five styles),
    sector_i = w_i beta_sector_i f_sector:<sector of i>,  alpha_i = w_i alpha_i,
    idiosyncratic_i = pnl_i - (market_i + styles_i + sector_i + alpha_i)

and each portfolio part is the sum over symbols, except ``idiosyncratic_contribution``, which is the
residual ``total - (market + styles + sector + alpha)`` so that the parts sum to the total exactly (it
equals the sum of ``idiosyncratic_i`` up to rounding). A symbol without exposures (null row, or none
before D) has every beta and alpha 0, so its whole return is idiosyncratic; a factor without a return
on D counts as 0; a held symbol without a return on D is left out (and reported).

Risk statistics use the same weights over the last ``risk_window`` sessions ending at D (inclusive;
a missing return counts 0): ``portfolio_volatility`` = sample std (ddof 1) of the weights' daily returns
x sqrt(periods_per_year); ``tracking_error`` = the same for the active return (portfolio minus the market
factor, sessions with a market return); ``information_ratio`` = mean active return x periods_per_year /
tracking_error (annualised); ``portfolio_beta`` = sum w_i beta_market_i.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from mqf_pipeline.attribution.params import MARKET, SECTOR, SECTOR_PREFIX, STYLES, AttributionParams

#: Portfolio parts whose sum is ``total_portfolio_return`` (``<part>_contribution`` columns).
PARTS: tuple[str, ...] = (MARKET, *STYLES, SECTOR, "alpha", "idiosyncratic")
_FACTOR_PARTS: tuple[str, ...] = (MARKET, *STYLES)


@dataclass(frozen=True)
class DayAttribution:
    """``row``: one ``portfolio_attribution`` row (without id / created_at); ``contributions``: per held
    symbol: symbol, weight, ret, pnl, the nine parts, factor_part (beta'f incl. sector, per unit weight),
    has_exposure; ``diagnostics``: symbol (null for a factor), reason."""

    row: pl.DataFrame
    contributions: pl.DataFrame
    diagnostics: pl.DataFrame


def _latest_exposures(exposures: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """Each symbol's exposure row of the latest session strictly before ``day``."""
    betas = [f"beta_{name}" for name in (*_FACTOR_PARTS, SECTOR) if f"beta_{name}" in exposures.columns]
    return (
        exposures.filter(pl.col("date") < day)
        .sort("date")
        .group_by("symbol", maintain_order=True)
        .last()
        .select("symbol", "alpha", *betas)
    )


def _symbol_parts(book: pl.DataFrame, f: dict[str, float], has_sector_beta: bool) -> pl.DataFrame:
    """Adds each symbol's parts (decimal of NAV) and factor_part (decimal return) to ``book``."""
    w = pl.col("weight")
    exprs = {name: w * pl.col(f"beta_{name}").fill_null(0.0) * f.get(name, 0.0) for name in _FACTOR_PARTS}
    sector_f = pl.col("sector_name").replace_strict(
        {k[len(SECTOR_PREFIX) :]: v for k, v in f.items() if k.startswith(SECTOR_PREFIX)},
        default=0.0,
        return_dtype=pl.Float64,
    )
    sector_beta = pl.col(f"beta_{SECTOR}").fill_null(0.0) if has_sector_beta else pl.lit(0.0)
    exprs[SECTOR] = w * sector_beta * sector_f
    exprs["alpha"] = w * pl.col("alpha").fill_null(0.0)
    out = book.with_columns(pnl=w * pl.col("ret"), **exprs)
    systematic = pl.sum_horizontal([pl.col(c) for c in (*_FACTOR_PARTS, SECTOR)])
    unit = pl.sum_horizontal(
        [pl.col(f"beta_{n}").fill_null(0.0) * f.get(n, 0.0) for n in _FACTOR_PARTS] + [sector_beta * sector_f]
    )
    return out.with_columns(
        idiosyncratic=pl.col("pnl") - systematic - pl.col("alpha"),
        factor_part=unit,
    )


def _risk(
    day: dt.date, book: pl.DataFrame, returns: pl.DataFrame, market: pl.DataFrame, p: AttributionParams
) -> dict[str, float | None]:
    """portfolio_volatility, tracking_error, information_ratio over the risk window (annualised)."""
    sessions = returns.filter(pl.col("date") <= day).select(pl.col("date").unique().sort().tail(p.risk_window))
    port = (
        sessions.join(
            returns.join(book.select("symbol", "weight"), on="symbol").filter(pl.col("date") <= day),
            on="date",
            how="left",
        )
        .group_by("date")
        .agg(rp=(pl.col("weight") * pl.col("ret").fill_null(0.0)).sum())
        .sort("date")
    )
    rp = port["rp"].to_numpy()
    active = port.join(market, on="date", how="inner").select(pl.col("rp") - pl.col("market"))
    a = active.to_series().to_numpy()
    ann = float(p.periods_per_year)
    vol = float(np.std(rp, ddof=1) * np.sqrt(ann)) if rp.size >= 2 else None
    te = float(np.std(a, ddof=1) * np.sqrt(ann)) if a.size >= 2 else None
    ir = float(np.mean(a) * ann / te) if te else None
    return {"portfolio_volatility": vol, "tracking_error": te, "information_ratio": ir}


def _extremes(parts: pl.DataFrame) -> dict[str, object]:
    """Top contributor and worst detractor by pnl (ties: first symbol in order)."""
    if parts.height == 0:
        return dict.fromkeys(
            ("top_contributor_symbol", "top_contributor_pnl", "worst_detractor_symbol", "worst_detractor_pnl")
        )
    ordered = parts.sort("symbol")
    top = ordered.row(int(ordered["pnl"].arg_max()), named=True)
    worst = ordered.row(int(ordered["pnl"].arg_min()), named=True)
    return {
        "top_contributor_symbol": top["symbol"],
        "top_contributor_pnl": top["pnl"],
        "worst_detractor_symbol": worst["symbol"],
        "worst_detractor_pnl": worst["pnl"],
    }


def attribute_day(
    day: dt.date,
    weights: pl.DataFrame,
    returns: pl.DataFrame,
    exposures: pl.DataFrame,
    factor_returns: pl.DataFrame,
    sectors: pl.DataFrame | None = None,
    params: AttributionParams | None = None,
    cycle_id: str | None = None,
) -> DayAttribution:
    """Attribution of session ``day`` (see the module docstring for every formula and convention).

    ``weights``: symbol, weight (start of ``day``, fraction of NAV; zero weights are ignored);
    ``returns``: date, symbol, ret (decimal daily; rows after ``day`` are ignored); ``exposures``: the
    frame of :func:`.exposures.exposures` (rows dated before ``day`` are used); ``factor_returns``: date,
    factor_name, factor_return; ``sectors``: symbol, sector (for the sector part).
    """
    p = params or AttributionParams()
    rets = returns.select(
        pl.col("date").cast(pl.Date), pl.col("symbol").cast(pl.String), pl.col("ret").cast(pl.Float64)
    )
    held = weights.select(pl.col("symbol").cast(pl.String), pl.col("weight").cast(pl.Float64)).filter(
        pl.col("weight") != 0
    )
    if held.select(pl.col("symbol").is_duplicated().any()).item():
        raise ValueError("attribution weights: duplicated symbols")
    today = rets.filter(pl.col("date") == day).select("symbol", "ret").drop_nulls()
    exp = _latest_exposures(exposures, day)
    sec = (
        sectors.select(pl.col("symbol").cast(pl.String), sector_name=pl.col("sector").cast(pl.String))
        if sectors is not None
        else pl.DataFrame(schema={"symbol": pl.String, "sector_name": pl.String})
    )
    book = (
        held.join(today, on="symbol", how="left")
        .join(exp, on="symbol", how="left")
        .join(sec, on="symbol", how="left")
        .with_columns(has_exposure=pl.col("beta_market").is_not_null() & pl.col("alpha").is_not_null())
        .sort("symbol")
    )
    facs = factor_returns.select(
        pl.col("date").cast(pl.Date), pl.col("factor_name").cast(pl.String), pl.col("factor_return").cast(pl.Float64)
    )
    f = dict(facs.filter(pl.col("date") == day).select("factor_name", "factor_return").iter_rows())
    notes = [(s, f"no return on {day}: left out") for s in book.filter(pl.col("ret").is_null())["symbol"]]
    notes += [
        (s, f"no exposure before {day}: return counted idiosyncratic")
        for s in book.filter(pl.col("ret").is_not_null() & ~pl.col("has_exposure"))["symbol"]
    ]
    notes += [(None, f"factor {name} has no return on {day}: counted 0") for name in _FACTOR_PARTS if name not in f]
    parts = _symbol_parts(book.filter(pl.col("ret").is_not_null()), f, f"beta_{SECTOR}" in book.columns)
    total = float(parts["pnl"].sum())
    sums = {name: float(parts[name].sum()) for name in PARTS[:-1]}
    sums["idiosyncratic"] = total - sum(sums.values())
    beta = float((parts["weight"] * parts["beta_market"].fill_null(0.0)).sum())
    market = facs.filter(pl.col("factor_name") == MARKET).select("date", market=pl.col("factor_return"))
    row = {
        "date": day,
        "cycle_id": cycle_id,
        "total_portfolio_return": total,
        **{f"{name}_contribution": sums[name] for name in PARTS},
        **_risk(day, parts, rets, market, p),
        "portfolio_beta": beta,
        **_extremes(parts),
    }
    contributions = parts.select("symbol", "weight", "ret", "pnl", *PARTS, "factor_part", "has_exposure")
    diagnostics = pl.DataFrame(notes, schema={"symbol": pl.String, "reason": pl.String}, orient="row")
    return DayAttribution(row=pl.DataFrame([row]), contributions=contributions, diagnostics=diagnostics)


def carino_factors(returns: np.ndarray) -> np.ndarray:
    """Carino (1999) ``k = ln(1 + R) / R`` per return (1 where R = 0); decimal returns > -1."""
    r = np.asarray(returns, dtype=np.float64)
    if np.any(r <= -1.0) or not np.all(np.isfinite(r)):
        raise ValueError("Carino linking needs finite returns > -1")
    safe = np.where(r == 0.0, 1.0, r)
    return np.where(r == 0.0, 1.0, np.log1p(safe) / safe)


def carino_link(
    daily: pl.DataFrame, parts: Sequence[str] | None = None, total: str = "total_portfolio_return"
) -> pl.DataFrame:
    """Links daily contributions into one period row whose parts sum to the compounded return.

    ``daily``: one row per session with ``total`` and the part columns (default ``<part>_contribution`` of
    :data:`PARTS`), each day's parts summing to its total. Linked part = sum_t c_t k_t / K with k_t =
    :func:`carino_factors` of the day's total and K that of the period's compounded total
    prod(1 + R_t) - 1. Columns: ``total`` (compounded), the linked parts, n_sessions.
    """
    names = list(parts) if parts is not None else [f"{name}_contribution" for name in PARTS]
    r = daily[total].to_numpy().astype(np.float64)
    period = float(np.expm1(np.sum(np.log1p(r)))) if r.size else 0.0
    k_t = carino_factors(r)
    k = float(carino_factors(np.array([period]))[0])
    linked = {name: float(np.sum(daily[name].to_numpy() * k_t) / k) for name in names}
    return pl.DataFrame([{total: period, **linked, "n_sessions": int(r.size)}])
