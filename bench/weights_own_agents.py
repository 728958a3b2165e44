"""Learned vs static agent weights on the project's own agents over the simulator history: sign hit rate and
gross-1 portfolio return of the weighted ensemble, out of sample, per simulator seed.

Data per seed: the built-in simulator (``SimulatorParams(seed, n_symbols)``), set up as bench/agents.py does
(bars, fundamentals, headlines and macro from ``--history-start``; features from
:func:`bench.agents.simulated_agent_data`); the agents of the config's preset (configs/signals.yaml, ``institutional``),
static weights = ``settings.signals.starting_weights()`` with weight > 0. Every agent runs on every session from
``--start`` to ``--end`` (signal sessions); outcomes from :func:`mqf_pipeline.learning.agent_outcomes`;
regimes from the project's walk-forward HMM (:func:`mqf_pipeline.regimes.mapping.regime_history` with the
regimes stage's settings, on the simulator's raw bars and macro; ``--no-regimes`` passes an empty frame);
learned weights from :func:`mqf_pipeline.learning.learn_weights` with ``WeightLearningParams()`` starting
from :func:`mqf_pipeline.stages.learning.learned_set`.

Scoring, for each signal session s with its next session D: the weights of s (learned from outcomes dated
<= s, i.e. signals up to s-1 scored on returns up to s) applied to the signals of s, scored on the returns
of D (s's close to D's close). Ensemble per symbol as :func:`mqf_pipeline.decisions.ensemble.ensemble`:
mu_hat = sum_k w_k c_k mu_d_k / sum_k w_k c_k, mu_d = mu / horizon_days, over the agents with a signal
(checked against it). A hit is sign(mu_hat) == sign(ret) over (D, symbol) pairs with ret != 0; the portfolio
is a_i = mu_hat_i / sum |mu_hat| (gross 1), its return sum a_i ret_i. Sessions scored: those whose learned
weights are past the learner's warm-up (``min_sessions`` outcome sessions).

Per seed: both hit rates, the relative improvement learned / static - 1 with a 95% interval from the daily
hit-rate differences (t over sessions, treating days as independent), the mean daily portfolio returns and
their difference with the same kind of interval. Over seeds: the means, the 95% t-interval over seeds of the
relative improvements and of the return difference, a paired t-test p and an exact sign-flip p (two-sided).

    .venv/bin/python bench/weights_own_agents.py            # 500 symbols, seeds 2001-2010: ~14 min on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agents import simulated_agent_data  # noqa: E402
from bench.common import report  # noqa: E402
from mqf_pipeline import calendar  # noqa: E402
from mqf_pipeline.agents.base import validate_signals  # noqa: E402
from mqf_pipeline.agents.registry import build_agents  # noqa: E402
from mqf_pipeline.config import load_settings  # noqa: E402
from mqf_pipeline.decisions.ensemble import ensemble  # noqa: E402
from mqf_pipeline.learning import WeightLearningParams, agent_outcomes, learn_weights, returns_from_bars  # noqa: E402
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams  # noqa: E402
from mqf_pipeline.regimes.features import supported_observations, universe_size  # noqa: E402
from mqf_pipeline.regimes.mapping import regime_history  # noqa: E402
from mqf_pipeline.regimes.model import RegimeModel  # noqa: E402
from mqf_pipeline.stages.learning import learned_set  # noqa: E402

#: Simulator seeds of the report, never used for any choice (the universe size was picked from the runtime of
#: the simulator's default seed 20240101: ~75 s per seed at 500 symbols on 2 cores).
REPORT_SEEDS = tuple(range(2001, 2011))


@dataclasses.dataclass(frozen=True)
class SeedData:
    """One simulated history: agent signals of the signal sessions, returns, regime rows, the signal sessions."""

    signals: pl.DataFrame
    returns: pl.DataFrame
    regimes: pl.DataFrame
    sessions: list[dt.date]
    seconds: dict[str, float]


def simulate(seed: int, args: argparse.Namespace, settings: Any, agents: list[str]) -> SeedData:
    """The simulator history of ``seed`` (set up as bench/agents.py does), the agents' signals and the regimes."""
    t0 = time.perf_counter()
    history_start, start, end = (dt.date.fromisoformat(x) for x in (args.history_start, args.start, args.end))
    sessions = calendar.sessions(start, end)
    sim = MarketSimulator(SimulatorParams(seed=seed, n_symbols=args.symbols))
    all_bars, data, _ = simulated_agent_data(sim, history_start, end)
    bars, macro = data.bars, data.macro
    seconds = {"setup": time.perf_counter() - t0}
    frames = []
    for agent in build_agents(agents, settings.signals.agent_params):
        t1 = time.perf_counter()
        frames.append(validate_signals(agent.name, agent.signals(data, sessions)))
        seconds[agent.name] = time.perf_counter() - t1
    t1 = time.perf_counter()
    regimes = pl.DataFrame()
    if not args.no_regimes:
        cfg = settings.signals
        regimes = regime_history(
            bars.select("date", "symbol", "adjusted_close"),
            macro.select("date", "series_id", "value"),
            model=RegimeModel(random_state=cfg.regime_random_state),
            refit_every=cfg.regime_refit_sessions,
            min_train=cfg.regime_min_train_sessions,
            observations=supported_observations(universe_size(bars)),
        )
    seconds["regimes"] = time.perf_counter() - t1
    return SeedData(pl.concat(frames), returns_from_bars(all_bars), regimes, sessions, seconds)


