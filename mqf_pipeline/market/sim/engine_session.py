"""One simulated session, step by step, as methods :class:`~engine.Engine` inherits: the regime
transition, the market/factor/sector/stock returns, the corporate actions with ex-date that session (splits,
dividends) and the closes, the GARCH variance multipliers, the quarter's accounts, the planted alpha for the
next session, the macro series (VIX, short rate), and the block's stored row.

Split from :mod:`engine` (which keeps the path's set-up, its random numbers and its stored blocks) so the
model's equations read in one place; the steps run in the order of :meth:`SessionSteps._simulate_session`.
"""

from __future__ import annotations

import numpy as np

from mqf_pipeline.market.sim.engine_state import Block, BlockDraws, EngineState, PlantedAlpha, SessionReturns
from mqf_pipeline.market.sim.fundamentals import QuarterReport, close_quarter
from mqf_pipeline.market.sim.params import SESSIONS_PER_YEAR, SimulatorParams
from mqf_pipeline.market.sim.universe import Universe

#: Momentum window: return from session t-252 to t-21 (the "12-1" months).
MOM_LONG, MOM_SKIP = 252, 21
#: Sessions of log total-return levels kept (a ring buffer) for the momentum window.
RING = MOM_LONG + 1
#: Tone on a news day is tanh(TONE_SCALE z), z standard normal.
TONE_SCALE = 0.9
#: Reverse split ratio (new shares per old) when the raw price falls under the floor.
REVERSE_SPLIT = 0.1
_RATE_KAPPA, _RATE_VOL = 0.8, 0.05  # CIR short rate: mean reversion per year, vol of sqrt(rate)
_VIX_PREMIUM, _VIX_FLOOR = 1.1, 8.0  # implied/realised vol ratio; floor (points) added in quadrature


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


class SessionSteps:
    """The steps of one session; they read the engine's constants and advance its state (``_state``)."""

    # set by Engine.__init__ (_prepare_calendar, _prepare_constants, _initial_state)
    p: SimulatorParams
    u: Universe
    reports: list[QuarterReport]
    quarter_id: np.ndarray
    is_period_end: np.ndarray
    pos_in_quarter: np.ndarray
    sig_m: np.ndarray
    mu_m: np.ndarray
    fscale: np.ndarray
    iscale: np.ndarray
    trans_cum: np.ndarray
    fvol: np.ndarray
    svol: np.ndarray
    idio_var: np.ndarray
    static_var: np.ndarray
    k_news: float
    _state: EngineState

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
        s.ring[t % RING] = np.log(s.adj)
        mcap = s.close * s.shares
        bp = np.where(s.has_report, s.known_book / mcap, np.nan)
        if t >= MOM_LONG:
            mom = s.ring[(t - MOM_SKIP) % RING] - s.ring[(t - MOM_LONG) % RING]
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
