"""Statistical-arbitrage agent: Engle-Granger cointegrated pairs within sectors; horizon 5 sessions.

Refits follow a fixed schedule: weekdays are counted from :data:`SCHEDULE_ANCHOR` and cut into
blocks of ``refit_every`` weekdays; the first session of a block present in the bars is its refit
date R, and every decision date D in the block uses the pairs fitted at R on the
``formation_sessions`` sessions strictly before R (so a refit never sees R's own close). The
schedule does not depend on where the data starts or which dates are requested.

Pair search at R, per sector, on log adjusted closes (symbols with a complete formation window):
each symbol's ``n_candidates`` most correlated peers (daily log returns, correlation >=
``min_corr``) that pass a lenient vectorised Dickey-Fuller pre-screen are tested with
``statsmodels.tsa.stattools.coint`` (constant, fixed ``coint_maxlag`` lags: cheap and
deterministic); pairs with p-value < ``max_pvalue``, a positive OLS hedge ratio and an AR(1)
spread half-life <= ``max_half_life`` are kept, best p-values first, at most
``max_pairs_per_symbol`` per symbol. Hedge ratio: OLS of log A on log B with a constant.

At D the spread ``s = log A - alpha - beta log B`` gives ``z = (s - mean) / sd`` (formation-window
moments); ``|z| > z_stop`` marks the pair broken (skipped). The expected spread change over ``h``
sessions under the fitted AR(1) is ``-(1 - phi^h) (s - mean)``; it is split between the legs as
``mu_A = shrink * E[ds] / (1 + beta)`` and ``mu_B = -mu_A`` (so the long leg is the cheap one:
signal = -z for A, +z for B). A symbol in several pairs averages its legs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import polars as pl
from statsmodels.tsa.stattools import coint

from mqf_pipeline.agents.base import AgentData, reason_json
from mqf_pipeline.agents.valuation import daily_vol, empty_signals, finish, universe_sectors

#: Weekday from which refit blocks are counted (a Monday).
SCHEDULE_ANCHOR = dt.date(2000, 1, 3)

_PAIR_SCHEMA: dict[str, pl.DataType] = {
    "refit_date": pl.Date(),
    "leg_a": pl.String(),
    "leg_b": pl.String(),
    "sector": pl.String(),
    "alpha": pl.Float64(),
    "beta": pl.Float64(),
    "spread_mean": pl.Float64(),
    "spread_sd": pl.Float64(),
    "phi": pl.Float64(),
    "half_life": pl.Float64(),
    "pvalue": pl.Float64(),
    "corr": pl.Float64(),
}


def refit_schedule(sessions: Sequence[dt.date] | pl.Series, dates: Sequence[dt.date], every: int) -> pl.DataFrame:
    """(date, refit_date) for each of ``dates`` found in ``sessions``: the first session of its block of
    ``every`` weekdays counted from :data:`SCHEDULE_ANCHOR`."""
    sess = pl.Series("date", list(sessions), dtype=pl.Date).unique().sort()
    if len(sess) == 0:
        return pl.DataFrame(schema={"date": pl.Date, "refit_date": pl.Date})
    anchor = np.datetime64(SCHEDULE_ANCHOR, "D")
    block = np.busday_count(anchor, sess.to_numpy().astype("datetime64[D]")) // every
    frame = pl.DataFrame({"date": sess, "block": block}).with_columns(refit_date=pl.col("date").min().over("block"))
    wanted = pl.Series("d", list(dates), dtype=pl.Date)
    return frame.filter(pl.col("date").is_in(wanted.implode())).select("date", "refit_date").sort("date")


def _ar1(e: np.ndarray) -> float:
    """Least-squares AR(1) coefficient of a demeaned series (no intercept)."""
    x, y = e[:-1], e[1:]
    den = float(x @ x)
    return float(x @ y) / den if den > 0 else math.nan


def _df_tstat(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Dickey-Fuller t-statistics (no lags, no constant) of the OLS residuals of each column of ``y`` on
    the same column of ``x`` with a constant: a cheap vectorised screen before ``coint``."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    var = np.einsum("tp,tp->p", xc, xc)
    beta = np.divide(np.einsum("tp,tp->p", xc, yc), var, out=np.zeros_like(var), where=var > 0)
    e = yc - beta * xc
    lag, de = e[:-1], np.diff(e, axis=0)
    ss = np.einsum("tp,tp->p", lag, lag)
    gamma = np.divide(np.einsum("tp,tp->p", lag, de), ss, out=np.zeros_like(ss), where=ss > 0)
    resid = de - gamma * lag
    s2 = np.einsum("tp,tp->p", resid, resid) / max(de.shape[0] - 1, 1)
    se = np.sqrt(np.divide(s2, ss, out=np.full_like(ss, np.inf), where=ss > 0))
    return np.divide(gamma, se, out=np.zeros_like(gamma), where=se > 0)


def _sector_map(sectors: pl.DataFrame, symbols: Sequence[str]) -> dict[str, str]:
    """symbol -> sector from the universe's (symbol, sector) rows; every symbol in "UNKNOWN" without them."""
    if sectors.height:
        return dict(zip(sectors.get_column("symbol").to_list(), sectors.get_column("sector").to_list(), strict=True))
    return dict.fromkeys(symbols, "UNKNOWN")


