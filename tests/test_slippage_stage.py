"""The slippage refit as Dagster assets on a small simulated fund: one model per session fitted on the fills
up to it, errors from the fit before it, the same rows alone or in a range, nothing moved by later fills;
the refit sensor and the weekly schedule."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mqf_pipeline.slippage import REGIME_ADJUSTMENTS
from mqf_pipeline.stages.slippage import SlippageStage
from mqf_pipeline.storage.lake import Lake
from resources import SettingsResource
from sensors.slippage_refit import new_fills_since_refit, slippage_refit_sensor
from tests.deployment import rerun_after_changing_later_data, run_market_data, settings_for, write_configs

START, END = dt.date(2023, 11, 20), dt.date(2024, 1, 5)


@pytest.fixture(scope="module")
def fund(tmp_path_factory) -> Path:
    config_dir = write_configs(
        tmp_path_factory.mktemp("slippage_stage"), n_symbols=12, execution={"slippage_model": {"min_pooled_fills": 5}}
    )
    result = run_market_data(config_dir, START, END)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return config_dir


def test_every_session_has_a_model_fitted_on_fills_up_to_it(fund: Path) -> None:
    lake = Lake(settings_for(fund).lake_root)
    feedback = lake.read("execution_feedback")
    assert feedback.height > 0  # the fund traded
    coeffs = lake.read("slippage_model_coeffs")
    assert coeffs["estimation_date"].n_unique() == len(lake.partitions("execution_feedback"))
    last = coeffs.filter((pl.col("estimation_date") == END) & (pl.col("symbol") == "*"))
    assert last["n_observations"].item() <= feedback.filter(pl.col("date") <= END).height
    assert last["status"].item() in ("pooled", "pooled_rank_deficient", "too_few_fills")


def test_a_session_alone_equals_the_session_in_the_range_and_later_fills_move_nothing(fund: Path, tmp_path) -> None:
    pairs = rerun_after_changing_later_data(
        settings_for(fund),
        tmp_path / "lake",
        SlippageStage(),
        dt.date(2023, 12, 20),
        "execution_feedback",
        lambda rows: rows.with_columns(pl.col("market_impact_bps") * 3),  # fills after D: costs tripled
    )
    for table, (before, after) in pairs.items():
        assert after.equals(before), table


def test_refit_sensor_requests_a_refit_once_enough_new_fills_arrived(fund: Path, tmp_path) -> None:
    settings = settings_for(fund)
    lake = Lake(settings.lake_root)
    new, latest, last_refit = new_fills_since_refit(lake)
    assert (new, latest, last_refit) == (0, END.isoformat(), END.isoformat())
    resources = {"settings": SettingsResource(config_dir=str(fund))}
    skipped = slippage_refit_sensor(dg.build_sensor_context(resources=resources))
    assert isinstance(skipped, dg.SkipReason) and "0 new fill(s)" in skipped.skip_message
    copy = tmp_path / "lake"
    shutil.copytree(settings.lake_root, copy)
    moved = Lake(str(copy))
    for p in moved.partitions("slippage_model_coeffs")[-3:]:
        moved.delete("slippage_model_coeffs", p)
    new, latest, last_refit = new_fills_since_refit(moved)
    fills_after = moved.read("execution_feedback").filter(pl.col("date").cast(pl.String) > last_refit).height
    assert new == fills_after and new > 0


def test_definitions_have_the_loop_back_groups_jobs_schedules_and_sensor() -> None:
    from mqf_pipeline.definitions import defs

    job = defs.resolve_job_def("slippage_refit_job")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {"slippage_model_coeffs", "slippage_prediction_errors"}
    assert defs.resolve_sensor_def("slippage_refit_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    schedule = defs.resolve_schedule_def("slippage_weekly_refit")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    cycle = {k.to_user_string() for k in defs.resolve_job_def("daily_cycle_job").asset_layer.selected_asset_keys}
    assert keys <= cycle
    attribution = {
        k.to_user_string() for k in defs.resolve_job_def("daily_attribution_job").asset_layer.selected_asset_keys
    }
    assert attribution == {"factor_returns", "security_factor_exposures", "portfolio_attribution", "agent_pnl"}
    assert attribution | {"agent_weights", "agent_performance"} <= cycle
    daily = defs.resolve_schedule_def("daily_attribution")
    assert daily.default_status == dg.DefaultScheduleStatus.STOPPED and daily.execution_timezone == "America/New_York"


def test_the_orders_of_d_are_priced_by_the_model_stored_for_d(fund: Path) -> None:
    """The execution policy's expected cost of an aggressive order at D is the stored coefficients of D applied to
    the order's size/ADV, volatility and spread (the symbol's row, else the pooled '*') times D's regime
    multiplier (seed 002 section 5.6): tolerance 1e-9 bps."""
    lake = Lake(settings_for(fund).lake_root)
    decisions = lake.read("execution_decisions", [END]).filter(pl.col("action") != "LIMIT")
    coeffs = lake.read("slippage_model_coeffs", [END])
    assert decisions.height and decisions["policy"].str.contains(f"fitted slippage model \\({END}").all()
    rows = {r["symbol"]: r for r in coeffs.iter_rows(named=True)}
    regimes = lake.read("regime_history", [END])["regime"].to_list()  # none yet on this short history
    multiplier = REGIME_ADJUSTMENTS.get(regimes[0] if regimes else None, (1.0, 0.5))[0]  # seed 002 section 5.6
    assert decisions["policy"].str.contains(f"x{multiplier:g}").all()
    for d in decisions.iter_rows(named=True):
        c = rows.get(d["symbol"]) if rows.get(d["symbol"], {}).get("status") not in (None, "pooled_only") else rows["*"]
        q, s, sp = d["size_adv"], d["volatility"], d["spread_bps"]
        expected = c["alpha_0"] + c["alpha_1"] * q + c["alpha_2"] * s + c["alpha_3"] * sp + c["alpha_4"] * q * s
        expected *= multiplier
        assert abs(d["expected_cost_bps"] - expected) < 1e-9, d["symbol"]
