"""The simulation engine's data: a stored block of sessions, the state the path continues from, the
random numbers of a block, and one session's returns and planted alpha."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Block:
    """Stored output of up to BLOCK sessions starting at session ``start``."""

    start: int
    length: int
    regime: np.ndarray  # (B,) int8
    market_return: np.ndarray  # (B,) decimal
    market_vol: np.ndarray  # (B,) conditional market-factor vol, annualised
    factor_returns: np.ndarray  # (B, n_style) decimal
    sector_returns: np.ndarray  # (B, n_sectors) decimal
    vix: np.ndarray  # (B,) index points
    short_rate: np.ndarray  # (B,) decimal annual
    ret: np.ndarray  # (B, n) total return
    close: np.ndarray  # (B, n) raw close USD
    adj: np.ndarray  # (B, n) total-return level
    sigma: np.ndarray  # (B, n) conditional total daily vol (f32)
    sigma_idio: np.ndarray  # (B, n) conditional idiosyncratic daily vol (f32)
    tone: np.ndarray  # (B, n) news tone, 0 without news (f32)
    news: np.ndarray  # (B, n) bool
    alpha: np.ndarray  # (3, B, n) f32: momentum, value, news components for the NEXT session
    momentum: np.ndarray  # (B, n) f32 12-1 log return at the close (nan when unavailable)
    book_to_price: np.ndarray  # (B, n) f32 reported book / market cap at the close (nan before a report)
    splits: list[tuple[int, int, float, float]] = field(default_factory=list)  # t, i, ratio, shares after
    dividends: list[tuple[int, int, float]] = field(default_factory=list)  # t, i, cash per share


@dataclass
class EngineState:
    """Everything the next session depends on (the path is continued from here)."""

    regime: int
    gm: float
    gi: np.ndarray
    close: np.ndarray
    adj: np.ndarray
    shares: np.ndarray
    ring: np.ndarray
    alpha_next: np.ndarray
    pending_split: np.ndarray
    dps: np.ndarray
    div_quarter: np.ndarray
    book: np.ndarray
    known_book: np.ndarray
    has_report: np.ndarray
    pending_book: np.ndarray
    pending_session: np.ndarray
    quarter: int
    vix_noise: float
    rate: float


@dataclass(frozen=True)
class BlockDraws:
    """The random numbers of one block (BLOCK rows each), drawn before its sessions are simulated."""

    u_reg: np.ndarray  # (BLOCK,) uniforms: regime transitions
    zm: np.ndarray  # (BLOCK,) unit-t: market
    zf: np.ndarray  # (BLOCK, n_style) unit-t: style factors
    zs: np.ndarray  # (BLOCK, n_sectors) unit-t: sectors
    zi: np.ndarray  # (BLOCK, n) unit-t: idiosyncratic
    u_news: np.ndarray  # (BLOCK, n) uniforms: news arrivals
    z_tone: np.ndarray  # (BLOCK, n) normals: news tone
    z_macro: np.ndarray  # (BLOCK, 2) normals: VIX noise, short rate


@dataclass(frozen=True)
class SessionReturns:
    """One session's returns: ``hm`` conditional market variance (daily), ``rm`` market return,
    ``f``/``sec`` style/sector factor returns, ``sd_idio``/``sig_xs`` idiosyncratic and residual daily
    vols, ``news``/``tone`` news arrivals and tone, ``r`` the stocks' total returns (decimal)."""

    hm: float
    rm: float
    f: np.ndarray
    sec: np.ndarray
    sd_idio: np.ndarray
    sig_xs: np.ndarray
    news: np.ndarray
    tone: np.ndarray
    r: np.ndarray


@dataclass(frozen=True)
class PlantedAlpha:
    """The planted alpha components for the next session and the book-to-price they used."""

    momentum: np.ndarray
    value: np.ndarray
    news: np.ndarray
    book_to_price: np.ndarray
