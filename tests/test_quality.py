"""Injected faults yield the right flag, score (seed 000 section 4.2, by hand) and status."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.governance.quality import QualityThresholds, rejection_summary, score_quality
from mqf_pipeline.market.ingest import prepare_bars
from mqf_pipeline.storage.archive import RawArchive

START, END = dt.date(2024, 1, 2), dt.date(2024, 3, 28)
SESSIONS = calendar.sessions(START, END)
D = SESSIONS[-1]
UNIVERSE = ["AAA", "BBB", "CCC", "DDD", "EEE"]
W = 21
EXACT = 1e-12  # the score is a closed form of counts: exact up to float rounding


def _score(raw: pl.DataFrame, tmp_path) -> pl.DataFrame:
    prepared = prepare_bars(
        raw.with_columns(pl.lit("test").alias("provider")),
        RawArchive(tmp_path),
        dt.datetime(2024, 4, 1, tzinfo=dt.UTC),
        D,
    )
    scored = score_quality(prepared.rows, UNIVERSE, SESSIONS, [D], QualityThresholds(window_sessions=W))
    return scored


def _row(scored: pl.DataFrame, symbol: str = "AAA") -> dict:
    return scored.filter(pl.col("symbol") == symbol).row(0, named=True)


def _on(raw: pl.DataFrame, symbol: str, day: dt.date) -> pl.Expr:
    return (pl.col("symbol") == symbol) & (pl.col("date") == day)


def test_clean_data_scores_one(raw_bars, tmp_path):
    scored = _score(raw_bars, tmp_path)
    assert scored.height == len(UNIVERSE)
    assert scored.get_column("quality_score").to_list() == [1.0] * len(UNIVERSE)
    assert set(scored.get_column("status")) == {"ACCEPT"}
    assert set(scored.get_column("validation_flags")) == {"[]"}


def test_hundredfold_price_is_a_spike(raw_bars, tmp_path):
    faulty = raw_bars.with_columns(
        [
            pl.when(_on(raw_bars, "AAA", D)).then(pl.col(c) * 100).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close", "adjusted_close")
        ]
    )
    row = _row(_score(faulty, tmp_path))
    assert json.loads(row["validation_flags"]) == ["PRICE_SPIKE"]
    assert row["extreme_spike_flag"] == 1
    assert row["quality_score"] == pytest.approx(0.7, abs=EXACT)  # a spike alone costs 0.3
    assert row["status"] == "REJECT"  # hard reject: a 100x bar is never traded on


def test_negative_price(raw_bars, tmp_path):
    faulty = raw_bars.with_columns(
        pl.when(_on(raw_bars, "AAA", D)).then(-pl.col("close")).otherwise(pl.col("close")).alias("close")
    )
    row = _row(_score(faulty, tmp_path))
    assert "NON_POSITIVE_PRICE" in json.loads(row["validation_flags"])
    assert row["zero_negative_flag"] == 1 and row["extreme_spike_flag"] == 0
    assert row["quality_score"] == pytest.approx(0.8, abs=EXACT)
    assert row["status"] == "REJECT"


def test_spike_plus_negative_always_rejects_by_score(raw_bars, tmp_path):
    faulty = raw_bars.with_columns(
        pl.when(_on(raw_bars, "AAA", D)).then(-pl.col("open")).otherwise(pl.col("open")).alias("open"),
        pl.when(_on(raw_bars, "AAA", D)).then(pl.col("volume") * 1000).otherwise(pl.col("volume")).alias("volume"),
    )
    row = _row(_score(faulty, tmp_path))
    assert row["quality_score"] == pytest.approx(0.5, abs=EXACT)
    assert row["status"] == "REJECT"


def test_duplicate_rows(raw_bars, tmp_path):
    faulty = pl.concat([raw_bars, raw_bars.filter(_on(raw_bars, "AAA", D))])
    row = _row(_score(faulty, tmp_path))
    assert json.loads(row["validation_flags"]) == ["DUPLICATE_ROWS"]
    assert row["duplicate_pct"] == pytest.approx(1 / (W + 1), abs=EXACT)
    assert row["quality_score"] == pytest.approx(1 - 0.2 / (W + 1), abs=EXACT)
    assert row["status"] == "ACCEPT"


def test_missing_sessions_in_window(raw_bars, tmp_path):
    gone = [SESSIONS[-4], SESSIONS[-6]]
    faulty = raw_bars.filter(~((pl.col("symbol") == "AAA") & pl.col("date").is_in(gone)))
    row = _row(_score(faulty, tmp_path))
    assert json.loads(row["validation_flags"]) == ["MISSING_SESSIONS"]
    assert row["missing_dates_pct"] == pytest.approx(2 / W, abs=EXACT)
    assert row["quality_score"] == pytest.approx(1 - 0.3 * 2 / W, abs=EXACT)
    assert row["status"] == "ACCEPT"


def test_missing_bar_today_rejects(raw_bars, tmp_path):
    faulty = raw_bars.filter(~_on(raw_bars, "AAA", D))
    row = _row(_score(faulty, tmp_path))
    assert set(json.loads(row["validation_flags"])) == {"NO_BAR", "MISSING_SESSIONS"}
    assert row["quality_score"] == pytest.approx(1 - 0.3 / W, abs=EXACT)
    assert row["status"] == "REJECT"


def test_zero_volume(raw_bars, tmp_path):
    faulty = raw_bars.with_columns(pl.when(_on(raw_bars, "AAA", D)).then(0).otherwise(pl.col("volume")).alias("volume"))
    row = _row(_score(faulty, tmp_path))
    assert json.loads(row["validation_flags"]) == ["ZERO_VOLUME"]
    assert row["quality_score"] == pytest.approx(0.7, abs=EXACT)
    assert row["status"] == "ACCEPT"


def test_stale_repeated_bars(raw_bars, tmp_path):
    base = raw_bars.filter(_on(raw_bars, "AAA", SESSIONS[-3]))
    repeated = pl.concat([base.with_columns(pl.lit(d).alias("date")) for d in SESSIONS[-2:]])
    faulty = pl.concat(
        [raw_bars.filter(~((pl.col("symbol") == "AAA") & pl.col("date").is_in(SESSIONS[-2:]))), repeated]
    )
    row = _row(_score(faulty, tmp_path))
    assert set(json.loads(row["validation_flags"])) == {"STALE_BAR", "MISSING_SESSIONS"}
    assert row["missing_dates_pct"] == pytest.approx(2 / W, abs=EXACT)
    assert row["quality_score"] == pytest.approx(1 - 0.3 * 2 / W, abs=EXACT)


def test_nan_price(raw_bars, tmp_path):
    faulty = raw_bars.with_columns(
        pl.when(_on(raw_bars, "AAA", D)).then(float("nan")).otherwise(pl.col("close")).alias("close")
    )
    row = _row(_score(faulty, tmp_path))
    assert "NAN_VALUE" in json.loads(row["validation_flags"])
    assert row["quality_score"] == pytest.approx(0.8, abs=EXACT)
    assert row["status"] == "REJECT"


def test_wrong_column_type(raw_bars, tmp_path):
    as_text = raw_bars.with_columns(
        pl.when(_on(raw_bars, "AAA", D)).then(pl.lit("n/a")).otherwise(pl.col("close").cast(pl.String)).alias("close")
    )
    scored = _score(as_text, tmp_path)
    row = _row(scored)
    assert {"WRONG_TYPE", "NAN_VALUE"} <= set(json.loads(row["validation_flags"]))
    assert row["quality_score"] == pytest.approx(0.8, abs=EXACT)
    assert row["status"] == "REJECT"
    # the other symbols' text closes parsed fine: nothing else flagged
    assert _row(scored, "BBB")["quality_score"] == 1.0


def test_rejection_rate_over_limit(raw_bars, tmp_path):
    faulty = raw_bars.filter(~_on(raw_bars, "AAA", D))
    summary = rejection_summary(_score(faulty, tmp_path))
    assert summary.row(0, named=True)["rejection_rate"] == pytest.approx(1 / len(UNIVERSE), abs=EXACT)


def test_no_lookahead(raw_bars, tmp_path):
    """Changing bars after date X leaves X's quality row unchanged."""
    x = SESSIONS[-10]
    changed = raw_bars.with_columns(
        pl.when(pl.col("date") > x).then(pl.col("close") * 3).otherwise(pl.col("close")).alias("close")
    )

    def at_x(raw):
        prepared = prepare_bars(
            raw.with_columns(pl.lit("t").alias("provider")),
            RawArchive(tmp_path),
            dt.datetime(2024, 4, 1, tzinfo=dt.UTC),
            D,
        )
        return score_quality(prepared.rows, UNIVERSE, SESSIONS, [x])

    assert at_x(raw_bars).equals(at_x(changed))


