"""Machine-learning agent: a gradient-boosted regression of forward excess returns, fitted walk-forward.

Features per (date, symbol), all known at the date's close and each turned into a cross-sectional
rank score (mean 0, sd 1; missing stays missing, which the trees handle natively):

* from bars (adjusted close, volume): log returns over 1/5/21/63 sessions, 12-1 momentum (log
  return from D-252 to D-21), realised volatility over 21/63 sessions, volume ratio (5- over
  63-session mean volume), Wilder RSI(14) and the distance from the 252-session high;
* book/price and earnings/price from :class:`mqf_pipeline.agents.valuation.ValuationAgent` when
  fundamentals are given, and the decayed news score from
  :class:`mqf_pipeline.agents.sentiment.SentimentAgent` (0 without news) when headlines are given.

Target: the ``horizon_days``-session forward simple return minus its cross-sectional mean (over
the symbols whose label ends on the same close),
divided by the symbol's 63-session daily volatility and clipped to +-``target_clip``. A row's
label ends at the close ``horizon_days`` sessions later (``label_end``).

Walk-forward: refit dates follow the weekday-block schedule of
:func:`mqf_pipeline.agents.stat_arb.refit_schedule` (``refit_every`` weekdays). The model used
for every date of a block is trained at the block's refit date R on rows dated within the
``train_sessions`` sessions before R whose label ends strictly before R, so no label that
finishes at or after R (let alone after a decision date D >= R) reaches training.

Outputs (horizon ``horizon_days``, default 1): ``mu = prediction x daily vol`` (excess return over
the horizon, decimal), ``sigma = daily vol x sqrt(h) x residual ratio`` (training residual sd over
target sd), ``confidence`` = out-of-sample rank IC of the previous block's model on the labels
that completed before R, divided by ``ic_for_full_confidence`` and clipped to [0, 1] (0 when
there is no previous model), ``signal = tanh(mu / sigma / signal_scale)``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from mqf_pipeline.agents.base import AgentData, reason_json
from mqf_pipeline.agents.sentiment import SentimentAgent
from mqf_pipeline.agents.stat_arb import refit_schedule
from mqf_pipeline.agents.valuation import ValuationAgent, empty_signals, finish, uniform_score, universe_sectors

PRICE_FEATURES: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "ret_21",
    "ret_63",
    "mom_12_1",
    "vol_21",
    "vol_63",
    "volume_ratio",
    "rsi_14",
    "dist_high",
)
FUNDAMENTAL_FEATURES: tuple[str, ...] = ("book_to_price", "earnings_yield")
NEWS_FEATURES: tuple[str, ...] = ("news_score",)


def price_features(bars: pl.DataFrame) -> pl.DataFrame:
    """(date, symbol, vol_daily, <PRICE_FEATURES>) raw (unranked) from bars; rows with a positive adjusted close."""
    adj = pl.col("adjusted_close")
    logp = adj.log()
    r = pl.col("r")
    gain = r.clip(lower_bound=0.0).ewm_mean(alpha=1 / 14, adjust=False, min_samples=14)
    loss = (-r).clip(lower_bound=0.0).ewm_mean(alpha=1 / 14, adjust=False, min_samples=14)
    vol = pl.col("volume").cast(pl.Float64)
    return (
        bars.select("date", "symbol", "adjusted_close", "volume")
        .filter(adj.is_finite() & (adj > 0))
        .sort("symbol", "date")
        .with_columns(r=logp.diff().over("symbol"))
        .with_columns(
            ret_1=r,
            ret_5=(logp - logp.shift(5)).over("symbol"),
            ret_21=(logp - logp.shift(21)).over("symbol"),
            ret_63=(logp - logp.shift(63)).over("symbol"),
            mom_12_1=(logp.shift(21) - logp.shift(252)).over("symbol"),
            vol_21=r.rolling_std(21, min_samples=15).over("symbol"),
            vol_63=r.rolling_std(63, min_samples=40).over("symbol"),
            volume_ratio=(vol.rolling_mean(5, min_samples=3) / vol.rolling_mean(63, min_samples=40)).over("symbol"),
            rsi_14=(100.0 * gain / (gain + loss)).over("symbol"),
            dist_high=(adj / adj.rolling_max(252, min_samples=63) - 1.0).over("symbol"),
        )
        .with_columns(vol_daily=pl.col("vol_63").clip(lower_bound=1e-4))
        .select("date", "symbol", "vol_daily", *PRICE_FEATURES)
    )


@dataclass(frozen=True)
class FittedModel:
    """A model fitted at ``refit_date`` (rows' labels all ended before it)."""

    refit_date: dt.date
    model: HistGradientBoostingRegressor
    features: tuple[str, ...]
    resid_ratio: float  # training residual sd / target sd, in (0, 1]
    n_train: int
    last_label_end: dt.date


class MLAgent:
    """Walk-forward ``HistGradientBoostingRegressor`` on rank-scored features; horizon ``horizon_days``."""

    name: ClassVar[str] = "ml"

    def __init__(
        self,
        *,
        horizon_days: int = 1,
        train_sessions: int = 252,
        refit_every: int = 21,
        min_train_rows: int = 2000,
        target_clip: float = 5.0,
        max_iter: int = 150,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 400,
        l2_regularization: float = 1.0,
        ic_for_full_confidence: float = 0.05,
        signal_scale: float = 0.05,
        use_fundamentals: bool = True,
        use_news: bool = True,
        seed: int = 0,
        n_threads: int = 1,
    ) -> None:
        """Windows in sessions (``refit_every`` in weekdays); tree parameters go to scikit-learn
        (no early stopping, so a fit is a deterministic function of its rows and ``seed``).
        ``n_threads`` caps OpenMP threads in fit/predict: on busy shared cores the default pool
        oversubscribes and a fit runs ~30x slower."""
        if horizon_days < 1 or train_sessions < 21 or refit_every < 1:
            raise ValueError("horizon_days >= 1, train_sessions >= 21 and refit_every >= 1 are required")
        self.horizon_days = horizon_days
        self.train_sessions = train_sessions
        self.refit_every = refit_every
        self.min_train_rows = min_train_rows
        self.target_clip = target_clip
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.ic_for_full_confidence = ic_for_full_confidence
        self.signal_scale = signal_scale
        self.use_fundamentals = use_fundamentals
        self.use_news = use_news
        self.seed = seed
        self.n_threads = n_threads

    # ---- design matrix -----------------------------------------------------------------------
    def feature_names(self, data: AgentData) -> tuple[str, ...]:
        """Features used with this data (fundamental and news features only when those frames have rows)."""
        names = list(PRICE_FEATURES)
        if self.use_fundamentals and data.fundamentals.height:
            names += FUNDAMENTAL_FEATURES
        if self.use_news and data.headlines.height:
            names += NEWS_FEATURES
        return tuple(names)

    def design(self, data: AgentData, until: dt.date, since: dt.date | None = None) -> pl.DataFrame:
        """(date, symbol, vol_daily, <features rank-scored per date>, target, label_end) for dates in
        [since, until]; ``target`` and ``label_end`` are null where the label is not complete in the bars."""
        bars = data.bars.filter(pl.col("date") <= until)
        sectors = universe_sectors(data.universe)
        if sectors.height:
            bars = bars.join(sectors.select("symbol"), on="symbol", how="semi")
        h = self.horizon_days
        adj = pl.col("adjusted_close")
        labels = (
            bars.select("date", "symbol", "adjusted_close")
            .filter(adj.is_finite() & (adj > 0))
            .sort("symbol", "date")
            .with_columns(
                fwd=(adj.shift(-h) / adj - 1.0).over("symbol"), label_end=pl.col("date").shift(-h).over("symbol")
            )
            .select("date", "symbol", "fwd", "label_end")
        )
        frame = price_features(bars).join(labels, on=["date", "symbol"], how="left")
        if since is not None:
            frame = frame.filter(pl.col("date") >= since)
        frame = frame.filter(pl.col("vol_63").is_not_null())
        dates = frame.get_column("date").unique().sort().to_list()
        names = self.feature_names(data)
        if FUNDAMENTAL_FEATURES[0] in names and dates:
            ratios = ValuationAgent().ratios(data.until(until), dates)
            frame = frame.join(
                ratios.select("date", "symbol", *FUNDAMENTAL_FEATURES), on=["date", "symbol"], how="left"
            )
        if NEWS_FEATURES[0] in names and dates:
            news = SentimentAgent().scores(data.until(until), dates).select("date", "symbol", news_score="score")
            frame = frame.join(news, on=["date", "symbol"], how="left").with_columns(
                pl.col("news_score").fill_null(0.0)
            )
        # with no scorable date the optional joins above were skipped: keep the columns, empty
        frame = frame.with_columns([pl.lit(None, dtype=pl.Float64).alias(n) for n in names if n not in frame.columns])
        # demean among labels ending on the same close, so no label reaches past its own end
        excess = pl.col("fwd") - pl.col("fwd").mean().over("date", "label_end")
        return (
            frame.with_columns([uniform_score(n).alias(n) for n in names])
            .with_columns(
                target=(excess / pl.col("vol_daily")).clip(-self.target_clip, self.target_clip),
            )
            .select("date", "symbol", "vol_daily", *names, "target", "label_end")
            .sort("date", "symbol")
        )

    # ---- fitting -----------------------------------------------------------------------------
    def training_rows(self, design: pl.DataFrame, refit_date: dt.date) -> pl.DataFrame:
        """Rows of ``design`` trained on at ``refit_date``: labels ending strictly before it, dated within
        the ``train_sessions`` sessions before it."""
        before = design.filter(pl.col("date") < refit_date).get_column("date").unique().sort()
        if len(before) == 0:
            return design.clear()
        start = before.tail(self.train_sessions)[0]
        return design.filter(
            pl.col("date") >= start, pl.col("label_end") < refit_date, pl.col("target").is_not_null()
        ).sort("date", "symbol")

    def train(self, design: pl.DataFrame, refit_date: dt.date, features: Sequence[str]) -> FittedModel | None:
        """The model for ``refit_date`` as a value (None if fewer than ``min_train_rows`` rows); the agent itself
        keeps no fitted state."""
        rows = self.training_rows(design, refit_date)
        if rows.height < self.min_train_rows:
            return None
        # a feature with fewer than two distinct finite values in the window (e.g. B/P before the first
        # reports are known) carries nothing and breaks sklearn's histogram binning: leave it out of this fit
        features = [f for f in features if rows.select(pl.col(f).filter(pl.col(f).is_finite()).n_unique()).item() >= 2]
        if not features:
            return None
        x = rows.select(features).to_numpy().astype(np.float64)
        y = rows.get_column("target").to_numpy().astype(np.float64)
        model = HistGradientBoostingRegressor(
            loss="squared_error",
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=self.seed,
        )
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            model.fit(x, y)
            fitted = model.predict(x)
        sd_y = float(y.std())
        resid = float((y - fitted).std())
        ratio = min(max(resid / sd_y, 0.5), 1.0) if sd_y > 0 else 1.0
        return FittedModel(refit_date, model, tuple(features), ratio, rows.height, rows.get_column("label_end").max())

    def predict(self, fitted: FittedModel, rows: pl.DataFrame) -> np.ndarray:
        """Model predictions (vol-scaled excess return over the horizon) for ``rows``."""
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            return fitted.model.predict(rows.select(fitted.features).to_numpy().astype(np.float64))

    def _oos_ic(self, design: pl.DataFrame, previous: FittedModel, refit_date: dt.date) -> float:
        """Mean daily rank IC of ``previous`` on rows dated in [previous.refit_date, refit_date) whose labels
        ended before ``refit_date`` (NaN when none)."""
        rows = design.filter(
            pl.col("date") >= previous.refit_date,
            pl.col("date") < refit_date,
            pl.col("label_end") < refit_date,
            pl.col("target").is_not_null(),
        )
        if rows.height == 0:
            return math.nan
        ic = (
            rows.with_columns(pred=pl.Series(self.predict(previous, rows)))
            .group_by("date")
            .agg(ic=pl.corr("pred", "target", method="spearman"))
            .get_column("ic")
            .drop_nans()
            .drop_nulls()
        )
        return float(ic.mean()) if len(ic) else math.nan

    # ---- signals -----------------------------------------------------------------------------
    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for the requested dates (symbols with 63 sessions of history, once a model exists)."""
        if len(dates) == 0 or data.bars.height == 0:
            return empty_signals()
        last = max(dates)
        sessions = data.bars.filter(pl.col("date") <= last).get_column("date").unique().sort()
        schedule = refit_schedule(sessions, dates, self.refit_every)
        if schedule.height == 0:
            return empty_signals()
        refits = schedule.get_column("refit_date").unique().sort().to_list()
        # previous refit of each block (for the out-of-sample confidence)
        all_blocks = refit_schedule(sessions, sessions.to_list(), self.refit_every)
        block_starts = all_blocks.get_column("refit_date").unique().sort().to_list()
        prev_of = {b: block_starts[i - 1] for i, b in enumerate(block_starts) if i > 0}
        first_needed = min([prev_of.get(r, r) for r in refits])
        start_idx = max(int(sessions.search_sorted(first_needed)) - self.train_sessions - self.horizon_days - 1, 0)
        design = self.design(data, last, since=sessions[start_idx])
        features = self.feature_names(data)
        models: dict[dt.date, FittedModel | None] = {}

        def model_at(r: dt.date) -> FittedModel | None:
            if r not in models:
                models[r] = self.train(design, r, features)
            return models[r]

        frames = []
        h = self.horizon_days
        for r in refits:
            fitted = model_at(r)
            if fitted is None:
                continue
            prev = model_at(prev_of[r]) if r in prev_of else None
            ic = self._oos_ic(design, prev, r) if prev is not None else math.nan
            conf = 0.0 if math.isnan(ic) else min(max(ic / self.ic_for_full_confidence, 0.0), 1.0)
            block_dates = schedule.filter(pl.col("refit_date") == r).get_column("date")
            rows = design.filter(pl.col("date").is_in(block_dates.implode()))
            if rows.height == 0:
                continue
            frames.append(
                rows.select("date", "symbol", "vol_daily").with_columns(
                    pred=pl.Series(self.predict(fitted, rows)),
                    confidence=pl.lit(conf),
                    oos_ic=pl.lit(ic, pl.Float64),
                    resid_ratio=pl.lit(fitted.resid_ratio),
                    refit_date=pl.lit(r, pl.Date),
                )
            )
        if not frames:
            return empty_signals()
        codes = [
            pl.when(pl.col("mu") > 0).then(pl.lit("ML_LONG")).otherwise(pl.lit("ML_SHORT")),
            pl.when(pl.col("signal").abs() > 0.5).then(pl.lit("ML_STRONG")),
            pl.when(pl.col("oos_ic").is_nan())
            .then(pl.lit("ML_NO_OOS_HISTORY"))
            .when(pl.col("confidence") < 0.2)
            .then(pl.lit("ML_OOS_IC_LOW")),
            pl.format("ML_REFIT_{}", pl.col("refit_date").dt.strftime("%Y%m%d")),
        ]
        out = (
            pl.concat(frames)
            .with_columns(
                mu=pl.col("pred") * pl.col("vol_daily"),
                sigma=pl.col("vol_daily") * math.sqrt(h) * pl.col("resid_ratio"),
            )
            .with_columns(signal=(pl.col("mu") / pl.col("sigma") / self.signal_scale).tanh())
            .with_columns(reason_codes=reason_json(codes))
        )
        return finish(out, self.name, h)
