"""``mqf lake verify``: check every lake file (readable, content hash as recorded) and, with ``--repair``,
rematerialize exactly the broken partitions through the Dagster instance.

A broken partition of session D is repaired by one run of the assets writing its table, for D alone (with the
other tables of the same stage: they are made together; those whose content is unchanged keep their files). A
session before the fund's inception belongs to the warm-up, which is one asset: ``fund_history`` is
rematerialized, and rewrites only the files whose content differs (the broken ones).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mqf_pipeline.config import ConfigError, Settings, load_settings
from mqf_pipeline.stages.plan import InceptionError, fund_inception
from mqf_pipeline.stages.registry import HISTORY_ASSET, warm_up_tables, writers
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.lake_verify import LakeProblem, LakeReport, verify_lake
from mqf_pipeline.storage.schema import SchemaError

lake_app = typer.Typer(
    help="The Parquet lake: check every file, rematerialize broken partitions.", no_args_is_help=True
)
console = Console(stderr=True, soft_wrap=True)

ConfigDirOpt = Annotated[Path | None, typer.Option("--config-dir", help="configs directory (default ./configs)")]
TableOpt = Annotated[list[str] | None, typer.Option("--table", help="check only this table (repeatable)")]
RepairOpt = Annotated[bool, typer.Option("--repair", help="rematerialize the broken partitions, then check again")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]


@lake_app.callback()
def lake() -> None:
    """The Parquet lake: check every file, rematerialize broken partitions."""


@dataclass(frozen=True)
class Repair:
    """One run rematerializing broken partitions: the job, its assets and session (None: the warm-up)."""

    job: str
    assets: tuple[str, ...]
    session: dt.date | None
    problems: tuple[LakeProblem, ...]

    @property
    def label(self) -> str:
        files = ", ".join(f"{p.table} {p.partition}" for p in self.problems)
        if self.session is None:
            return (
                f"{HISTORY_ASSET} ({files}): the warm-up before the inception is one asset, rematerialized whole; "
                "files whose content is unchanged are kept"
            )
        return f"{', '.join(self.assets)} for {self.session} ({files})"

    def as_dict(self) -> dict[str, object]:
        return {
            "job": self.job,
            "assets": list(self.assets),
            "session": self.session.isoformat() if self.session else None,
            "files": [p.path for p in self.problems],
        }


def plan_repairs(
    problems: tuple[LakeProblem, ...], inception: dt.date
) -> tuple[list[Repair], list[tuple[LakeProblem, str]]]:
    """The runs that rematerialize exactly the broken partitions of ``problems``, and those none can repair (why).

    One run per broken session, selecting for each broken table the assets of the stage writing it (a stage's
    tables are made together); a session before ``inception`` is the warm-up's (``fund_history``). The warm-up
    first, then sessions in order: a session's assets read only earlier sessions and earlier stages.
    """
    table_writers, history = writers(), set(warm_up_tables())
    by_session: dict[dt.date | None, list[LakeProblem]] = {}
    unrepairable: list[tuple[LakeProblem, str]] = []
    for problem in problems:
        if problem.fixed or problem.kind == "orphan_temp":
            continue
        day = problem.date
        if problem.table not in table_writers or day is None:
            unrepairable.append((problem, f"no asset writes {problem.table} per session: restore or delete the file"))
        elif day < inception and problem.table not in history:
            why = f"{problem.table} has no sessions before the inception {inception}: delete the file"
            unrepairable.append((problem, why))
        else:
            by_session.setdefault(day if day >= inception else None, []).append(problem)
    repairs = []
    for day in sorted(by_session, key=lambda d: d or dt.date.min):
        found = tuple(by_session[day])
        if day is None:
            repairs.append(Repair("warm_up_job", (HISTORY_ASSET,), None, found))
            continue
        stages = dict.fromkeys(table_writers[p.table] for p in found)
        assets = tuple(dict.fromkeys(s.asset_key(t) for s in stages for t in s.WRITES))
        repairs.append(Repair("daily_cycle_job", assets, day, found))
    return repairs, unrepairable


def _settings(config_dir: Path | None) -> Settings:
    try:
        return load_settings(config_dir)
    except ConfigError as exc:
        console.print(f"configuration error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc


def _verify(lake: Lake, tables: list[str] | None) -> LakeReport:
    try:
        return verify_lake(lake, tables)
    except SchemaError as exc:
        console.print(f"--table: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc


def _print_report(report: LakeReport, title: str) -> None:
    """The all-clear line, or the summary and one line per problem with its whole path (to copy); on stdout."""
    out = Console(soft_wrap=True)
    if not report.problems:
        out.print(report.summary(), markup=False)
        return
    out.print(f"{title}: {report.summary()}", markup=False)
    for p in report.problems:
        kind = f"{p.kind} (removed)" if p.fixed else p.kind
        out.print(f"  {p.table} {p.partition} {kind}: {p.path} ({p.detail})", markup=False)


def _run_repairs(settings: Settings, repairs: list[Repair], quiet: bool) -> list[dict[str, object]]:
    """Run each repair through the instance (in this process: one session each); what each run did."""
    from mqf_cli.runner import prepare_instance, run_job

    instance = prepare_instance(settings)
    done = []
    for i, repair in enumerate(repairs, start=1):
        if not quiet:
            console.print(f"repair {i}/{len(repairs)}: {repair.label}", markup=False)
        outcome = run_job(
            instance,
            repair.job,
            start=repair.session,
            end=repair.session,
            in_process=True,
            log_level="CRITICAL",
            asset_selection=list(repair.assets) if repair.session else None,
        )
        if not quiet:
            status = "ok" if outcome.success else f"FAILED (steps {', '.join(outcome.failed_steps) or '?'})"
            console.print(f"  {status} in {outcome.seconds:.1f}s, run {outcome.run_id}", markup=False)
        done.append({**repair.as_dict(), "success": outcome.success, "run_id": outcome.run_id})
    return done


@lake_app.command("verify")
def verify(
    config_dir: ConfigDirOpt = None,
    table: TableOpt = None,
    repair: RepairOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every lake file: a readable footer and pages, the content hash recorded for it; stale temp files of
    killed writers (older than an hour) are removed. Exit 1 while problems remain, 0 when none."""
    settings = _settings(config_dir)
    lake = Lake(settings.lake_root)
    report = _verify(lake, table)
    result: dict[str, object] = _report_dict(report)
    if not as_json:
        _print_report(report, "lake")
    final = report
    if repair and report.remaining:
        try:
            inception = fund_inception(settings)
        except InceptionError as exc:
            console.print(str(exc), style="red", markup=False)
            raise typer.Exit(2) from exc
        repairs, unrepairable = plan_repairs(report.remaining, inception)
        for problem, why in unrepairable:
            if not as_json:
                console.print(f"cannot repair {problem.table} {problem.partition}: {why}", style="red", markup=False)
        result["repairs"] = _run_repairs(settings, repairs, as_json)
        result["unrepairable"] = [{**p.as_dict(), "why": why} for p, why in unrepairable]
        final = _verify(lake, table)
        result["after_repair"] = _report_dict(final)
        if not as_json:
            _print_report(final, "after repair")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    if final.remaining:
        raise typer.Exit(1)


def _report_dict(report: LakeReport) -> dict[str, object]:
    return {
        "files": report.files,
        "hashes": report.hashes,
        "summary": report.summary(),
        "problems": [p.as_dict() for p in report.problems],
    }
