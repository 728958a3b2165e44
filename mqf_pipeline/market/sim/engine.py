"""The path simulation: regimes, factor and stock returns, prices, actions and accounts.

The path always starts at the epoch and is extended block by block (:data:`BLOCK` sessions);
the loop runs over sessions and is vectorised across symbols. The return of symbol i on
session t (decimal, total, close t-1 to close t) is

    r = alpha(t-1) + beta_i r_m + L_i . f + g_i s_sector(i) + e_i + news jump

with regime-dependent market drift/vol, unit-mean GARCH(1,1) multipliers on market and
idiosyncratic variance, unit-variance Student-t shocks, and ``alpha(t-1)`` the planted
expected return computed from information at the close of t-1 (momentum 12-1, book-to-price
from reported accounts, news tone).

This module holds the path: its calendar and constants, the initial state, each block's random
numbers and stored rows, and on-demand extension. One session's steps are in :mod:`engine_session`
(inherited by :class:`Engine`), the data classes in :mod:`engine_state`; their public names are
importable from here.
"""

from __future__ import annotations

import threading

import numpy as np

from mqf_pipeline.market.sim.engine_session import (
    MOM_LONG,
    MOM_SKIP,
    REVERSE_SPLIT,
    RING,
    TONE_SCALE,
    SessionSteps,
    rank_score,
)
from mqf_pipeline.market.sim.engine_state import Block, BlockDraws, EngineState, PlantedAlpha, SessionReturns
from mqf_pipeline.market.sim.fundamentals import QuarterReport
from mqf_pipeline.market.sim.params import REGIMES, SESSIONS_PER_YEAR, STYLE_FACTORS, SimulatorParams
from mqf_pipeline.market.sim.rng import BLOCK, Stream, generator, unit_t
from mqf_pipeline.market.sim.universe import Universe, build_universe

__all__ = [
    "MOM_LONG",
    "MOM_SKIP",
    "REVERSE_SPLIT",
    "TONE_SCALE",
    "Block",
    "BlockDraws",
    "Engine",
    "EngineState",
    "PlantedAlpha",
    "SessionReturns",
    "rank_score",
]

#: Exponents linking sector/style and idiosyncratic vol to the regime's market vol.
_FACTOR_REGIME_EXP, _IDIO_REGIME_EXP = 0.5, 0.3


def _tone_second_moment() -> float:
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(w * np.tanh(TONE_SCALE * x) ** 2) / np.sqrt(2 * np.pi))


