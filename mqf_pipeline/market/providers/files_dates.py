"""Reading user files at the level of tables and cells: the table and its header, dates, numbers and
missing values, typed rows and their spacing, and the reconciliation of rows several files hold. The
structure (layouts, symbols, scans) is in :mod:`mqf_pipeline.market.providers.files_scan`.

Rules (the user's documentation is the docstring of :mod:`mqf_pipeline.market.providers.files`):

* A date column has ONE format per file, detected from the whole column, never row by row: the
  format most rows match is the file's format, and a row that does not match it is an error naming
  the row and its value. Formats: native Parquet ``Date``/``Datetime``; ISO ``YYYY-MM-DD`` (optionally
  with a time, ``T`` or space separated, and a zone ``Z``/``UTC``/``+hh:mm``); ``YYYY/MM/DD``;
  ``YYYYMMDD``; ``A/B/YYYY`` (also ``-`` or ``.`` separated) read as MM/DD/YYYY unless some first
  field in the file exceeds 12, then DD/MM/YYYY for the whole file; epoch numbers, seconds or
  milliseconds when the largest exceeds 1e11.
* Time zones: a timestamp's date is the calendar date as written in its own zone
  (``2024-01-02 16:00-05:00`` is 2024-01-02, ``2024-01-02T00:00:00Z`` is 2024-01-02); a Parquet
  datetime with a zone is read in that zone; epoch numbers are read in UTC.
* Numbers: blank, ``null``, ``none``, ``NA``, ``n/a``, ``#N/A``, ``NaN``, ``.`` and ``-`` (any case)
  are missing values (null); a leading ``$`` is ignored; anything else that is not a number is an error.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

Frequency = Literal["daily", "weekly", "monthly", "intraday", "unknown"]
#: Cell texts that mean "no value" (compared lower-cased, after stripping blanks).
MISSING_TOKENS: tuple[str, ...] = ("", "null", "none", "na", "n/a", "#n/a", "nan", ".", "-")

_TIME = r"(?:[T ]\s*(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,]\d+)?)?\s*(?P<p>[AaPp][Mm])?)?"
_ZONE = r"\s*(?P<z>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
#: Text date formats, tried over the whole column; on a tie the earlier wins.
_FORMATS: dict[str, str] = {
    "iso": rf"^(?P<y>\d{{4}})-(?P<m>\d{{1,2}})-(?P<d>\d{{1,2}}){_TIME}{_ZONE}$",
    "ymd_slash": rf"^(?P<y>\d{{4}})/(?P<m>\d{{1,2}})/(?P<d>\d{{1,2}}){_TIME}$",
    "compact": r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$",
    "day_month": rf"^(?P<a>\d{{1,2}})(?P<sep>[/.-])(?P<b>\d{{1,2}})[/.-](?P<y>\d{{4}}){_TIME}$",
    "epoch": r"^\d+(?:\.\d+)?$",
}
_LABELS = {"ymd_slash": "YYYY/MM/DD", "compact": "YYYYMMDD", "day_month": "A/B/YYYY", "epoch": "epoch number"}
_EPOCH_MS_ABOVE = 1e11


@dataclass(frozen=True)
class ParsedDates:
    """A date column read with one format: ``dates`` (Date) and, when the format carries a time of day,
    ``stamps`` (naive Datetime, wall clock as written); or the first unreadable row (0-based) and why."""

    label: str
    dates: pl.Series | None = None
    stamps: pl.Series | None = None
    bad_row: int | None = None
    reason: str | None = None


def parse_dates(col: pl.Series) -> ParsedDates:
    """``col`` read as dates under the rules of the module docstring (never drops or guesses a row)."""
    dtype = col.dtype
    if dtype == pl.Date():
        return _checked(ParsedDates("native date", col))
    if isinstance(dtype, pl.Datetime):
        label = "native datetime with zone" if dtype.time_zone else "native datetime"
        wall = col.dt.replace_time_zone(None) if dtype.time_zone else col
        return _checked(ParsedDates(label, col.dt.date(), wall))
    if dtype.is_integer():
        col = col.cast(pl.String)
    elif dtype.is_float():
        whole = bool((col.drop_nulls() == col.drop_nulls().round(0)).all())
        col = col.cast(pl.Int64).cast(pl.String) if whole else col.cast(pl.String)
    elif isinstance(dtype, (pl.Categorical, pl.Enum)):
        col = col.cast(pl.String)
    if col.dtype != pl.String():
        return ParsedDates("unknown", bad_row=0, reason=f"holds {dtype} values, not dates")
    return _text_dates(col.str.strip_chars())


def _checked(parsed: ParsedDates) -> ParsedDates:
    """``parsed``, or its first empty row as an error."""
    assert parsed.dates is not None
    empty = parsed.dates.is_null()
    if empty.any():
        return ParsedDates(parsed.label, bad_row=int(empty.arg_true()[0]), reason="is empty (every row needs a date)")
    return parsed


def _text_dates(text: pl.Series) -> ParsedDates:
    """Text dates: pick the format the most rows match, then read every row with it."""
    if text.is_empty():
        return ParsedDates("none (no rows)", pl.Series([], dtype=pl.Date))
    empty = text.is_null() | (text == "")
    if empty.any():
        return ParsedDates("unknown", bad_row=int(empty.arg_true()[0]), reason="is empty (every row needs a date)")
    frame = text.to_frame("t")
    counts = frame.select(pl.col("t").str.contains(rx).sum().alias(k) for k, rx in _FORMATS.items()).row(0)
    key, best = max(zip(_FORMATS, counts, strict=True), key=lambda kc: kc[1])
    if best == 0:
        return ParsedDates("unknown", bad_row=0, reason=f"value {text[0]!r} is not a date in a known format")
    if key == "epoch" and best == text.len():
        return _epoch(text)
    if key == "compact" and best == text.len():
        return _strict(text, "%Y%m%d", "YYYYMMDD")
    if key == "iso" and best == text.len() and bool((text.str.len_bytes() == 10).all()):
        return _strict(text, "%Y-%m-%d", "ISO YYYY-MM-DD")  # the common plain form: no field extraction
    parts = text.str.extract_groups(_FORMATS[key]).struct.unnest() if key != "epoch" else pl.DataFrame()
    label = _label(key, parts)
    if best < text.len():
        row = int((~text.str.contains(_FORMATS[key])).arg_true()[0])
        reason = f"value {text[row]!r} does not match the file's date format {label} (one format per file)"
        return ParsedDates(label, bad_row=row, reason=reason)
    if key == "day_month":
        return _day_month(text, parts)
    return _from_parts(label, text, parts, "m", "d")


def _strict(text: pl.Series, fmt: str, label: str) -> ParsedDates:
    """``text`` (all of one fixed-width form) read with ``fmt``; an impossible date is an error."""
    dates = text.str.strptime(pl.Date, fmt, strict=False)
    if dates.is_null().any():
        row = int(dates.is_null().arg_true()[0])
        return ParsedDates(label, bad_row=row, reason=f"value {text[row]!r} is not a valid {label} date")
    return ParsedDates(label, dates)


def _label(key: str, parts: pl.DataFrame) -> str:
    """The human name of format ``key`` given the extracted fields (ISO: with a time, with a zone)."""
    if key == "iso":
        if parts["z"].is_not_null().any():
            return "ISO datetime with zone"
        return "ISO datetime" if parts["H"].is_not_null().any() else "ISO YYYY-MM-DD"
    return _LABELS.get(key, key)


def _from_parts(label: str, text: pl.Series, parts: pl.DataFrame, month: str, day: str) -> ParsedDates:
    """Dates (and stamps when a time is present) from extracted ``y``, month and day fields."""
    date = pl.format("{}-{}-{}", "y", month, day).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    timed = "H" in parts.columns and parts["H"].is_not_null().any()
    if not timed:
        dates = parts.select(date).to_series()
        stamps = None
    else:
        h, m, sec = (pl.col(c).cast(pl.Int64).fill_null(0) for c in ("H", "M", "S"))
        pm = pl.col("p").str.to_uppercase() if "p" in parts.columns else pl.lit(None, pl.String)
        hour = pl.when((pm == "PM") & (h < 12)).then(h + 12).when((pm == "AM") & (h == 12)).then(0).otherwise(h)
        both = parts.select(
            date.alias("d"),
            (date.cast(pl.Datetime("us")) + pl.duration(hours=hour, minutes=m, seconds=sec)).alias("s"),
        )
        dates, stamps = both["d"], both["s"]
    if dates.is_null().any():
        row = int(dates.is_null().arg_true()[0])
        return ParsedDates(label, bad_row=row, reason=f"value {text[row]!r} is not a valid {label} date")
    return ParsedDates(label, dates, stamps)


def _day_month(text: pl.Series, parts: pl.DataFrame) -> ParsedDates:
    """``A/B/YYYY``: MM/DD unless some A exceeds 12 (then DD/MM); an error if the chosen reading fails."""
    sep = str(parts["sep"][0])
    us, eu = f"MM{sep}DD{sep}YYYY", f"DD{sep}MM{sep}YYYY"
    day_first = bool((parts["a"].cast(pl.Int64) > 12).any())
    first = _from_parts(eu, text, parts, "b", "a") if day_first else _from_parts(us, text, parts, "a", "b")
    if first.reason is None or day_first:
        if first.reason is not None:
            return ParsedDates(first.label, bad_row=first.bad_row, reason=f"{first.reason} (nor {us})")
        return first
    other = _from_parts(eu, text, parts, "b", "a")
    if other.reason is None:
        return other
    return ParsedDates(us, bad_row=first.bad_row, reason=f"{first.reason} (nor {eu})")


def _epoch(text: pl.Series) -> ParsedDates:
    """Epoch seconds, or milliseconds when the largest value exceeds 1e11; dates in UTC."""
    values = text.cast(pl.Float64)
    millis = bool(values.max() > _EPOCH_MS_ABOVE)  # type: ignore[operator]
    label = "epoch milliseconds" if millis else "epoch seconds"
    stamps = pl.from_epoch((values * (1.0 if millis else 1000.0)).round(0).cast(pl.Int64), time_unit="ms")
    return ParsedDates(label, stamps.dt.date(), stamps)


def number_exprs(name: str, dtype: pl.DataType, plain: bool = False) -> tuple[pl.Expr, pl.Expr]:
    """(column ``name`` as Float64 with missing tokens and NaN null, True where a cell holds a value).
    ``plain``: every non-null cell is known to parse as a number as it is (the fast path)."""
    col = pl.col(name)
    if dtype.is_numeric() or dtype == pl.Null() or plain:
        value = col.cast(pl.Float64, strict=False).fill_nan(None)
        return value, value.is_not_null()
    text = col.cast(pl.String).str.strip_chars()
    value = text.str.strip_prefix("$").cast(pl.Float64, strict=False).fill_nan(None)
    return value, text.is_not_null() & ~text.str.to_lowercase().is_in(list(MISSING_TOKENS))


def frequency(frame: pl.DataFrame, key: str, stamp: str) -> tuple[Frequency, int]:
    """The spacing of ``frame``'s rows from the median gap between consecutive distinct ``stamp`` values
    per ``key`` ("daily", "weekly", "monthly", "intraday" or "unknown"), and for intraday rows the median
    number of distinct stamps per (key, day) (else 1)."""
    gaps = (
        frame.lazy()
        .select(key, stamp)
        .unique()
        .sort(key, stamp)
        .select((pl.col(stamp).diff().over(key).dt.total_seconds() / 86400.0).alias("g"))
        .filter(pl.col("g") > 0)
        .select(pl.col("g").median())
        .collect()
        .item()
    )
    if gaps is None:
        return "unknown", 1
    bands: tuple[tuple[Frequency, float, float], ...] = (
        ("intraday", 0.0, 0.5),
        ("daily", 0.5, 4.5),
        ("weekly", 4.5, 10.0),
        ("monthly", 20.0, 40.0),
    )
    name: Frequency = next((n for n, lo, hi in bands if lo <= gaps < hi), "unknown")
    if name != "intraday":
        return name, 1
    per_day = frame.group_by(key, pl.col(stamp).dt.date()).agg(pl.col(stamp).n_unique().alias("n"))
    return name, int(per_day["n"].median() or 0)  # type: ignore[arg-type]


class FileProblemError(Exception):
    """A file cannot be used; the message says why (without the file name). ``date_format`` is the format
    detected before the problem, when one was."""

    def __init__(self, message: str, date_format: str | None = None) -> None:
        super().__init__(message)
        self.date_format = date_format


def read_table(path: Path) -> pl.DataFrame:
    """The whole file: CSV with every value as text (separator ``,``, ``;`` or tab, from the header), or
    Parquet as stored. Raises :class:`FileProblemError` when it is not a readable table."""
    is_csv = path.suffix.lower() == ".csv"
    try:
        if not is_csv:
            return pl.read_parquet(path)
        with path.open("rb") as fh:
            head = fh.read(65536)
        if b"\x00" in head:
            raise FileProblemError("is not a text table (binary content)")
        first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
        sep = max((",", ";", "\t"), key=first.count)
        header = [h.strip() for h in next(csv.reader([first], delimiter=sep), [])]
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise FileProblemError(f"column {twice[0]!r} appears twice; columns: {header}")
        return pl.read_csv(path, separator=sep, infer_schema=False, encoding="utf8-lossy")
    except FileProblemError:
        raise
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise FileProblemError(
            f"cannot be read as {'CSV' if is_csv else 'Parquet'}: {type(e).__name__}: {detail}"
        ) from e


def map_columns(columns: list[str], aliases: dict[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """(source -> canonical for known headers, the other headers); two headers meaning one field is a problem."""
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    ignored: list[str] = []
    for c in columns:
        canon = aliases.get(" ".join(c.replace("\ufeff", "").strip().lower().split()))
        if canon is None:
            ignored.append(c)
        elif canon in seen:
            raise FileProblemError(
                f"columns {seen[canon]!r} and {c!r} both mean {canon!r} (after lower-casing and aliases)"
            )
        else:
            seen[canon] = c
            mapping[c] = canon
    return mapping, tuple(ignored)


def dated_rows(table: pl.DataFrame, date_src: str) -> tuple[pl.DataFrame, str]:
    """``table`` with ``__row`` (1-based data row), ``date`` and ``__stamp`` (with the time of day when the
    format has one), and the date format's label; an unreadable date raises :class:`FileProblemError`."""
    parsed = parse_dates(table[date_src])
    if parsed.reason is not None or parsed.dates is None:
        raise FileProblemError(f"row {(parsed.bad_row or 0) + 1}: column {date_src!r} {parsed.reason}", parsed.label)
    stamps = parsed.stamps if parsed.stamps is not None else parsed.dates
    dated = table.with_row_index("__row", offset=1).with_columns(
        parsed.dates.alias("date"), stamps.cast(pl.Datetime("us")).alias("__stamp")
    )
    return dated, parsed.label


