"""The trading cycle: decisions (with risk), portfolio and execution tables as one multi-asset.

Positions are the book: decisions of D measure risk on the positions booked at D's close, which come
from D-1's orders, so the three stages run interleaved session by session in one step
(:mod:`mqf_pipeline.stages.trading_cycle`). Each table is still its own asset with its own lineage
(positions depend only on market data and their previous partition; the risk state on the positions;
orders on the targets, risk state and gates). The asset can be subset by part: decisions and portfolio
without execution is research mode; a part selected only in part is refused (its tables are made together).
"""

import dagster as dg

from assets import decisions, execution, portfolio
from assets.common import (
    RETRY,
    describe_days,
    materialize_stage,
    partition_dates,
    retry_only_transient,
    stage_context,
    stage_specs,
)
from mqf_pipeline.decisions.audit import AuditWriteError
from mqf_pipeline.stages.base import StageRun, StepOutput
from mqf_pipeline.stages.decisions import DecisionStage
from mqf_pipeline.stages.execution import ExecutionStage
from mqf_pipeline.stages.portfolio import PortfolioStage
from mqf_pipeline.stages.trading_cycle import TradingCycleStage
from resources import BrokerResource, KillSwitchResource, SettingsResource, StorageResource

PART_STAGES = {"decisions": DecisionStage, "portfolio": PortfolioStage, "execution": ExecutionStage}


def specs() -> list[dg.AssetSpec]:
    """Every table of the three parts, each with the lineage of the stage that makes it."""
    return [
        *stage_specs(
            DecisionStage,
            descriptions=decisions.DESCRIPTIONS,
            group="decisions",
            groups=decisions.GROUPS,
            kinds={"parquet"},
        ),
        *stage_specs(
            PortfolioStage, descriptions=portfolio.DESCRIPTIONS, group="portfolio", kinds={"parquet", "cvxpy"}
        ),
        *stage_specs(ExecutionStage, descriptions=execution.DESCRIPTIONS, group="execution", kinds={"parquet"}),
    ]


def selected_parts(selected: set[str]) -> list[str]:
    """The parts whose tables are selected; a part selected only in part is an error naming what is missing."""
    parts = []
    for part, stage in PART_STAGES.items():
        keys = {stage.asset_key(t) for t in stage.WRITES}
        chosen = keys & selected
        if chosen and chosen != keys:
            raise dg.Failure(
                description=f"the {part} tables are made together: select all of {sorted(keys)} or none "
                f"(missing: {sorted(keys - chosen)})",
                allow_retries=False,
            )
        if chosen:
            parts.append(part)
    return parts


def part_run(run: StageRun, part: str) -> StageRun:
    """The trading-cycle run seen as one part's run (its carried state and detail per session)."""
    steps = [StepOutput(s.day, s.rows, s.carried[part], s.detail[part]) for s in run.steps]
    stage = PART_STAGES[part]
    return StageRun(steps, {t: run.written[t] for t in stage.WRITES})


def build(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The trading-cycle multi-asset over ``partitions_def``."""

    @dg.multi_asset(
        specs=specs(),
        check_specs=decisions.GATE_CHECKS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=RETRY,
        can_subset=True,
        name="trading_cycle",
    )
    def trading_cycle(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        storage: StorageResource,
        broker: BrokerResource,
        kill_switch: KillSwitchResource,
    ):
        """Session by session: book the fills, decide with risk, optimise, order (a rerun finds its orders at
        the broker)."""
        parts = selected_parts({k.to_user_string() for k in context.selected_asset_keys})
        ctx = stage_context(context, settings.get(), storage.lake(), kill_switch.file())
        try:
            with retry_only_transient(f"trading_cycle {describe_days(partition_dates(context))}"):
                stage = TradingCycleStage(broker.broker() if "execution" in parts else None, parts)
            run = materialize_stage(context, stage, ctx)
        except dg.Failure as failure:
            if not isinstance(failure.__cause__, AuditWriteError):
                raise
            context.log.critical(f"HALT: {failure.__cause__}; no decision of this run is stored")
            raise dg.Failure(
                description=f"CRITICAL: {failure.description}", metadata=failure.metadata, allow_retries=False
            ) from failure.__cause__
        # results in lineage order: the booking tables feed the decisions, which feed the targets and orders
        if "execution" in parts:
            yield from execution.results(part_run(run, "execution"), tuple(ExecutionStage.TABLE_READS))
        if "decisions" in parts:
            yield from decisions.results(part_run(run, "decisions"))
        if "portfolio" in parts:
            yield from portfolio.results(part_run(run, "portfolio"))
        if "execution" in parts:
            last = run.last.detail["execution"]
            if last.blocked_reason:
                context.log.warning(f"orders adding risk blocked on {last.day}: {last.blocked_reason}")
            for note in last.notes:
                context.log.info(note)
            yield from execution.results(part_run(run, "execution"), ("orders", "execution_decisions"))

    return [trading_cycle]
