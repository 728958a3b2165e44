"""Agents bench: out-of-sample daily rank IC of every registered agent on the simulated market.

Data: the default simulator (seed 20240101) with ``--symbols`` names; bars, fundamentals, headlines
and macro from ``--history-start`` (warm-up and any model fitting, which the agents do strictly before
each decision date) to ``--end``; features from :mod:`mqf_pipeline.features` when it imports. Decision
dates: every session from ``--start`` to ``--end``. Target: the simple 1-session forward return of the
adjusted close (D's close to the next close), so daily ICs do not overlap and
t = mean / (sd / sqrt(n_days)).

Per agent: Spearman IC of ``signal`` against the forward return (mean, sd, t, hit rate, and the 95%
interval ``mean +- 1.96 sd / sqrt(n_days)``), the same
against forward returns permuted across symbols within each date (the shuffled control, seed
``--control-seed`` fixed in advance; |t| < 2 expected ~95% of the time per agent), the distribution
of the control t over ``--extra-seeds`` further permutations, and the mean daily Spearman
correlation of the signal with the simulator's planted ``alpha_total`` (what the agent *could*
capture). Agents that read stored features (e.g. ``technical``) get them from
:func:`mqf_pipeline.features.compute_features` over the whole history, as the features stage would store
them. Agents that fail to import are skipped with a note. Writes bench/results/agents.json.

    .venv/bin/python bench/agents.py [--symbols 500] [--start 2023-01-01] [--end 2024-12-31]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from bench.common import report  # noqa: E402
from mqf_pipeline import calendar  # noqa: E402
from mqf_pipeline.agents.base import AgentData, validate_signals  # noqa: E402
from mqf_pipeline.agents.evaluation import daily_ic, forward_returns, ic_summary, shuffled_control  # noqa: E402
from mqf_pipeline.agents.registry import AGENTS, agent_class  # noqa: E402
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams  # noqa: E402


def load_features(bars: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """Wide features from :mod:`mqf_pipeline.features` if it is importable, else an empty frame."""
    try:
        from mqf_pipeline.features import compute_features
    except ImportError as exc:
        return pl.DataFrame(), f"features unavailable ({exc})"
    try:
        return compute_features(bars), "mqf_pipeline.features.compute_features"
    except Exception as exc:
        return pl.DataFrame(), f"features failed ({type(exc).__name__}: {exc})"


def ic_interval(summary: dict[str, Any], z: float = 1.96) -> tuple[float, float]:
    """Normal interval ``mean_ic +- z * ic_sd / sqrt(n_days)`` (95% for z = 1.96; daily ICs do not overlap)."""
    half = z * summary["ic_sd"] / math.sqrt(summary["n_days"]) if summary["n_days"] > 1 else math.nan
    return summary["mean_ic"] - half, summary["mean_ic"] + half


def alpha_alignment(signals: pl.DataFrame, alphas: pl.DataFrame) -> float:
    """Mean over dates of the Spearman correlation between ``signal`` and the planted ``alpha_total``."""
    ic = daily_ic(signals, alphas.select("date", "symbol", fwd_return=pl.col("alpha_total")))
    return float(ic.get_column("ic").mean()) if ic.height else math.nan


def measure(
    name: str,
    horizon: int,
    signals: pl.DataFrame,
    fwd: pl.DataFrame,
    control: pl.DataFrame,
    extra: list[pl.DataFrame],
    alphas: pl.DataFrame,
) -> tuple[dict[str, Any], dict[str, float]]:
    """One agent's row (IC with its 95% interval, hit rate, the shuffled control, alignment with the planted
    alpha) and the distribution of its control t-stat over the extra shuffles."""
    real = ic_summary(daily_ic(signals, fwd))
    lo, hi = ic_interval(real)
    ctrl = ic_summary(daily_ic(signals, control))
    extra_t = np.array([ic_summary(daily_ic(signals, f))["t_stat"] for f in extra])
    dist = {
        "mean_t": float(np.nanmean(extra_t)) if extra_t.size else math.nan,
        "sd_t": float(np.nanstd(extra_t, ddof=1)) if extra_t.size > 1 else math.nan,
        "share_abs_t_gt_2": float(np.mean(np.abs(extra_t) > 2)) if extra_t.size else math.nan,
        "max_abs_t": float(np.nanmax(np.abs(extra_t))) if extra_t.size else math.nan,
    }
    row = {
        "agent": name,
        "horizon": int(horizon),
        "rows": signals.height,
        "coverage": signals.height / max(fwd.height, 1),
        "mean_ic": real["mean_ic"],
        "ic_ci95_lo": lo,
        "ic_ci95_hi": hi,
        "ic_sd": real["ic_sd"],
        "t_stat": real["t_stat"],
        "hit_rate": real["hit_rate"],
        "n_days": real["n_days"],
        "control_ic": ctrl["mean_ic"],
        "control_t": ctrl["t_stat"],
        "alpha_corr": alpha_alignment(signals, alphas),
    }
    return row, dist


def run_info(
    args: argparse.Namespace,
    span: tuple[dt.date, dt.date, dt.date],
    features_note: str,
    control_dist: dict[str, dict[str, float]],
    skipped: dict[str, str],
    setup_s: float,
) -> dict[str, Any]:
    """The run's parameters and diagnostics written beside the table."""
    history_start, start, end = span
    extra_info = {
        "params": {
            "symbols": args.symbols,
            "history_start": str(history_start),
            "start": str(start),
            "end": str(end),
            "target": "1-session forward simple return of adjusted_close",
            "ic": "daily Spearman of signal vs target; t = mean / (sd / sqrt(n_days)); "
            "ic_ci95 = mean +- 1.96 sd / sqrt(n_days)",
            "control_seed": args.control_seed,
            "extra_seeds": args.extra_seeds,
            "features": features_note,
        },
        "control_t_over_extra_seeds": control_dist,
        "skipped": skipped,
        "setup_seconds": setup_s,
    }
    return extra_info


