"""Historical stress scenarios (seed 000 §7.4 "Stress Loss") applied to the current book.

A scenario shocks the book instantaneously: symbol ``i`` returns

    r_i = beta_i * market_shock + sector_shocks[sector_i] + sum_f L_if * factor_shocks[f]

(decimal returns over the scenario window), and the book loses ``-sum_i w_i r_i`` (fraction of NAV, positive =
loss). ``beta_i`` is the symbol's market beta (e.g. :func:`estimate_betas`), sectors use the simulator's GICS-like
names (:data:`mqf_pipeline.market.sim.params.SECTORS`; a sector the scenario does not list gets no extra shock)
and ``L_if`` are optional standardised style loadings (:data:`~mqf_pipeline.market.sim.params.STYLE_FACTORS`,
z-scores across the universe; ``size`` > 0 = smaller cap) that the caller passes as ``exposures``.

Market shocks are S&P 500 price moves between closes, from public index history (levels rounded):

* 1987 Black Monday, 1987-10-16 -> 1987-10-19: 282.70 -> 224.84, -20.5% in one session.
* 2008 GFC (Lehman month), 2008-09-12 -> 2008-10-10: about 1251.7 -> 899.2, -28%.
* COVID-19 crash, 2020-02-19 -> 2020-03-23: about 3386.2 -> 2237.4, -34% (peak to trough).
* 2022 inflation bear market, 2022-01-03 -> 2022-10-12: about 4796.6 -> 3577.0, -25% (peak to trough).

Sector shocks are the *extra* return of a beta-1 name of the sector, i.e. roughly the sector index's move minus
the S&P 500's over the same window. For COVID and 2022 they are rounded from the approximate moves of the
S&P 500 sector indices (e.g. 2020: energy about -55%, financials about -43%, health care about -28%,
staples about -25%; 2022: energy about +40%, tech about -33%, communication services about -37%,
utilities about -12%); for 2008 they are stylised from the same history (financials, materials and real
estate much worse, staples / health care / utilities better); for 1987 the decline was broad and no sector
tilt is assumed. Style shocks are small, stylised per-unit-loading returns (value vs growth, small vs
large). All of these are approximations for stress testing, not measured data: recalibrate them against a
proper index data set before relying on the exact figures.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mqf_pipeline.market.sim.params import SECTORS, STYLE_FACTORS

STRESS_COLUMNS: tuple[str, ...] = ("scenario", "loss", "worst_symbol", "worst_contribution")


@dataclass(frozen=True)
class Scenario:
    """One historical shock. Returns are decimal over the window ``start`` (close) -> ``end`` (close).

    ``market_shock``: market-factor return. ``sector_shocks``: extra return per sector on top of
    ``beta * market_shock``. ``factor_shocks``: return per unit of standardised style loading.
    """

    name: str
    description: str
    start: dt.date
    end: dt.date
    market_shock: float
    sector_shocks: dict[str, float] = field(default_factory=dict)
    factor_shocks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if not (math.isfinite(self.market_shock) and self.market_shock > -1):
            raise ValueError(f"market_shock must be a finite return > -1, got {self.market_shock!r}")
        for kind, shocks, known in (
            ("sector", self.sector_shocks, SECTORS),
            ("factor", self.factor_shocks, STYLE_FACTORS),
        ):
            unknown = sorted(set(shocks) - set(known))
            if unknown:
                raise ValueError(f"{self.name}: unknown {kind} names {unknown}")
            bad = {k: v for k, v in shocks.items() if not math.isfinite(v)}
            if bad:
                raise ValueError(f"{self.name}: non-finite {kind} shocks {bad}")

    def sector_vector(self, sectors: Sequence[str]) -> np.ndarray:
        """The extra sector return of each position (0 for sectors the scenario does not list)."""
        return np.array([self.sector_shocks.get(s, 0.0) for s in sectors], dtype=float)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="black_monday_1987",
        description="Black Monday: S&P 500 282.70 -> 224.84 (-20.5%) on 1987-10-19; broad, no sector tilt.",
        start=dt.date(1987, 10, 16),
        end=dt.date(1987, 10, 19),
        market_shock=-0.205,
    ),
    Scenario(
        name="gfc_2008",
        description="Lehman month: S&P 500 about -28% from 2008-09-12 to 2008-10-10; financials much worse.",
        start=dt.date(2008, 9, 12),
        end=dt.date(2008, 10, 10),
        market_shock=-0.28,
        sector_shocks={
            "Financials": -0.12,
            "Real Estate": -0.08,
            "Materials": -0.08,
            "Energy": -0.04,
            "Industrials": -0.02,
            "Consumer Discretionary": -0.02,
            "Information Technology": 0.0,
            "Communication Services": 0.03,
            "Utilities": 0.06,
            "Health Care": 0.10,
            "Consumer Staples": 0.12,
        },
        factor_shocks={"value": -0.02},
    ),
    Scenario(
        name="covid_2020",
        description="COVID crash: S&P 500 about -34% from 2020-02-19 to 2020-03-23; energy, financials worse.",
        start=dt.date(2020, 2, 19),
        end=dt.date(2020, 3, 23),
        market_shock=-0.34,
        sector_shocks={
            "Energy": -0.21,
            "Financials": -0.09,
            "Industrials": -0.07,
            "Real Estate": -0.07,
            "Materials": -0.02,
            "Utilities": -0.02,
            "Consumer Discretionary": -0.01,
            "Information Technology": 0.03,
            "Communication Services": 0.04,
            "Health Care": 0.06,
            "Consumer Staples": 0.09,
        },
        factor_shocks={"value": -0.04, "size": -0.03, "momentum": 0.02},
    ),
    Scenario(
        name="inflation_2022",
        description="2022 inflation bear market: S&P 500 about -25% from 2022-01-03 to 2022-10-12; tech worse, "
        "energy up.",
        start=dt.date(2022, 1, 3),
        end=dt.date(2022, 10, 12),
        market_shock=-0.25,
        sector_shocks={
            "Energy": 0.65,
            "Communication Services": -0.12,
            "Consumer Discretionary": -0.09,
            "Information Technology": -0.08,
            "Real Estate": -0.05,
            "Industrials": 0.04,
            "Materials": 0.04,
            "Financials": 0.05,
            "Health Care": 0.11,
            "Consumer Staples": 0.12,
            "Utilities": 0.13,
        },
        factor_shocks={"value": 0.06, "momentum": 0.02},
    ),
)


def _aligned(values: Any, symbols: Sequence[str], name: str) -> list[Any]:
    """``values`` as a list in ``symbols`` order: a mapping is looked up by symbol, a sequence taken as is."""
    if isinstance(values, Mapping):
        missing = [s for s in symbols if s not in values]
        if missing:
            raise ValueError(f"{name} lacks symbols {missing[:5]}")
        return [values[s] for s in symbols]
    out = list(np.asarray(values).tolist()) if isinstance(values, np.ndarray) else list(values)
    if len(out) != len(symbols):
        raise ValueError(f"{name} has {len(out)} entries for {len(symbols)} positions")
    return out


def _book(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray, symbols: Sequence[str] | None
) -> tuple[list[str], np.ndarray]:
    if isinstance(weights, Mapping):
        syms = [str(s) for s in weights]
        w = np.array([weights[s] for s in weights], dtype=float)
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        syms = [str(s) for s in symbols] if symbols is not None else [str(i) for i in range(w.size)]
    if len(syms) != w.size:
        raise ValueError(f"{len(syms)} symbols for {w.size} weights")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    return syms, w


def scenario_returns(
    scenario: Scenario,
    betas: np.ndarray,
    sectors: Sequence[str],
    exposures: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Per-position return (decimal) under ``scenario``; style factors missing from ``exposures`` count as 0."""
    r = np.asarray(betas, dtype=float) * scenario.market_shock + scenario.sector_vector(sectors)
    for factor, shock in scenario.factor_shocks.items():
        if exposures is not None and factor in exposures:
            r = r + np.asarray(exposures[factor], dtype=float) * shock
    return r


