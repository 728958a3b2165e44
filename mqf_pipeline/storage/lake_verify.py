"""Lake verification: every file of every table (or of the given ones) read back and checked.

A file is **unreadable** (its footer or a page cannot be decoded), **truncated** (a Parquet file cut short:
empty, or its footer missing), or a **hash_mismatch** (it reads, but its content is not what was recorded for
it: the content hash the writer put in its footer, which every file the lake writes has, and for
``price_history`` the one ``ingestion_audit`` recorded for that session). Temp files of writers killed
mid-write, older than an hour, are removed (**orphan_temp**, reported as fixed). Pure otherwise: no Dagster,
no settings; repairing is rematerializing the partition (``mqf lake verify --repair``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from mqf_pipeline.storage.lake import HASH_KEY, READ_FAILURES, TABLE_KEY, Lake, content_hash, partition_of
from mqf_pipeline.storage.schema import table_spec, table_specs

KINDS = ("unreadable", "truncated", "hash_mismatch", "orphan_temp")
#: Kinds that make a partition corrupt (an orphan temp file is clutter beside it, never the partition).
CORRUPT_KINDS = frozenset({"unreadable", "truncated", "hash_mismatch"})
#: A table whose per-session content hash another table also records: table -> (recording table, its column).
RECORDED_HASHES: dict[str, tuple[str, str]] = {"price_history": ("ingestion_audit", "content_hash")}
#: Temp files older than this are a killed writer's (a live writer's is seconds old).
TEMP_MAX_AGE_SECONDS = 3600.0
MAGIC = b"PAR1"


@dataclass(frozen=True)
class LakeProblem:
    """One thing wrong in the lake: where (table, partition, file), what (``kind``), and the evidence."""

    table: str
    partition: str
    path: str
    kind: str
    detail: str
    fixed: bool = False  # the verifier itself resolved it (a stale temp file removed)

    @property
    def date(self) -> dt.date | None:
        """The session of a date partition (None for other keys, e.g. provider_metrics' run ids)."""
        try:
            return dt.date.fromisoformat(self.partition)
        except ValueError:
            return None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class LakeReport:
    """What :func:`verify_lake` found: the problems, and how many files it read and hashes it matched."""

    problems: tuple[LakeProblem, ...]
    files: int
    hashes: int
    deep: bool = True

    @property
    def remaining(self) -> tuple[LakeProblem, ...]:
        """The problems still there (a removed temp file is not)."""
        return tuple(p for p in self.problems if not p.fixed)

    @property
    def corrupt(self) -> tuple[LakeProblem, ...]:
        """Problems of partition files themselves (unreadable, truncated, hash mismatch)."""
        return tuple(p for p in self.problems if p.kind in CORRUPT_KINDS)

    def summary(self) -> str:
        """One line: ``all N files readable, M hashes match``, or how many problems remain."""
        removed = sum(p.fixed for p in self.problems)
        tail = f"; {removed} stale temp file(s) removed" if removed else ""
        if not self.remaining:
            hashes = f", {self.hashes} hashes match" if self.deep else " (footers only)"
            return f"all {self.files} files readable{hashes}{tail}"
        return f"{len(self.remaining)} problem(s) in {self.files} files{tail}"


def verify_lake(
    lake: Lake,
    tables: Iterable[str] | None = None,
    *,
    deep: bool = True,
    remove_temp: bool = True,
    temp_max_age: float = TEMP_MAX_AGE_SECONDS,
    now: float | None = None,
    workers: int | None = None,
) -> LakeReport:
    """Check every file of ``tables`` (default: every table the lake holds).

    ``deep``: read every page and compare content hashes; else footers only (quick: catches truncated and
    overwritten files, not garbled pages or other content). ``remove_temp``: remove temp files older than
    ``temp_max_age`` seconds (else report them). An unknown table name raises ``SchemaError`` naming it.
    """
    names = _tables(lake, tables)
    files = [(t, p) for t in names for p in lake.partitions(t)]
    recorded = {t: _recorded_hashes(lake, t) for t in names} if deep else {}
    checks = min(8, (os.cpu_count() or 1) + 1) if workers is None else workers

    def one(item: tuple[str, str]) -> tuple[list[LakeProblem], int]:
        table, partition = item
        return check_file(lake, table, partition, recorded.get(table, {}).get(partition), deep=deep)

    if checks <= 1 or len(files) <= 2:
        results = [one(f) for f in files]
    else:
        with ThreadPoolExecutor(max_workers=checks) as pool:
            results = list(pool.map(one, files))
    problems = [p for found, _ in results for p in found]
    problems += _temp_problems(lake, None if tables is None else names, remove_temp, temp_max_age, now)
    return LakeReport(tuple(problems), len(files), sum(n for _, n in results), deep)


def check_file(
    lake: Lake, table: str, partition: str, recorded: tuple[str, str] | None = None, *, deep: bool = True
) -> tuple[list[LakeProblem], int]:
    """The problems of one partition file and how many recorded hashes it matched. ``recorded``: (where, hash)
    another table recorded for it (:data:`RECORDED_HASHES`)."""
    path = lake.path(table, partition)
    try:
        meta = lake.footer(path).metadata or {}
    except READ_FAILURES as exc:
        kind, why = damage_kind(lake, path)
        return [LakeProblem(table, partition, path, kind, f"{why}: {type(exc).__name__}: {exc}")], 0
    if not deep:
        return [], 0
    try:
        frame = lake.read_file(path)
    except READ_FAILURES as exc:
        detail = f"the footer reads but a page does not: {type(exc).__name__}: {exc}"
        return [LakeProblem(table, partition, path, "unreadable", detail)], 0
    problems = []
    written_for = meta.get(TABLE_KEY, table.encode()).decode()
    if written_for != table:
        problems.append(LakeProblem(table, partition, path, "hash_mismatch", f"the file was written for {written_for}"))
    actual, matched = content_hash(frame), 0
    footer_hash = meta.get(HASH_KEY)
    expected = [("its footer", footer_hash.decode())] if footer_hash else []
    if not footer_hash:  # the lake's writer records one in every file: this one was put there by other means
        detail = f"no content hash in its footer: not written by the lake (content hash {actual[:16]})"
        problems.append(LakeProblem(table, partition, path, "hash_mismatch", detail))
    expected += [recorded] if recorded else []
    for where, digest in expected:
        if digest == actual:
            matched += 1
        else:
            detail = f"content hash {actual[:16]} differs from {digest[:16]} recorded in {where}"
            problems.append(LakeProblem(table, partition, path, "hash_mismatch", detail))
    return problems, matched


def damage_kind(lake: Lake, path: str) -> tuple[str, str]:
    """``truncated`` for a Parquet file cut short (empty, or the footer gone or longer than the file), else
    ``unreadable``; with what was seen."""
    size = int(lake.fs.size(path))
    if size == 0:
        return "truncated", "empty file (0 bytes)"
    with lake.fs.open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(max(size - 8, 0))
        tail = fh.read(8)
    if head == MAGIC and tail[-4:] != MAGIC:
        return "truncated", f"{size} bytes: starts as Parquet but its footer is missing (cut short)"
    footer_len = int.from_bytes(tail[:4], "little") if len(tail) == 8 else 0
    if head == MAGIC and footer_len + 12 > size:
        return "truncated", f"{size} bytes: shorter than its {footer_len}-byte footer says (cut short)"
    return "unreadable", f"{size} bytes, not a readable Parquet file"


def _tables(lake: Lake, tables: Iterable[str] | None) -> list[str]:
    if tables is not None:
        names = list(dict.fromkeys(tables))
        for name in names:
            table_spec(name)  # an unknown table fails here, by name
        return names
    return [t for t in table_specs() if lake.partitions(t)]


def _recorded_hashes(lake: Lake, table: str) -> dict[str, tuple[str, str]]:
    """partition -> (where, hash) recorded for ``table`` by another table; nothing when that table is damaged
    (its own files are reported)."""
    if table not in RECORDED_HASHES:
        return {}
    source, column = RECORDED_HASHES[table]
    try:
        rows = lake.read(source).select("date", column)
    except (*READ_FAILURES, ValueError):
        return {}
    return {d.isoformat(): (f"{source} of {d}", h) for d, h in rows.iter_rows() if h}


def _temp_problems(
    lake: Lake, tables: Sequence[str] | None, remove: bool, max_age: float, now: float | None
) -> list[LakeProblem]:
    hours = max_age / 3600
    if remove:
        paths, detail = lake.remove_stale_temp_files(max_age, now, tables), f"removed: older than {hours:g} h"
    else:
        paths, detail = lake.stale_temp_files(max_age, now, tables), f"older than {hours:g} h (verify removes it)"
    out = []
    for path in paths:
        table = os.path.basename(os.path.dirname(path))
        partition = partition_of(os.path.basename(path).split(".tmp-", 1)[0])
        out.append(LakeProblem(table, partition, path, "orphan_temp", f"a killed writer's temp file, {detail}", remove))
    return out


@dataclass(frozen=True)
class LakeHealth:
    """The lake at a glance for ``mqf status``: files checked, corrupt partitions, stale temp files."""

    files: int
    corrupt: tuple[LakeProblem, ...]
    stale_temp: tuple[LakeProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.corrupt

    def summary(self) -> str:
        """``N corrupt partitions: table date path (kind); ...`` or ``all N lake files readable``."""
        temp = f"; {len(self.stale_temp)} stale temp file(s)" if self.stale_temp else ""
        if self.ok:
            return f"all {self.files} lake files readable{temp}"
        parts = sorted({(p.table, p.partition, p.path, p.kind) for p in self.corrupt})
        listed = "; ".join(f"{t} {d} {path} ({kind})" for t, d, path, kind in parts)
        return f"{len(parts)} corrupt partitions: {listed}{temp} (repair: mqf lake verify --repair)"

    def lines(self) -> list[str]:
        """The summary's head, then one ``table date path (kind: detail)`` line per corrupt partition."""
        if self.ok:
            return [self.summary()]
        head = f"{len({(p.table, p.partition) for p in self.corrupt})} corrupt partitions (mqf lake verify --repair):"
        return [head, *(f"{p.table} {p.partition} {p.path} ({p.kind}: {p.detail})" for p in self.corrupt)]


def lake_health(lake: Lake, tables: Iterable[str] | None = None, *, deep: bool = False) -> LakeHealth:
    """The health of ``lake`` without changing it: footers only unless ``deep`` (every page and hash, as
    ``mqf lake verify`` does), so ``mqf status`` stays quick on a lake of tens of thousands of files."""
    report = verify_lake(lake, tables, deep=deep, remove_temp=False)
    stale = tuple(p for p in report.problems if p.kind == "orphan_temp")
    return LakeHealth(report.files, report.corrupt, stale)
