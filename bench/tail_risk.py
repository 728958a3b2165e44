"""Tail-risk bench: the vectorised EVT (GPD peaks-over-threshold) fit vs a scipy per-symbol loop, same run.

Simulates fat-tailed daily returns (default 500 symbols x 252 sessions, iid Student-t with 4 degrees
of freedom, 1.5% daily volatility, seeded) and fits the loss tail above the 90% threshold of every
symbol twice: :func:`mqf_pipeline.risk.evt.fit_pot` on the whole (T, N) matrix at once, and a Python
loop calling ``scipy.stats.genpareto.fit(excesses, floc=0)`` per symbol (its default Nelder-Mead
optimizer, wrapped only to record whether it converged). Both timings include the threshold and
the excesses. Repetitions alternate between the two; best and median wall time and process CPU time
are reported.

Agreement: ``max |xi - xi_scipy|`` (and the largest relative beta difference) over the symbols where
scipy's optimizer converged and our maximum is interior. Columns where scipy's log-likelihood is
lower than ours (scipy stopped short) and columns where our fit is on the ``xi = -1`` edge (a
short-tailed sample whose likelihood is unbounded as ``xi`` falls below -1, where scipy reports
``xi < -1`` with a higher, meaningless likelihood) are counted separately.
Goals: speed-up >= 30x (best wall times), ``max |xi - xi_scipy|`` <= 1e-3. Writes
bench/results/tail_risk.json.

    .venv/bin/python bench/tail_risk.py [--symbols 500] [--sessions 252] [--df 4] [--reps 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize as so
import scipy.stats as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from mqf_pipeline.risk import evt  # noqa: E402
from mqf_pipeline.risk.var import QUANTILE_METHOD  # noqa: E402

GOAL_SPEEDUP = 30.0
GOAL_XI_DIFF = 1e-3
THRESHOLD_QUANTILE = 0.90
LL_TOL = 1e-9  # a log-likelihood gap above this counts as "worse" / "better"
LL_MATERIAL = 1e-3  # a gap above this is a materially different fit, not a loose stopping rule


def student_t_returns(n_symbols: int, n_sessions: int, df: float, seed: int = 7) -> np.ndarray:
    """iid Student-t daily returns with 1.5% standard deviation, shape (sessions, symbols)."""
    rng = np.random.default_rng(seed)
    return 0.015 * np.sqrt((df - 2) / df) * rng.standard_t(df, (n_sessions, n_symbols))


def scipy_loop(returns: np.ndarray) -> dict[str, Any]:
    """Per column: threshold, excesses, ``genpareto.fit(excesses, floc=0)`` and fmin's convergence flag."""
    n = returns.shape[1]
    out: dict[str, Any] = {"xi": np.full(n, np.nan), "beta": np.full(n, np.nan), "converged": np.zeros(n, dtype=bool)}
    excesses = []
    for j in range(n):
        losses = -returns[:, j]
        u = np.quantile(losses, THRESHOLD_QUANTILE, method=QUANTILE_METHOD)
        y = losses[losses > u] - u
        excesses.append(y)
        flag: dict[str, int] = {}

        def optimizer(func: Any, x0: Any, args: tuple = (), disp: int = 0, flag: dict[str, int] = flag) -> Any:
            res = so.fmin(func, x0, args=args, disp=disp, full_output=True)
            flag["warn"] = res[4]
            return res[0]

        c, _, scale = st.genpareto.fit(y, floc=0, optimizer=optimizer)
        out["xi"][j], out["beta"][j], out["converged"][j] = c, scale, flag["warn"] == 0
    out["excesses"] = excesses
    return out


