"""Factor attribution as Dagster assets on a small simulated fund with two years of history: factor returns and
exposures every session, the book's attribution summing to its return, agents' shares summing to each position's
PnL, the same rows alone or in a range, and nothing moved by later data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.attribution import identity_check
from mqf_pipeline.attribution import PARTS
from mqf_pipeline.stages.attribution import AttributionStage
from mqf_pipeline.storage.lake import Lake
from tests.deployment import (
    definitions_for,
    rerun_after_changing_later_data,
    run_market_data,
    settings_for,
    write_configs,
)

INCEPTION, END = dt.date(2024, 1, 2), dt.date(2024, 1, 19)


@pytest.fixture(scope="module")
def fund(tmp_path_factory) -> Path:
    config_dir = write_configs(
        tmp_path_factory.mktemp("attribution_stage"),
        n_symbols=60,
        fund={
            "calendar": {"partitions_start": INCEPTION.isoformat()},
            "history": {"warm_up_sessions": 560, "min_history_rows": 10},
        },
        simulator={"n_symbols": 60, "seed": 7, "epoch": "2019-01-02"},
    )
    warm = (
        definitions_for(config_dir)
        .resolve_job_def("warm_up_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )
    assert warm.success, [e.message for e in warm.all_events if e.is_failure]
    result = run_market_data(config_dir, INCEPTION, END)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return config_dir


@pytest.mark.slow
def test_factor_returns_exposures_and_an_exact_attribution_every_session(fund: Path) -> None:
    lake = Lake(settings_for(fund).lake_root)
    factors = lake.read("factor_returns")
    assert {"market", "momentum", "volatility", "size", "liquidity"} <= set(factors["factor_name"].to_list())
    assert factors["date"].n_unique() == len(lake.partitions("portfolio_attribution"))
    exposures = lake.read("security_factor_exposures", [END])
    assert exposures.height == 60 and exposures["beta_market"].drop_nulls().len() >= 50
    attributed = lake.read("portfolio_attribution")
    assert attributed.height > 5  # the fund held positions on most sessions
    gap = attributed.select(
        (pl.sum_horizontal([pl.col(f"{p}_contribution") for p in PARTS]) - pl.col("total_portfolio_return")).abs()
    )
    assert gap.max().item() <= 1e-10  # tolerance: the seed's identity, exact up to float rounding
    assert identity_check(attributed).passed
    shares = lake.read("agent_pnl")
    assert shares.height and set(shares.columns) >= {"cycle_id", "symbol", "agent_name", "pnl_contribution"}


@pytest.mark.slow
def test_a_session_alone_equals_the_range_and_later_data_moves_nothing(fund: Path, tmp_path) -> None:
    pairs = rerun_after_changing_later_data(
        settings_for(fund),
        tmp_path / "lake",
        AttributionStage(),
        dt.date(2024, 1, 12),
        "price_history",
        lambda bars: bars.with_columns(pl.col("close") * 0.7, pl.col("adjusted_close") * 0.7),
    )
    for table, (before, after) in pairs.items():
        assert after.equals(before), table


@pytest.mark.slow
def test_month_to_date_is_linked_to_the_compounded_return(fund: Path) -> None:
    """Carino: the month's linked parts sum to prod(1 + R_t) - 1 of the stored sessions (1e-10, in percent)."""
    from assets.attribution import month_to_date

    lake = Lake(settings_for(fund).lake_root)
    linked = month_to_date(lake, END).row(0, named=True)
    daily = lake.read("portfolio_attribution").filter(pl.col("date") <= END)
    compounded = 100 * (float((1 + daily["total_portfolio_return"]).product()) - 1)
    assert linked["total_portfolio_return"] == pytest.approx(compounded, abs=1e-10)
    assert sum(linked[f"{p}_contribution"] for p in PARTS) == pytest.approx(compounded, abs=1e-10)
    assert linked["n_sessions"] == daily.height
