"""The Parquet lake: the storage of record, one file per table partition.

Layout: ``<root>/<table>/<partition>.parquet``; ``root`` is a local path or any fsspec URL.
Writes are atomic (temp file then ``os.replace`` locally; object stores put whole objects),
so a retry or rerun replaces a partition and never leaves a half-written one. A rewrite
whose content (all but the write-time columns) is unchanged keeps the existing file, so a
rerun with the same inputs gives a byte-identical partition.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mqf_pipeline.storage.schema import VOLATILE_COLUMNS, conform, table_spec

logger = logging.getLogger(__name__)

#: What reading a damaged Parquet file raises (a truncated or overwritten file, a bad footer).
UNREADABLE = (OSError, pa.ArrowInvalid, pl.exceptions.ComputeError, pl.exceptions.PolarsError)
#: ... and what a full read of one may raise besides: polars panics on some garbled pages (a BaseException).
READ_FAILURES: tuple[type[BaseException], ...] = (*UNREADABLE, pl.exceptions.PanicException)


class LakeReadError(ValueError):
    """A partition file of the lake cannot be read; names the table, the partition and the file."""

    def __init__(self, table: str, partition: str, path: str, cause: BaseException) -> None:
        super().__init__(
            f"{table} partition {partition}: the file {path} cannot be read ({type(cause).__name__}: {cause}); "
            f"rematerialize that partition to replace it (mqf lake verify --repair)"
        )
        self.table, self.partition, self.path = table, partition, path


HASH_KEY = b"mqf.content_hash"
TABLE_KEY = b"mqf.table"


@dataclass(frozen=True)
class WriteResult:
    """What one partition write did."""

    table: str
    partition: str
    path: str
    rows: int
    content_hash: str
    written: bool  # False when the existing file already held identical content


def content_hash(frame: pl.DataFrame) -> str:
    """sha256 of a frame's content, ignoring write-time columns; rows in their given order.

    Folds polars' per-row 64-bit hashes (fixed seed) of every column but
    :data:`VOLATILE_COLUMNS`, with the column names and dtypes, into a sha256. Equal frames
    give equal hashes with a given polars version; if an upgrade changes its row hashing,
    unchanged partitions are rewritten once.
    """
    cols = [c for c in frame.columns if c not in VOLATILE_COLUMNS]
    h = hashlib.sha256()
    h.update(repr([(c, str(frame.schema[c])) for c in cols]).encode())
    if frame.height and cols:
        h.update(frame.select(cols).hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()


def partition_of(path: str) -> str:
    """The partition key of a lake file (``.../<table>/<partition>.parquet``)."""
    return path.rsplit("/", 1)[-1].removesuffix(".parquet")


def partition_key(value: dt.date | str) -> str:
    """The file stem of a partition: ISO date for dates, the text itself otherwise."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if not value or "/" in value or value.startswith("."):
        raise ValueError(f"invalid partition key {value!r}")
    return value


