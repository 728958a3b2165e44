"""Crash test of the execution step: SIGKILL at random points, rerun, and check nothing was sent twice.

A synthetic lake (bars and portfolio targets for ``--symbols`` symbols) is traded session by session
through the paper broker, each session in its own process (as a Dagster step runs). Each session's
first attempt is killed with SIGKILL after a random delay drawn uniformly over the time the step
takes; the partition is then rerun to completion. At the end:

* the broker holds no duplicate order (one order per cycle, symbol, side and leg, and no submit
  attempt of an id the broker already had),
* every order the lake says was SUBMITTED is at the broker and every broker order is in the lake,
* positions in the lake equal the broker's sum of fills, and
* every lake table and the broker's order book equal a reference run that was never killed.

    .venv/bin/python bench/crash.py --kills 100          # writes bench/results/crash.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("orders", "execution_decisions", "execution_outcomes", "execution_feedback", "positions", "account")
#: Every 4th session's risk state breaches: its orders are the emergency rebalance's (own client order ids).
BREACH_EVERY = 4


# ---------------------------------------------------------------------------------------------- synthetic lake
def build_lake(
    root: Path,
    symbols: int,
    sessions: int,
    seed: int = 7,
    spread_bps: float | None = None,
    breach_every: int = 0,
) -> list[dt.date]:
    """Bars and portfolio targets for ``sessions`` XNYS sessions from 2024-01-02; returns the sessions.

    ``breach_every`` > 0: a risk state for every traded session, in breach (breaker DEFENSIVE) every
    ``breach_every``-th one, so those sessions send the emergency rebalance's orders instead."""
    from mqf_pipeline import calendar
    from mqf_pipeline.storage.lake import Lake

    warm = 25  # sessions of bars before the first traded one (ADV and volatility windows)
    days = calendar.sessions(dt.date(2024, 1, 2), dt.date(2026, 12, 31))[: warm + sessions]
    rng = np.random.default_rng(seed)
    names = [f"C{i:03d}" for i in range(symbols)]
    t, n = len(days), symbols
    sigma = rng.uniform(0.01, 0.03, n)
    close = 50.0 * np.exp(np.cumsum(rng.standard_normal((t, n)) * sigma, axis=0))
    open_ = close * np.exp(rng.standard_normal((t, n)) * sigma * 0.3)
    adv = rng.uniform(2e5, 2e6, n)
    volume = np.round(adv * np.exp(0.3 * rng.standard_normal((t, n)))).astype(np.int64)
    spread = rng.uniform(3.0, 25.0, n) if spread_bps is None else np.full(n, spread_bps)
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    bars = pl.DataFrame(
        {
            "symbol": np.tile(names, t),
            "date": pl.Series([d for d in days for _ in range(n)], dtype=pl.Date),
            "open": open_.ravel(),
            "high": np.maximum(open_, close).ravel() * 1.01,
            "low": np.minimum(open_, close).ravel() * 0.99,
            "close": close.ravel(),
            "adjusted_close": close.ravel(),
            "volume": volume.ravel(),
            "provider": "synthetic",
            "raw_hash": "synthetic",
            "validation_flags": "[]",
            "ingestion_timestamp": now,
            "spread_bps": np.tile(spread, t),
            "n_duplicates": 0,
        }
    )
    lake = Lake(str(root))
    lake.write_many("price_history", bars, days, now=now)
    weights = np.zeros(n)
    rows = []
    for d in days[warm:]:
        pick = rng.choice(n, size=max(n // 6, 1), replace=False)
        weights[pick] = rng.uniform(0.0, 2.0, pick.size) * (rng.random(pick.size) < 0.8)
        w = 0.6 * weights / weights.sum() if weights.sum() else weights
        rows += [
            {"cycle_id": f"crash-{d}", "symbol": s, "target_weight": float(x), "date": d}
            for s, x in zip(names, w, strict=True)
            if x > 0
        ]
    lake.write_many("portfolio_targets", _with_nulls("portfolio_targets", pl.DataFrame(rows)), days[warm:], now=now)
    if breach_every > 0:
        traded = days[warm:]
        lake.write_many("risk_state", _risk_states(traded, breach_every), traded, now=now)
    return days[warm:]


def _risk_states(traded: list[dt.date], breach_every: int) -> pl.DataFrame:
    """A risk_state row per session, breaker DEFENSIVE (a breach) every ``breach_every``-th one, else NORMAL."""
    status = ["DEFENSIVE" if (i + 1) % breach_every == 0 else "NORMAL" for i in range(len(traded))]
    risk = pl.DataFrame(
        {
            "date": traded,
            "cycle_id": [f"crash-{d}" for d in traded],
            "nav": 1_000_000.0,
            "peak_nav": 1_000_000.0,
            "drawdown": 0.0,
            "gross_exposure": 0.6,
            "net_exposure": 0.6,
            "n_positions": pl.Series([0] * len(traded), dtype=pl.Int64),
            "stress_json": "{}",
            "limits_json": "[]",
            "breaker_status": status,
            "breaker_tier": pl.Series([2 if s == "DEFENSIVE" else 0 for s in status], dtype=pl.Int64),
            "breaker_state_json": "{}",
            "sizing_multiplier": 1.0,
            "kill_switch": False,
            "book_json": "{}",
            "book_source": "decided",
            "var_model": "hybrid",
        }
    )
    return _with_nulls("risk_state", risk)


def _with_nulls(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The table's remaining (nullable) columns as nulls of their declared types."""
    from mqf_pipeline.storage.schema import GENERATED_COLUMNS, table_spec

    spec = table_spec(table).columns
    return frame.with_columns(
        pl.lit(None, dtype).alias(c)
        for c, dtype in spec.items()
        if c not in frame.columns and c not in GENERATED_COLUMNS
    )


# ---------------------------------------------------------------------------------------------- the step
def worker(lake_root: str, broker_dir: str, day: str, die_after_submits: int = 0) -> None:
    """One session's execution step, as the asset runs it (same domain calls, same writes).

    ``die_after_submits`` > 0: the process SIGKILLs itself right after the broker accepted that many
    orders (a kill in the middle of submission, which random timing rarely hits: it takes milliseconds).
    """
    from mqf_pipeline.config import load_settings
    from mqf_pipeline.execution.brokers.paper import PaperBroker
    from mqf_pipeline.execution.orders import BrokerOrder, OrderRequest
    from mqf_pipeline.stages.base import materialize
    from mqf_pipeline.stages.context import run_context
    from mqf_pipeline.stages.execution import ExecutionStage
    from mqf_pipeline.stages.params import cost_params
    from mqf_pipeline.storage.lake import Lake

    class DyingBroker(PaperBroker):
        accepted = 0

        def submit(self, order: OrderRequest, *, session: dt.date) -> BrokerOrder:
            result = super().submit(order, session=session)
            DyingBroker.accepted += 1
            if DyingBroker.accepted == die_after_submits:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

    settings = load_settings(ROOT / "configs")
    broker = DyingBroker(broker_dir, initial_cash=1_000_000.0, params=cost_params(settings.execution), seed=11)
    lake = Lake(lake_root)
    print("READY", flush=True)
    session = dt.date.fromisoformat(day)
    ctx = run_context(lake, settings, now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    materialize(ExecutionStage(broker, latest_session=session), ctx, [session])


def _spawn(lake: Path, broker: Path, day: dt.date, die_after_submits: int = 0) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--worker", str(lake), str(broker), day.isoformat(), str(die_after_submits)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _run(lake: Path, broker: Path, day: dt.date) -> float:
    """Run one session to completion; seconds from READY to exit."""
    proc = _spawn(lake, broker, day)
    assert proc.stdout is not None
    proc.stdout.readline()
    t0 = time.perf_counter()
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"session {day} failed (exit {proc.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - t0


def _died_mid_submission(lake: Path, broker: Path, day: dt.date, after: int) -> bool:
    """Run the step with the broker killing it after ``after`` accepted orders; True if it died so."""
    proc = _spawn(lake, broker, day, after)
    proc.communicate()
    return proc.returncode == -signal.SIGKILL


def _killed(lake: Path, broker: Path, day: dt.date, delay: float) -> bool:
    """Start the step and SIGKILL it ``delay`` seconds after READY; True if it was still running."""
    proc = _spawn(lake, broker, day)
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return alive and proc.returncode == -signal.SIGKILL


# ---------------------------------------------------------------------------------------------- checks
def check(lake_root: Path, broker_dir: Path, reference: tuple[Path, Path] | None) -> dict[str, object]:
    """Duplicates, lake-broker agreement, positions = sum of fills, equality with the reference run."""
    import sqlite3

    from mqf_pipeline.storage.lake import Lake

    lake = Lake(str(lake_root))
    con = sqlite3.connect(broker_dir / "paper.sqlite")
    book = pl.DataFrame(
        con.execute("SELECT client_order_id, session, symbol, side, qty FROM orders").fetchall(),
        schema=["order_id", "session", "symbol", "side", "qty"],
        orient="row",
    )
    attempts = con.execute("SELECT outcome, COUNT(*) FROM submit_log GROUP BY outcome").fetchall()
    con.close()
    orders = lake.read("orders")
    sent = orders.filter(pl.col("status") == "SUBMITTED")
    legs = book.join(orders.select("order_id", "leg"), on="order_id", how="left")
    dup_trades = legs.group_by("session", "symbol", "side", "leg").len().filter(pl.col("len") > 1).height
    from mqf_pipeline.execution.brokers.paper import PaperBroker
    from mqf_pipeline.execution.simulator import CostParams

    broker_pos = PaperBroker(broker_dir, initial_cash=1_000_000.0, params=CostParams(), seed=11).positions()
    last = max(lake.partitions("positions"))
    ledger = dict(lake.read("positions", [last]).select("symbol", "qty").iter_rows())
    pos_diff = max(
        (abs(ledger.get(s, 0.0) - broker_pos.get(s, 0.0)) for s in set(ledger) | set(broker_pos)), default=0.0
    )
    out: dict[str, object] = {
        "broker_orders": book.height,
        "duplicate_trades_at_broker": dup_trades,
        "duplicate_submit_attempts": dict(attempts).get("duplicate", 0),
        "lake_submitted_missing_at_broker": sent.join(book, on="order_id", how="anti").height,
        "broker_orders_missing_in_lake": book.join(orders, on="order_id", how="anti").height,
        "max_position_diff_vs_fills": pos_diff,
    }
    if reference is not None:
        ref = Lake(str(reference[0]))
        differing = [t for t in TABLES for p in lake.partitions(t) if lake.stored_hash(t, p) != ref.stored_hash(t, p)]
        rcon = sqlite3.connect(reference[1] / "paper.sqlite")
        ref_fills = rcon.execute("SELECT fill_id, qty, price FROM fills ORDER BY fill_id").fetchall()
        rcon.close()
        con = sqlite3.connect(broker_dir / "paper.sqlite")
        fills = con.execute("SELECT fill_id, qty, price FROM fills ORDER BY fill_id").fetchall()
        con.close()
        out["partitions_differing_from_reference"] = len(differing)
        out["fills_equal_reference"] = fills == ref_fills
    return out


def _orders_for(broker: Path, day: dt.date) -> int:
    import sqlite3

    path = broker / "paper.sqlite"
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT COUNT(*) FROM orders WHERE session = ?", (day.isoformat(),)).fetchone()[0])
    except sqlite3.OperationalError:  # killed before the order book was created
        return 0
    finally:
        con.close()


def crash_test(kills: int, symbols: int, seed: int, workdir: Path) -> dict[str, object]:
    """SIGKILL each session's step until ``kills`` kills have landed, rerunning each partition after its kill.

    Odd sessions: at a uniformly random time over the step's measured duration. Even sessions: right after
    a random number of orders was accepted by the broker (in the middle of submission)."""
    rng = random.Random(seed)
    ref_lake, ref_broker = workdir / "ref_lake", workdir / "ref_broker"
    lake, broker = workdir / "lake", workdir / "broker"
    n_sessions = kills + max(kills // 5, 3)  # spare sessions: a kill timed after the step ended did not land
    days = build_lake(ref_lake, symbols, n_sessions, breach_every=BREACH_EVERY)
    build_lake(lake, symbols, n_sessions, breach_every=BREACH_EVERY)
    landed, attempts, mid_submission, used = 0, 0, 0, []
    for d in days:
        if landed == kills:
            break
        full = _run(ref_lake, ref_broker, d)
        used.append(full)
        attempts += 1
        n_orders = _orders_for(ref_broker, d)
        if attempts % 2 == 0 and n_orders > 1:
            hit = _died_mid_submission(lake, broker, d, rng.randint(1, n_orders - 1))
        else:
            hit = _killed(lake, broker, d, rng.uniform(0.0, full))  # uniform over the step's measured duration
        landed += hit
        partial = _orders_for(broker, d)
        _run(lake, broker, d)
        mid_submission += hit and 0 < partial < _orders_for(broker, d)
    done = days[: len(used)]
    result = check(lake, broker, (ref_lake, ref_broker))
    from mqf_pipeline.storage.lake import Lake

    orders = Lake(str(lake)).read("orders")
    emergency = orders.filter(pl.col("cycle_id").str.ends_with("-EMG"))
    return {
        "sessions": len(done),
        "emergency_sessions": emergency["date"].n_unique(),
        "emergency_orders": emergency.height,
        "kill_attempts": attempts,
        "kills_landed": landed,
        "kills_mid_submission": mid_submission,
        "step_seconds_median": float(np.median(used)),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100, help="sessions whose first attempt is killed")
    parser.add_argument("--symbols", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", nargs=4, metavar=("LAKE", "BROKER", "DAY", "DIE_AFTER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lake_root, broker_dir, day, die_after = args.worker
        worker(lake_root, broker_dir, day, int(die_after))
        return
    sys.path.insert(0, str(ROOT))
    from bench.common import report

    with tempfile.TemporaryDirectory(prefix="mqf-crash-") as tmp:
        t0 = time.perf_counter()
        result = crash_test(args.kills, args.symbols, args.seed, Path(tmp))
        result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    report("crash", "SIGKILL crash test of the execution step", [{k: v for k, v in result.items()}])
    ok = (
        result["duplicate_trades_at_broker"] == 0
        and result["duplicate_submit_attempts"] == 0
        and result["lake_submitted_missing_at_broker"] == 0
        and result["broker_orders_missing_in_lake"] == 0
        and result["max_position_diff_vs_fills"] < 1e-6
        and result["partitions_differing_from_reference"] == 0
        and result["fills_equal_reference"]
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