def _candidate_pairs(
    rets: np.ndarray, symbols: Sequence[str], sector_of: Mapping[str, str], n_candidates: int, min_corr: float
) -> dict[tuple[int, int], float]:
    """(a, b) column pairs (a < b) -> return correlation: within each sector, every symbol's ``n_candidates``
    most correlated peers (daily log returns ``rets``, T x N) with correlation >= ``min_corr``."""
    corr_of: dict[tuple[int, int], float] = {}
    groups: dict[str, list[int]] = {}
    for k, sym in enumerate(symbols):
        if sym in sector_of:
            groups.setdefault(sector_of[sym], []).append(k)
    for members in groups.values():
        if len(members) < 2:
            continue
        idx = np.array(members)
        r = rets[:, idx]
        sd = r.std(axis=0)
        ok = sd > 0
        c = np.full((idx.size, idx.size), -np.inf)
        if ok.sum() >= 2:
            sub = np.corrcoef(r[:, ok], rowvar=False)
            c[np.ix_(ok, ok)] = sub
        np.fill_diagonal(c, -np.inf)
        for i in range(idx.size):
            order = np.argsort(-c[i], kind="stable")[:n_candidates]
            for j in order:
                if c[i, j] >= min_corr:
                    a, b = sorted((int(idx[i]), int(idx[j])))
                    corr_of[(a, b)] = float(c[i, j])
    return corr_of


def _cap_per_symbol(rows: list[tuple], max_pairs: int) -> list[tuple]:
    """Pair rows (leg_a, leg_b, ..., pvalue at index 9, ...) by p-value (then legs), keeping a pair only
    while both legs are in fewer than ``max_pairs`` kept pairs."""
    rows = sorted(rows, key=lambda r: (r[9], r[0], r[1]))
    used: dict[str, int] = {}
    kept = []
    for row in rows:
        if used.get(row[0], 0) < max_pairs and used.get(row[1], 0) < max_pairs:
            kept.append(row)
            used[row[0]] = used.get(row[0], 0) + 1
            used[row[1]] = used.get(row[1], 0) + 1
    return kept


