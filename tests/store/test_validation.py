"""Each bad-input class: one clear error naming file, row, count and fix; database unchanged."""

import gzip

import pytest
from typer.testing import CliRunner

from cli import app
from store.bar_files import read_bar_file
from store.bars import list_series
from store.validate import (
    BarFormatError,
    DuplicateBarsError,
    HighBelowLowError,
    MissingValueError,
    NoBarsError,
    NonPositivePriceError,
    OffGridError,
    OutsideRangeError,
    UnsortedBarsError,
)

HEADER = "timestamp,open,high,low,close,volume\n"
T0 = 1704067200000  # 2024-01-01T00:00Z
GOOD = [f"{T0 + i * 60_000},10,11,9,10.5,5\n" for i in range(5)]

CASES = {
    "unsorted": (GOOD[:2] + [GOOD[3], GOOD[2]] + GOOD[4:], UnsortedBarsError, "row 4"),
    "duplicate": (GOOD[:3] + [GOOD[2]] + GOOD[3:], DuplicateBarsError, "row 4"),
    "nan": (
        GOOD[:2] + [f"{T0 + 120_000},10,NaN,9,10.5,5\n"] + GOOD[3:],
        MissingValueError,
        "row 3",
    ),
    "non_positive": (
        GOOD[:1] + [f"{T0 + 60_000},0,11,9,10.5,5\n"] + GOOD[2:],
        NonPositivePriceError,
        "row 2",
    ),
    "high_below_low": (GOOD[:4] + [f"{T0 + 240_000},10,8,9,10.5,5\n"], HighBelowLowError, "row 5"),
    "off_grid": (GOOD[:1] + [f"{T0 + 90_000},10,11,9,10.5,5\n"], OffGridError, "row 2"),
    # accepted by every other check, but not a bar: close above the high / open below the low
    "close_above_high": (
        GOOD[:2] + [f"{T0 + 120_000},10,11,9,11.5,5\n"] + GOOD[3:],
        OutsideRangeError,
        "row 3",
    ),
    "open_below_low": (
        GOOD[:3] + [f"{T0 + 180_000},8.5,11,9,10.5,5\n"],
        OutsideRangeError,
        "row 4",
    ),
    "header_only": ([], NoBarsError, "no bars in header_only.csv"),
}


def _write(tmp_path, name, rows, gz=False):
    path = tmp_path / (name + (".csv.gz" if gz else ".csv"))
    text = HEADER + "".join(rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_class_raises_its_error(tmp_path, case):
    rows, error, where = CASES[case]
    path = _write(tmp_path, case, rows)
    with pytest.raises(error) as info:
        read_bar_file(path, "1m")
    message = str(info.value)
    assert path.name in message and where in message and "fix:" in message
    assert "1 rows" in message or error is NoBarsError


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_import_rejects_with_one_line_and_leaves_db_unchanged(tmp_path, case, db_url):
    good = _write(tmp_path, "good", GOOD, gz=True)
    runner = CliRunner()
    args = ["data", "import", "--symbol", "A/B", "--interval", "1m", "--db", db_url]
    assert runner.invoke(app, [*args[:2], str(good), *args[2:]]).exit_code == 0
    before = list_series(db_url)
    bad = _write(tmp_path, case, CASES[case][0])
    result = runner.invoke(app, [*args[:2], str(bad), *args[2:]])
    assert result.exit_code != 0
    assert isinstance(result.exception, CASES[case][1])
    assert list_series(db_url) == before


def test_missing_columns_and_bad_timestamps(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Timestamp,Open,High,Low,Close\n1704067200000,1,2,0.5,1\n")
    with pytest.raises(BarFormatError, match="missing columns volume"):
        read_bar_file(path, "1m")
    path.write_text(HEADER + "yesterday,1,2,0.5,1,1\n")
    with pytest.raises(BarFormatError, match="cannot read timestamp 'yesterday' at row 1"):
        read_bar_file(path, "1m")
    path.write_text(HEADER + "1704067200,1,2,0.5,1,1\n")
    with pytest.raises(BarFormatError, match="epoch seconds"):
        read_bar_file(path, "1m")


def test_iso_timestamps_upper_case_columns_and_parquet(tmp_path):
    path = tmp_path / "iso.csv"
    path.write_text(
        "TIMESTAMP,Open,HIGH,low,Close,Volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,3\n"
        "2024-01-01 00:05,1,2,0.5,1.5,3\n2024-01-01T00:20+00:00,1,2,0.5,1.5,3\n"
    )
    frame, gaps = read_bar_file(path, "5m")
    assert list(frame.index.strftime("%H:%M")) == ["00:00", "00:05", "00:20"]
    assert (gaps.gaps, gaps.missing_bars, gaps.largest_ms) == (1, 2, 600_000)
    parquet = tmp_path / "bars.parquet"
    frame.reset_index().to_parquet(parquet)
    again, _ = read_bar_file(parquet, "5m")
    assert again.equals(frame)


def test_outside_range_counts_every_bad_row_and_names_the_first(tmp_path):
    rows = list(GOOD)
    rows[1] = f"{T0 + 60_000},10,11,9,8.9,5\n"  # close below low
    rows[3] = f"{T0 + 180_000},11.2,11,9,10.5,5\n"  # open above high
    with pytest.raises(OutsideRangeError) as info:
        read_bar_file(_write(tmp_path, "outside", rows, gz=True), "1m")
    assert str(info.value) == (
        "outside.csv.gz: open or close outside the bar's [low, high] range: 2 rows, first at "
        "row 2 (timestamp 2024-01-01T00:01:00+00:00); fix: every bar needs "
        "low <= open, close <= high; check the column order "
        "(timestamp, open, high, low, close, volume) or correct those rows"
    )


def test_bars_touching_their_high_and_low_are_fine(tmp_path):
    rows = [f"{T0},9,11,9,11,5\n", f"{T0 + 60_000},11,11,11,11,0\n"]
    frame, _ = read_bar_file(_write(tmp_path, "edges", rows), "1m")
    assert len(frame) == 2
