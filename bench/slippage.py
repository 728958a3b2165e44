"""Slippage model out of sample (seed 002 Part 5; success criterion R^2 > 0.5) against the static default.

Fills are simulated by the paper broker's own cost model (:mod:`mqf_pipeline.slippage.simulate`: 20
symbols, 80 sessions, orders drawn with random size/ADV, sigma and spread, scheduled by the execution
policy, filled by ``execution.simulator.execute``). Walk-forward: each of the last 20 sessions is predicted
by the model fitted on the fills strictly before it (``fill_predictions``); scored per fill against

* the static default: the execution policy's ``expected_cost_bps`` with default params (VWAP, Y = 0.7);
* R^2 = 1 - SSE / SST over the seed's scored fills; MAE reduction = 1 - MAE_model / MAE_static.

Worlds: ``paper`` (the broker's impact coefficient is the policy's: the static default is the truth's
expected cost), ``symbol_spread`` (per-symbol true Y lognormal around 0.7, log s.d. 0.5), ``live_like``
(that plus a per-seed market-wide factor, log s.d. 0.3). Targets: ``cost_vs_mid`` (the default) and
``slippage_bps`` (shortfall against the open, with the intraday price move). Shrinkage: the default k = 10
(chosen on seeds 100-109, disjoint from the reported ones), k = 0 (own OLS only) and k = 1e12 (pooled only).
Per row: mean over seeds and a 95% t-interval of the mean.

    .venv/bin/python bench/slippage.py --seeds 20      # writes bench/results/slippage.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from mqf_pipeline.slippage import FillSpec, SlippageParams, fill_predictions  # noqa: E402
from mqf_pipeline.slippage.simulate import FillSimParams, simulate_feedback  # noqa: E402

WORLDS: dict[str, FillSimParams] = {
    "paper": FillSimParams(),
    "symbol_spread": FillSimParams(impact_dispersion=0.5),
    "live_like": FillSimParams(impact_dispersion=0.5, world_dispersion=0.3),
}
#: (world, target, shrinkage) per reported row.
CASES: list[tuple[str, str, float]] = [
    ("paper", "cost_vs_mid", 10.0),
    ("symbol_spread", "cost_vs_mid", 10.0),
    ("live_like", "cost_vs_mid", 10.0),
    ("live_like", "cost_vs_mid", 0.0),
    ("live_like", "cost_vs_mid", 1e12),
    ("live_like", "slippage_bps", 10.0),
]
N_TEST = 20


def score(feedback: pl.DataFrame, params: SlippageParams) -> dict[str, float]:
    """Walk-forward over the last ``N_TEST`` sessions: R^2 of the model and of the static default, their MAE."""
    days = sorted(feedback["date"].unique())[-N_TEST:]
    pr = pl.concat([fill_predictions(feedback, day, params) for day in days])
    y, pred, static = (pr[c].to_numpy() for c in ("y", "predicted_bps", "static_bps"))
    sst = np.sum((y - y.mean()) ** 2)
    mae, mae_static = float(np.mean(np.abs(y - pred))), float(np.mean(np.abs(y - static)))
    return {
        "n_fills": float(len(y)),
        "r2": float(1 - np.sum((y - pred) ** 2) / sst),
        "r2_static": float(1 - np.sum((y - static) ** 2) / sst),
        "mae_bps": mae,
        "mae_static_bps": mae_static,
        "mae_reduction": 1 - mae / mae_static,
    }


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the 95% t-interval of the mean."""
    x = np.asarray(values)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def run(seeds: list[int]) -> tuple[list[dict[str, object]], dict[str, list[dict[str, float]]]]:
    per_case: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        fills = {name: simulate_feedback(seed, world) for name, world in WORLDS.items()}
        for world, target, k in CASES:
            params = SlippageParams(shrinkage=k, fills=FillSpec(target=target))
            per_case.setdefault(f"{world}|{target}|{k:g}", []).append(score(fills[world], params))
    rows: list[dict[str, object]] = []
    for key, scores in per_case.items():
        world, target, k = key.split("|")
        r2, r2_lo, r2_hi = interval([s["r2"] for s in scores])
        cut, cut_lo, cut_hi = interval([s["mae_reduction"] for s in scores])
        rows.append(
            {
                "world": world,
                "target": target,
                "shrinkage_k": k,
                "fills_per_seed": float(np.mean([s["n_fills"] for s in scores])),
                "r2_mean": r2,
                "r2_ci95_low": r2_lo,
                "r2_ci95_high": r2_hi,
                "r2_static_mean": float(np.mean([s["r2_static"] for s in scores])),
                "mae_bps": float(np.mean([s["mae_bps"] for s in scores])),
                "mae_static_bps": float(np.mean([s["mae_static_bps"] for s in scores])),
                "mae_reduction_mean": cut,
                "mae_reduction_ci95_low": cut_lo,
                "mae_reduction_ci95_high": cut_hi,
                "share_r2_above_0.5": float(np.mean([s["r2"] > 0.5 for s in scores])),
                "share_reduction_30pct": float(np.mean([s["mae_reduction"] >= 0.3 for s in scores])),
            }
        )
    return rows, per_case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    args = ap.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows, per_case = run(seeds)
    report(
        "slippage",
        f"Slippage model out of sample, last {N_TEST} of 80 sessions, {len(seeds)} seeds",
        rows,
        extra={"seeds": seeds, "per_seed": per_case, "worlds": {k: repr(v) for k, v in WORLDS.items()}},
    )


if __name__ == "__main__":
    main()