def _null_on(raw: pl.DataFrame, cols: tuple[str, ...], when: pl.Expr) -> pl.DataFrame:
    return raw.with_columns(pl.when(when).then(None).otherwise(pl.col(c)).alias(c) for c in cols)


def _price_flags(raw: pl.DataFrame, tmp_path, symbol: str = "AAA", day: dt.date = D) -> set[str]:
    prepared = prepare_bars(
        raw.with_columns(pl.lit("test").alias("provider")),
        RawArchive(tmp_path),
        dt.datetime(2024, 4, 1, tzinfo=dt.UTC),
        D,
    )
    row = prepared.rows.filter((pl.col("symbol") == symbol) & (pl.col("date") == day)).row(0, named=True)
    return set(json.loads(row["validation_flags"]))


def test_close_only_bars_are_accepted_and_flagged(raw_bars, tmp_path):
    """A close-only source (no open/high/low, no volume) for the whole history: usable, flagged, full score."""
    close_only = _null_on(raw_bars, ("open", "high", "low", "volume"), pl.col("symbol") == "AAA")
    assert _price_flags(close_only, tmp_path) == {"NO_OHLC", "NO_VOLUME"}
    scored = _score(close_only, tmp_path)
    row = _row(scored)
    assert set(json.loads(row["validation_flags"])) == {"NO_OHLC", "NO_VOLUME"}
    assert row["zero_negative_flag"] == 0 and row["extreme_spike_flag"] == 0 and row["missing_dates_pct"] == 0.0
    assert row["quality_score"] == pytest.approx(1.0, abs=EXACT)  # 1 - (0.3*0 + 0.2*0 + 0.2*0 + 0.3*0)
    assert row["status"] == "ACCEPT"
    assert _row(scored, "BBB")["validation_flags"] == "[]"


def test_close_only_bars_are_stale_when_their_close_repeats(raw_bars, tmp_path):
    """null == null does not make every close-only bar stale, nor does it hide a repeated close."""
    close_only = _null_on(raw_bars, ("open", "high", "low"), pl.col("symbol") == "AAA")
    prev = close_only.filter(_on(close_only, "AAA", SESSIONS[-2])).row(0, named=True)
    repeated = close_only.with_columns(
        pl.when(_on(close_only, "AAA", D)).then(pl.lit(prev[c])).otherwise(pl.col(c)).alias(c)
        for c in ("close", "adjusted_close", "volume")
    )
    row = _row(_score(repeated, tmp_path))
    assert set(json.loads(row["validation_flags"])) == {"NO_OHLC", "STALE_BAR", "MISSING_SESSIONS"}
    assert row["missing_dates_pct"] == pytest.approx(1 / W, abs=EXACT)
    assert row["quality_score"] == pytest.approx(1 - 0.3 / W, abs=EXACT)
    assert row["status"] == "ACCEPT"


def test_null_volume_is_no_volume_and_not_a_spike(raw_bars, tmp_path):
    """Volumes missing on D and the sessions before: NO_VOLUME, no spike (nulls are not in the reference)."""
    gone = pl.col("date").is_in(SESSIONS[-3:]) & (pl.col("symbol") == "AAA")
    row = _row(_score(_null_on(raw_bars, ("volume",), gone), tmp_path))
    assert json.loads(row["validation_flags"]) == ["NO_VOLUME"]
    assert row["quality_score"] == pytest.approx(1.0, abs=EXACT)
    assert row["status"] == "ACCEPT"


@pytest.mark.parametrize("cols", [("open",), ("high", "low"), ("open", "high", "low", "close")])
def test_partly_missing_ohlc_is_nan_value_and_rejected(raw_bars, tmp_path, cols):
    """Some of open/high/low null (or no close at all) is an unusable price, not a close-only bar."""
    faulty = _null_on(raw_bars, cols, _on(raw_bars, "AAA", D))
    assert "NO_OHLC" not in _price_flags(faulty, tmp_path)
    row = _row(_score(faulty, tmp_path))
    flags = set(json.loads(row["validation_flags"]))
    assert "NAN_VALUE" in flags and "NO_OHLC" not in flags
    assert row["zero_negative_flag"] == 1
    assert row["quality_score"] == pytest.approx(0.8, abs=EXACT)
    assert row["status"] == "REJECT"