def stress_losses(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray,
    betas: Mapping[str, float] | Sequence[float] | np.ndarray,
    sectors: Mapping[str, str] | Sequence[str],
    scenarios: Sequence[Scenario] = SCENARIOS,
    *,
    symbols: Sequence[str] | None = None,
    exposures: Mapping[str, Mapping[str, float] | Sequence[float] | np.ndarray] | None = None,
) -> pl.DataFrame:
    """Loss of the book in each scenario: columns ``scenario``, ``loss`` (fraction of NAV, positive = loss),
    ``worst_symbol`` and ``worst_contribution`` (the largest single-position loss, fraction of NAV; it is
    negative when every position gains; "" / 0.0 for an empty book).

    ``weights`` (fractions of NAV, shorts negative) is a ``{symbol: weight}`` mapping or an array aligned with
    ``symbols`` (default "0", "1", ...). ``betas``, ``sectors`` and each ``exposures[factor]`` are mappings by
    symbol or sequences aligned with the weights.
    """
    syms, w = _book(weights, symbols)
    beta = np.array(_aligned(betas, syms, "betas"), dtype=float)
    secs = [str(s) for s in _aligned(sectors, syms, "sectors")]
    if not np.all(np.isfinite(beta)):
        raise ValueError("betas must be finite")
    expo = None
    if exposures is not None:
        expo = {f: np.array(_aligned(v, syms, f"exposures[{f}]"), dtype=float) for f, v in exposures.items()}
        if not all(np.all(np.isfinite(v)) for v in expo.values()):
            raise ValueError("exposures must be finite")
    rows: dict[str, list[Any]] = {c: [] for c in STRESS_COLUMNS}
    for sc in scenarios:
        contrib = -w * scenario_returns(sc, beta, secs, expo)
        worst = int(np.argmax(contrib)) if contrib.size else -1
        rows["scenario"].append(sc.name)
        rows["loss"].append(float(contrib.sum()))
        rows["worst_symbol"].append(syms[worst] if worst >= 0 else "")
        rows["worst_contribution"].append(float(contrib[worst]) if worst >= 0 else 0.0)
    return pl.DataFrame(
        rows,
        schema={"scenario": pl.String, "loss": pl.Float64, "worst_symbol": pl.String, "worst_contribution": pl.Float64},
    )


