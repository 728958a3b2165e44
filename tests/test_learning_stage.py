"""Agent-weight learning as Dagster assets on a small simulated fund: outcomes and weights every session, the
preset's weights until enough outcomes exist (recorded), the meta-brain of D using the weights learned at D's
close, the seed's limits held, and nothing moved by returns after D."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from assets.learning import weight_check
from mqf_pipeline.learning import WeightLearningParams
from mqf_pipeline.stages.learning import LearningStage, learned_set
from mqf_pipeline.storage.lake import Lake
from tests.deployment import rerun_after_changing_later_data, run_market_data, settings_for, write_configs

START, END = dt.date(2023, 11, 20), dt.date(2024, 1, 5)
MIN_SESSIONS = 3


@pytest.fixture(scope="module")
def fund(tmp_path_factory) -> Path:
    config_dir = write_configs(
        tmp_path_factory.mktemp("learning_stage"),
        n_symbols=12,
        signals={"learning": {"min_sessions": MIN_SESSIONS}},
    )
    result = run_market_data(config_dir, START, END)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return config_dir


def test_weights_every_session_static_until_enough_outcomes_then_learned(fund: Path) -> None:
    settings = settings_for(fund)
    lake = Lake(settings.lake_root)
    weights = lake.read("agent_weights").sort("date", "agent_name")
    performance = lake.read("agent_performance")
    assert weights["date"].n_unique() == len(lake.partitions("price_history"))
    outcome_days = sorted(set(performance["date"].to_list()))
    assert len(outcome_days) >= MIN_SESSIONS + 2  # the agents that scored had outcomes
    algorithms = dict(weights.group_by("date").agg(pl.col("algorithm_used").first()).iter_rows())
    first_learned = outcome_days[MIN_SESSIONS - 1]
    assert all(a.startswith("static") for d, a in algorithms.items() if d < first_learned)
    assert not algorithms[END].startswith("static")
    assert weight_check(weights, 0.05, 0.40).passed
    static, blocked = learned_set(settings.signals.starting_weights(), WeightLearningParams())
    assert blocked is None and set(weights["agent_name"].unique()) == set(static)


def test_the_meta_brain_of_d_uses_the_weights_learned_at_d(fund: Path) -> None:
    lake = Lake(settings_for(fund).lake_root)
    audit = lake.read("audit_log", [END.isoformat()])
    text = " ".join(str(v) for row in audit.iter_rows() for v in row)
    assert f"learned ({END})" in text


def test_a_session_alone_equals_the_range_and_later_returns_move_nothing(fund: Path, tmp_path) -> None:
    pairs = rerun_after_changing_later_data(
        settings_for(fund),
        tmp_path / "lake",
        LearningStage(),
        dt.date(2023, 12, 28),
        "price_history",
        lambda bars: bars.with_columns(pl.col("close") * 1.5, pl.col("adjusted_close") * 1.5),
    )
    for table, (before, after) in pairs.items():
        assert after.equals(before), table


def test_too_few_or_too_many_agents_keep_the_preset_weights_and_say_why() -> None:
    params = WeightLearningParams()
    two = {"a": 0.5, "b": 0.5}
    assert learned_set(two, params)[1] == "static (2 agents: floor 0.05 and cap 0.4 need 3 to 20)"
    skewed, why = learned_set({"a": 0.7, "b": 0.1, "c": 0.1, "d": 0.1, "e": 0.0}, params)
    assert why is None and set(skewed) == {"a", "b", "c", "d"}
    assert abs(sum(skewed.values()) - 1) < 1e-12 and max(skewed.values()) <= 0.40 + 1e-12
