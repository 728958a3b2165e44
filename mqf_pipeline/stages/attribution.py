"""Factor attribution over the lake (seed 002 Part 1): per session D, the factor returns of D, every symbol's
exposures estimated on the 252 sessions up to D, and the attribution of D's return of the book held during
D (the positions booked at D-1's close) to the market, the styles, the sectors, alpha and the rest, with each
agent's share of each position's PnL.

Every row of D is computed from bars, fundamentals and positions dated at or before D (the look-back covers
the momentum and the regression windows: :func:`look_back_sessions`), so a session alone equals the same
session inside a backfill. The maths is :mod:`mqf_pipeline.attribution`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.attribution import (
    AttributionParams,
    ExposureParams,
    FactorParams,
    agent_pnl,
    attribute_day,
    factor_returns,
    returns_grid,
)
from mqf_pipeline.attribution.exposures import WideReturns, exposures_wide, wide_returns
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.storage.schema import row_schema

FACTORS, EXPOSURES = FactorParams(), ExposureParams()
ATTRIBUTION = AttributionParams()
EXPOSURE_COLUMNS = tuple(row_schema("security_factor_exposures"))


def look_back_sessions() -> int:
    """Sessions of bars before the first attributed one: momentum's 12-1 look-back feeds the factor returns,
    whose 252-session window feeds the exposures of the session before it (plus margin for the risk window)."""
    return FACTORS.momentum_lookback + EXPOSURES.window + 2


@dataclass(frozen=True)
class AttributionInputs:
    factors: pl.DataFrame  # date, factor_name, factor_return, t_stat, p_value, n_observations, r_squared
    returns: pl.DataFrame  # date, symbol, ret over the whole look-back
    wide: WideReturns  # the same, pivoted once (each session's regression window is a slice)
    positions: pl.DataFrame  # the positions table from the session before the first
    nav: dict[dt.date, float]  # account NAV per session
    signals: pl.DataFrame  # model_outputs: date, symbol, agent_name, mu_hat, sigma_hat, confidence (daily)
    weights: pl.DataFrame  # agent_weights: date, agent_name, agent_weight
    sectors: pl.DataFrame  # symbol, sector
    omitted: pl.DataFrame  # factor returns left out: date, factor, reason


@dataclass(frozen=True)
class AttributionDetail:
    """The session's attribution row (one-row frame, empty when nothing was held) and its diagnostics."""

    row: pl.DataFrame
    notes: pl.DataFrame
    factors: int


def session_exposures(inputs: AttributionInputs, day: dt.date) -> pl.DataFrame:
    """The exposures of ``day`` from the regression window ending there, computed over exactly that window's
    returns (so a session's betas do not depend on the run it is in)."""
    first = calendar.session_offset(day, -EXPOSURES.window)
    factors = inputs.factors.filter(pl.col("date").is_between(first, day))
    return exposures_wide(inputs.wide.window(first, day), factors, inputs.sectors, EXPOSURES, start=day)