class StatArbAgent:
    """Cointegrated within-sector pairs, spread z-score mean reversion; horizon 5 sessions."""

    name: ClassVar[str] = "stat_arb"

    def __init__(
        self,
        *,
        formation_sessions: int = 252,
        refit_every: int = 63,
        n_candidates: int = 5,
        min_corr: float = 0.3,
        max_pvalue: float = 0.05,
        coint_maxlag: int = 1,
        screen_tstat: float = -2.5,
        max_half_life: float = 42.0,
        max_pairs_per_symbol: int = 3,
        z_stop: float = 4.0,
        shrink: float = 0.5,
        signal_scale: float = 0.25,
        vol_lookback: int = 63,
        horizon_days: int = 5,
    ) -> None:
        """Windows in sessions (``refit_every`` in weekdays); ``shrink`` discounts the fitted reversion
        (pairs found by a search overfit); ``signal_scale``: mu/sigma giving signal tanh(1); ``screen_tstat``:
        a pair is tested with ``coint`` only if its plain Dickey-Fuller t-statistic on the OLS residual is
        below this (a lenient, vectorised pre-screen: the 10% Engle-Granger critical value is about -3.1)."""
        if formation_sessions < 30 or refit_every < 1 or n_candidates < 1 or horizon_days < 1:
            raise ValueError("formation_sessions >= 30, refit_every >= 1, n_candidates >= 1, horizon_days >= 1")
        self.formation_sessions = formation_sessions
        self.refit_every = refit_every
        self.n_candidates = n_candidates
        self.min_corr = min_corr
        self.max_pvalue = max_pvalue
        self.coint_maxlag = coint_maxlag
        self.screen_tstat = screen_tstat
        self.max_half_life = max_half_life
        self.max_pairs_per_symbol = max_pairs_per_symbol
        self.z_stop = z_stop
        self.shrink = shrink
        self.signal_scale = signal_scale
        self.vol_lookback = vol_lookback
        self.horizon_days = horizon_days

    # ---- fitting -----------------------------------------------------------------------------
    def _formation_panel(self, data: AgentData, refit_date: dt.date) -> tuple[np.ndarray, list[str]] | None:
        """(log prices T x N, symbols) over the formation window strictly before ``refit_date``."""
        bars = data.bars.filter(pl.col("date") < refit_date)
        sessions = bars.get_column("date").unique().sort()
        if len(sessions) < self.formation_sessions:
            return None
        window = sessions.tail(self.formation_sessions)
        panel = (
            bars.filter(pl.col("date").is_in(window.implode()), pl.col("adjusted_close") > 0)
            .select("date", "symbol", logp=pl.col("adjusted_close").log())
            .pivot(on="symbol", index="date", values="logp", sort_columns=True)
            .sort("date")
        )
        if panel.height < self.formation_sessions:
            return None
        values = panel.drop("date")
        complete = [c for c in values.columns if values.get_column(c).null_count() == 0]
        if len(complete) < 2:
            return None
        return values.select(complete).to_numpy().astype(np.float64), complete

    def fit_pairs(self, data: AgentData, refit_date: dt.date) -> pl.DataFrame:
        """Pairs selected at ``refit_date`` from bars dated strictly before it (see the module docstring)."""
        panel = self._formation_panel(data, refit_date)
        if panel is None:
            return pl.DataFrame(schema=_PAIR_SCHEMA)
        logp, symbols = panel
        sector_of = _sector_map(universe_sectors(data.universe), symbols)
        corr_of = _candidate_pairs(np.diff(logp, axis=0), symbols, sector_of, self.n_candidates, self.min_corr)
        pairs = sorted(corr_of)
        if not pairs:
            return pl.DataFrame(schema=_PAIR_SCHEMA)
        ia = np.array([a for a, _ in pairs])
        ib = np.array([b for _, b in pairs])
        screen = _df_tstat(logp[:, ia], logp[:, ib]) < self.screen_tstat
        rows = []
        for a, b in (p for p, ok in zip(pairs, screen, strict=True) if ok):
            fit = self._test_pair(logp[:, a], logp[:, b])
            if fit is not None:
                rows.append((symbols[a], symbols[b], sector_of.get(symbols[a], "UNKNOWN"), *fit, corr_of[(a, b)]))
        kept = _cap_per_symbol(rows, self.max_pairs_per_symbol)
        return pl.DataFrame([(refit_date, *row) for row in kept], schema=_PAIR_SCHEMA, orient="row")

    def _test_pair(self, y: np.ndarray, x: np.ndarray) -> tuple[float, float, float, float, float, float, float] | None:
        """(alpha, beta, spread mean, spread sd, phi, half-life in sessions, coint p-value) of log prices ``y`` on
        ``x`` when the pair is cointegrated (p < max_pvalue), positively hedged and mean-reverting within
        ``max_half_life`` sessions; None otherwise."""
        pvalue = float(coint(y, x, trend="c", maxlag=self.coint_maxlag, autolag=None)[1])
        if not pvalue < self.max_pvalue:
            return None
        beta, alpha = np.polyfit(x, y, 1)
        if not beta > 0:
            return None
        e = y - alpha - beta * x
        mean, sd = float(e.mean()), float(e.std(ddof=1))
        phi = _ar1(e - mean)
        if not (sd > 0 and 0 < phi < 1):
            return None
        half_life = math.log(0.5) / math.log(phi)
        if half_life > self.max_half_life:
            return None
        return float(alpha), float(beta), mean, sd, phi, half_life, pvalue

    # ---- signals -----------------------------------------------------------------------------
    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for the requested dates: legs of the active pairs whose spread is not broken."""
        if len(dates) == 0 or data.bars.height == 0:
            return empty_signals()
        last = max(dates)
        bars = data.bars.filter(pl.col("date") <= last)
        schedule = refit_schedule(bars.get_column("date").unique(), dates, self.refit_every)
        if schedule.height == 0:
            return empty_signals()
        pairs = pl.concat([self.fit_pairs(data, r) for r in schedule.get_column("refit_date").unique().sort()])
        if pairs.height == 0:
            return empty_signals()
        prices = bars.filter(pl.col("date").is_in(schedule.get_column("date").implode()), pl.col("adjusted_close") > 0)
        prices = prices.select("date", "symbol", logp=pl.col("adjusted_close").log())
        h = self.horizon_days
        spread = (
            schedule.join(pairs, on="refit_date", how="inner")
            .join(prices.rename({"symbol": "leg_a", "logp": "logp_a"}), on=["date", "leg_a"], how="inner")
            .join(prices.rename({"symbol": "leg_b", "logp": "logp_b"}), on=["date", "leg_b"], how="inner")
            .with_columns(
                z=(pl.col("logp_a") - pl.col("alpha") - pl.col("beta") * pl.col("logp_b") - pl.col("spread_mean"))
                / pl.col("spread_sd")
            )
            .filter(pl.col("z").abs() <= self.z_stop)
            .with_columns(
                mu_a=-self.shrink
                * (1.0 - pl.col("phi") ** h)
                * pl.col("z")
                * pl.col("spread_sd")
                / (1.0 + pl.col("beta")),
                quality=(1.0 - pl.col("pvalue") / self.max_pvalue).clip(0.0, 1.0),
            )
        )
        legs = pl.concat(
            [
                spread.select("date", symbol="leg_a", mu_leg="mu_a", z_leg=-pl.col("z"), quality="quality"),
                spread.select("date", symbol="leg_b", mu_leg=-pl.col("mu_a"), z_leg=pl.col("z"), quality="quality"),
            ]
        )
        per_symbol = legs.group_by("date", "symbol").agg(
            mu=pl.col("mu_leg").mean(),
            z_mean=pl.col("z_leg").mean(),
            quality=pl.col("quality").mean(),
            n_pairs=pl.len(),
        )
        vol = daily_vol(bars, self.vol_lookback)
        codes = [
            pl.when(pl.col("mu") > 0).then(pl.lit("PAIR_LONG_LEG")).otherwise(pl.lit("PAIR_SHORT_LEG")),
            pl.when(pl.col("z_mean").abs() >= 2.0)
            .then(pl.lit("PAIR_SPREAD_WIDE"))
            .when(pl.col("z_mean").abs() < 0.5)
            .then(pl.lit("PAIR_SPREAD_NEAR_MEAN")),
            pl.when(pl.col("n_pairs") > 1).then(pl.lit("PAIR_MULTIPLE")),
        ]
        out = (
            per_symbol.join(vol, on=["date", "symbol"], how="inner")
            .filter(pl.col("vol_daily").is_not_null())
            .with_columns(sigma=pl.col("vol_daily") * math.sqrt(h))
            .with_columns(
                signal=(pl.col("mu") / (pl.col("sigma") * self.signal_scale)).tanh(),
                confidence=(pl.col("quality") * (pl.col("z_mean").abs() / 2.0).clip(0.0, 1.0)).clip(0.0, 1.0),
                reason_codes=reason_json(codes),
            )
        )
        return finish(out, self.name, h)
