"""Data quality: row flags at ingestion, the seed 000 section 4.2 score, and the gate.

Score (seed 000 section 4.2; every input a fraction in [0, 1], not a percent)::

    score = 1 - (0.3 * missing_dates_pct + 0.2 * duplicate_pct
                 + 0.2 * zero_negative_flag + 0.3 * extreme_spike_flag)

per symbol and session D, over a trailing window of ``window_sessions`` expected sessions:

* ``missing_dates_pct``: expected XNYS sessions in the window with no bar, or with a stale bar
  (OHLCV identical to the symbol's previous bar, comparing the columns present: a close-only bar is
  stale when its close, adjusted close and volume repeat), over the sessions in the window;
* ``duplicate_pct``: duplicate copies received in the window over all rows received there;
* ``zero_negative_flag``: D's bar has an unusable price: zero or negative, NaN or infinite, a null
  close or adjusted close, a partly missing OHLC (some of open/high/low null, not all), a value of
  the wrong type, or OHLC that contradict each other (high below open/close, low above);
* ``extreme_spike_flag``: D's adjusted close moves more than ``spike_log_threshold`` (log) from
  the median of the previous ``spike_ref_bars`` valid closes, or its volume is zero, negative or
  above ``volume_spike_ratio`` times the median of the previous ``volume_ref_bars`` volumes (a null
  volume is neither a spike nor part of the reference).

Partial data is usable: a bar whose open, high and low are all null while its close and adjusted
close are valid comes from a close-only source (``NO_OHLC``), and a null volume is ``NO_VOLUME``.
Neither is an unusable price; both are recorded (in ``price_history`` and ``data_quality``) and cost
nothing in the score. Whoever needs the missing fields says so (the paper broker cancels an order on
a bar without an open as ``NO_OHLC``).

Status (seed 000 section 4.3): REJECT when score < ``reject_below`` (0.6). A bar that cannot be
used at all is also rejected whatever its score (``hard_reject_flags``: no bar, unusable price,
price spike): the score follows the seed's formula, the status adds survival-first rules. A
partition whose rejection rate exceeds ``max_rejection_rate`` (5%) fails its blocking check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

# Row-level flags, set at ingestion (price_history.validation_flags).
WRONG_TYPE = "WRONG_TYPE"
NAN_VALUE = "NAN_VALUE"
NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"
OHLC_INCONSISTENT = "OHLC_INCONSISTENT"
ZERO_VOLUME = "ZERO_VOLUME"
NEGATIVE_VOLUME = "NEGATIVE_VOLUME"
DUPLICATE_ROWS = "DUPLICATE_ROWS"
NO_OHLC = "NO_OHLC"  # open, high and low all null, close and adjusted close valid: a close-only source
NO_VOLUME = "NO_VOLUME"  # volume null
# Window-level flags, set by the quality score (data_quality.validation_flags).
NO_BAR = "NO_BAR"
MISSING_SESSIONS = "MISSING_SESSIONS"
STALE_BAR = "STALE_BAR"
PRICE_SPIKE = "PRICE_SPIKE"
VOLUME_SPIKE = "VOLUME_SPIKE"

UNUSABLE_PRICE_FLAGS: tuple[str, ...] = (WRONG_TYPE, NAN_VALUE, NON_POSITIVE_PRICE, OHLC_INCONSISTENT)
VOLUME_ANOMALY_FLAGS: tuple[str, ...] = (ZERO_VOLUME, NEGATIVE_VOLUME, VOLUME_SPIKE)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adjusted_close")
INTRADAY_COLUMNS: tuple[str, ...] = ("open", "high", "low")

ACCEPT = "ACCEPT"
REJECT = "REJECT"


class QualityThresholds(BaseModel):
    """Quality gate parameters (configs/quality.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_sessions: int = Field(21, ge=1, description="trailing expected sessions scored for missing/duplicates")
    reject_below: float = Field(0.6, ge=0, le=1, description="seed 000 4.3: REJECT when score < this")
    max_rejection_rate: float = Field(0.05, ge=0, le=1, description="seed 000 4.3: ALERT/fail above this share")
    spike_log_threshold: float = Field(
        0.4, gt=0, description="|ln(adj_close / median of previous closes)| above this is a price spike"
    )
    spike_ref_bars: int = Field(5, ge=1, description="previous valid closes whose median is the spike reference")
    volume_spike_ratio: float = Field(20.0, gt=1, description="volume above this multiple of its median is a spike")
    volume_ref_bars: int = Field(21, ge=1, description="previous volumes whose median is the volume reference")
    hard_reject_flags: tuple[str, ...] = Field(
        (NO_BAR, *UNUSABLE_PRICE_FLAGS, PRICE_SPIKE),
        description="flags that reject a bar whatever its score",
    )


def _flag_list_json(flags: Sequence[tuple[str, pl.Expr]]) -> pl.Expr:
    """A JSON list of the flag names whose condition holds, sorted, e.g. ``["NAN_VALUE"]``."""
    named = [pl.when(cond).then(pl.lit(f'"{name}"')) for name, cond in sorted(flags)]
    return pl.format("[{}]", pl.concat_list(named).list.drop_nulls().list.join(","))


def has_flag(flag: str, column: str = "validation_flags") -> pl.Expr:
    """True where the JSON flag list in ``column`` contains ``flag``."""
    return pl.col(column).str.contains(f'"{flag}"', literal=True)


def row_flag_exprs() -> list[tuple[str, pl.Expr]]:
    """Row-level flag conditions over canonical bars with ``cast_failed`` and ``n_duplicates``.

    NAN_VALUE: a NaN or infinite price, a null close or adjusted close, or a partly null open/high/low;
    NO_OHLC: open, high and low all null with a valid close and adjusted close; NO_VOLUME: volume null."""
    prices = [pl.col(c) for c in PRICE_COLUMNS]
    high_ok = pl.col("high") >= pl.max_horizontal("open", "close", "low") * (1 - 1e-9)
    low_ok = pl.col("low") <= pl.min_horizontal("open", "close") * (1 + 1e-9)
    not_finite = pl.any_horizontal([(p.is_nan() | p.is_infinite()).fill_null(False) for p in prices])
    closes_null = pl.col("close").is_null() | pl.col("adjusted_close").is_null()
    no_intraday = pl.all_horizontal([pl.col(c).is_null() for c in INTRADAY_COLUMNS])
    partly_intraday = pl.any_horizontal([pl.col(c).is_null() for c in INTRADAY_COLUMNS]) & ~no_intraday
    return [
        (WRONG_TYPE, pl.col("cast_failed")),
        (NAN_VALUE, not_finite | closes_null | partly_intraday),
        (NO_OHLC, no_intraday & ~not_finite & ~closes_null),
        (NO_VOLUME, pl.col("volume").is_null()),
        (NON_POSITIVE_PRICE, pl.any_horizontal([p <= 0 for p in prices]).fill_null(False)),
        (OHLC_INCONSISTENT, (~(high_ok & low_ok)).fill_null(False)),
        (ZERO_VOLUME, (pl.col("volume") == 0).fill_null(False)),
        (NEGATIVE_VOLUME, (pl.col("volume") < 0).fill_null(False)),
        (DUPLICATE_ROWS, pl.col("n_duplicates") > 0),
    ]


def dedupe_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """Keep the first received row per (symbol, date); ``n_duplicates`` counts the others.

    Rows with an unreadable date (null after coercion) cannot be placed and are dropped here;
    callers count them beforehand.
    """
    return (
        bars.filter(pl.col("date").is_not_null() & pl.col("symbol").is_not_null())
        .with_columns((pl.len().over("symbol", "date") - 1).cast(pl.Int32).alias("n_duplicates"))
        .unique(subset=["symbol", "date"], keep="first", maintain_order=True)
    )


def with_row_flags(bars: pl.DataFrame) -> pl.DataFrame:
    """Add ``validation_flags`` (JSON list of row-level flags) to deduplicated canonical bars."""
    return bars.with_columns(_flag_list_json(row_flag_exprs()).alias("validation_flags"))


def score_quality(
    history: pl.DataFrame,
    universe: Sequence[str],
    sessions: Sequence[dt.date],
    eval_dates: Sequence[dt.date],
    thresholds: QualityThresholds | None = None,
) -> pl.DataFrame:
    """Score every (symbol in ``universe``, date in ``eval_dates``): a ``data_quality`` frame.

    ``history`` holds price_history rows for the symbols from at least ``window_sessions``
    sessions (and ``volume_ref_bars`` bars) before the first eval date; ``sessions`` lists the
    expected XNYS sessions of that span, from the first session data exists for. Only data at
    or before each eval date is used (no lookahead).

    Steps (module docstring): the expected (symbol, session) grid; per bar, unusable prices
    (``zero_negative_flag``) and stale bars; per bar, price and volume spikes
    (``extreme_spike_flag``); per window, missing sessions and duplicates (``missing_dates_pct``,
    ``duplicate_pct``); the flags and the score; the status (REJECT).
    """
    th = thresholds or QualityThresholds()
    if not eval_dates:
        return pl.DataFrame(schema=_OUTPUT_SCHEMA)
    sess, grid = _expected_grid(universe, sessions, eval_dates)
    bars = _spike_checks(_bar_checks(history, universe, sess), th)
    scored = _window_counts(grid, bars, th.window_sessions, eval_dates)
    return _with_status(_with_score(scored), th)


def _expected_grid(
    universe: Sequence[str], sessions: Sequence[dt.date], eval_dates: Sequence[dt.date]
) -> tuple[list[dt.date], pl.DataFrame]:
    """The expected sessions up to the last eval date and their (symbol, date) grid."""
    sess = sorted(set(sessions))
    missing_eval = sorted(set(eval_dates) - set(sess))
    if missing_eval:
        raise ValueError(f"eval dates {missing_eval[:3]} are not among the expected sessions")
    sess = [s for s in sess if s <= max(eval_dates)]
    grid = pl.DataFrame({"symbol": sorted(set(universe))}).join(
        pl.DataFrame({"date": sess}, schema={"date": pl.Date}), how="cross"
    )
    return sess, grid


def _bar_checks(history: pl.DataFrame, universe: Sequence[str], sess: list[dt.date]) -> pl.DataFrame:
    """The universe's bars on expected sessions, with ``unusable`` (a row-level unusable-price flag)
    and ``stale`` (:func:`_stale`)."""
    return (
        history.filter(pl.col("symbol").is_in(list(universe)) & pl.col("date").is_in(sess))
        .sort("symbol", "date")
        .with_columns(unusable=pl.any_horizontal([has_flag(f) for f in UNUSABLE_PRICE_FLAGS]), stale=_stale())
    )


def _stale() -> pl.Expr:
    """OHLCV identical to the symbol's previous bar, comparing the columns present: a column null in both
    bars is equal (so a close-only bar is stale when its close, adjusted close and volume repeat), null in
    one only is a difference. A bar without a close, or without a previous bar, is not stale."""
    same = [pl.col(c).eq_missing(pl.col(c).shift(1).over("symbol")) for c in (*PRICE_COLUMNS, "volume")]
    has_previous = pl.col("date").shift(1).over("symbol").is_not_null()
    return (pl.all_horizontal(same) & has_previous & pl.col("close").is_not_null()).fill_null(False)


def _spike_checks(bars: pl.DataFrame, th: QualityThresholds) -> pl.DataFrame:
    """``price_spike`` / ``volume_spike`` against the medians of the previous valid bars; keeps the
    columns the window step needs."""
    return (
        bars.with_columns(
            ref_close=pl.when(~pl.col("unusable"))
            .then(pl.col("adjusted_close"))
            .shift(1)
            .rolling_median(th.spike_ref_bars, min_samples=1)
            .over("symbol"),
            ref_volume=pl.when(~pl.col("unusable") & (pl.col("volume") > 0))
            .then(pl.col("volume"))
            .cast(pl.Float64)
            .shift(1)
            .rolling_median(th.volume_ref_bars, min_samples=1)
            .over("symbol"),
        )
        .with_columns(
            price_spike=(
                ~pl.col("unusable")
                & ((pl.col("adjusted_close") / pl.col("ref_close")).log().abs() > th.spike_log_threshold)
            ).fill_null(False),
            volume_spike=(pl.col("volume") > th.volume_spike_ratio * pl.col("ref_volume")).fill_null(False),
        )
        .select(
            "symbol",
            "date",
            "provider",
            "validation_flags",
            "n_duplicates",
            "unusable",
            "stale",
            "price_spike",
            "volume_spike",
        )
    )


def _window_counts(grid: pl.DataFrame, bars: pl.DataFrame, w: int, eval_dates: Sequence[dt.date]) -> pl.DataFrame:
    """Per (symbol, eval date), trailing ``w``-session counts: ``n_gap`` sessions missing or stale,
    ``n_dup`` duplicate copies, ``n_got`` bars received, ``n_exp`` sessions expected."""
    return (
        grid.join(bars, on=["symbol", "date"], how="left")
        .with_columns(has_bar=pl.col("validation_flags").is_not_null())
        .sort("symbol", "date")
        .with_columns(
            gap=(~pl.col("has_bar") | pl.col("stale").fill_null(False)).cast(pl.Int64),
            dups=pl.col("n_duplicates").fill_null(0).cast(pl.Int64),
            got=pl.col("has_bar").cast(pl.Int64),
            one=pl.lit(1, dtype=pl.Int64),
        )
        .with_columns(
            n_gap=pl.col("gap").rolling_sum(w, min_samples=1).over("symbol"),
            n_dup=pl.col("dups").rolling_sum(w, min_samples=1).over("symbol"),
            n_got=pl.col("got").rolling_sum(w, min_samples=1).over("symbol"),
            n_exp=pl.col("one").rolling_sum(w, min_samples=1).over("symbol"),
        )
        .filter(pl.col("date").is_in(list(eval_dates)))
    )


def _window_flags() -> list[tuple[str, pl.Expr]]:
    """The window-level flag conditions (``data_quality.validation_flags``) over the counted rows."""
    flag = pl.col("validation_flags").fill_null("[]")
    flags: list[tuple[str, pl.Expr]] = [
        (name, pl.col("has_bar") & flag.str.contains(f'"{name}"', literal=True))
        for name in (
            WRONG_TYPE,
            NAN_VALUE,
            NON_POSITIVE_PRICE,
            OHLC_INCONSISTENT,
            ZERO_VOLUME,
            NEGATIVE_VOLUME,
            NO_OHLC,
            NO_VOLUME,
        )
    ]
    flags += [
        (NO_BAR, ~pl.col("has_bar")),
        (MISSING_SESSIONS, pl.col("n_gap") > 0),
        (DUPLICATE_ROWS, pl.col("n_dup") > 0),
        (STALE_BAR, pl.col("stale").fill_null(False)),
        (PRICE_SPIKE, pl.col("price_spike").fill_null(False)),
        (VOLUME_SPIKE, pl.col("volume_spike").fill_null(False)),
    ]
    return flags


def _with_score(scored: pl.DataFrame) -> pl.DataFrame:
    """The four seed 000 section 4.2 inputs, the window-level flags and ``quality_score``."""
    zero_negative = pl.col("unusable").fill_null(False)
    spike = (
        pl.col("price_spike").fill_null(False)
        | pl.col("volume_spike").fill_null(False)
        | pl.any_horizontal([has_flag(f) for f in (ZERO_VOLUME, NEGATIVE_VOLUME)]).fill_null(False)
    )
    missing_pct = pl.col("n_gap") / pl.col("n_exp")
    dup_pct = (
        pl.when(pl.col("n_got") + pl.col("n_dup") > 0)
        .then(pl.col("n_dup") / (pl.col("n_got") + pl.col("n_dup")))
        .otherwise(0.0)
    )
    return scored.with_columns(
        missing_dates_pct=missing_pct.cast(pl.Float64),
        duplicate_pct=dup_pct.cast(pl.Float64),
        zero_negative_flag=zero_negative.cast(pl.Int32),
        extreme_spike_flag=spike.cast(pl.Int32),
        validation_flags=_flag_list_json(_window_flags()),
    ).with_columns(
        quality_score=(
            1.0
            - (
                0.3 * pl.col("missing_dates_pct")
                + 0.2 * pl.col("duplicate_pct")
                + 0.2 * pl.col("zero_negative_flag")
                + 0.3 * pl.col("extreme_spike_flag")
            )
        ).clip(0.0, 1.0),
    )


def _with_status(out: pl.DataFrame, th: QualityThresholds) -> pl.DataFrame:
    """REJECT below ``reject_below`` or on a hard-reject flag, else ACCEPT; the output columns, sorted."""
    hard = pl.any_horizontal([has_flag(f) for f in th.hard_reject_flags]) if th.hard_reject_flags else pl.lit(False)
    return (
        out.with_columns(
            status=pl.when((pl.col("quality_score") < th.reject_below) | hard)
            .then(pl.lit(REJECT))
            .otherwise(pl.lit(ACCEPT)),
            window_sessions=pl.col("n_exp").cast(pl.Int32),
        )
        .select(list(_OUTPUT_SCHEMA))
        .sort("date", "symbol")
    )


_OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "quality_score": pl.Float64(),
    "missing_dates_pct": pl.Float64(),
    "duplicate_pct": pl.Float64(),
    "zero_negative_flag": pl.Int32(),
    "extreme_spike_flag": pl.Int32(),
    "validation_flags": pl.String(),
    "status": pl.String(),
    "window_sessions": pl.Int32(),
    "provider": pl.String(),
}


def rejection_summary(quality: pl.DataFrame) -> pl.DataFrame:
    """Per date: symbols scored, rejected, and the rejection rate (fraction)."""
    return (
        quality.group_by("date")
        .agg(n_symbols=pl.len(), n_rejected=(pl.col("status") == REJECT).sum())
        .with_columns(rejection_rate=pl.col("n_rejected") / pl.col("n_symbols"))
        .sort("date")
    )