def ensemble_mu(signals: pl.DataFrame, weights: pl.DataFrame) -> pl.DataFrame:
    """mu_hat per (date, symbol): sum w c mu_d / sum w c over the agents with a signal (``weights``: date, agent,
    weight); symbols whose total w c is 0 are left out, as in the decisions ensemble."""
    raw = pl.col("weight") * pl.col("confidence")
    mu_d = pl.col("mu") / pl.col("horizon_days")
    return (
        signals.join(weights, on=["date", "agent"])
        .filter(pl.col("weight") > 0)
        .group_by("date", "symbol")
        .agg(total=raw.sum(), num=(raw * mu_d).sum())
        .filter(pl.col("total") > 0)
        .select("date", "symbol", mu_hat=pl.col("num") / pl.col("total"))
    )


def check_ensemble(signals: pl.DataFrame, weights: pl.DataFrame, days: list[dt.date]) -> None:
    """:func:`ensemble_mu` equals the decisions ensemble's ``mu_hat`` on ``days`` (AssertionError otherwise)."""
    mine = ensemble_mu(signals, weights)
    for day in days:
        w = weights.filter(pl.col("date") == day)
        ref = ensemble(signals.filter(pl.col("date") == day), dict(zip(w["agent"], w["weight"], strict=True)))
        got = ref.join(mine.filter(pl.col("date") == day), on=["date", "symbol"], how="full", coalesce=True)
        assert got.height == ref.height, f"{day}: ensemble covers {ref.height} symbols, the bench {got.height}"
        np.testing.assert_allclose(got["mu_hat_right"].to_numpy(), got["mu_hat"].to_numpy(), rtol=1e-10, atol=1e-15)


def daily_scores(mu_hat: pl.DataFrame, returns: pl.DataFrame, next_day: pl.DataFrame) -> pl.DataFrame:
    """Per signal session: hits and calls (pairs with ret != 0) and the gross-1 portfolio's return at D."""
    rows = (
        mu_hat.join(next_day, on="date")
        .join(returns.rename({"date": "next"}), on=["next", "symbol"])
        .filter(pl.col("ret").is_finite())
    )
    call = pl.col("ret") != 0
    return (
        rows.group_by("date")
        .agg(
            hits=((pl.col("mu_hat").sign() == pl.col("ret").sign()) & call).sum(),
            calls=call.sum(),
            port=(pl.col("mu_hat") * pl.col("ret")).sum() / pl.col("mu_hat").abs().sum(),
        )
        .sort("date")
    )


