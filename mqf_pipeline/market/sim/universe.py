"""The static cross-section of the simulated market, drawn once per seed.

Style loadings are standardised cross-sectionally (mean 0, sd 1): a loading of 1 on a factor
earns one unit of that factor's daily return. Caps are log-normal; size, liquidity and
low-volatility loadings follow from cap, turnover and risk so they look like real sorts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from mqf_pipeline.market.sim.params import SECTORS, SimulatorParams
from mqf_pipeline.market.sim.rng import Stream, generator

#: Share of symbols per sector (GICS-like weights), SECTORS order.
_SECTOR_WEIGHTS = (0.14, 0.13, 0.13, 0.11, 0.14, 0.06, 0.06, 0.05, 0.06, 0.06, 0.06)
#: Additive market-beta tilt per sector.
_BETA_TILT = (0.20, -0.05, 0.10, 0.15, 0.05, 0.0, -0.25, 0.10, -0.35, 0.0, 0.05)
#: Multiplicative idiosyncratic-vol tilt per sector.
_IDIO_TILT = (1.15, 1.15, 0.95, 1.05, 0.95, 1.05, 0.8, 1.1, 0.7, 0.85, 1.0)
#: Value-loading tilt per sector (growth sectors negative).
_VALUE_TILT = (-0.6, -0.3, 0.6, -0.1, 0.1, -0.2, 0.0, 0.6, 0.4, 0.3, 0.4)
#: Dividend-propensity tilt per sector.
_DIVIDEND_TILT = (-0.8, -0.3, 0.5, -0.2, 0.2, -0.3, 0.8, 0.5, 1.5, 1.5, 0.3)
#: Net profit margin (earnings / revenue) per sector.
_MARGIN = (0.20, 0.12, 0.22, 0.07, 0.09, 0.15, 0.07, 0.10, 0.12, 0.25, 0.10)

_NAME_HEADS = (
    "Northfield",
    "Cobalt",
    "Harbor",
    "Granite",
    "Meridian",
    "Aspen",
    "Summit",
    "Westbrook",
    "Atlas",
    "Beacon",
    "Cedar",
    "Delta",
    "Falcon",
    "Halden",
    "Ironwood",
    "Juniper",
    "Keystone",
    "Lakeside",
    "Marlow",
    "Norland",
    "Orion",
    "Pinecrest",
    "Quarry",
    "Redwood",
    "Sterling",
    "Tidewater",
    "Upland",
    "Vantage",
    "Willow",
    "Yardley",
)
_NAME_TAILS = (
    "Systems",
    "Holdings",
    "Industries",
    "Group",
    "Technologies",
    "Partners",
    "Labs",
    "Networks",
    "Fuels",
    "Foods",
    "Materials",
    "Logistics",
    "Therapeutics",
    "Financial",
    "Realty",
    "Works",
)
_NAME_SUFFIX = ("Inc.", "Corp.", "Co.", "plc")


@dataclass(frozen=True)
class Universe:
    """Per-symbol constants; every array has shape (n_symbols,) unless noted."""

    symbols: tuple[str, ...]
    names: tuple[str, ...]
    sector_names: tuple[str, ...]
    sector: np.ndarray  # int index into sector_names
    market_cap0: np.ndarray  # USD at epoch
    price0: np.ndarray  # USD per share at epoch
    shares0: np.ndarray  # shares outstanding at epoch
    beta_market: np.ndarray
    beta_sector: np.ndarray  # loading on the own sector factor
    loadings: np.ndarray  # (n_symbols, len(STYLE_FACTORS))
    idio_vol_annual: np.ndarray
    turnover: np.ndarray  # median daily volume / shares outstanding
    news_rate: np.ndarray  # probability of news per session
    dividend_payer: np.ndarray  # bool
    dividend_yield: np.ndarray  # annual target cash yield, decimal (0 for non-payers)
    dividend_offset: np.ndarray  # ex-date: sessions after the first session of each quarter
    split_threshold: np.ndarray  # USD raw price that triggers a split
    split_ratio: np.ndarray  # 2.0 or 3.0 new shares per old
    book_to_price_target: np.ndarray  # long-run book equity / market cap
    roe_annual: np.ndarray  # return on equity, decimal annual (higher for cheap names)
    margin: np.ndarray  # net margin, decimal

    @property
    def n(self) -> int:
        return len(self.symbols)


def _standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def _sector_assignment(rng: np.random.Generator, n: int, n_sectors: int) -> np.ndarray:
    """Largest-remainder quotas of the GICS-like weights, shuffled: every sector is populated."""
    w = np.asarray(_SECTOR_WEIGHTS[:n_sectors])
    w = w / w.sum()
    quota = np.floor(w * n).astype(int)
    quota = np.maximum(quota, 1)
    while quota.sum() < n:
        quota[np.argmax(w * n - quota)] += 1
    while quota.sum() > n:
        quota[np.argmax(quota)] -= 1
    return rng.permutation(np.repeat(np.arange(n_sectors), quota))


def _names(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    grid = [f"{h} {t}" for h in _NAME_HEADS for t in _NAME_TAILS]
    order = rng.permutation(len(grid))
    suffix = rng.integers(0, len(_NAME_SUFFIX), size=n)
    out = []
    for i in range(n):
        base = grid[order[i % len(grid)]]
        lap = i // len(grid)
        out.append(f"{base} {_NAME_SUFFIX[suffix[i]]}" if lap == 0 else f"{base} {lap + 1} {_NAME_SUFFIX[suffix[i]]}")
    return tuple(out)


def build_universe(p: SimulatorParams) -> Universe:
    """Draw the cross-section for ``p`` (deterministic in ``p``)."""
    rng = generator(p.seed, Stream.UNIVERSE)
    n = p.n_symbols
    sector = _sector_assignment(rng, n, p.n_sectors)

    def tilt(table: tuple[float, ...]) -> np.ndarray:
        return np.asarray(table)[sector]

    log_cap = np.log(p.market_cap_median_usd) + p.market_cap_log_sd * rng.standard_normal(n)
    cap = np.exp(log_cap)
    zcap = _standardize(log_cap)
    lo, hi = p.price_range_usd
    # log price spread smoothly inside (lo, hi) with the requested median (no mass on the bounds)
    centre = ndtri(np.clip(np.log(p.price_median_usd / lo) / np.log(hi / lo), 0.01, 0.99))
    price = lo * (hi / lo) ** ndtr(centre + 0.8 * rng.standard_normal(n))
    shares = np.round(cap / price)
    cap = shares * price

    idio = p.idio_vol_median_annual * tilt(_IDIO_TILT) * np.exp(-0.12 * zcap * p.market_cap_log_sd)
    idio = np.clip(idio * np.exp(0.25 * rng.standard_normal(n)), 0.08, 0.9)
    beta = np.clip(1.0 + tilt(_BETA_TILT) + 0.25 * rng.standard_normal(n), 0.3, 2.2)
    beta = beta / np.average(beta, weights=cap)
    turnover = p.turnover_median * np.exp(0.15 * zcap + 0.45 * rng.standard_normal(n))

    value = _standardize(tilt(_VALUE_TILT) + rng.standard_normal(n))
    momentum = _standardize(rng.standard_normal(n))
    size = -zcap
    low_vol = _standardize(-(0.7 * _standardize(np.log(idio)) + 0.3 * _standardize(beta)))
    liquidity = -_standardize(np.log(turnover * cap))
    loadings = np.column_stack([momentum, value, size, low_vol, liquidity])  # STYLE_FACTORS order
    beta_sector = np.clip(1.0 + 0.2 * rng.standard_normal(n), 0.5, 1.5)

    news_rate = np.exp(0.35 * zcap)
    news_rate = np.clip(p.news_rate * news_rate / news_rate.mean(), 0.01, 0.9)

    score = 0.8 * zcap + 0.6 * value + tilt(_DIVIDEND_TILT) + rng.standard_normal(n)
    n_payers = round(p.dividend_payer_fraction * n)
    payer = np.zeros(n, dtype=bool)
    payer[np.argsort(-score)[:n_payers]] = True
    dy = 0.01 + 0.015 * np.exp(0.35 * value + 0.3 * rng.standard_normal(n)) + 0.01 * (tilt(_DIVIDEND_TILT) > 1)
    dividend_yield = np.where(payer, np.clip(dy, 0.005, 0.06), 0.0)
    dividend_offset = rng.integers(15, 51, size=n)

    split_threshold = p.split_threshold_usd * np.exp(0.12 * rng.standard_normal(n))
    split_ratio = np.where(rng.random(n) < 0.25, 3.0, 2.0)
    btp = np.exp(np.log(0.45) + 0.45 * value + 0.15 * rng.standard_normal(n))
    roe = np.clip(0.11 + 0.02 * value + 0.03 * rng.standard_normal(n), -0.05, 0.35)
    margin = tilt(_MARGIN) * np.exp(0.25 * rng.standard_normal(n))

    return Universe(
        symbols=tuple(f"S{i:04d}" for i in range(n)),
        names=_names(rng, n),
        sector_names=SECTORS[: p.n_sectors],
        sector=sector,
        market_cap0=cap,
        price0=price,
        shares0=shares,
        beta_market=beta,
        beta_sector=beta_sector,
        loadings=loadings,
        idio_vol_annual=idio,
        turnover=turnover,
        news_rate=news_rate,
        dividend_payer=payer,
        dividend_yield=dividend_yield,
        dividend_offset=dividend_offset,
        split_threshold=split_threshold,
        split_ratio=split_ratio,
        book_to_price_target=btp,
        roe_annual=roe,
        margin=margin,
    )