def missing_cell(col: str) -> pl.Expr:
    """True where ``col`` holds no value (null, NaN or a missing token)."""
    text = pl.col(col).cast(pl.String).str.strip_chars().str.to_lowercase()
    return pl.col(col).is_null() | text.is_in(list(MISSING_TOKENS))


def typed_values(
    rows: pl.DataFrame, sources: dict[str, str], with_key: bool, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """``rows`` (``__row``, ``date``, ``symbol``, raw values named by canonical field) with every field of
    ``sources`` (canonical -> source header) read as a number and the other fields of ``schema`` null
    (``close`` and ``adjusted_close`` stand in for each other). The unreadable value, negative or fractional
    volume at the earliest row raises :class:`FileProblemError` naming row, date, symbol (``with_key``) and
    column; in a wide file (``__col`` present) the column is the cell's."""
    plain = rows.select(  # columns whose cells all parse as they are skip the slower text clean-up
        (pl.col(c).cast(pl.Float64, strict=False).null_count() == pl.col(c).null_count()).alias(c) for c in sources
    ).row(0, named=True)
    values: list[pl.Expr] = []
    checks: dict[str, tuple[str, pl.Expr]] = {}  # flag column -> (field, True where the check fails)
    for i, canon in enumerate(sources):
        value, present = number_exprs(canon, rows.schema[canon], plain[canon])
        values.append(value.alias(f"__v{i}"))
        v = pl.col(f"__v{i}")
        checks[f"__bad{i}"] = (canon, present & v.is_null())
        if canon == "volume":
            checks[f"__neg{i}"] = (canon, v < 0)
            checks[f"__frac{i}"] = (canon, (v != v.round(0)) | v.is_infinite() | (v.abs() > 1e15))
    checked = rows.with_columns(values).with_columns(e.fill_null(False).alias(k) for k, (_, e) in checks.items())
    if checks and checked.select(pl.any_horizontal(list(checks)).any()).item():
        raise FileProblemError(_first_failure(checked, sources, checks, with_key))
    out = checked.with_columns(pl.col(f"__v{i}").alias(c) for i, c in enumerate(sources))
    if "close" in schema and "close" not in sources and "adjusted_close" in sources:
        out = out.with_columns(pl.col("adjusted_close").alias("close"))
    if "adjusted_close" in schema and "adjusted_close" not in sources:
        out = out.with_columns(pl.col("close").alias("adjusted_close"))
    absent = [pl.lit(None, t).alias(c) for c, t in schema.items() if c not in out.columns]
    return out.with_columns(absent).select("__row", "__stamp", *[pl.col(c).cast(t) for c, t in schema.items()])


def _first_failure(
    checked: pl.DataFrame, sources: dict[str, str], checks: dict[str, tuple[str, pl.Expr]], with_key: bool
) -> str:
    """The message of the failed check at the earliest file row (e.g. "row 14 (2020-03-02): column 'close'
    value 'abc' is not a number")."""
    what = {"__bad": "is not a number", "__neg": "is negative", "__frac": "is not a whole number"}
    found: list[tuple[int, str]] = []
    for flag, (canon, _) in checks.items():
        hits = checked.get_column(flag)
        if hits.any():
            r = checked.row(int(hits.arg_true()[0]), named=True)
            name = r.get("__col", sources[canon])
            key = f", {r['symbol']}" if with_key else ""
            text = what[flag.rstrip("0123456789")]
            found.append(
                (int(r["__row"]), f"row {r['__row']} ({r['date']}{key}): column {name!r} value {r[canon]!r} {text}")
            )
    return min(found)[1]


def reconcile(rows: pl.DataFrame, values: Sequence[str]) -> tuple[pl.DataFrame, dict[str, str]]:
    """``rows`` (symbol, date, ``values``, ``__file``, ``__row``) with rows repeated identically in another file
    kept from the first file only, and, per symbol with two different rows on one date, why ("disagree")."""
    keys = ["symbol", "date", *values]
    rows = rows.filter(pl.col("__file") == pl.col("__file").min().over(keys))
    clash = (
        rows.group_by("symbol", "date")
        .agg(
            pl.struct(*values).n_unique().alias("__n"),
            pl.col("__file"),
            pl.col("__row"),
            *[pl.col(c).unique(maintain_order=True).alias(f"__u_{c}") for c in values],
        )
        .filter(pl.col("__n") > 1)
        .sort("symbol", "date")
        .unique("symbol", keep="first", maintain_order=True)
    )
    reasons: dict[str, str] = {}
    for r in clash.iter_rows(named=True):  # one row per failing symbol
        col = next(c for c in values if len(r[f"__u_{c}"]) > 1)
        a, b = r[f"__u_{col}"][:2]
        places = list(zip(r["__file"], r["__row"], strict=True))
        other = next((p for p in places if p[0] != places[0][0]), places[1])
        where = (
            f"{places[0][0]} rows {places[0][1]} and {other[1]}"
            if other[0] == places[0][0]
            else f"{places[0][0]} row {places[0][1]} and {other[0]} row {other[1]}"
        )
        reasons[r["symbol"]] = (
            f"two sources disagree on {r['symbol']} {r['date']}: {where} differ in column {col!r} ({a!r} vs {b!r})"
        )
    return rows, reasons