def loglik(y: np.ndarray, xi: float, beta: float) -> float:
    return float(st.genpareto.logpdf(y, xi, scale=beta).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=252)
    parser.add_argument("--df", type=float, default=4.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    returns = student_t_returns(args.symbols, args.sessions, args.df)

    times: dict[str, list[float]] = {"vectorised": [], "scipy_loop": []}
    cpu: dict[str, list[float]] = {"vectorised": [], "scipy_loop": []}
    runners = {
        "vectorised": lambda: evt.fit_pot(returns, THRESHOLD_QUANTILE),
        "scipy_loop": lambda: scipy_loop(returns),
    }
    results: dict[str, Any] = {}
    for _ in range(args.reps):
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            results[name] = run()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    fit: evt.GPDFit = results["vectorised"]
    ref: dict[str, Any] = results["scipy_loop"]
    assert fit.loglik is not None and fit.converged is not None

    ll_ours = fit.loglik
    ll_scipy = np.array([loglik(y, c, b) for y, c, b in zip(ref["excesses"], ref["xi"], ref["beta"], strict=True)])
    ours_ok = fit.converged
    scipy_ok = ref["converged"]
    gap = ll_ours - ll_scipy  # > 0: scipy's parameters have a lower likelihood than ours
    scipy_worse = ours_ok & (gap > LL_TOL)
    scipy_material = ours_ok & (gap > LL_MATERIAL)
    scipy_better = gap < -LL_TOL
    both = ours_ok & scipy_ok
    xi_diff = np.abs(fit.xi - ref["xi"])
    beta_rel = np.abs(ref["beta"] / fit.beta - 1)
    max_xi = float(xi_diff[both].max()) if both.any() else float("nan")
    both_not_material = both & ~scipy_material
    max_xi_not_material = float(xi_diff[both_not_material].max()) if both_not_material.any() else float("nan")

    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    speedup = best["scipy_loop"] / best["vectorised"]
    speedup_cpu = min(cpu["scipy_loop"]) / min(cpu["vectorised"])
    rows = [
        {
            "engine": name,
            "best_s": best[name],
            "median_s": median[name],
            "best_cpu_s": min(cpu[name]),
            "symbols_per_s": args.symbols / best[name],
        }
        for name in times
    ]
    es95 = evt.evt_es(fit, 0.95)
    extra = {
        "symbols": args.symbols,
        "sessions": args.sessions,
        "student_t_df": args.df,
        "threshold_quantile": THRESHOLD_QUANTILE,
        "quantile_method": QUANTILE_METHOD,
        "exceedances_per_symbol": sorted(set(fit.n_exceed.tolist())),
        "reps": args.reps,
        "times_s": times,
        "cpu_s": cpu,
        "speedup_best": speedup,
        "speedup_median": median["scipy_loop"] / median["vectorised"],
        "speedup_cpu": speedup_cpu,
        "goal_speedup": GOAL_SPEEDUP,
        "scipy_converged": int(scipy_ok.sum()),
        "ours_interior": int(ours_ok.sum()),
        "ours_xi_minus_one_edge": int((~ours_ok).sum()),
        "compared_columns": int(both.sum()),
        "max_abs_xi_diff": max_xi,
        "max_rel_beta_diff": float(beta_rel[both].max()) if both.any() else float("nan"),
        "median_abs_xi_diff": float(np.median(xi_diff[both])) if both.any() else float("nan"),
        "goal_xi_diff": GOAL_XI_DIFF,
        "scipy_worse_loglik_columns": int(scipy_worse.sum()),
        "scipy_worse_loglik_tolerance": LL_TOL,
        "scipy_worse_median_loglik_gap": float(np.median(gap[scipy_worse])) if scipy_worse.any() else 0.0,
        "scipy_worse_max_loglik_gap": float(gap[scipy_worse].max()) if scipy_worse.any() else 0.0,
        "scipy_materially_worse_columns": int(scipy_material.sum()),
        "scipy_materially_worse_tolerance": LL_MATERIAL,
        "max_abs_xi_diff_excluding_materially_worse": max_xi_not_material,
        "scipy_better_loglik_columns": int(scipy_better.sum()),
        "scipy_better_columns_are_our_edge_fits": bool(np.all(~ours_ok[scipy_better])),
        "scipy_xi_on_those_columns": ref["xi"][scipy_better].tolist(),
        "xi_quartiles": np.nanpercentile(fit.xi[ours_ok], [25, 50, 75]).tolist(),
        "median_evt_es95": float(np.nanmedian(es95)),
        "goal_met": speedup >= GOAL_SPEEDUP and max_xi <= GOAL_XI_DIFF,
        "stamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    title = f"tail risk: vectorised GPD fit vs scipy genpareto.fit loop, {args.symbols} x {args.sessions}"
    path = report("tail_risk", title, rows, extra)
    print(
        f"speed-up: best {speedup:.1f}x, cpu {speedup_cpu:.1f}x (goal >= {GOAL_SPEEDUP:.0f}x); "
        f"max |xi - xi_scipy| {max_xi:.2e} over {int(both.sum())} columns (scipy converged on "
        f"{int(scipy_ok.sum())}/{args.symbols}; goal <= {GOAL_XI_DIFF:.0e}); scipy's likelihood lower than ours "
        f"on {int(scipy_worse.sum())} columns (median gap {extra['scipy_worse_median_loglik_gap']:.1e}, "
        f"max {extra['scipy_worse_max_loglik_gap']:.1e}; > {LL_MATERIAL:.0e} on {int(scipy_material.sum())}), "
        f"higher on {int(scipy_better.sum())} (our xi = -1 edge fits: {int((~ours_ok).sum())}); "
        f"goal met: {extra['goal_met']}; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
