"""The path simulation: regimes, factor and stock returns, prices, actions and accounts.

The path always starts at the epoch and is extended block by block (:data:`BLOCK` sessions);
the loop runs over sessions and is vectorised across symbols. The return of symbol i on
session t (decimal, total, close t-1 to close t) is

    r = alpha(t-1) + beta_i r_m + L_i . f + g_i s_sector(i) + e_i + news jump

with regime-dependent market drift/vol, unit-mean GARCH(1,1) multipliers on market and
idiosyncratic variance, unit-variance Student-t shocks, and ``alpha(t-1)`` the planted
expected return computed from information at the close of t-1 (momentum 12-1, book-to-price
from reported accounts, news tone).
"""

from __future__ import annotations

import threading

import numpy as np

from mqf_pipeline.market.sim.engine_state import Block, BlockDraws, EngineState, PlantedAlpha, SessionReturns
from mqf_pipeline.market.sim.fundamentals import QuarterReport, close_quarter
from mqf_pipeline.market.sim.params import REGIMES, SESSIONS_PER_YEAR, STYLE_FACTORS, SimulatorParams
from mqf_pipeline.market.sim.rng import BLOCK, Stream, generator, unit_t
from mqf_pipeline.market.sim.universe import Universe, build_universe

#: Momentum window: return from session t-252 to t-21 (the "12-1" months).
MOM_LONG, MOM_SKIP = 252, 21
_RING = MOM_LONG + 1
#: Tone on a news day is tanh(TONE_SCALE z), z standard normal.
TONE_SCALE = 0.9
#: Exponents linking sector/style and idiosyncratic vol to the regime's market vol.
_FACTOR_REGIME_EXP, _IDIO_REGIME_EXP = 0.5, 0.3
#: Reverse split ratio (new shares per old) when the raw price falls under the floor.
REVERSE_SPLIT = 0.1
_RATE_KAPPA, _RATE_VOL = 0.8, 0.05  # CIR short rate: mean reversion per year, vol of sqrt(rate)
_VIX_PREMIUM, _VIX_FLOOR = 1.1, 8.0  # implied/realised vol ratio; floor (points) added in quadrature


def _tone_second_moment() -> float:
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(w * np.tanh(TONE_SCALE * x) ** 2) / np.sqrt(2 * np.pi))