class Lake:
    """Parquet files per table partition under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.is_local = self.fs.protocol in ("file", "local") or "file" in (self.fs.protocol or ())

    # ---------------------------------------------------------------- paths
    def table_dir(self, table: str) -> str:
        table_spec(table)  # unknown tables fail here, by name
        return f"{self._base}/{table}"

    def path(self, table: str, partition: dt.date | str) -> str:
        return f"{self.table_dir(table)}/{partition_key(partition)}.parquet"

    def url(self, table: str) -> str:
        """A glob over the table's files usable by DuckDB ``read_parquet``."""
        base = os.path.abspath(self._base) if self.is_local else self.root
        return f"{base}/{table}/*.parquet"

    # ---------------------------------------------------------------- listing
    def partitions(self, table: str) -> list[str]:
        """Partition keys present for ``table``, sorted."""
        directory = self.table_dir(table)
        if not self.fs.exists(directory):
            return []
        names = (p.rsplit("/", 1)[-1] for p in self.fs.ls(directory, detail=False))
        return sorted(n[: -len(".parquet")] for n in names if n.endswith(".parquet"))

    def exists(self, table: str, partition: dt.date | str) -> bool:
        return bool(self.fs.exists(self.path(table, partition)))

    def stored_hash(self, table: str, partition: dt.date | str) -> str | None:
        """The content hash recorded in a partition file, or None if there is no file."""
        path = self.path(table, partition)
        if not self.fs.exists(path):
            return None
        try:
            with self.fs.open(path, "rb") as fh:
                meta = pq.read_schema(fh).metadata or {}
        except UNREADABLE as exc:
            # a damaged file holds no usable hash: the write replaces it (the repair of a corrupt partition)
            logger.warning("%s", LakeReadError(table, partition_key(partition), path, exc))
            return None
        value = meta.get(HASH_KEY)
        return value.decode() if value else None

    # ---------------------------------------------------------------- writing
    def write(
        self, table: str, partition: dt.date | str, frame: pl.DataFrame, *, now: dt.datetime | None = None
    ) -> WriteResult:
        """Validate, sort by key and atomically write one partition; see the module docstring."""
        spec = table_spec(table)
        conformed = conform(table, frame, now=now or dt.datetime.now(dt.UTC))
        if spec.key:
            conformed = conformed.sort(list(spec.key))
        return self._write_conformed(table, partition_key(partition), conformed)

    def write_many(
        self,
        table: str,
        frame: pl.DataFrame,
        partitions: Sequence[dt.date | str],
        *,
        by: str = "date",
        now: dt.datetime | None = None,
        max_workers: int | None = None,
    ) -> list[WriteResult]:
        """Write one partition per entry of ``partitions`` from ``frame`` split on column ``by``.

        Validates the whole frame once, then writes the partitions concurrently (Parquet
        encoding releases the GIL). A partition with no rows is written as an empty file, so a
        rerun that now finds nothing replaces what an earlier run stored. Rows whose ``by``
        value is not among ``partitions`` are an error: nothing is written then.
        """
        spec = table_spec(table)
        now = now or dt.datetime.now(dt.UTC)
        conformed = conform(table, frame, now=now)
        keys = [partition_key(p) for p in partitions]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{table}: duplicate partitions requested")
        groups: dict[str, pl.DataFrame] = {}
        if conformed.height:
            for (value,), part in conformed.group_by(by):
                groups[partition_key(value)] = part
        stray = sorted(set(groups) - set(keys))
        if stray:
            raise ValueError(f"{table}: rows for partition(s) {stray[:3]} outside the {len(keys)} being written")
        empty = conformed.clear()
        sort_keys = list(spec.key)

        def one(key: str) -> WriteResult:
            part = groups.get(key, empty)
            return self._write_conformed(table, key, part.sort(sort_keys) if sort_keys else part)

        workers = max_workers or min(8, (os.cpu_count() or 1) + 1)
        if len(keys) <= 2 or workers <= 1:
            return [one(k) for k in keys]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, keys))

    def _write_conformed(self, table: str, partition: str, conformed: pl.DataFrame) -> WriteResult:
        digest = content_hash(conformed)
        path = self.path(table, partition)
        if self.stored_hash(table, partition) == digest:
            return WriteResult(table, partition, path, conformed.height, digest, written=False)
        arrow = conformed.to_arrow()
        meta = dict(arrow.schema.metadata or {})
        meta.update({HASH_KEY: digest.encode(), TABLE_KEY: table.encode()})
        self._atomic_write(path, arrow.replace_schema_metadata(meta))
        return WriteResult(table, partition, path, conformed.height, digest, written=True)

    def _atomic_write(self, path: str, arrow: pa.Table) -> None:
        directory = path.rsplit("/", 1)[0]
        self.fs.makedirs(directory, exist_ok=True)
        if self.is_local:
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                pq.write_table(arrow, tmp, compression="zstd")
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        else:  # object stores: one PUT of the whole object is atomic
            buf = io.BytesIO()
            pq.write_table(arrow, buf, compression="zstd")
            with self.fs.open(path, "wb") as fh:
                fh.write(buf.getvalue())

    def stale_temp_files(
        self, max_age_seconds: float = 3600.0, now: float | None = None, tables: Iterable[str] | None = None
    ) -> list[str]:
        """The ``*.tmp-*`` files writers killed mid-write left in a local lake (of ``tables``, default all),
        older than ``max_age_seconds`` (a live writer's file is seconds old). Object stores have none (one PUT
        per file)."""
        if not self.is_local or not os.path.isdir(self._base):
            return []
        now = time.time() if now is None else now
        base = glob.escape(os.path.abspath(self._base))
        dirs = ["*"] if tables is None else [glob.escape(t) for t in tables]
        stale = []
        for pattern in (os.path.join(base, d, "*.tmp-*") for d in dirs):
            for path in glob.glob(pattern):
                try:
                    if now - os.path.getmtime(path) > max_age_seconds:
                        stale.append(path)
                except FileNotFoundError:  # its writer finished meanwhile
                    continue
        return sorted(stale)

    def remove_stale_temp_files(
        self, max_age_seconds: float = 3600.0, now: float | None = None, tables: Iterable[str] | None = None
    ) -> list[str]:
        """Remove :meth:`stale_temp_files`; the paths removed."""
        removed = []
        for path in self.stale_temp_files(max_age_seconds, now, tables):
            try:
                os.remove(path)
                removed.append(path)
            except FileNotFoundError:  # another sweep removed it
                continue
        return removed

    def delete(self, table: str, partition: dt.date | str) -> bool:
        path = self.path(table, partition)
        if self.fs.exists(path):
            self.fs.rm(path)
            return True
        return False

    # ---------------------------------------------------------------- reading
    def _paths(self, table: str, partitions: Iterable[dt.date | str] | None) -> list[str]:
        if partitions is None:
            return [self.path(table, p) for p in self.partitions(table)]
        present = set(self.partitions(table))
        return [self.path(table, p) for p in map(partition_key, partitions) if p in present]

    def scan(self, table: str, partitions: Iterable[dt.date | str] | None = None) -> pl.LazyFrame:
        """Lazy frame over the given (or all) partitions that exist; empty with the schema if none. Collect it
        through :meth:`query` (or use :meth:`read`) so a damaged file is named."""
        paths = self._paths(table, partitions)
        if not paths:
            return pl.LazyFrame(schema=table_spec(table).columns)
        if self.is_local:
            return pl.scan_parquet(paths)
        frames = []
        for path in paths:
            try:
                frames.append(self.read_file(path))
            except READ_FAILURES as exc:
                raise LakeReadError(table, partition_of(path), path, exc) from exc
        return pl.concat(frames).lazy()

    def query(
        self,
        table: str,
        partitions: Iterable[dt.date | str] | None = None,
        build: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None,
    ) -> pl.DataFrame:
        """``build(scan)`` collected (a filter or projection pushed into the scan); a failure caused by a damaged
        file raises :class:`LakeReadError` naming table, partition and path. The fast path is polars' own: only a
        failed collect looks for the culprit (:meth:`find_damaged`)."""
        partitions = None if partitions is None else list(partitions)
        lazy = self.scan(table, partitions)
        try:
            return (build(lazy) if build else lazy).collect()
        except READ_FAILURES as exc:
            damaged = self.find_damaged(table, self._paths(table, partitions))
            if damaged is None:
                raise
            raise damaged from exc

    def read(self, table: str, partitions: Iterable[dt.date | str] | None = None) -> pl.DataFrame:
        """The given (or all) partitions that exist; :class:`LakeReadError` names a damaged file."""
        return self.query(table, partitions)

    def footer(self, path: str) -> pq.FileMetaData:
        """The Parquet footer of one lake file (raises one of :data:`READ_FAILURES` when it is damaged)."""
        if self.is_local:
            return pq.read_metadata(path)
        with self.fs.open(path, "rb") as fh:
            return pq.read_metadata(fh)

    def read_file(self, path: str) -> pl.DataFrame:
        """Every page of one lake file (raises one of :data:`READ_FAILURES` when it is damaged)."""
        if self.is_local:
            return pl.read_parquet(path)
        with self.fs.open(path, "rb") as fh:
            return pl.read_parquet(fh.read())

    def find_damaged(self, table: str, paths: Iterable[str]) -> LakeReadError | None:
        """The first of ``paths`` that cannot be read, as a :class:`LakeReadError`; None if all can. Footers
        first (cheap: truncated or overwritten files), then full reads (garbled pages behind a good footer)."""
        paths = list(paths)
        for check in (self.footer, self.read_file):
            for path in paths:
                try:
                    check(path)
                except READ_FAILURES as cause:
                    return LakeReadError(table, partition_of(path), path, cause)
        return None

    def read_range(self, table: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Date partitions ``start`` <= p <= ``end`` of a date-partitioned table."""
        keys = [p for p in self.partitions(table) if start.isoformat() <= p <= end.isoformat()]
        return self.read(table, keys)