def max_stress_loss(frame: pl.DataFrame) -> float:
    """The worst scenario loss of a :func:`stress_losses` frame (0.0 when it has no rows)."""
    return float(frame["loss"].max()) if frame.height else 0.0


def estimate_betas(returns: np.ndarray, market: np.ndarray) -> np.ndarray:
    """OLS slope (with intercept) of each column of ``returns`` (T, N) on ``market`` (T,), decimal returns.

    Each column uses the rows where both it and the market are finite; a column with fewer than 2 such rows or
    a constant market over them gets NaN.
    """
    y = np.asarray(returns, dtype=float)
    x = np.asarray(market, dtype=float).reshape(-1)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != x.size:
        raise ValueError(f"returns {y.shape} and market {x.shape} do not align on T")
    ok = np.isfinite(y) & np.isfinite(x)[:, None]
    n = ok.sum(axis=0).astype(float)
    xs = np.where(ok, x[:, None], 0.0)
    ys = np.where(ok, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xs.sum(axis=0) / n
        my = ys.sum(axis=0) / n
        dx = np.where(ok, x[:, None] - mx, 0.0)
        dy = np.where(ok, y - my, 0.0)
        sxx = (dx * dx).sum(axis=0)
        sxy = (dx * dy).sum(axis=0)
        beta = sxy / sxx
    scale = np.maximum((xs * xs).sum(axis=0), np.finfo(float).tiny)
    beta[(n < 2) | ~(sxx > 1e-14 * scale)] = np.nan
    return beta
