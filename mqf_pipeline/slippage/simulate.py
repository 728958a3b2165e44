"""Simulated execution_feedback rows: orders drawn over sessions and filled by the paper broker's own cost
model (:func:`mqf_pipeline.execution.simulator.execute`), for testing and benchmarking the slippage model.

Per symbol (drawn once): a trading probability per session (uniform in ``activity``), a base daily
volatility (lognormal around ``sigma_median``), a base spread (log-uniform in ``spread_range`` bps) and
its true impact coefficient ``Y_s = cost.impact_coef x world x exp(impact_dispersion z_s - d^2 / 2)``,
``world`` one lognormal draw per seed (``world_dispersion``; 0 keeps the policy's coefficient). Per order:
Q/ADV log-uniform in ``qadv_range``, the session's sigma and spread (the base with lognormal day noise of
0.25 and 0.2), session volume ``ADV x lognormal`` (``volume_dispersion``, mean 1), the close a lognormal
move of sigma from the open, a random side; its schedule is what the execution policy chooses
(``policy``, no kill switch: the default VWAP, LIMIT when the expected cost exceeds its cap). The regime
follows a sticky Markov chain over the seed's four names (it does not change costs). Deterministic in
``seed``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.execution.policy import OrderState, PolicyParams, choose
from mqf_pipeline.execution.strategies import N_BUCKETS
from mqf_pipeline.slippage.regime import REGIME_ADJUSTMENTS


@dataclass(frozen=True)
class FillSimParams:
    """The simulated fund's orders (see the module docstring); ranges are (low, high)."""

    n_symbols: int = 20
    n_sessions: int = 80
    start: dt.date = dt.date(2024, 1, 2)
    activity: tuple[float, float] = (0.05, 0.8)
    qadv_range: tuple[float, float] = (1e-4, 0.05)
    sigma_median: float = 0.018
    spread_range: tuple[float, float] = (1.0, 30.0)
    volume_dispersion: float = 0.3
    impact_dispersion: float = 0.0
    world_dispersion: float = 0.0
    adv_shares: float = 2e6
    price: float = 50.0
    limit_offset_bps: float = 5.0
    cost: sim.CostParams = field(default_factory=sim.CostParams)
    policy: PolicyParams = field(default_factory=PolicyParams)


def _orders(rng: np.random.Generator, p: FillSimParams) -> dict[str, np.ndarray]:
    """The drawn orders: one entry per (session, symbol) that trades."""
    n, t = p.n_symbols, p.n_sessions
    act = rng.uniform(*p.activity, n)
    base_sigma = p.sigma_median * np.exp(0.4 * rng.standard_normal(n))
    base_spread = np.exp(rng.uniform(*np.log(p.spread_range), n))
    world = math.exp(p.world_dispersion * rng.standard_normal() - p.world_dispersion**2 / 2)
    d = p.impact_dispersion
    y_sym = p.cost.impact_coef * world * np.exp(d * rng.standard_normal(n) - d**2 / 2)
    trades = rng.random((t, n)) < act
    day, sym = np.nonzero(trades)
    m = len(day)
    sigma = base_sigma[sym] * np.exp(0.25 * rng.standard_normal(m))
    return {
        "day": day,
        "sym": sym,
        "qadv": np.exp(rng.uniform(*np.log(p.qadv_range), m)),
        "sigma": sigma,
        "spread": np.minimum(base_spread[sym] * np.exp(0.2 * rng.standard_normal(m)), 500.0),
        "vol_ratio": np.exp(p.volume_dispersion * rng.standard_normal(m) - p.volume_dispersion**2 / 2),
        "move": sigma * rng.standard_normal(m) - sigma**2 / 2,
        "side": np.where(rng.random(m) < 0.5, 1.0, -1.0),
        "impact": y_sym[sym],
        "z": rng.standard_normal((m, N_BUCKETS)),
        "u": rng.random((m, N_BUCKETS)),
    }


