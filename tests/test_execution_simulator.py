"""The paper broker's execution cost model and child-order schedules.

Monte Carlo checks use a martingale mid: the test draws the close as ``arrival * exp(sigma Z - sigma^2/2)``
with Z independent of the path draws, so the bridge to it is a free (martingale) path and the expected
shortfall is exactly :func:`simulator.expected_cost_bps`. Every statistical tolerance is 3 standard errors.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.execution.strategies import N_BUCKETS, Strategy, child_schedule, u_shaped_profile

N_MC = 20_000
SIGMA = 0.02  # daily, decimal
SPREAD_BPS = 4.0
Q_OVER_ADV = 0.05
ADV = 1_000_000.0  # shares
NO_GUARDS = sim.CostParams(price_away_cancel=math.inf, volume_anomaly_ratio=math.inf)
SESSION = dt.date(2024, 3, 5)


def _mc_market(n: int, seed: int, *, martingale: bool = True) -> tuple[sim.SessionMarket, sim.Draws, np.ndarray]:
    """``n`` orders on independent symbols at $100, volume = ADV, random close; random sides."""
    rng = np.random.default_rng(seed)
    arrival = np.full(n, 100.0)
    drift = -(SIGMA**2) / 2 if martingale else 0.0
    close = arrival * np.exp(SIGMA * rng.standard_normal(n) + drift)
    full = np.full(n, 1.0)
    market = sim.SessionMarket(arrival, close, SIGMA * full, SPREAD_BPS * full, ADV * full, ADV * full)
    draws = sim.Draws(rng.standard_normal((n, N_BUCKETS)), rng.random((n, N_BUCKETS)))
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return market, draws, side


def _one(**overrides: float) -> sim.SessionMarket:
    values = {"arrival": 50.0, "close": 50.0, "sigma": 0.02, "spread_bps": 5.0, "volume": 1e6, "adv": 1e6}
    values.update(overrides)
    return sim.SessionMarket(**{k: np.array([v]) for k, v in values.items()}, symbols=("AAA",))


def _flat_draws(n: int = 1) -> sim.Draws:
    return sim.Draws(np.zeros((n, N_BUCKETS)), np.full((n, N_BUCKETS), 0.999))


# ---- Monte Carlo vs analytic --------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["u_shaped", "flat"])
def test_twap_vwap_cost_matches_analytic(profile: str) -> None:
    prof = u_shaped_profile() if profile == "u_shaped" else np.full(N_BUCKETS, 1 / N_BUCKETS)
    market, draws, side = _mc_market(N_MC, seed=11)
    qty = np.full(N_MC, Q_OVER_ADV * ADV)
    cost = {}
    for s in (Strategy.TWAP, Strategy.VWAP):
        res = sim.execute(s, side, qty, market, NO_GUARDS, draws, profile=prof)
        assert np.allclose(res.filled_qty, qty, rtol=1e-12)  # caps never bind at 5% of ADV
        realised = res.shortfall_bps
        cost[s] = realised
        analytic = sim.expected_cost_bps(s, Q_OVER_ADV, SIGMA, SPREAD_BPS, NO_GUARDS, prof)
        se = realised.std(ddof=1) / math.sqrt(N_MC)
        assert abs(realised.mean() - analytic) < 3 * se, (s, realised.mean(), analytic, se)
    # paired (same paths): TWAP - VWAP vs the analytic Jensen gap
    diff = cost[Strategy.TWAP] - cost[Strategy.VWAP]
    se = diff.std(ddof=1) / math.sqrt(N_MC)
    gap = sim.expected_cost_bps(Strategy.TWAP, Q_OVER_ADV, SIGMA, SPREAD_BPS, NO_GUARDS, prof) - sim.expected_cost_bps(
        Strategy.VWAP, Q_OVER_ADV, SIGMA, SPREAD_BPS, NO_GUARDS, prof
    )
    assert abs(diff.mean() - gap) <= 3 * se + 1e-9, (diff.mean(), gap, se)
    if profile == "u_shaped":
        # ~0.97 bps at Q/ADV = 5%, sigma 2%, Y 0.7: VWAP pays exactly half spread + Y sigma sqrt(Q/V)
        assert 0.5 < gap < 2.0
        vwap = sim.expected_cost_bps(Strategy.VWAP, Q_OVER_ADV, SIGMA, SPREAD_BPS, NO_GUARDS)
        assert vwap == pytest.approx(SPREAD_BPS / 2 + 1e4 * 0.7 * SIGMA * math.sqrt(Q_OVER_ADV), rel=1e-12)
    else:
        assert gap == pytest.approx(0.0, abs=1e-9)


def test_limit_first_bucket_fill_probability_matches_closed_form() -> None:
    # driftless log path: the only approximation left in the closed form is |log(1 -/+ b)| ~ b (rel. 1e-3)
    market, draws, side = _mc_market(N_MC, seed=12, martingale=False)
    qty = np.full(N_MC, 100.0)  # << 10% of the first bucket's volume: the participation cap never binds
    res = sim.execute(Strategy.LIMIT, side, qty, market, NO_GUARDS, draws, limit_offset_bps=20.0)
    filled = res.fill_qty[:, 0] > 0
    assert np.allclose(res.fill_qty[filled, 0], 100.0)
    p = filled.mean()
    se = math.sqrt(p * (1 - p) / N_MC)
    expected = sim.limit_fill_probability(20.0, SIGMA)
    assert abs(p - expected) < 3 * se, (p, expected, se)
    # passive fills pay no spread or impact and fill at the limit price
    px = res.fill_price[filled, 0] / res.mid[filled, 0]
    assert np.allclose(px, 1 - side[filled] * 20e-4, rtol=1e-12)
    assert (res.impact_bps == 0).all() and (res.half_spread_bps == 0).all()


def test_limit_fill_probability_closed_form() -> None:
    assert sim.limit_fill_probability(0.0, SIGMA) == 1.0
    assert sim.limit_fill_probability(10.0, 0.0) == 0.0
    one, all_day = sim.limit_fill_probability(50.0, SIGMA), sim.limit_fill_probability(50.0, SIGMA, N_BUCKETS)
    assert all_day == pytest.approx(math.erfc(0.005 / SIGMA / math.sqrt(2)), rel=1e-12)
    assert 0 < one < all_day < 1


# ---- schedules -----------------------------------------------------------------------------------------
def test_profile_is_u_shaped() -> None:
    p = u_shaped_profile()
    assert p.shape == (N_BUCKETS,) and (p > 0).all() and p.sum() == pytest.approx(1.0, abs=1e-12)
    mid = p[N_BUCKETS // 2]
    assert 2.0 <= p[0] / mid <= 2.6 and 1.7 <= p[-1] / mid <= 2.2
    low = int(p.argmin())
    assert (np.diff(p[: low + 1]) < 0).all() and (np.diff(p[low:]) > 0).all()


def test_schedules() -> None:
    qty, vol = 1300.0, 1e5 * u_shaped_profile()
    for s in (Strategy.MARKET, Strategy.LIMIT, Strategy.TWAP, Strategy.VWAP, Strategy.WAIT):
        plan = child_schedule(s, qty, vol)
        assert plan.sum() == pytest.approx(qty, rel=1e-12) and (plan >= 0).all(), s
    assert (child_schedule("MARKET", qty, vol)[1:] == 0).all()
    assert np.allclose(child_schedule("TWAP", qty, vol), 100.0)
    assert np.allclose(child_schedule("VWAP", qty, vol), qty * u_shaped_profile())
    wait = child_schedule("WAIT", qty, vol)
    assert (wait[: N_BUCKETS // 2] == 0).all() and np.allclose(wait[N_BUCKETS // 2 :], qty / 7)
    pov = child_schedule("POV", qty, vol, pov_rate=0.1)  # 10% of ~1.27e4 + ~1.06e4 shares: done in bucket 1
    assert pov.sum() == pytest.approx(qty) and pov[0] == pytest.approx(0.1 * vol[0]) and (pov[2:] == 0).all()
    capped = child_schedule("POV", 1e6, vol, pov_rate=0.1)  # 10% of the day: cannot complete
    assert capped.sum() == pytest.approx(1e4) and np.allclose(capped, 0.1 * vol)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "TWAP", "qty": 0.0}, "qty"),
        ({"strategy": "POV", "qty": 10.0, "pov_rate": 1.5}, "pov_rate"),
        ({"strategy": "POV", "qty": 10.0, "pov_rate": 0.0}, "pov_rate"),
        ({"strategy": "ICEBERG", "qty": 10.0}, "unknown execution strategy 'ICEBERG'"),
        ({"strategy": "VWAP", "qty": 10.0, "vol": -np.ones(N_BUCKETS)}, "expected bucket volumes"),
        ({"strategy": "VWAP", "qty": 10.0, "vol": np.zeros(0)}, "expected_bucket_volume"),
    ],
)
def test_schedule_errors(kwargs: dict, match: str) -> None:
    vol = kwargs.pop("vol", np.ones(N_BUCKETS))
    with pytest.raises(ValueError, match=match):
        child_schedule(kwargs.pop("strategy"), kwargs.pop("qty"), vol, **kwargs)


# ---- partial fills and guards -------------------------------------------------------------------------
def test_large_order_fills_partially() -> None:
    # 30% of the day's volume, at most 25% of each bucket: 25% of the day fills, the rest is unfilled
    res = sim.execute("MARKET", [1.0], [3e5], _one(), sim.CostParams(), _flat_draws())
    assert res.filled_qty[0] == pytest.approx(2.5e5, rel=1e-12) and res.filled_qty[0] < 3e5
    assert np.allclose(res.fill_qty[0], 0.25 * 1e6 * u_shaped_profile())
    assert res.cancel_reason == (None,)
    # full participation every bucket: impact Y sigma sqrt(0.25) = 0.7 * 0.02 * 0.5 = 70 bps on every child
    assert np.allclose(res.impact_bps[0], 70.0) and np.allclose(res.half_spread_bps[0], 2.5)
    assert res.commission[0] == pytest.approx(2.5e5 * 0.0035)
    assert res.bucket_times[0] == dt.time(9, 30) and res.bucket_times[-1] == dt.time(15, 30)


def test_price_away_cancels_remaining_children() -> None:
    # zero noise: the log path is a straight line to a close 13% up, so mid_k > 1.05 x arrival from bucket 5
    market = _one(close=50.0 * math.exp(0.13))
    res = sim.execute("TWAP", [1.0], [1000.0], market, sim.CostParams(), _flat_draws())
    away = np.abs(res.mid[0] / 50.0 - 1) > 0.05
    first = int(np.argmax(away))
    assert first == 5 and res.cancel_reason == ("PRICE_AWAY",)
    assert (res.fill_qty[0, :first] > 0).all() and (res.fill_qty[0, first:] == 0).all()
    assert np.isnan(res.fill_price[0, first:]).all() and res.filled_qty[0] == pytest.approx(1000 * 5 / 13)


def test_volume_anomaly_aborts() -> None:
    res = sim.execute("TWAP", [-1.0], [1000.0], _one(volume=3.5e6), sim.CostParams(), _flat_draws())
    assert res.cancel_reason == ("VOLUME_ANOMALY",)
    assert res.fill_qty[0, 0] == pytest.approx(1000 / 13) and (res.fill_qty[0, 1:] == 0).all()
    ok = sim.execute("TWAP", [-1.0], [1000.0], _one(volume=2.9e6), sim.CostParams(), _flat_draws())
    assert ok.cancel_reason == (None,) and ok.filled_qty[0] == pytest.approx(1000.0)


def test_filled_order_has_no_cancel_reason() -> None:
    res = sim.execute("MARKET", [1.0], [100.0], _one(volume=5e6), sim.CostParams(), _flat_draws())
    assert res.cancel_reason == (None,) and res.filled_qty[0] == 100.0


# ---- determinism ---------------------------------------------------------------------------------------
def test_draws_are_per_symbol_and_deterministic() -> None:
    a = sim.draws_for(7, SESSION, ["AAA", "BBB"])
    b = sim.draws_for(7, SESSION, ["ZZZ", "BBB", "AAA", "AAA"])
    assert np.array_equal(a.z[0], b.z[2]) and np.array_equal(a.u[0], b.u[3]) and np.array_equal(a.z[1], b.z[1])
    assert not np.array_equal(a.z[0], a.z[1])
    assert not np.array_equal(a.z[0], sim.draws_for(7, SESSION + dt.timedelta(days=1), ["AAA"]).z[0])
    assert not np.array_equal(a.z[0], sim.draws_for(8, SESSION, ["AAA"]).z[0])


# ---- bad input -----------------------------------------------------------------------------------------
def test_bad_inputs_name_the_field_and_row() -> None:
    with pytest.raises(ValueError, match=r"SessionMarket\.arrival: row 0 \(AAA\)"):
        _one(arrival=-1.0)
    with pytest.raises(ValueError, match=r"SessionMarket\.volume: row 0 \(AAA\)"):
        _one(volume=float("nan"))
    with pytest.raises(ValueError, match=r"SessionMarket\.adv: row 1"):
        sim.SessionMarket(*(np.ones(2) for _ in range(5)), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"SessionMarket\.sigma must have shape"):
        sim.SessionMarket(np.ones(2), np.ones(2), np.ones(3), np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"CostParams\.max_participation"):
        sim.CostParams(max_participation=1.5)
    with pytest.raises(ValueError, match=r"CostParams\.volume_anomaly_ratio"):
        sim.CostParams(volume_anomaly_ratio=0.5)
    with pytest.raises(ValueError, match=r"side: row 0 \(AAA\)"):
        sim.execute("MARKET", [0.0], [1.0], _one(), sim.CostParams(), _flat_draws())
    with pytest.raises(ValueError, match=r"qty: row 0 \(AAA\)"):
        sim.execute("MARKET", [1.0], [-1.0], _one(), sim.CostParams(), _flat_draws())
    with pytest.raises(ValueError, match=r"limit_offset_bps: row 0 \(AAA\)"):
        sim.execute("LIMIT", [1.0], [1.0], _one(), sim.CostParams(), _flat_draws(), limit_offset_bps=-1.0)
    with pytest.raises(ValueError, match=r"pov_rate: row 0 \(AAA\)"):
        sim.execute("POV", [1.0], [1.0], _one(), sim.CostParams(), _flat_draws(), pov_rate=0.0)
    with pytest.raises(ValueError, match="order 0: unknown execution strategy"):
        sim.execute(["FAST"], [1.0], [1.0], _one(), sim.CostParams(), _flat_draws())
    with pytest.raises(ValueError, match="draws have 2 rows"):
        sim.execute("MARKET", [1.0], [1.0], _one(), sim.CostParams(), _flat_draws(2))
    with pytest.raises(ValueError, match="LIMIT"):
        sim.expected_cost_bps("LIMIT", 0.01, 0.02, 5.0, sim.CostParams())


# ---- properties ----------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 8),
    sigma=st.floats(0.0, 0.2),
    volume=st.floats(0.0, 1e6),
    offset=st.floats(0.0, 200.0),
)
def test_fills_are_bounded(seed: int, n: int, sigma: float, volume: float, offset: float) -> None:
    rng = np.random.default_rng(seed)
    strategies = [list(Strategy)[i] for i in rng.integers(0, len(Strategy), n)]
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    qty = rng.uniform(1.0, 5e4, n)
    arrival = rng.uniform(5.0, 500.0, n)
    market = sim.SessionMarket(
        arrival,
        arrival * np.exp(sigma * rng.standard_normal(n)),
        np.full(n, sigma),
        rng.uniform(0.0, 50.0, n),
        np.full(n, volume),
        rng.uniform(1e3, 1e6, n),
    )
    draws = sim.draws_for(seed, SESSION, [f"S{i}" for i in range(n)])
    res = sim.execute(strategies, side, qty, market, sim.CostParams(), draws, limit_offset_bps=offset)
    assert (res.fill_qty >= 0).all() and (res.filled_qty <= qty).all()
    assert np.allclose(res.fill_qty.sum(axis=1), res.filled_qty, rtol=1e-9, atol=1e-9)
    has = res.fill_qty > 0
    assert np.isfinite(res.fill_price[has]).all() and np.isnan(res.fill_price[~has]).all()
    # a buy never fills below mid x (1 - b), a sell never above mid x (1 + b) (aggressive: b = 0)
    is_limit = np.array([s is Strategy.LIMIT for s in strategies])
    b = np.where(is_limit, offset / 1e4, 0.0)[:, None]
    floor = res.mid * (1 - side[:, None] * b)
    assert (side[:, None] * (res.fill_price - floor) >= -1e-9 * res.mid)[has].all()
    assert (res.fill_qty[~is_limit] <= 0.25 * volume * u_shaped_profile() + 1e-9).all()
    assert (res.fill_qty[is_limit] <= 0.10 * volume * u_shaped_profile() + 1e-9).all()
    filled = res.filled_qty > 0
    assert np.isfinite(res.avg_price[filled]).all() and np.isnan(res.avg_price[~filled]).all()