class Engine(SessionSteps):
    """One simulated market path for fixed params, extended on demand and kept in memory."""

    def __init__(self, params: SimulatorParams, sessions: np.ndarray) -> None:
        """``sessions``: datetime64[D] XNYS sessions from the epoch; all but the last are simulable
        (the last one only tells whether its predecessor ends a quarter)."""
        if sessions.size < 2:
            raise ValueError(f"epoch {params.epoch} leaves no simulable sessions in the calendar")
        self.p = params
        self.u: Universe = build_universe(params)
        self._sessions = sessions
        self.dates = sessions[:-1]  # session index -> date
        self.horizon = len(self.dates)
        self.blocks: list[Block] = []
        self.reports: list[QuarterReport] = []
        self._lock = threading.Lock()
        self._prepare_calendar()
        self._prepare_constants()
        self._state = self._initial_state()

    # ---- setup -------------------------------------------------------------------------
    def _prepare_calendar(self) -> None:
        quarter = self._sessions.astype("datetime64[M]").astype(np.int64) // 3
        change = quarter[1:] != quarter[:-1]
        self.quarter_id = quarter[:-1]
        self.is_period_end = change  # session t is the last of its calendar quarter
        first = np.r_[True, change[:-1]]
        start_idx = np.maximum.accumulate(np.where(first, np.arange(self.horizon), 0))
        self.pos_in_quarter = np.arange(self.horizon) - start_idx

    def _prepare_constants(self) -> None:
        p, u = self.p, self.u
        year = SESSIONS_PER_YEAR
        vol = np.asarray(p.regime_vol_annual)
        self.sig_m = vol / np.sqrt(year)
        self.mu_m = np.asarray(p.regime_drift_annual) / year
        self.fscale = (vol / p.regime_scaling_reference) ** _FACTOR_REGIME_EXP
        self.iscale = (vol / p.regime_scaling_reference) ** _IDIO_REGIME_EXP
        dur = np.asarray(p.regime_duration_sessions)
        trans = np.asarray(p.regime_exit_mix) / dur[:, None]
        trans[np.diag_indices(4)] = 1.0 - 1.0 / dur
        self.trans_cum = np.cumsum(trans, axis=1)
        self.trans_cum[:, -1] = 1.0
        self.fvol = np.asarray(p.factor_vol_annual) / np.sqrt(year)
        self.svol = p.sector_vol_annual / np.sqrt(year)
        self.idio_var = (u.idio_vol_annual / np.sqrt(year)) ** 2
        # residual (non-market) variance from sector + style factors at fscale = 1
        self.static_var = (u.beta_sector * self.svol) ** 2 + (u.loadings**2) @ (self.fvol**2)
        self.k_news = p.ic_news / np.sqrt(np.mean(u.news_rate) * _tone_second_moment())
        self.sigma_base = np.sqrt(
            (u.beta_market * p.regime_scaling_reference) ** 2 / year + self.static_var + self.idio_var
        )

    def _initial_state(self) -> EngineState:
        u, n = self.u, self.u.n
        z = generator(self.p.seed, Stream.FUNDAMENTALS, 0).standard_normal(n)
        book = u.market_cap0 * u.book_to_price_target * np.exp(0.1 * z)
        return EngineState(
            regime=REGIMES.index(self.p.initial_regime),
            gm=1.0,
            gi=np.ones(n),
            close=u.price0.copy(),
            adj=u.price0.copy(),
            shares=u.shares0.copy(),
            ring=np.zeros((RING, n)),
            alpha_next=np.zeros(n),
            pending_split=np.ones(n),
            dps=np.where(u.dividend_payer, u.dividend_yield * u.price0 / 4.0, 0.0),
            div_quarter=np.zeros(n),
            book=book,
            known_book=np.full(n, np.nan),
            has_report=np.zeros(n, dtype=bool),
            pending_book=np.full(n, np.nan),
            pending_session=np.full(n, -1, dtype=np.int64),
            quarter=0,
            vix_noise=0.0,
            rate=self.p.short_rate_initial,
        )

    # ---- public ------------------------------------------------------------------------
    @property
    def simulated(self) -> int:
        """Number of sessions simulated so far."""
        return sum(b.length for b in self.blocks)

    def ensure(self, last_session: int) -> None:
        """Simulate through session index ``last_session`` (inclusive)."""
        if last_session >= self.horizon:
            raise ValueError(f"session index {last_session} is past the simulator horizon {self.horizon - 1}")
        with self._lock:
            while self.simulated <= last_session:
                self.blocks.append(self._simulate_block(len(self.blocks)))

    def cells(self, name: str, t0: int, t1: int) -> np.ndarray:
        """Rows t0..t1 (inclusive) of a stored block array, concatenated across blocks."""
        self.ensure(t1)
        parts = []
        for b in self.blocks[t0 // BLOCK : t1 // BLOCK + 1]:
            lo, hi = max(t0 - b.start, 0), min(t1 - b.start, b.length - 1)
            arr = getattr(b, name)
            parts.append(arr[:, lo : hi + 1] if name == "alpha" else arr[lo : hi + 1])
        return np.concatenate(parts, axis=1 if name == "alpha" else 0)

    def blocks_between(self, t0: int, t1: int) -> list[Block]:
        self.ensure(t1)
        return self.blocks[t0 // BLOCK : t1 // BLOCK + 1]

    # ---- the loop ----------------------------------------------------------------------
    def _simulate_block(self, b: int) -> Block:
        """Simulate block ``b`` (sessions ``b * BLOCK`` onward), continuing the state."""
        start = b * BLOCK
        length = min(BLOCK, self.horizon - start)
        draws = self._block_draws(b)
        blk = self._empty_block(start, length)
        for k in range(length):
            self._simulate_session(start + k, k, draws, blk)
        return blk

    def _block_draws(self, b: int) -> BlockDraws:
        """All random numbers of block ``b``, full BLOCK length whatever the block's length (so a
        block's draws never depend on the horizon): one generator per stream and block."""
        p, u = self.p, self.u
        n, ns, nf = u.n, len(u.sector_names), len(STYLE_FACTORS)
        df = p.student_t_df
        u_reg = generator(p.seed, Stream.REGIME, b).random(BLOCK)
        zm = unit_t(generator(p.seed, Stream.MARKET, b), df, (BLOCK,))
        zf = unit_t(generator(p.seed, Stream.FACTORS, b), df, (BLOCK, nf))
        zs = unit_t(generator(p.seed, Stream.SECTORS, b), df, (BLOCK, ns))
        zi = unit_t(generator(p.seed, Stream.IDIO, b), df, (BLOCK, n))
        g_news = generator(p.seed, Stream.NEWS, b)
        u_news = g_news.random((BLOCK, n))
        z_tone = g_news.standard_normal((BLOCK, n))
        z_macro = generator(p.seed, Stream.MACRO, b).standard_normal((BLOCK, 2))
        return BlockDraws(u_reg, zm, zf, zs, zi, u_news, z_tone, z_macro)

    def _empty_block(self, start: int, length: int) -> Block:
        """A Block of ``length`` zero (nan for momentum and book-to-price) rows from session ``start``."""
        u = self.u
        n, ns, nf = u.n, len(u.sector_names), len(STYLE_FACTORS)
        return Block(
            start=start,
            length=length,
            regime=np.zeros(length, dtype=np.int8),
            market_return=np.zeros(length),
            market_vol=np.zeros(length),
            factor_returns=np.zeros((length, nf)),
            sector_returns=np.zeros((length, ns)),
            vix=np.zeros(length),
            short_rate=np.zeros(length),
            ret=np.zeros((length, n)),
            close=np.zeros((length, n)),
            adj=np.zeros((length, n)),
            sigma=np.zeros((length, n), dtype=np.float32),
            sigma_idio=np.zeros((length, n), dtype=np.float32),
            tone=np.zeros((length, n), dtype=np.float32),
            news=np.zeros((length, n), dtype=bool),
            alpha=np.zeros((3, length, n), dtype=np.float32),
            momentum=np.full((length, n), np.nan, dtype=np.float32),
            book_to_price=np.full((length, n), np.nan, dtype=np.float32),
        )
