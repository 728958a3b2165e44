"""Every stage of the fund in pipeline order, and the lineage derived from their ``READS``/``WRITES``.

This is the one place lineage is declared: an asset's dependencies are the assets writing the tables
its stage reads (a table no stage writes is read when present and adds no dependency), plus the warm-up
history (:data:`HISTORY_ASSET`) for a stage reading a table the warm-up holds: its first sessions' look-back
lies in the warm-up.
"""

from __future__ import annotations

from mqf_pipeline.stages.attribution import AttributionStage
from mqf_pipeline.stages.base import Stage
from mqf_pipeline.stages.decisions import DecisionStage
from mqf_pipeline.stages.execution import ExecutionStage
from mqf_pipeline.stages.features import FeaturesStage
from mqf_pipeline.stages.ingest import IngestStage, MacroStage
from mqf_pipeline.stages.learning import LearningStage
from mqf_pipeline.stages.portfolio import PortfolioStage
from mqf_pipeline.stages.quality import EligibilityStage, QualityStage
from mqf_pipeline.stages.regimes import RegimeStage
from mqf_pipeline.stages.signals import SignalStage
from mqf_pipeline.stages.slippage import SlippageStage

STAGES: tuple[type[Stage], ...] = (
    IngestStage,
    MacroStage,
    QualityStage,
    EligibilityStage,
    FeaturesStage,
    RegimeStage,
    SignalStage,
    LearningStage,
    DecisionStage,
    PortfolioStage,
    ExecutionStage,
    SlippageStage,
    AttributionStage,
)

#: The stages the warm-up runs over the sessions before the inception (the data and signal stages: the look-back
#: of the daily cycle). The trading cycle never runs there (the fund did not exist yet), nor does the learning of
#: agent weights, whose outcomes are the fund's own from its inception.
WARM_UP_STAGES: tuple[type[Stage], ...] = tuple(
    s for s in STAGES[: STAGES.index(DecisionStage)] if s is not LearningStage
)

#: The asset materializing the warm-up history (one non-partitioned asset, group ``warm_up``).
HISTORY_ASSET = "fund_history"


def warm_up_tables() -> tuple[str, ...]:
    """The tables the warm-up writes, in pipeline order."""
    return tuple(t for stage in WARM_UP_STAGES for t in stage.WRITES)


def writers() -> dict[str, type[Stage]]:
    """Table -> the stage writing it (a table written by two stages is a configuration error)."""
    out: dict[str, type[Stage]] = {}
    for stage in STAGES:
        for table in stage.WRITES:
            if table in out:
                raise ValueError(f"table {table} is written by both {out[table].NAME} and {stage.NAME}")
            out[table] = stage
    return out


def written_tables() -> tuple[str, ...]:
    """Every table some stage writes, in pipeline order (one partition per session each)."""
    return tuple(writers())


def asset_key(table: str) -> str:
    """The asset key of the asset materializing ``table``."""
    return writers()[table].asset_key(table)


def upstream_assets(stage: type[Stage], table: str | None = None) -> list[str]:
    """Asset keys of the tables ``stage`` reads (to make ``table``, if given) that other stages write (its own
    tables excluded), and :data:`HISTORY_ASSET` when it reads or continues a table the warm-up holds."""
    table_writers = writers()
    reads = stage.READS if table is None else stage.reads_of(table)
    keys = [table_writers[t].asset_key(t) for t in reads if t in table_writers and t not in stage.WRITES]
    history = set(warm_up_tables())
    if history & {*reads, *stage.CARRIES}:
        keys.append(HISTORY_ASSET)
    return list(dict.fromkeys(keys))
