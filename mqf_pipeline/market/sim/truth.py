"""Ground truth of the simulated market as polars frames, for tests that check recovery."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mqf_pipeline.market.sim.engine import Engine
from mqf_pipeline.market.sim.params import REGIMES, STYLE_FACTORS


@dataclass(frozen=True)
class SimulatorTruth:
    """Ground truth for [start, end]; returns are decimal daily, vols annualised unless named daily.

    ``alphas`` rows dated D hold the planted expected-return components (decimal daily) of the
    return from the close of D to the close of the next session, computed only from information
    known at D's close, so they line up with a signal computed at D. ``momentum_12_1`` is the log
    total return from session D-252 to D-21 (null in the first 252 sessions); ``book_to_price`` is
    the latest *reported* book equity (book_value_per_share x shares_outstanding of the report)
    over market cap at D's close (null before the first report). ``alpha_news`` is non-zero only
    on news days (see ``news_tone``).
    """

    regimes: pl.DataFrame  # date, regime
    betas: pl.DataFrame  # symbol, sector, beta_market, beta_<style>..., beta_sector, idio_vol_annual
    factor_returns: pl.DataFrame  # date, factor, return (market, styles, "sector:<name>")
    alphas: pl.DataFrame  # date, symbol, alpha_* components, alpha_total, characteristics
    news_tone: pl.DataFrame  # date, symbol, tone in (-1, 1), news days only
    returns: pl.DataFrame  # date, symbol, total_return, idio_vol_daily, total_vol_daily (conditional)
    market: pl.DataFrame  # date, regime, market_return, market_vol_annual (conditional)


def grid_keys(engine: Engine, t0: int, t1: int, cols: np.ndarray) -> dict[str, pl.Series]:
    """``date`` and ``symbol`` columns of the (session, symbol) grid, date-major."""
    dates = engine.dates[t0 : t1 + 1] if t1 >= t0 else engine.dates[:0]
    syms = pl.Series("symbol", engine.u.symbols, dtype=pl.String).gather(cols)
    return {
        "date": pl.Series("date", np.repeat(dates, cols.size)).cast(pl.Date),
        "symbol": syms.gather(np.tile(np.arange(cols.size), dates.size)),
    }


def _betas(engine: Engine, cols: np.ndarray) -> pl.DataFrame:
    u = engine.u
    data: dict[str, object] = {
        "symbol": [u.symbols[k] for k in cols],
        "sector": [u.sector_names[u.sector[k]] for k in cols],
        "beta_market": u.beta_market[cols],
    }
    for j, name in enumerate(STYLE_FACTORS):
        data[f"beta_{name}"] = u.loadings[cols, j]
    data["beta_sector"] = u.beta_sector[cols]
    data["idio_vol_annual"] = u.idio_vol_annual[cols]
    return pl.DataFrame(data)


def build_truth(engine: Engine, t0: int, t1: int, cols: np.ndarray) -> SimulatorTruth:
    """Truth frames for sessions t0..t1 (inclusive) and symbols ``cols``."""
    keys = grid_keys(engine, t0, t1, cols)
    empty = t0 > t1
    dates = pl.Series("date", engine.dates[t0 : t1 + 1] if not empty else engine.dates[:0]).cast(pl.Date)

    def per_session(name: str) -> np.ndarray:
        return np.zeros(0) if empty else engine.cells(name, t0, t1)

    def per_cell(name: str) -> np.ndarray:
        return np.zeros(0) if empty else engine.cells(name, t0, t1)[:, cols].ravel()

    regime_names = pl.Series([*REGIMES], dtype=pl.String)
    regime = regime_names.gather(per_session("regime").astype(np.int64)).alias("regime")
    market = pl.DataFrame(
        {
            "date": dates,
            "regime": regime,
            "market_return": per_session("market_return"),
            "market_vol_annual": per_session("market_vol"),
        }
    )

    factor_cols = {"market": per_session("market_return")}
    fac = np.zeros((0, len(STYLE_FACTORS))) if empty else engine.cells("factor_returns", t0, t1)
    sec = np.zeros((0, len(engine.u.sector_names))) if empty else engine.cells("sector_returns", t0, t1)
    for j, name in enumerate(STYLE_FACTORS):
        factor_cols[name] = fac[:, j]
    for j, name in enumerate(engine.u.sector_names):
        factor_cols[f"sector:{name}"] = sec[:, j]
    factor_returns = (
        pl.DataFrame({"date": dates, **factor_cols})
        .unpivot(index="date", variable_name="factor", value_name="return")
        .sort("date", maintain_order=True)
    )

    alpha = np.zeros((3, 0))
    if not empty:
        alpha = engine.cells("alpha", t0, t1)[:, :, cols].reshape(3, -1).astype(np.float64)
    alphas = pl.DataFrame(
        {
            **keys,
            "alpha_momentum": alpha[0],
            "alpha_value": alpha[1],
            "alpha_news": alpha[2],
            "alpha_total": alpha.sum(axis=0),
            "momentum_12_1": per_cell("momentum").astype(np.float64),
            "book_to_price": per_cell("book_to_price").astype(np.float64),
        }
    ).with_columns(pl.col("momentum_12_1", "book_to_price").fill_nan(None))

    news = per_cell("news").astype(bool)
    news_tone = pl.DataFrame({**keys, "tone": per_cell("tone").astype(np.float64)}).filter(pl.Series(news))
    returns = pl.DataFrame(
        {
            **keys,
            "total_return": per_cell("ret"),
            "idio_vol_daily": per_cell("sigma_idio").astype(np.float64),
            "total_vol_daily": per_cell("sigma").astype(np.float64),
        }
    )
    return SimulatorTruth(
        regimes=market.select("date", "regime"),
        betas=_betas(engine, cols),
        factor_returns=factor_returns,
        alphas=alphas,
        news_tone=news_tone,
        returns=returns,
        market=market,
    )
