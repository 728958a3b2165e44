"""What the execution cycles of a range read (bars with ADV, volatility and, where the bars quote none, a
spread estimated from the bars before each session; targets, risk state, corporate actions, regimes) and
the state a session continues from the one before (positions, cash, orders and execution decisions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.config import ExecutionSettings
from mqf_pipeline.execution.ledger import Ledger
from mqf_pipeline.execution.spread_estimate import EDGE_WINDOW_SESSIONS, with_spreads
from mqf_pipeline.stages.base import StageStateError, previous_partition, read_previous
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_spec

#: ``execution.default_spread_bps`` when the caller passes none (bps of mid).
DEFAULT_SPREAD_BPS: float = ExecutionSettings.model_fields["default_spread_bps"].default


class ExecutionStateError(StageStateError):
    """The cycle cannot continue the stored execution state (a gap, or the broker disagrees)."""


class ReconciliationError(ExecutionStateError):
    """The ledger and the broker disagree on positions: nothing is submitted until it is resolved."""


@dataclass
class Carried:
    """What session D continues from D-1."""

    ledger: Ledger
    orders: pl.DataFrame  # orders(D-1)
    decisions: pl.DataFrame  # execution_decisions(D-1)
    spike_sessions_left: int = 0
    fills: pl.DataFrame | None = None  # execution_feedback before D: what the slippage model learns from


@dataclass(frozen=True)
class ExecutionInputs:
    # date, symbol, open, close, volume, spread_bps, spread_source, adv, sigma (adv, sigma and an estimated
    # spread known before date)
    market: pl.DataFrame
    targets: pl.DataFrame
    risk: pl.DataFrame
    gates: pl.DataFrame  # governance_gates rows: date, phase, passed, detail
    actions: pl.DataFrame
    regimes: pl.DataFrame

    @cached_property
    def _by_day(self) -> dict[str, dict[dt.date, pl.DataFrame]]:
        """Each date-keyed frame split by session once (a range run would otherwise filter it every session)."""
        names = ("market", "targets", "risk", "gates", "actions", "regimes")
        return {n: {k[0]: v for k, v in getattr(self, n).partition_by("date", as_dict=True).items()} for n in names}

    def on(self, name: str, day: dt.date) -> pl.DataFrame:
        """Rows of frame ``name`` for session ``day`` (empty with its schema when there are none)."""
        part = self._by_day[name].get(day)
        return part if part is not None else getattr(self, name).clear()


def load_inputs(
    lake: Lake,
    days: Sequence[dt.date],
    adv_window: int,
    vol_window: int,
    *,
    default_spread_bps: float = DEFAULT_SPREAD_BPS,
    spread_window: int = EDGE_WINDOW_SESSIONS,
) -> ExecutionInputs:
    """Read the lake once for ``days`` (bars from ``max(adv_window, vol_window, spread_window) + 2`` sessions
    before); ``default_spread_bps`` is ``execution.default_spread_bps`` (:func:`session_market`)."""
    first, last = days[0], days[-1]
    back = calendar.session_offset(first, -(max(adv_window, vol_window, spread_window) + 2))
    bars = usable_bars(lake, back, last)
    market = session_market(
        bars, adv_window, vol_window, default_spread_bps=default_spread_bps, spread_window=spread_window
    )
    return ExecutionInputs(
        market=market.filter(pl.col("date") >= first),
        targets=lake.read_range("portfolio_targets", first, last).select("date", "symbol", "target_weight"),
        risk=lake.read_range("risk_state", first, last).select("date", "breaker_status", "kill_switch", "limits_json"),
        gates=lake.read_range("governance_gates", first, last).select("date", "phase", "passed", "detail"),
        actions=lake.read_range("corporate_actions", first, last),
        regimes=lake.read_range("regime_history", calendar.session_offset(first, -1), last).select(
            "date", "regime", "volatility_percentile"
        ),
    )


def session_market(
    bars: pl.DataFrame,
    adv_window: int,
    vol_window: int,
    *,
    default_spread_bps: float = DEFAULT_SPREAD_BPS,
    spread_window: int = EDGE_WINDOW_SESSIONS,
) -> pl.DataFrame:
    """Per (date, symbol): the session's open, close, volume and spread (bps of mid), and ADV (mean shares)
    and daily volatility (std of adjusted close-to-close returns) over the windows *before* the session.

    A missing quoted spread is the EDGE estimate from the ``spread_window`` bars before the session, else
    ``default_spread_bps``; ``spread_source`` says which (:mod:`mqf_pipeline.execution.spread_estimate`), so
    the paper broker and the execution policy price the same spread. Each window is computed on its own
    values (numpy sliding windows, EDGE per window), not by a running update, so a session's ADV,
    volatility and spread are bit-identical whatever range of history was loaded with it.
    """
    frames = []
    spread = with_spreads(bars, default_spread_bps, spread_window)
    for (_symbol,), part in spread.group_by("symbol", maintain_order=True):
        volume = part["volume"].cast(pl.Float64).to_numpy()
        adj = part["adjusted_close"].cast(pl.Float64).to_numpy()
        ret = np.full(adj.shape, np.nan)
        ret[1:] = adj[1:] / adj[:-1] - 1.0
        frames.append(
            part.select(
                "date", "symbol", "open", "close", pl.col("volume").cast(pl.Float64), "spread_bps", "spread_source"
            ).with_columns(
                adv=pl.Series(_trailing(volume, adv_window, 1, np.nanmean)),
                sigma=pl.Series(_trailing(ret, vol_window, 2, lambda w, axis: np.nanstd(w, axis=axis, ddof=1))),
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "date": pl.Date,
                "symbol": pl.String,
                "open": pl.Float64,
                "close": pl.Float64,
                "volume": pl.Float64,
                "spread_bps": pl.Float64,
                "spread_source": pl.String,
                "adv": pl.Float64,
                "sigma": pl.Float64,
            }
        )
    return pl.concat(frames).with_columns(pl.col("adv", "sigma").fill_nan(None))


def _trailing(values: np.ndarray, window: int, min_samples: int, stat) -> np.ndarray:
    """stat over the (up to) ``window`` finite values strictly before each row; nan with fewer than ``min_samples``."""
    padded = np.concatenate([np.full(window, np.nan), values[:-1]]) if values.size else values
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)[: values.size]
    counts = np.isfinite(windows).sum(axis=1)
    out = np.full(values.shape, np.nan)
    ok = counts >= min_samples
    if ok.any():
        with np.errstate(all="ignore"):
            out[ok] = stat(windows[ok], axis=1)
    return out


def load_carried(lake: Lake, day: dt.date, initial_cash: float) -> Carried:
    """positions/account/orders of the session before ``day``; none stored before it -> start in cash."""
    prev = previous_partition(
        lake, "account", day, error=ExecutionStateError, what="the execution assets", state="the positions"
    )
    fills = _fills_before(lake, day)
    if prev is None:
        return Carried(Ledger(cash=initial_cash), _empty("orders"), _empty("execution_decisions"), 0, fills)
    stored = {
        table: read_previous(lake, table, prev, error=ExecutionStateError, what="the execution assets")
        for table in ("account", "positions", "orders", "execution_decisions")
    }
    account = stored["account"].row(0, named=True)
    ledger = Ledger.from_rows(
        float(account["cash"]), float(account["realized_pnl"]), stored["positions"].iter_rows(named=True)
    )
    spike_left = int(account["spike_sessions_left"])
    return Carried(ledger, stored["orders"], stored["execution_decisions"], spike_left, fills)


def _fills_before(lake: Lake, day: dt.date) -> pl.DataFrame:
    """Every fill stored before ``day`` (execution_feedback): the slippage model of each session learns from them."""
    return lake.read("execution_feedback", [p for p in lake.partitions("execution_feedback") if p < day.isoformat()])


def _empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=table_spec(table).columns)
