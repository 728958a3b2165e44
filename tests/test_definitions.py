"""The code location loads, its asset specs are as declared, and layering rules hold."""

from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg

from mqf_pipeline.definitions import defs

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_ASSETS = {
    # key: (group, partitioned)
    "fund_history": ("warm_up", False),
    "price_history": ("market_data", True),
    "corporate_actions": ("market_data", True),
    "fundamentals": ("market_data", True),
    "news_headlines": ("market_data", True),
    "ingestion_audit": ("market_data", True),
    "backfill_failures": ("market_data", True),
    "macro_series": ("market_data", True),
    "data_quality": ("market_data", True),
    "trading_eligibility": ("market_data", True),
    "features": ("signals", True),
    "regime": ("signals", True),
    "agent_signals": ("signals", True),
    "decisions": ("decisions", True),
    "audit_log": ("decisions", True),
    "governance_gates": ("decisions", True),
    "risk_state": ("risk", True),
    "risk_contributions": ("risk", True),
    "portfolio_targets": ("portfolio", True),
    "portfolio_constraints": ("portfolio", True),
    "optimization_results": ("portfolio", True),
    "duckdb_catalog": ("catalog", False),
    "execution_outcomes": ("execution", True),
    "execution_feedback": ("execution", True),
    "positions": ("execution", True),
    "account": ("execution", True),
    "orders": ("execution", True),
    "execution_decisions": ("execution", True),
    "slippage_model_coeffs": ("slippage", True),
    "agent_weights": ("learning", True),
    "factor_returns": ("attribution", True),
    "security_factor_exposures": ("attribution", True),
    "portfolio_attribution": ("attribution", True),
    "agent_pnl": ("attribution", True),
    "agent_performance": ("learning", True),
    "slippage_prediction_errors": ("slippage", True),
}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_asset_specs_snapshot():
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert set(specs) == set(EXPECTED_ASSETS)
    for key, (group, partitioned) in EXPECTED_ASSETS.items():
        spec = specs[key]
        assert spec.group_name == group, key
        assert spec.code_version, f"{key} has no code_version"
        assert (spec.partitions_def is not None) == partitioned, key


def test_daily_assets_reading_the_warm_up_depend_on_it():
    """The first daily partitions look back into the warm-up history: lineage says so; ingestion fetches
    its own session only and does not."""
    graph = defs.resolve_asset_graph()
    children = {k.to_user_string() for k in graph.get(dg.AssetKey("fund_history")).child_keys}
    assert {"data_quality", "features", "regime", "agent_signals", "decisions", "positions"} <= children
    assert "price_history" not in children and "macro_series" not in children


def test_every_partitioned_asset_backfills_in_a_single_run():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def is not None:
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), key.to_user_string()


def test_blocking_quality_check_declared():
    specs = [c for a in defs.assets for c in a.check_specs]
    assert any(c.name == "rejection_rate_within_limit" and c.blocking for c in specs)


def test_governance_gates_are_checks_and_risk_state_continues_itself():
    specs = {c.name: c for a in defs.assets for c in a.check_specs}
    gates = {n: c for n, c in specs.items() if n.startswith("gate_phase")}
    assert sorted(gates) == [
        "gate_phase0_history",
        "gate_phase1_data_quality",
        "gate_phase2_signals",
        "gate_phase3_risk",
        "gate_phase4_orders",
    ]
    assert not any(c.blocking for c in gates.values())  # recorded, never failing the cycle run
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("risk_state") in graph.get(dg.AssetKey("risk_state")).parent_keys


def test_kill_switch_sensor_runs_by_default():
    sensor = defs.resolve_sensor_def("kill_switch_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_catalog_uses_the_duckdb_writer_pool():
    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey("duckdb_catalog"))
    assert node.pools == {"duckdb_writer"}


def test_only_definitions_imports_dagster():
    offenders = []
    for path in (ROOT / "mqf_pipeline").rglob("*.py"):
        if path.name == "definitions.py" and path.parent.name == "mqf_pipeline":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "dagster" or n.startswith("dagster") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


ORCHESTRATION = ("dagster", "assets", "jobs", "sensors", "resources", "mqf_cli")


def _domain_modules() -> dict[str, Path]:
    """mqf_pipeline's modules by dotted name (packages by their ``__init__``), definitions.py excluded."""
    out = {}
    for path in (ROOT / "mqf_pipeline").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        name = ".".join(parts)
        if name != "mqf_pipeline.definitions":
            out[name] = path
    return out


def _imported(path: Path) -> list[str]:
    """Every module name imported anywhere in ``path`` (top level and inside functions); ``from a import b``
    yields ``a.b`` as well as ``a`` so a submodule imported by name counts."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_domain_imports_no_orchestration_layer():
    """Layering: nothing in mqf_pipeline/ but definitions.py imports dagster or the orchestration folders."""
    modules = _domain_modules()
    offenders = sorted(
        f"{name} imports {imp}"
        for name, path in modules.items()
        for imp in _imported(path)
        if imp.split(".")[0] in ORCHESTRATION
    )
    assert offenders == []


def test_only_the_stage_layer_reads_settings():
    """Settings stop at the stage boundary: the domain's pure code takes parameter objects, so only
    mqf_pipeline/config/ itself and mqf_pipeline/stages/ import mqf_pipeline.config."""
    offenders = sorted(
        f"{name} imports {imp}"
        for name, path in _domain_modules().items()
        for imp in _imported(path)
        if (imp == "mqf_pipeline.config" or imp.startswith("mqf_pipeline.config."))
        and not name.startswith(("mqf_pipeline.config", "mqf_pipeline.stages"))
    )
    assert offenders == []


def test_no_import_cycle_inside_the_domain():
    """The module import graph of mqf_pipeline/ (imports anywhere in a file, function-level ones too) is acyclic."""
    modules = _domain_modules()
    graph = {
        name: sorted({imp for imp in _imported(path) if imp in modules and imp != name})
        for name, path in modules.items()
    }
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []
