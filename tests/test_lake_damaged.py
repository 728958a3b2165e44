"""A damaged partition file names itself on read (table, date, file) and is replaced by a rewrite."""

from __future__ import annotations

import datetime as dt
import os

import polars as pl
import pytest

from mqf_pipeline.storage.lake import Lake, LakeReadError

DAY = dt.date(2024, 3, 1)


def _macro(day: dt.date) -> pl.DataFrame:
    now = dt.datetime(2024, 3, 5, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "date": [day],
            "series_id": ["VIX"],
            "value": [18.5],
            "provider": ["simulated"],
            "raw_hash": ["abc"],
            "ingestion_timestamp": [now],
        }
    )


def test_a_corrupt_partition_is_named_then_repaired_by_a_rewrite(tmp_path):
    lake = Lake(str(tmp_path))
    frame = _macro(DAY)
    lake.write("macro_series", DAY, frame)
    lake.write("macro_series", DAY + dt.timedelta(days=3), _macro(DAY + dt.timedelta(days=3)))
    path = lake.path("macro_series", DAY)
    with open(path, "wb") as fh:
        fh.write(b"not parquet at all")
    with pytest.raises(LakeReadError, match=r"macro_series partition 2024-03-01: the file .*2024-03-01.parquet"):
        lake.read("macro_series")
    result = lake.write("macro_series", DAY, frame)  # the rewrite does not trip over the damaged file
    assert result.written
    assert lake.read("macro_series").height == 2


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write("macro_series", DAY, _macro(DAY))
    old = tmp_path / "macro_series" / "2024-03-01.parquet.tmp-dead"
    fresh = tmp_path / "macro_series" / "2024-03-04.parquet.tmp-live"
    old.write_bytes(b"half")
    fresh.write_bytes(b"writing")
    os.utime(old, (1_000_000, 1_000_000))
    removed = lake.remove_stale_temp_files(max_age_seconds=3600)
    assert removed == [str(old)] and fresh.exists() and not old.exists()
    assert lake.partitions("macro_series") == ["2024-03-01"]
