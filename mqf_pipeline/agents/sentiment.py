"""News-sentiment agent: VADER compound score of each headline, aggregated and decayed per symbol.

Headlines come from ``AgentData.headlines`` (date, symbol, headline). In paper/live mode they are
Alpaca's news API headlines (fetched by the ingestion layer, not here), dated by the session
whose close follows publication; in simulated mode they come from
:meth:`mqf_pipeline.market.sim.MarketSimulator.headlines`, whose tone predicts the next
session's return weakly. A headline dated on a non-session day counts from the next session.

For decision date D the agent uses headlines dated <= D only: per (session, symbol) it takes the
mean VADER compound (in [-1, 1]) and the headline count, then sums the daily means over the last
``lookback_sessions`` sessions with weight ``0.5 ** (age / half_life_sessions)`` (age 0 = D).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

import polars as pl
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from mqf_pipeline.agents.base import AgentData, reason_json
from mqf_pipeline.agents.valuation import daily_vol, empty_signals, finish, universe_sectors


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    """The VADER analyzer (its lexicon load costs ~0.1 s; built once per process)."""
    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=262_144)
def vader_compound(text: str) -> float:
    """VADER compound score of one text, in [-1, 1] (cached: identical headlines are scored once)."""
    return float(_analyzer().polarity_scores(text)["compound"])


def score_headlines(headlines: pl.DataFrame) -> pl.DataFrame:
    """(date, symbol, compound): one VADER score per headline; each distinct text is scored once."""
    if headlines.height == 0 or "headline" not in headlines.columns:
        return pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "compound": pl.Float64})
    texts = headlines.select(pl.col("headline").fill_null("")).unique(maintain_order=True)
    lookup = texts.with_columns(
        compound=pl.Series([vader_compound(t) for t in texts.get_column("headline").to_list()], dtype=pl.Float64)
    )
    return (
        headlines.select("date", "symbol", pl.col("headline").fill_null(""))
        .join(lookup, on="headline", how="left")
        .select("date", "symbol", "compound")
    )


def daily_sentiment(headlines: pl.DataFrame, sessions: pl.Series) -> pl.DataFrame:
    """(session, date, symbol, mean_compound, n_headlines) per session and symbol.

    ``sessions`` (sorted dates) defines the session grid: a headline maps to the first session on
    or after its date (``session`` is that session's 0-based position, ``date`` the session date);
    headlines after the last session are dropped.
    """
    scored = score_headlines(headlines)
    grid = (
        pl.DataFrame({"date": sessions.cast(pl.Date)})
        .with_row_index("session")
        .with_columns(pl.col("session").cast(pl.Int64), key=pl.col("date"))
    )
    return (
        scored.sort("date")
        .join_asof(
            grid.select("key", "session", pl.col("date").alias("session_date")),
            left_on="date",
            right_on="key",
            strategy="forward",
        )
        .drop_nulls("session")
        .group_by("session", "session_date", "symbol")
        .agg(mean_compound=pl.col("compound").mean(), n_headlines=pl.len().cast(pl.Int64))
        .rename({"session_date": "date"})
        .sort("session", "symbol")
    )


def decayed_sentiment(daily: pl.DataFrame, sessions: pl.Series, half_life: float, lookback: int) -> pl.DataFrame:
    """(date, symbol, score, weight, n_recent, n_today): for every session D and symbol with news in the
    last ``lookback`` sessions, ``score = sum_k w_k * mean_compound_k`` and ``weight = sum_k w_k *
    n_headlines_k`` with ``w_k = 0.5 ** (age_k / half_life)``; ``n_recent``/``n_today`` count headlines."""
    ages = pl.DataFrame({"age": list(range(lookback))}, schema={"age": pl.Int64})
    grid = (
        pl.DataFrame({"date": sessions.cast(pl.Date)})
        .with_row_index("target")
        .with_columns(pl.col("target").cast(pl.Int64))
    )
    w = pl.lit(0.5) ** (pl.col("age").cast(pl.Float64) / half_life)
    return (
        daily.select("session", "symbol", "mean_compound", "n_headlines")
        .join(ages, how="cross")
        .with_columns(target=pl.col("session") + pl.col("age"), w=w)
        .join(grid, on="target", how="inner")
        .group_by("date", "symbol")
        .agg(
            score=(pl.col("w") * pl.col("mean_compound")).sum(),
            weight=(pl.col("w") * pl.col("n_headlines")).sum(),
            n_recent=pl.col("n_headlines").sum(),
            n_today=pl.col("n_headlines").filter(pl.col("age") == 0).sum(),
        )
        .sort("date", "symbol")
    )


class SentimentAgent:
    """Decayed VADER news sentiment; horizon 1 session.

    ``mu = ic * clip(score / score_scale, -3, 3) * sigma`` (decimal next-session return relative to
    the cross-section), ``sigma`` the trailing daily volatility, ``signal = tanh(score / score_scale)``
    and ``confidence = 1 - exp(-weight / headlines_for_confidence)`` (more, fresher headlines: more
    trust). Rows exist for symbols with at least one headline in the lookback window and a volatility.
    """

    name: ClassVar[str] = "sentiment"

    def __init__(
        self,
        *,
        half_life_sessions: float = 0.5,
        lookback_sessions: int = 3,
        score_scale: float = 0.5,
        ic: float = 0.05,
        headlines_for_confidence: float = 2.0,
        vol_lookback: int = 63,
    ) -> None:
        """``half_life_sessions``: decay of a day's sentiment (sessions); ``lookback_sessions``: window
        (sessions, including D); ``score_scale``: score giving a one-sd view; ``ic``: assumed IC of the
        standardised score for next-session returns."""
        if half_life_sessions <= 0 or lookback_sessions < 1 or score_scale <= 0:
            raise ValueError("half_life_sessions and score_scale must be > 0 and lookback_sessions >= 1")
        self.half_life_sessions = half_life_sessions
        self.lookback_sessions = lookback_sessions
        self.score_scale = score_scale
        self.ic = ic
        self.headlines_for_confidence = headlines_for_confidence
        self.vol_lookback = vol_lookback
        self.horizon_days = 1

    def scores(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """(date, symbol, score, weight, n_recent, n_today) on the requested dates, from headlines dated <= date."""
        wanted = pl.Series("date", list(dates), dtype=pl.Date)
        if len(wanted) == 0 or data.headlines.height == 0 or data.bars.height == 0:
            return pl.DataFrame(
                schema={
                    "date": pl.Date,
                    "symbol": pl.String,
                    "score": pl.Float64,
                    "weight": pl.Float64,
                    "n_recent": pl.Int64,
                    "n_today": pl.Int64,
                }
            )
        last = wanted.max()
        sessions = data.bars.filter(pl.col("date") <= last).get_column("date").unique().sort()
        headlines = data.headlines.filter(pl.col("date") <= last)
        daily = daily_sentiment(headlines, sessions)
        out = decayed_sentiment(daily, sessions, self.half_life_sessions, self.lookback_sessions)
        return out.filter(pl.col("date").is_in(wanted.implode()))

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for the requested dates (see the class docstring)."""
        scores = self.scores(data, dates)
        if scores.height == 0:
            return empty_signals()
        sectors = universe_sectors(data.universe)
        if sectors.height:
            scores = scores.join(sectors.select("symbol"), on="symbol", how="semi")
        vol = daily_vol(data.bars.filter(pl.col("date") <= scores.get_column("date").max()), self.vol_lookback)
        x = pl.col("score") / self.score_scale
        codes = [
            pl.when(x > 0.5)
            .then(pl.lit("NEWS_POSITIVE"))
            .when(x < -0.5)
            .then(pl.lit("NEWS_NEGATIVE"))
            .otherwise(pl.lit("NEWS_NEUTRAL")),
            pl.when(pl.col("n_today") > 0).then(pl.lit("NEWS_TODAY")).otherwise(pl.lit("NEWS_RECENT")),
            pl.when(pl.col("n_recent") >= 3).then(pl.lit("NEWS_HEAVY_FLOW")),
        ]
        out = (
            scores.join(vol, on=["date", "symbol"], how="inner")
            .filter(pl.col("vol_daily").is_not_null())
            .with_columns(
                sigma=pl.col("vol_daily") * math.sqrt(self.horizon_days),
                signal=x.tanh(),
                confidence=(1.0 - (-pl.col("weight") / self.headlines_for_confidence).exp()).clip(0.0, 1.0),
                reason_codes=reason_json(codes),
            )
            .with_columns(mu=self.ic * x.clip(-3.0, 3.0) * pl.col("sigma"))
        )
        return finish(out, self.name, self.horizon_days)
