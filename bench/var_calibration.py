"""VaR calibration report: the seed's hybrid VaR beside the conditional FHS models (EWMA-filtered historical
simulation, GPD or empirical residual tail), at 95% and 99%.

Two sources of daily returns (no network here; real index data would go through the same function):

* ``garch``: GARCH(1,1) with Student-t(6) shocks, ``--seeds`` seeds of 300 + 1,500 days; per model and level
  the share of seeds where Kupiec or Christoffersen rejects at 5% (nominal: about 5% each).
* ``simulator``: the built-in market simulator's market-factor return (regime-switching volatility with
  GARCH multipliers), 2007-2024, one report.

    .venv/bin/python bench/var_calibration.py --seeds 20      # writes bench/results/var_calibration.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams  # noqa: E402
from mqf_pipeline.risk.conditional_var import calibration_report  # noqa: E402


def garch_returns(seed: int, n: int = 1_800, omega: float = 2e-6, a: float = 0.08, b: float = 0.90, nu: int = 6):
    """GARCH(1,1) daily returns with unit-variance Student-t(nu) shocks."""
    rng = np.random.default_rng([seed, 12])
    z = rng.standard_t(nu, n) / np.sqrt(nu / (nu - 2))
    r, h = np.empty(n), omega / (1 - a - b)
    for t in range(n):
        r[t] = np.sqrt(h) * z[t]
        h = omega + a * r[t] ** 2 + b * h
    return r


def garch_rows(seeds: int) -> list[dict[str, object]]:
    """Per model and level: rejection rates over seeds, mean hit rate."""
    per: dict[tuple[str, float], list[dict[str, object]]] = {}
    for seed in range(seeds):
        for row in calibration_report(garch_returns(seed), seed=seed):
            per.setdefault((str(row["model"]), float(row["level"])), []).append(row)
    return [
        {
            "source": f"garch x{seeds} seeds",
            "model": model,
            "level": level,
            "hit_rate": float(np.mean([r["hit_rate"] for r in rows])),
            "kupiec_reject_share": float(np.mean([r["kupiec_p"] <= 0.05 for r in rows])),
            "christoffersen_reject_share": float(np.mean([r["christoffersen_p"] <= 0.05 for r in rows])),
        }
        for (model, level), rows in per.items()
    ]


def simulator_rows() -> list[dict[str, object]]:
    """One report on the simulator's market-factor returns."""
    sim = MarketSimulator(SimulatorParams(n_symbols=20))
    market = sim.truth(dt.date(2007, 1, 3), dt.date(2024, 12, 31), symbols=["S0000"]).market
    returns = market["market_return"].to_numpy()
    return [
        {
            "source": f"simulator market ({returns.size} days)",
            "model": r["model"],
            "level": r["level"],
            "hit_rate": r["hit_rate"],
            "kupiec_reject_share": float(r["kupiec_p"] <= 0.05),
            "christoffersen_reject_share": float(r["christoffersen_p"] <= 0.05),
        }
        for r in calibration_report(returns)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    rows = garch_rows(args.seeds) + simulator_rows()
    report("var_calibration", "VaR calibration: seed hybrid vs conditional FHS", rows)


if __name__ == "__main__":
    main()
