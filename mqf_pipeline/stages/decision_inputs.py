"""What a range of decision cycles reads, loaded once: signals, eligibility, quality, regimes, ATR,
closes and returns, sectors, learned agent weights and each provider's recent confidence."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.risk.book import daily_returns_wide
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.stages.held_book import Held, held_books
from mqf_pipeline.storage.lake import Lake

#: Sessions behind a provider's confidence (data_quality outcomes of its bars).
PROVIDER_WINDOW = 21


@dataclass(frozen=True)
class CycleInputs:
    """Everything the cycles of a range read, loaded once (all dated at or before the last session)."""

    days: tuple[dt.date, ...]
    signals: dict[dt.date, pl.DataFrame]  # model_outputs rows by session (split once, not filtered per day)
    eligibility: pl.DataFrame
    quality: pl.DataFrame
    regimes: pl.DataFrame
    atr: pl.DataFrame
    closes: pl.DataFrame
    returns: pl.DataFrame  # wide: date, <symbol>... simple returns of adjusted closes
    sectors: dict[str, str]
    learned_weights: pl.DataFrame
    provider_confidence: pl.DataFrame  # date, provider, provider_confidence
    static_weights: dict[str, float]  # the preset's agent weights (used until learned ones are stored)
    fills: pl.DataFrame  # execution_feedback up to the last session (the slippage feedback's actions)
    held: dict[dt.date, Held]  # the positions booked at each session's close, where execution has run

    def agent_weights_for(self, day: dt.date) -> tuple[dict[str, float], str]:
        """The ensemble's agent weights for ``day`` and where they come from (:func:`agent_weights_for`)."""
        return agent_weights_for(day, self, self.static_weights)


def load_inputs(
    lake: Lake, var_window: int, days: Sequence[dt.date], universe: pl.DataFrame, static_weights: dict[str, float]
) -> CycleInputs:
    """Read the lake once for ``days`` (returns from ``var_window`` sessions before the first day)."""
    days = sorted(days)
    first, last = days[0], days[-1]
    back = calendar.session_offset(first, -(var_window + 1))
    bars = usable_bars(lake, back, last).select("date", "symbol", "close", "adjusted_close")
    returns = daily_returns_wide(bars)
    outputs = lake.read_range("model_outputs", first, last)
    span = [p for p in lake.partitions("features") if first.isoformat() <= p <= last.isoformat()]
    # only ATR is needed: filter in the scan (one feature of 31) instead of reading every feature row
    atr = lake.query(
        "features",
        span,
        lambda f: f.filter(pl.col("feature") == "atr_14").select("date", "symbol", pl.col("value").alias("atr")),
    )
    quality = lake.read_range("data_quality", calendar.session_offset(first, -PROVIDER_WINDOW), last)
    last_key = last.isoformat()
    stored_weights = lake.partitions("agent_weights")
    learned = lake.read("agent_weights", stored_weights) if stored_weights else pl.DataFrame()
    return CycleInputs(
        days=tuple(days),
        signals={key[0]: part for key, part in outputs.partition_by("date", as_dict=True).items()},
        eligibility=lake.read_range("trading_eligibility", first, last),
        quality=quality.filter(pl.col("date") >= first).select("date", "symbol", "quality_score", "provider"),
        regimes=lake.read_range("regime_history", first, last),
        atr=atr,
        closes=bars.filter(pl.col("date") >= first).select("date", "symbol", "close", "adjusted_close"),
        returns=returns,
        sectors=dict(zip(universe["symbol"].to_list(), universe["sector"].to_list(), strict=True)),
        learned_weights=learned,
        provider_confidence=provider_confidence(quality),
        static_weights=dict(static_weights),
        fills=lake.read("execution_feedback", [p for p in lake.partitions("execution_feedback") if p <= last_key]),
        held=held_books(lake, first, last),
    )


def provider_confidence(quality: pl.DataFrame, window: int = PROVIDER_WINDOW) -> pl.DataFrame:
    """Per (date, provider): posterior mean (1 + accepted) / (2 + accepted + rejected) of the provider's
    bars over the ``window`` sessions ending at the date (data_quality rows; Beta(1, 1) prior).

    Point in time and deterministic: how trustworthy the provider's data has been lately, at D's close.
    """
    if quality.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "provider": pl.String, "provider_confidence": pl.Float64})
    daily = (
        quality.filter(pl.col("provider").is_not_null())
        .group_by("date", "provider")
        .agg(acc=(pl.col("status") == "ACCEPT").sum(), rej=(pl.col("status") != "ACCEPT").sum())
        .sort("provider", "date")
    )
    return daily.with_columns(
        acc=pl.col("acc").rolling_sum(window, min_samples=1).over("provider"),
        rej=pl.col("rej").rolling_sum(window, min_samples=1).over("provider"),
    ).select(
        "date",
        "provider",
        ((1 + pl.col("acc")) / (2 + pl.col("acc") + pl.col("rej"))).alias("provider_confidence"),
    )


def agent_weights_for(day: dt.date, inputs: CycleInputs, static: dict[str, float]) -> tuple[dict[str, float], str]:
    """Learned weights stored up to ``day`` (newest date: those of ``day`` are learned from the outcomes known at
    its close, the meta-brain's decision time), else the preset's static weights."""
    learned = inputs.learned_weights
    if learned.height:
        prior = learned.filter(pl.col("date") <= day)
        if prior.height:
            newest = prior.filter(pl.col("date") == prior["date"].max())
            weights = {r["agent_name"]: float(r["weight"]) for r in newest.iter_rows(named=True)}
            weights = {a: w for a, w in weights.items() if a in static}
            if sum(weights.values()) > 0:
                return weights, f"learned ({newest['date'][0]})"
    return dict(static), "static (preset)"