def interval(x: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, 95% t-interval and the two-sided one-sample t-test p of ``x`` against 0."""
    m, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))
    h = float(stats.t.ppf(0.975, x.size - 1)) * se
    p = float(stats.ttest_1samp(x, 0.0).pvalue) if se > 0 else float("nan")
    return m, m - h, m + h, p


def sign_flip_p(diff: np.ndarray) -> float:
    """Exact two-sided sign-flip p of mean(diff) = 0 over all 2^n sign patterns (n <= 20)."""
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=diff.size)))
    null = np.abs(flips @ diff)
    return float(np.mean(null >= abs(diff.sum()) - 1e-15))


def run_seed(seed: int, args: argparse.Namespace, settings: Any, static: dict[str, float]) -> dict[str, Any]:
    """One seed's learned and static scores (module docstring) and its diagnostics."""
    params = WeightLearningParams()
    start, blocked = learned_set(static, params)
    if blocked is not None:
        raise SystemExit(f"learning cannot run on this preset: {blocked}")
    sim = simulate(seed, args, settings, list(static))
    t0 = time.perf_counter()
    outcomes = agent_outcomes(sim.signals, sim.returns)
    last = sim.sessions[-1]
    learned = learn_weights(outcomes, sim.regimes, start, params, last, strategy="bench", sessions=sim.sessions)
    mid = sim.sessions[len(sim.sessions) // 2]  # no lookahead: the row of mid learned with outcomes up to mid only
    alone = learn_weights(outcomes.filter(pl.col("date") <= mid), sim.regimes, start, params, mid, strategy="bench")
    np.testing.assert_array_equal(
        alone.filter(pl.col("date") == mid)["weight"].to_numpy(), learned.filter(pl.col("date") == mid)["weight"]
    )
    live = learned.filter(~pl.col("algorithm_used").str.starts_with("static")).select("date").unique()
    scored = sorted(live["date"].to_list())
    w_learned = learned.select("date", pl.col("agent_name").alias("agent"), "weight")
    w_static = pl.DataFrame({"date": sim.sessions}).join(
        pl.DataFrame({"agent": list(static), "weight": list(static.values())}), how="cross"
    )
    check_ensemble(sim.signals, w_learned, scored[:: max(len(scored) // 3, 1)])
    days = sim.returns.select(pl.col("date").unique().sort())
    next_day = days.with_columns(next=pl.col("date").shift(-1)).drop_nulls()
    signals = sim.signals.filter(pl.col("date").is_in(scored))
    per = {
        name: daily_scores(ensemble_mu(signals, w), sim.returns, next_day)
        for name, w in (("static", w_static), ("learned", w_learned))
    }
    same = per["static"].select("date", "calls").equals(per["learned"].select("date", "calls"))
    assert same, "static and learned ensembles must score the same (session, symbol) pairs"
    hit = {k: v["hits"].sum() / v["calls"].sum() for k, v in per.items()}
    day_hit = {k: (v["hits"] / v["calls"]).to_numpy() for k, v in per.items()}
    port = {k: v["port"].to_numpy() for k, v in per.items()}
    algos = learned.filter(pl.col("date").is_in(scored)).unique("date")["algorithm_used"].str.extract(r"^(\w+)")
    return {
        "seed": seed,
        "sessions": per["static"].height,
        "calls": int(per["static"]["calls"].sum()),
        "hit": hit,
        "hit_day_diff": interval(day_hit["learned"] - day_hit["static"]),
        "port": {k: float(v.mean()) for k, v in port.items()},
        "port_day_diff": interval(port["learned"] - port["static"]),
        "algorithms": algos.value_counts().sort("algorithm_used").rows(),
        "regime_rows": sim.regimes.filter(pl.col("date").is_in(scored)).height if sim.regimes.height else 0,
        "mean_weight": learned.filter(pl.col("date").is_in(scored)).group_by("agent_name").agg(pl.col("weight").mean()),
        "seconds": {**sim.seconds, "learning": time.perf_counter() - t0},
    }


def _ci(lo: float, hi: float, scale: float = 100.0) -> str:
    return f"[{scale * lo:+.3f}, {scale * hi:+.3f}]"


def seed_row(r: dict[str, Any]) -> dict[str, Any]:
    """The table row of one seed (intervals over its sessions)."""
    hs, hl = r["hit"]["static"], r["hit"]["learned"]
    _, lo, hi, p = r["hit_day_diff"]
    pm, plo, phi, pp = r["port_day_diff"]
    return {
        "seed": str(r["seed"]),
        "sessions": r["sessions"],
        "hit_static": hs,
        "hit_learned": hl,
        "hit_rel_pct": 100 * (hl / hs - 1),
        "hit_rel_ci95_pct": _ci(lo / hs, hi / hs),
        "hit_p": f"{p:.3g} (t, days)",
        "ret_static_bps": 1e4 * r["port"]["static"],
        "ret_learned_bps": 1e4 * r["port"]["learned"],
        "ret_diff_bps": 1e4 * pm,
        "ret_diff_ci95_bps": _ci(plo, phi, 1e4),
        "ret_p": f"{pp:.3g} (t, days)",
    }


def summary_row(per: list[dict[str, Any]]) -> dict[str, Any]:
    """The row over seeds: means, 95% t-intervals over seeds, paired t-test and exact sign-flip p."""
    hs = np.array([r["hit"]["static"] for r in per])
    hl = np.array([r["hit"]["learned"] for r in per])
    ps = np.array([r["port"]["static"] for r in per])
    pl_ = np.array([r["port"]["learned"] for r in per])
    rel, rlo, rhi, _ = interval(hl / hs - 1.0)
    d, dlo, dhi, _ = interval(pl_ - ps)
    return {
        "seed": f"mean of {len(per)}",
        "sessions": int(np.mean([r["sessions"] for r in per])),
        "hit_static": float(hs.mean()),
        "hit_learned": float(hl.mean()),
        "hit_rel_pct": 100 * rel,
        "hit_rel_ci95_pct": _ci(rlo, rhi),
        "hit_p": f"{stats.ttest_rel(hl, hs).pvalue:.3g} (t) / {sign_flip_p(hl - hs):.3g} (flip)",
        "ret_static_bps": 1e4 * float(ps.mean()),
        "ret_learned_bps": 1e4 * float(pl_.mean()),
        "ret_diff_bps": 1e4 * d,
        "ret_diff_ci95_bps": _ci(dlo, dhi, 1e4),
        "ret_p": f"{stats.ttest_rel(pl_, ps).pvalue:.3g} (t) / {sign_flip_p(pl_ - ps):.3g} (flip)",
    }


def extra_info(args: argparse.Namespace, per: list[dict[str, Any]], static: dict[str, float]) -> dict[str, Any]:
    """Parameters, the return's relative improvement over seeds and per-seed diagnostics for the JSON file."""
    rel_ret = np.array([r["port"]["learned"] / r["port"]["static"] - 1.0 for r in per])
    m, lo, hi, p = interval(rel_ret)
    return {
        "params": {
            **vars(args),
            "preset": "institutional (configs/signals.yaml)",
            "static_weights": static,
            "learning": dataclasses.asdict(WeightLearningParams()),
            "regimes": "none (empty frame)"
            if args.no_regimes
            else "regime_history (walk-forward HMM) on the simulator's raw bars and macro, regimes-stage settings",
            "scored": "signal sessions in [start, end] past the learner's warm-up; hit over pairs with ret != 0",
        },
        "ret_rel_improvement": {"mean": m, "ci95": [lo, hi], "p_t": p, "per_seed": rel_ret.tolist()},
        "per_seed": [
            {
                "seed": r["seed"],
                "calls": r["calls"],
                "regime_rows_scored": r["regime_rows"],
                "algorithms": r["algorithms"],
                "mean_learned_weight": dict(r["mean_weight"].sort("agent_name").rows()),
                "seconds": r["seconds"],
            }
            for r in per
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--history-start", default="2020-01-02")
    parser.add_argument("--start", default="2023-01-01")
    parser.add_argument("--end", default="2024-12-31")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(REPORT_SEEDS))
    parser.add_argument("--no-regimes", action="store_true", help="pass an empty regime frame to the learner")
    parser.add_argument("--no-write", action="store_true", help="print the per-seed rows only (timing runs)")
    args = parser.parse_args()
    settings = load_settings(ROOT / "configs")
    static = {a: w for a, w in settings.signals.starting_weights().items() if w > 0}
    t0 = time.perf_counter()
    per = []
    for seed in args.seeds:
        per.append(run_seed(seed, args, settings, static))
        secs = {k: round(v, 1) for k, v in per[-1]["seconds"].items()}
        print(seed_row(per[-1]), per[-1]["algorithms"], secs, f"{time.perf_counter() - t0:.0f} s", flush=True)
    if args.no_write:
        return 0
    rows = [seed_row(r) for r in per] + ([summary_row(per)] if len(per) > 1 else [])
    os.environ.setdefault("COLUMNS", "250")
    info = extra_info(args, per, static) | {"runtime_seconds": time.perf_counter() - t0}
    title = f"Learned vs static weights, own agents ({args.symbols} symbols, {args.start}..{args.end})"
    print(f"wrote {report('weights_own_agents', title, rows, info)} in {info['runtime_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
