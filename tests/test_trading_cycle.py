"""Positions are the book: on a small simulated deployment run as one backfill, with a broker that rejects
every order of one symbol (costs and partial fills come from the paper broker itself), the risk state
marks the positions and account NAV, and each session's targets start from the positions held, not from
the previous targets."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from mqf_pipeline.execution.brokers.base import OrderRejectedError
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.execution.orders import BrokerOrder, OrderRequest
from mqf_pipeline.storage.lake import Lake
from resources import BrokerResource, SettingsResource
from tests.deployment import RANGE_END_TAG, RANGE_START_TAG, settings_for, write_configs

START, END = dt.date(2024, 1, 2), dt.date(2024, 2, 9)


class RejectingPaperBroker(PaperBroker):
    """The paper broker, refusing every order of the first symbol it is asked to buy (a real broker refuses
    orders, e.g. a hard-to-borrow or halted name)."""

    refused: str | None = None

    def submit(self, order: OrderRequest, *, session: dt.date) -> BrokerOrder:
        if type(self).refused is None and order.side.value == "BUY":
            type(self).refused = order.symbol
        if order.symbol == type(self).refused:
            raise OrderRejectedError(f"{order.symbol} is not tradable at this broker (test)")
        return super().submit(order, session=session)


class RejectingBrokerResource(BrokerResource):
    def broker(self):
        if self._broker is None:
            cfg = self.settings.get()
            self._broker = RejectingPaperBroker(
                cfg.broker_dir, initial_cash=cfg.risk.initial_nav, params=_cost_params(cfg), seed=cfg.simulator.seed
            )
        return self._broker


def _cost_params(cfg):
    from mqf_pipeline.stages.params import cost_params

    return cost_params(cfg.execution)


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    from assets.partitions import trading_day_partitions
    from mqf_pipeline.definitions import JOBS, build_assets, build_resources
    from mqf_pipeline.stages.plan import fund_inception

    root = tmp_path_factory.mktemp("cycle")
    config_dir = write_configs(root)
    settings = settings_for(config_dir)
    resources = build_resources(str(config_dir))
    resources["broker"] = RejectingBrokerResource(settings=SettingsResource(config_dir=str(config_dir)))
    defs = dg.Definitions(
        assets=build_assets(trading_day_partitions(fund_inception(settings))),
        jobs=JOBS,
        resources=resources,
    )
    RejectingPaperBroker.refused = None
    result = defs.resolve_job_def("daily_cycle_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={RANGE_START_TAG: START.isoformat(), RANGE_END_TAG: END.isoformat()},
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    lake = Lake(settings.lake_root)
    return lake, RejectingPaperBroker.refused


def test_risk_state_marks_the_account_nav_and_positions(cycle) -> None:
    lake, _ = cycle
    risk = lake.read("risk_state").sort("date")
    account = lake.read("account").sort("date")
    assert risk.height == account.height > 20
    assert (risk["book_source"] == "positions").all()
    joined = risk.join(account.select("date", pl.col("nav").alias("account_nav")), on="date")
    assert (joined["nav"] == joined["account_nav"]).all()  # exact: the same number, not a re-marking
    peak = joined["account_nav"].cum_max()
    drawdown = 1.0 - joined["account_nav"] / peak
    assert (joined["drawdown"] - drawdown).abs().max() < 1e-12  # float rounding of one division
    assert float(account["commission"].sum()) > 0  # costs reach the NAV that risk sees


def test_targets_start_from_positions_not_from_the_previous_targets(cycle) -> None:
    lake, _ = cycle
    targets = lake.read("portfolio_targets").select("date", "symbol", "current_weight", "target_weight")
    positions = lake.read("positions").join(lake.read("account").select("date", "nav"), on="date")
    held = positions.select("date", "symbol", (pl.col("market_value") / pl.col("nav")).alias("held"))
    both = targets.join(held, on=["date", "symbol"], how="left").with_columns(pl.col("held").fill_null(0.0))
    assert (both["current_weight"] - both["held"]).abs().max() < 1e-12  # the optimizer starts from positions
    # and the positions are not the targets the fund asked for: fills, costs and drift moved them
    previous = targets.select(
        pl.col("date").shift(-1).over("symbol", order_by="date").alias("next_date"), "symbol", "target_weight"
    ).drop_nulls("next_date")
    moved = both.join(previous, left_on=["date", "symbol"], right_on=["next_date", "symbol"])
    gap = (moved["current_weight"] - moved["target_weight_right"]).abs()
    assert gap.max() > 1e-4


def test_a_rejected_symbol_is_never_held_and_the_next_targets_know_it(cycle) -> None:
    lake, refused = cycle
    assert refused is not None
    orders = lake.read("orders").filter(pl.col("symbol") == refused)
    assert orders.height and (orders["status"] == "REJECTED").all()
    assert orders["reason"].str.starts_with("BROKER_REJECTED").all()
    assert lake.read("positions").filter(pl.col("symbol") == refused).is_empty()
    wanted = lake.read("portfolio_targets").filter((pl.col("symbol") == refused) & (pl.col("target_weight") > 0))
    assert wanted.height  # the optimizer kept asking for it ...
    assert (wanted["current_weight"] == 0).all()  # ... and every session started from holding none