def rank_score(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Cross-sectional uniform rank scores of ``x`` over ``valid`` entries, mean 0 and sd 1 (0 elsewhere).

    Uniform (not normal) scores bound the planted alpha at +-1.73 sd, which keeps the positive
    feedback of momentum from compounding extreme winners without limit.
    """
    out = np.zeros(x.shape[0])
    idx = np.flatnonzero(valid)
    m = idx.size
    if m < 2:
        return out
    ranks = np.empty(m)
    ranks[np.argsort(x[idx], kind="stable")] = np.arange(m)
    out[idx] = np.sqrt(12.0) * ((ranks + 0.5) / m - 0.5)
    return out


class Engine:
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
            ring=np.zeros((_RING, n)),
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

    def _simulate_session(self, t: int, k: int, draws: BlockDraws, blk: Block) -> None:
        """Session ``t`` (row ``k`` of ``blk``): regime, returns, corporate actions and prices,
        variance multipliers, accounts, planted alpha, splits, macro; then the block's row."""
        s = self._state
        if t > 0:
            s.regime = int(np.searchsorted(self.trans_cum[s.regime], draws.u_reg[k], side="right"))
        reg = s.regime
        ret = self._returns(reg, k, draws)
        self._corporate_actions_and_prices(t, ret.r, blk)

        # variance multipliers for t+1
        am, bm = self.p.market_garch
        ai, bi = self.p.idio_garch
        s.gm = (1 - am - bm) + am * draws.zm[k] ** 2 + bm * s.gm
        s.gi = (1 - ai - bi) + ai * draws.zi[k] ** 2 + bi * s.gi

        self._accounts(t)
        alpha = self._planted_alpha(t, k, reg, ret.tone, blk)

        # splits decided at the close of t take effect at t+1
        s.pending_split = np.where(
            s.close > self.u.split_threshold,
            self.u.split_ratio,
            np.where(s.close < self.p.reverse_split_below_usd, REVERSE_SPLIT, 1.0),
        )

        vix = self._macro(reg, draws.z_macro[k])
        self._record(blk, k, reg, ret, vix, alpha)

    def _returns(self, reg: int, k: int, draws: BlockDraws) -> SessionReturns:
        """The market, factor, sector and stock returns of row ``k`` in regime ``reg``."""
        p, u, s = self.p, self.u, self._state
        fs, is2 = self.fscale[reg], self.iscale[reg] ** 2
        hm = self.sig_m[reg] ** 2 * s.gm
        rm = self.mu_m[reg] + np.sqrt(hm) * draws.zm[k]
        f = self.fvol * fs * draws.zf[k]
        sec = self.svol * fs * draws.zs[k]
        h_idio = self.idio_var * is2 * s.gi
        sd_idio = np.sqrt(h_idio)
        sig_xs = np.sqrt(h_idio + fs**2 * self.static_var)
        news = draws.u_news[k] < u.news_rate
        tone = np.where(news, np.tanh(TONE_SCALE * draws.z_tone[k]), 0.0)
        r = (
            s.alpha_next
            + u.beta_market * rm
            + u.loadings @ f
            + u.beta_sector * sec[u.sector]
            + sd_idio * draws.zi[k]
            + p.news_jump * tone * sig_xs
        )
        r = np.maximum(r, -0.9)
        return SessionReturns(hm=hm, rm=rm, f=f, sec=sec, sd_idio=sd_idio, sig_xs=sig_xs, news=news, tone=tone, r=r)

    def _corporate_actions_and_prices(self, t: int, r: np.ndarray, blk: Block) -> None:
        """Corporate actions with ex-date ``t`` (splits, dividends), then the close and adjusted level."""
        u, s = self.u, self._state
        ratio = s.pending_split
        if np.any(ratio != 1.0):
            for i in np.flatnonzero(ratio != 1.0):
                s.shares[i] = np.round(s.shares[i] * ratio[i])
                blk.splits.append((t, int(i), float(ratio[i]), float(s.shares[i])))
            s.dps = s.dps / ratio
            s.div_quarter = s.div_quarter / ratio
        pre = s.close / ratio * (1.0 + r)
        exdiv = (s.dps > 0) & (u.dividend_offset == self.pos_in_quarter[t])
        div = np.where(exdiv, np.minimum(s.dps, 0.5 * pre), 0.0)
        for i in np.flatnonzero(exdiv):
            blk.dividends.append((t, int(i), float(div[i])))
        s.close = pre - div
        s.adj = s.adj * (1.0 + r)
        s.div_quarter = s.div_quarter + div

    def _accounts(self, t: int) -> None:
        """Close the quarter if ``t`` ends one; release the book values reported at ``t``."""
        s = self._state
        if self.is_period_end[t]:
            self._close_quarter(t)
        released = s.pending_session == t
        if released.any():
            s.known_book = np.where(released, s.pending_book, s.known_book)
            s.has_report = s.has_report | released

    def _planted_alpha(self, t: int, k: int, reg: int, tone: np.ndarray, blk: Block) -> PlantedAlpha:
        """The planted alpha for t+1 from information at the close of ``t`` (momentum 12-1, reported
        book-to-price, news tone); sets the state's ``alpha_next`` and the block's momentum row."""
        p, s, n = self.p, self._state, self.u.n
        fs, is2 = self.fscale[reg], self.iscale[reg] ** 2
        s.ring[t % _RING] = np.log(s.adj)
        mcap = s.close * s.shares
        bp = np.where(s.has_report, s.known_book / mcap, np.nan)
        if t >= MOM_LONG:
            mom = s.ring[(t - MOM_SKIP) % _RING] - s.ring[(t - MOM_LONG) % _RING]
            z_mom = rank_score(mom, np.ones(n, dtype=bool))
            blk.momentum[k] = mom
        else:
            z_mom = np.zeros(n)
        z_bp = rank_score(bp, s.has_report)
        # alpha per unit score: the cross-sectional RMS residual vol expected for t+1
        sig_next = np.sqrt(np.mean(self.idio_var * is2 * s.gi + fs**2 * self.static_var))
        a_mom = p.ic_momentum * z_mom * sig_next
        a_val = p.ic_value * z_bp * sig_next
        a_news = self.k_news * tone * sig_next
        s.alpha_next = a_mom + a_val + a_news
        return PlantedAlpha(momentum=a_mom, value=a_val, news=a_news, book_to_price=bp)

    def _macro(self, reg: int, z_macro: np.ndarray) -> float:
        """Macro at the close: advances the VIX noise and the CIR short rate; returns the raw VIX (points)."""
        p, s = self.p, self._state
        sqrt_year = np.sqrt(SESSIONS_PER_YEAR)
        vol_next = self.sig_m[reg] * sqrt_year * np.sqrt(s.gm)
        s.vix_noise = 0.92 * s.vix_noise + 0.05 * z_macro[0]
        vix = np.hypot(_VIX_PREMIUM * 100 * vol_next, _VIX_FLOOR) * np.exp(s.vix_noise)
        target = p.short_rate_targets[reg]
        s.rate = s.rate + _RATE_KAPPA * (target - s.rate) / SESSIONS_PER_YEAR
        s.rate += _RATE_VOL * np.sqrt(max(s.rate, 1e-4)) * z_macro[1] / sqrt_year
        s.rate = min(max(s.rate, 0.0), 0.08)
        return vix

    def _record(self, blk: Block, k: int, reg: int, ret: SessionReturns, vix: float, alpha: PlantedAlpha) -> None:
        """Row ``k`` of the block."""
        s, u = self._state, self.u
        sqrt_year = np.sqrt(SESSIONS_PER_YEAR)
        blk.regime[k] = reg
        blk.market_return[k] = ret.rm
        blk.market_vol[k] = np.sqrt(ret.hm) * sqrt_year
        blk.factor_returns[k] = ret.f
        blk.sector_returns[k] = ret.sec
        blk.vix[k] = min(max(vix, 10.0), 80.0)
        blk.short_rate[k] = s.rate
        blk.ret[k] = ret.r
        blk.close[k] = s.close
        blk.adj[k] = s.adj
        blk.sigma[k] = np.sqrt(u.beta_market**2 * ret.hm + ret.sig_xs**2)
        blk.sigma_idio[k] = ret.sd_idio
        blk.tone[k] = ret.tone
        blk.news[k] = ret.news
        blk.alpha[0, k] = alpha.momentum
        blk.alpha[1, k] = alpha.value
        blk.alpha[2, k] = alpha.news
        blk.book_to_price[k] = alpha.book_to_price

    def _close_quarter(self, t: int) -> None:
        s = self._state
        s.quarter += 1
        q = int(self.quarter_id[t])
        quarter_end = (np.datetime64("1970-01", "M") + np.timedelta64(3 * q + 3, "M")).astype("datetime64[D]")
        rep = close_quarter(
            self.u,
            seed=self.p.seed,
            quarter_ordinal=s.quarter,
            session=t,
            quarter_end=quarter_end - np.timedelta64(1, "D"),
            close=s.close,
            shares=s.shares,
            book_prev=s.book,
            dividends_per_share=s.div_quarter,
        )
        self.reports.append(rep)
        s.book = rep.book_equity
        s.pending_book = rep.book_equity
        s.pending_session = rep.report_session
        s.div_quarter = np.zeros(self.u.n)
        payer = self.u.dividend_payer
        target = self.u.dividend_yield * s.close / 4.0
        s.dps = np.where(payer, np.where(s.dps > 0, 0.6 * s.dps + 0.4 * target, target), 0.0)