def _regimes(rng: np.random.Generator, n_sessions: int, stay: float = 0.95) -> list[str]:
    names = list(REGIME_ADJUSTMENTS)
    out, state = [], 0
    for _ in range(n_sessions):
        if rng.random() > stay:
            state = int(rng.integers(len(names)))
        out.append(names[state])
    return out


def simulate_feedback(seed: int, params: FillSimParams | None = None) -> pl.DataFrame:
    """execution_feedback-like rows (the columns the execution stage writes, plus ``true_impact_coef``) of
    every filled order, each filled by :func:`~mqf_pipeline.execution.simulator.execute` with its symbol's
    impact coefficient; costs computed as :func:`mqf_pipeline.stages.execution_outcomes.order_costs` does."""
    p = params if params is not None else FillSimParams()
    rng = np.random.default_rng([seed, 5])
    o = _orders(rng, p)
    regimes = _regimes(rng, p.n_sessions)
    days = np.busday_offset(np.datetime64(p.start, "D"), np.arange(p.n_sessions), roll="forward")
    strategies = np.array(
        [
            choose(OrderState(q, s, sp), p.policy, kill_switch=False).action.value
            for q, s, sp in zip(o["qadv"], o["sigma"], o["spread"], strict=True)
        ]
    )
    rows: list[pl.DataFrame] = []
    for y in np.unique(o["impact"]):
        idx = np.flatnonzero(o["impact"] == y)
        adv = np.full(len(idx), p.adv_shares)
        market = sim.SessionMarket(
            arrival=np.full(len(idx), p.price),
            close=p.price * np.exp(o["move"][idx]),
            sigma=o["sigma"][idx],
            spread_bps=o["spread"][idx],
            volume=adv * o["vol_ratio"][idx],
            adv=adv,
        )
        res = sim.execute(
            list(strategies[idx]),
            o["side"][idx],
            o["qadv"][idx] * adv,
            market,
            replace(p.cost, impact_coef=float(y)),
            sim.Draws(o["z"][idx], o["u"][idx]),
            limit_offset_bps=p.limit_offset_bps,
        )
        rows.append(_rows(idx, o, res, market, strategies, days, regimes, seed, float(y)))
    return pl.concat(rows).filter(pl.col("quantity") > 0).sort("date", "symbol", "order_id")


def _rows(
    idx: np.ndarray,
    o: dict[str, np.ndarray],
    res: sim.ExecutionResult,
    market: sim.SessionMarket,
    strategies: np.ndarray,
    days: np.ndarray,
    regimes: list[str],
    seed: int,
    impact_coef: float,
) -> pl.DataFrame:
    """One group's feedback rows (orders that filled nothing have quantity 0 and are dropped by the caller)."""
    side = o["side"][idx]
    qty = res.fill_qty
    filled = res.filled_qty
    with np.errstate(divide="ignore", invalid="ignore"):
        vs_mid = np.nansum(qty * side[:, None] * (np.nan_to_num(res.fill_price) / res.mid - 1.0), axis=1) / filled
        notional = filled * res.avg_price
        total = res.shortfall_bps + res.commission / notional * 1e4
    day = o["day"][idx]
    return pl.DataFrame(
        {
            "order_id": [f"sim-{seed}-{i}" for i in idx],
            "expected_price": market.arrival,
            "fill_price": res.avg_price,
            "slippage_bps": res.shortfall_bps,
            "market_impact_bps": vs_mid * 1e4 - market.spread_bps / 2,
            "commission": res.commission,
            "total_cost_bps": total,
            "market_conditions_json": [json.dumps({"strategy": s}) for s in strategies[idx]],
            "symbol": [f"S{s:03d}" for s in o["sym"][idx]],
            "side": np.where(side > 0, "BUY", "SELL"),
            "quantity": filled,
            "adv": market.adv,
            "adv_dollar": market.adv * market.arrival,
            "volatility": market.sigma,
            "spread_bps": market.spread_bps,
            "regime": [regimes[d] for d in day],
            "date": pl.Series(days[day]).cast(pl.Date),
            "true_impact_coef": np.full(len(idx), impact_coef),
        }
    )
