"""Agents without data: the ensemble gives them zero effective weight (the others scale up pro rata), and the
signal report and the run summary say which agents had no data and why."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mqf_pipeline.decisions.ensemble import ensemble, penalised_ensemble
from mqf_pipeline.report import market_data_summary
from mqf_pipeline.stages.signals import agents_without_data, coverage_table, model_output_rows, no_data_note
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_spec

DAY = dt.date(2024, 5, 6)
#: The institutional preset's shares for four agents: valuation and fundamental hold 20% between them.
WEIGHTS = {"momentum": 0.5, "sentiment": 0.3, "valuation": 0.1, "fundamental": 0.1}


def _signals(agents: dict[str, list[float]], confidence: float = 0.6) -> pl.DataFrame:
    """Rows for symbols A, B, C with the given daily mu per agent (horizon 1, sigma 2%)."""
    rows = [
        {
            "date": DAY,
            "symbol": sym,
            "agent": agent,
            "mu": mu,
            "sigma": 0.02,
            "confidence": confidence,
            "signal": max(-1.0, min(1.0, mu * 50)),
            "horizon_days": 1,
            "reason_codes": "[]",
        }
        for agent, mus in agents.items()
        for sym, mu in zip("ABC", mus, strict=True)
    ]
    return pl.DataFrame(rows, schema_overrides={"horizon_days": pl.Int32})


def test_an_agent_without_signals_gets_zero_weight_and_the_others_scale_up_pro_rata() -> None:
    """ensemble() normalises weight x confidence over the agents that scored each symbol (no code change
    was needed): with valuation and fundamental silent, momentum and sentiment keep their 5:3 ratio and
    sum to 1, exactly as if the silent agents' weight had been spread over them pro rata."""
    signals = _signals({"momentum": [0.01, -0.005, 0.002], "sentiment": [0.004, 0.003, -0.001]})
    with_silent = ensemble(signals, WEIGHTS)
    renormalised = ensemble(signals, {"momentum": 0.5 / 0.8, "sentiment": 0.3 / 0.8})
    assert_frame_equal(with_silent.drop("agent_results"), renormalised.drop("agent_results"))
    for row in with_silent.iter_rows(named=True):
        effective = {a: r["weight"] for a, r in json.loads(row["agent_results"]).items()}
        assert set(effective) == {"momentum", "sentiment"}  # valuation/fundamental: zero effective weight
        assert sum(effective.values()) == pytest.approx(1.0)
        assert effective["momentum"] / effective["sentiment"] == pytest.approx(0.5 / 0.3)
        assert effective["momentum"] == pytest.approx(0.5 / 0.8)  # 0.5 scaled up by 1 / (1 - 0.2)
        assert row["n_agents"] == 2
    assert with_silent.filter(pl.col("symbol") == "A")["mu_hat"].item() == pytest.approx(0.625 * 0.01 + 0.375 * 0.004)
    penalised = penalised_ensemble(signals, WEIGHTS, beta=0.5)
    reference = penalised_ensemble(signals, {"momentum": 0.5 / 0.8, "sentiment": 0.3 / 0.8}, beta=0.5)
    assert_frame_equal(penalised.drop("agent_results"), reference.drop("agent_results"))


def test_when_the_silent_agent_speaks_it_takes_its_weight_back() -> None:
    both = _signals({"momentum": [0.01, -0.005, 0.002], "valuation": [0.002, 0.001, 0.0]})
    effective = json.loads(ensemble(both, WEIGHTS).filter(pl.col("symbol") == "A")["agent_results"].item())
    assert effective["momentum"]["weight"] == pytest.approx(0.5 / 0.6)
    assert effective["valuation"]["weight"] == pytest.approx(0.1 / 0.6)


def _lake_with_outputs(root: Path, agents: list[str]) -> Lake:
    lake = Lake(str(root))
    signals = _signals({a: [0.01, 0.0, -0.01] for a in agents})
    rows = model_output_rows(signals, "institutional", "2")
    lake.write("model_outputs", DAY, rows)
    return lake


def test_coverage_and_note_say_no_fundamentals_were_served(tmp_path: Path) -> None:
    lake = _lake_with_outputs(tmp_path, ["momentum", "sentiment"])
    missing = agents_without_data(lake, DAY, {"momentum", "sentiment"}, WEIGHTS)
    assert [m["agent"] for m in missing] == ["fundamental", "valuation"]
    assert all("no fundamentals in the lake up to 2024-05-06" in str(m["reason"]) for m in missing)
    table = coverage_table(_signals({"momentum": [0.01, 0.0, -0.01]}), 3, DAY, missing)
    status = {r["agent"]: (r["status"], r["symbols"], r["coverage"]) for r in table}
    assert status == {
        "fundamental": ("no data", 0, 0.0),
        "momentum": ("ok", 3, 1.0),
        "valuation": ("no data", 0, 0.0),
    }
    note = no_data_note(missing)
    assert note is not None
    assert note.startswith("no data: fundamental (no fundamentals in the lake")
    assert "valuation (" in note and "ensemble weight (20.0%) went to the other agents pro rata" in note
    assert no_data_note([]) is None


def test_an_agent_silent_despite_stored_inputs_is_reported_without_blaming_the_providers(tmp_path: Path) -> None:
    lake = _lake_with_outputs(tmp_path, ["momentum"])
    fundamentals = pl.DataFrame(
        {"report_date": [dt.date(2024, 4, 25)], "symbol": ["A"], "fiscal_period_end": [dt.date(2024, 3, 31)]}
    ).with_columns(
        *[pl.lit(None, pl.Float64).alias(c) for c in ("eps", "book_value_per_share", "revenue")],
        *[pl.lit(None, pl.Float64).alias(c) for c in ("operating_cash_flow", "dividend_per_share")],
        pl.lit(None, pl.Int64).alias("shares_outstanding"),
        pl.lit("files").alias("provider"),
        pl.lit("h").alias("raw_hash"),
    )
    lake.write("fundamentals", dt.date(2024, 4, 25), fundamentals.select(list(table_spec("fundamentals").columns)))
    (row,) = agents_without_data(lake, DAY, {"momentum"}, {"momentum": 0.8, "valuation": 0.2})
    assert row == {"agent": "valuation", "weight": 0.2, "reason": "scored no symbol on 2024-05-06"}


def test_run_summary_names_the_agents_without_data(tmp_path: Path) -> None:
    lake = _lake_with_outputs(tmp_path, ["momentum", "sentiment"])
    summary = market_data_summary(lake, DAY, WEIGHTS)
    line = summary["agents_without_data"]
    assert isinstance(line, str) and line.startswith("no data: fundamental (no fundamentals in the lake up to")
    assert "valuation" in line and "(20.0%) went to the other agents" in line
    assert market_data_summary(lake, DAY, {"momentum": 0.6, "sentiment": 0.4})["agents_without_data"] is None
    assert market_data_summary(lake, DAY)["agents_without_data"] is None  # no weights given, none learned