def simulated_agent_data(
    sim: MarketSimulator, history_start: dt.date, end: dt.date
) -> tuple[pl.DataFrame, AgentData, str]:
    """The simulator's bars up to 5 sessions after ``end`` (for forward returns), and the agents' data up to
    ``end`` (bars, stored-style features, universe, fundamentals, headlines, macro), with the features' note."""
    all_bars = sim.bars(history_start, calendar.session_offset(end, 5))
    bars = all_bars.filter(pl.col("date") <= end)
    features, features_note = load_features(bars)
    data = AgentData(
        bars=bars,
        features=features,
        universe=sim.universe(),
        fundamentals=sim.fundamentals(history_start, end),
        headlines=sim.headlines(history_start, end),
        macro=sim.macro(history_start, end),
    )
    return all_bars, data, features_note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--history-start", default="2020-01-02")
    parser.add_argument("--start", default="2023-01-01")
    parser.add_argument("--end", default="2024-12-31")
    parser.add_argument("--control-seed", type=int, default=0)
    parser.add_argument("--extra-seeds", type=int, default=40)
    parser.add_argument("--agents", nargs="*", default=None, help="subset of registered names (default: all)")
    args = parser.parse_args()
    history_start, start, end = (dt.date.fromisoformat(x) for x in (args.history_start, args.start, args.end))
    dates = calendar.sessions(start, end)

    t0 = time.perf_counter()
    sim = MarketSimulator(SimulatorParams(n_symbols=args.symbols))
    all_bars, data, features_note = simulated_agent_data(sim, history_start, end)
    fwd = forward_returns(all_bars, horizon=1).filter(pl.col("date").is_between(start, end))
    control = shuffled_control(fwd, args.control_seed)
    extra = [shuffled_control(fwd, args.control_seed + 1 + k) for k in range(args.extra_seeds)]
    alphas = sim.truth(start, end).alphas
    setup_s = time.perf_counter() - t0
    print(
        f"data: {args.symbols} symbols, {data.bars.height:,} bar rows, {len(dates)} decision dates; {features_note}; "
        f"setup {setup_s:.1f} s"
    )

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    control_dist: dict[str, dict[str, float]] = {}
    for name in args.agents or list(AGENTS):
        try:
            agent = agent_class(name)()
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            print(f"SKIP {name}: {skipped[name]}")
            continue
        t1 = time.perf_counter()
        try:
            signals = validate_signals(name, agent.signals(data, dates))
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            print(f"SKIP {name} (failed while running): {skipped[name]}")
            traceback.print_exc()
            continue
        seconds = time.perf_counter() - t1
        row, control_dist[name] = measure(name, agent.horizon_days, signals, fwd, control, extra, alphas)
        row["seconds"] = seconds
        rows.append(row)
        print(
            f"{name}: IC {row['mean_ic']:+.4f} [{row['ic_ci95_lo']:+.4f}, {row['ic_ci95_hi']:+.4f}] "
            f"t {row['t_stat']:+.2f} | control t {row['control_t']:+.2f} | {seconds:.1f} s"
        )

    if not rows:
        print("no agent ran", file=sys.stderr)
        return 1
    os.environ.setdefault("COLUMNS", "200")  # rich would squeeze the table to 80 columns without a terminal
    extra_info = run_info(args, (history_start, start, end), features_note, control_dist, skipped, setup_s)
    path = report("agents", f"Agent IC, {start}..{end}, {args.symbols} symbols (1-day forward)", rows, extra_info)
    for name, why in skipped.items():
        print(f"note: skipped {name}: {why}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
