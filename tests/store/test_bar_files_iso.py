"""ISO-8601 bar files read by the typed pyarrow path give exactly what the general (pandas) reader
gave before it: the same frame for every spelling the general reader accepts, the same error text
for malformed files."""

from __future__ import annotations

import gzip
from datetime import timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import bar_files
from tests.store.test_bar_files_typed import HEADER, assert_same_outcome

START = pd.Timestamp("2024-01-01T00:00Z")

# strftime spellings of a UTC bar open time the general reader accepts
UTC_SPELLINGS = {
    "zulu": "%Y-%m-%dT%H:%M:%SZ",
    "naive_t": "%Y-%m-%dT%H:%M:%S",
    "naive_space": "%Y-%m-%d %H:%M:%S",
    "minutes_only": "%Y-%m-%dT%H:%M",
    "millis_zulu": "%Y-%m-%dT%H:%M:%S.000Z",
    "micros_naive": "%Y-%m-%d %H:%M:%S.%f",
    "offset_utc": "%Y-%m-%dT%H:%M:%S+00:00",
}


def spell(stamp: pd.Timestamp, spelling: str) -> str:
    if spelling == "offset_plus_one":  # the same instant written in UTC+01:00
        local = stamp.tz_convert(timezone(timedelta(hours=1)))
        return local.strftime("%Y-%m-%dT%H:%M:%S+01:00")
    if spelling == "offset_minus_compact":  # UTC-05:30 without the colon
        local = stamp.tz_convert(timezone(-timedelta(hours=5, minutes=30)))
        return local.strftime("%Y-%m-%dT%H:%M:%S-0530")
    return stamp.strftime(UTC_SPELLINGS[spelling])


SPELLINGS = sorted(UTC_SPELLINGS) + ["offset_plus_one", "offset_minus_compact"]
prices = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
bar_rows = st.lists(
    st.tuples(prices, prices, st.floats(0, 1e9, allow_nan=False)), min_size=1, max_size=25
)


def write_bars(path: Path, times: list[str], rows: list[tuple[float, float, float]]) -> None:
    lines = []
    for time_text, (a, b, volume) in zip(times, rows, strict=True):
        low, high = min(a, b), max(a, b)
        lines.append(f"{time_text},{a!r},{high!r},{low!r},{b!r},{volume!r}\n")
    text = HEADER + "".join(lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


@settings(max_examples=60, deadline=None)
@given(
    rows=bar_rows,
    spelling=st.sampled_from(SPELLINGS),
    first_bar=st.integers(0, 5_000_000),
    gzipped=st.booleans(),
)
def test_iso_files_read_exactly_as_the_general_reader(
    tmp_path_factory, rows, spelling, first_bar, gzipped
) -> None:
    path = tmp_path_factory.mktemp("iso") / ("bars.csv.gz" if gzipped else "bars.csv")
    stamps = [START + pd.Timedelta(minutes=first_bar + i) for i in range(len(rows))]
    write_bars(path, [spell(s, spelling) for s in stamps], rows)
    assert bar_files._read_typed_csv(path) is not None  # the fast path did read it
    frame, _gaps = assert_same_outcome(path)
    assert list(frame.index) == stamps


@settings(max_examples=30, deadline=None)
@given(rows=bar_rows, first_day=st.integers(0, 20_000))
def test_date_only_daily_files_read_alike(tmp_path_factory, rows, first_day) -> None:
    path = tmp_path_factory.mktemp("iso") / "bars.csv"
    stamps = [
        pd.Timestamp("1971-01-01T00:00Z") + pd.Timedelta(days=first_day + i)
        for i in range(len(rows))
    ]
    write_bars(path, [s.strftime("%Y-%m-%d") for s in stamps], rows)
    assert bar_files._read_typed_csv(path) is not None
    frame, _gaps = assert_same_outcome(path, "1d")
    assert list(frame.index) == stamps


# one row's time replaced by these: each is refused (or read) exactly as before
MALFORMED_TIMES = [
    "",
    "not a time",
    "2024-13-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T23:59:60Z",
    "2024-01-01T00:00:00.0005Z",  # a fraction of a millisecond
    "2024-01-01T00:00:00.000001",
    "2300-01-01T00:00:00Z",  # after 2262
    "1969-12-31T23:59:00Z",  # before 1970
    "3000-01-01",
    " 2024-01-01T00:00:00Z",  # a leading space
    "2024-01-01t00:00:00z",
    "20240101T000000",
    "2024-01-01T00:00:30Z",  # off the 1m grid
    "2024-01-01T00:00:00",  # naive among zoned
    "2023-12-31T23:00:00-01:00",  # the same instant as another row: a duplicate
    "1704067200000",  # epoch ms among ISO times
]


@settings(max_examples=80, deadline=None)
@given(
    rows=bar_rows.filter(lambda r: len(r) >= 2),
    spelling=st.sampled_from(["zulu", "naive_t", "offset_plus_one", "micros_naive"]),
    bad=st.sampled_from(MALFORMED_TIMES),
    where=st.integers(0, 100),
)
def test_malformed_iso_files_fail_with_the_same_message(
    tmp_path_factory, rows, spelling, bad, where
) -> None:
    path = tmp_path_factory.mktemp("iso") / "bars.csv"
    times = [spell(START + pd.Timedelta(minutes=i), spelling) for i in range(len(rows))]
    times[where % len(times)] = bad
    write_bars(path, times, rows)
    assert_same_outcome(path)


@pytest.mark.parametrize(
    "body",
    [
        "2024-01-01T00:01:00Z,1,2,1,1,5\n2024-01-01T00:00:00Z,1,2,1,1,5\n",  # unsorted
        "2024-01-01T00:00:00Z,1,2,1,1,5\n2024-01-01T00:00:00Z,1,2,1,1,5\n",  # duplicate
        "2024-01-01T00:00:00Z,1,1,2,1,5\n",  # high below low
        "2024-01-01T00:00:00Z,0,2,1,1,5\n",  # non-positive price
        "2024-01-01T00:00:00Z,nan,2,1,1,5\n",  # missing value
        "2024-01-01T00:00:00Z,x,2,1,1,5\n",  # text in a price
    ],
)
def test_bad_values_in_iso_files_give_the_same_message(tmp_path, body) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + body)
    typed = assert_same_outcome(path)
    assert isinstance(typed[0], str)  # refused, with the general reader's message


def test_a_repeated_column_spelled_as_pandas_renames_it_is_refused_alike(tmp_path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume,close.1\n2024-01-01T00:00:00Z,1,2,1,1,5,1\n"
    )
    typed = assert_same_outcome(path)
    assert typed[0] == "BarFormatError" and "appears 2 times" in typed[1]
