"""The typed pyarrow reader of plain numeric CSVs gives exactly what the general reader gives:
the same arrays for good files, the same error message for bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import bar_files
from store.bar_files import read_bar_file
from store.validate import BarDataError

HEADER = "timestamp,open,high,low,close,volume\n"
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000


def general_read(path: Path, interval: str):
    """read_bar_file with the typed path switched off (the reader used before it existed)."""
    saved = bar_files._read_typed_csv
    bar_files._read_typed_csv = lambda file: None
    try:
        return read_bar_file(path, interval)
    finally:
        bar_files._read_typed_csv = saved


def outcome(read, path: Path, interval: str = "1m"):
    try:
        frame, gaps = read(path, interval)
    except (BarDataError, FileNotFoundError) as exc:
        return type(exc).__name__, str(exc)
    return frame, gaps


def assert_same_outcome(path: Path, interval: str = "1m") -> object:
    typed = outcome(read_bar_file, path, interval)
    general = outcome(general_read, path, interval)
    if isinstance(general[0], str):
        assert typed == general
    else:
        assert typed[0].equals(general[0]) and typed[1] == general[1]
        assert (typed[0].to_numpy() == general[0].to_numpy()).all()  # bit for bit
    return typed


prices = st.floats(min_value=1e-8, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(prices, prices, st.integers(0, 10**9)), min_size=1, max_size=30))
def test_typed_reader_reads_the_same_numbers(tmp_path_factory, rows) -> None:
    path = tmp_path_factory.mktemp("typed") / "bars.csv"
    lines = []
    for i, (a, b, volume) in enumerate(rows):
        low, high = min(a, b), max(a, b)
        lines.append(f"{T0 + i * 60_000},{a!r},{high!r},{low!r},{b},{volume}\n")
    path.write_text(HEADER + "".join(lines))
    assert bar_files._read_typed_csv(path) is not None  # the typed path did read it
    frame, _gaps = assert_same_outcome(path)
    assert len(frame) == len(rows)


BAD_FILES = {
    "unsorted": [(T0 + 60_000, 1, 2, 1, 1, 5), (T0, 1, 2, 1, 1, 5)],
    "duplicate": [(T0, 1, 2, 1, 1, 5), (T0, 1, 2, 1, 1, 5)],
    "high_below_low": [(T0, 1, 1, 2, 1, 5)],
    "non_positive": [(T0, 0, 2, 1, 1, 5)],
    "off_grid": [(T0 + 1, 1, 2, 1, 1, 5)],
    "epoch_seconds": [(T0 // 1000, 1, 2, 1, 1, 5)],
    "empty_cell": [(T0, "", 2, 1, 1, 5)],
    "text_cell": [(T0, "x", 2, 1, 1, 5)],
    "iso_time": [("2024-01-01T00:00:00Z", 1, 2, 1, 1, 5), ("2024-01-01T00:01:00Z", 1, 2, 1, 1, 5)],
    "no_rows": [],
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_typed_and_general_reader_agree_on_every_file(tmp_path, case) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "".join(",".join(map(str, r)) + "\n" for r in BAD_FILES[case]))
    assert_same_outcome(path)


def test_a_bad_file_read_by_the_typed_path_still_fails(tmp_path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + f"{T0 + 60_000},1,2,1,1,5\n{T0},1,2,1,1,5\n")
    assert bar_files._read_typed_csv(path) is not None
    with pytest.raises(BarDataError, match="not in ascending order"):
        read_bar_file(path, "1m")


def test_sample_files_read_alike() -> None:
    for path in sorted(Path("data/sample").glob("*-5m.csv.gz"))[:3]:
        frame, _ = assert_same_outcome(path, "5m")
        assert np.isfinite(frame.to_numpy()).all()