class AttributionStage(Stage):
    """Factor returns, exposures, the book's attribution and each agent's PnL share, per session."""

    NAME: ClassVar[str] = "attribution"
    READS: ClassVar[tuple[str, ...]] = (
        "price_history",
        "data_quality",
        "fundamentals",
        "corporate_actions",
        "positions",
        "account",
        "model_outputs",
        "agent_weights",
    )
    WRITES: ClassVar[tuple[str, ...]] = (
        "factor_returns",
        "security_factor_exposures",
        "portfolio_attribution",
        "agent_pnl",
    )
    CODE_VERSION: ClassVar[str] = "1"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> AttributionInputs:
        first, last = min(days), max(days)
        before = calendar.previous_session(first)
        lake = ctx.lake
        bars = usable_bars(lake, calendar.session_offset(first, -look_back_sessions()), last)
        fundamentals = lake.read("fundamentals", [p for p in lake.partitions("fundamentals") if p <= str(last)])
        actions = lake.read_range("corporate_actions", dt.date(1900, 1, 1), last)
        sectors = ctx.universe.select("symbol", "sector")
        made = factor_returns(bars, sectors, fundamentals, actions, FACTORS)
        grid = returns_grid(bars).select("date", "symbol", "ret")
        signals = lake.read_range("model_outputs", before, last)
        account = lake.read_range("account", before, last)
        return AttributionInputs(
            factors=made.returns,
            returns=grid,
            wide=wide_returns(grid),
            positions=lake.read_range("positions", before, last),
            nav=dict(account.select("date", "nav").iter_rows()),
            signals=signals.select(
                "date",
                "symbol",
                pl.col("agent").alias("agent_name"),
                (pl.col("mu") / pl.col("horizon_days")).alias("mu_hat"),
                (pl.col("sigma") / pl.col("horizon_days").sqrt()).alias("sigma_hat"),
                pl.col("confidence").clip(0.0, 1.0),
            ),
            weights=lake.read_range("agent_weights", before, last).select(
                "date", "agent_name", pl.col("weight").alias("agent_weight")
            ),
            sectors=sectors,
            omitted=made.diagnostics,
        )

    def step(
        self, day: dt.date, inputs: AttributionInputs, carried: pl.DataFrame | None, ctx: RunContext
    ) -> StepOutput:
        """``carried``: the exposures of the session before (computed by its own step; the first session of a
        run computes them the same way)."""
        prev = calendar.previous_session(day)
        cid = f"{ctx.settings.fund.strategy}-{day.isoformat()}"
        book = inputs.positions.filter(pl.col("date") == prev)
        nav = inputs.nav.get(prev)
        held = (
            book.select("symbol", (pl.col("market_value") / nav).alias("weight"))
            if nav and book.height
            else pl.DataFrame(schema={"symbol": pl.String, "weight": pl.Float64})
        )
        factors = inputs.factors.filter(pl.col("date") == day)
        betas = session_exposures(inputs, day)
        exp = betas.select(EXPOSURE_COLUMNS)
        known = carried if carried is not None else session_exposures(inputs, prev)  # what D's attribution uses
        rows: dict[str, pl.DataFrame] = {"factor_returns": factors, "security_factor_exposures": exp}
        if held.height:
            day_att = attribute_day(day, held, inputs.returns, known, inputs.factors, inputs.sectors, ATTRIBUTION, cid)
            signals = inputs.signals.filter(pl.col("date") == prev).join(
                inputs.weights.filter(pl.col("date") == prev).drop("date"), on="agent_name"
            )
            shares = agent_pnl(signals.drop("date"), day_att.contributions, cid)
            rows |= {"portfolio_attribution": day_att.row, "agent_pnl": shares.rows}
            notes = day_att.diagnostics
            row = day_att.row
        else:
            row, notes = pl.DataFrame(), pl.DataFrame({"symbol": [None], "reason": [f"nothing held during {day}"]})
        return StepOutput(day, rows, betas, AttributionDetail(row, notes, factors.height))

    def write(self, ctx: RunContext, steps: Sequence[StepOutput], days: Sequence[dt.date]):
        """One partition per table and session; ``agent_pnl`` is keyed by cycle: its partition is the session
        the cycle attributes (the rows carry no date column)."""
        written = {}
        for table in self.WRITES:
            columns = list(row_schema(table))
            rows = [s.rows[table].select(columns).with_columns(_date=pl.lit(s.day)) for s in steps if table in s.rows]
            if rows:
                frame = pl.concat(rows, how="vertical_relaxed")
            else:
                frame = pl.DataFrame(schema={**row_schema(table), "_date": pl.Date})
            if table == "agent_pnl":
                written[table] = _write_by_session(ctx, table, frame, days)
            else:
                written[table] = self.write_table(ctx, table, frame.drop("_date", strict=False), days)
        return written

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        d: AttributionDetail = step.detail
        total = d.row["total_portfolio_return"][0] if d.row.height else None
        what = f"return {100 * total:+.3f}%" if total is not None else "nothing held"
        return f"{self.NAME}: {i}/{n} sessions {step.day}: {what}, {d.factors} factor returns"


def _write_by_session(ctx: RunContext, table: str, frame: pl.DataFrame, days: Sequence[dt.date]):
    """``agent_pnl`` rows per attributed session (its ``_date``), one file each (empty when nothing was held)."""
    return [ctx.lake.write(table, day, frame.filter(pl.col("_date") == day).drop("_date")) for day in days]
