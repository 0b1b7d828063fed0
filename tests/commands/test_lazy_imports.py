"""`cli.py --help` loads no heavy module (issue 13: start-up under 0.4 s of CPU), and the values
the command modules spell out for that reason stay equal to their sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "sqlalchemy", "sqlmodel", "pyarrow", "ray", "yaml")

PROBE = """
import runpy, sys
sys.argv = ["cli.py", *{args!r}]
try:
    runpy.run_path("cli.py", run_name="__main__")
except SystemExit:
    pass
print("HEAVY:" + ",".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def loaded_heavy_modules(*args: str) -> list[str]:
    code = PROBE.format(args=list(args), heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("HEAVY:"))
    return [name for name in line.removeprefix("HEAVY:").split(",") if name]


def test_help_imports_no_heavy_module():
    assert loaded_heavy_modules("--help") == []
    assert loaded_heavy_modules("backtest", "--help") == []
    assert loaded_heavy_modules("data", "--help") == []


def test_probe_sees_a_heavy_import():
    # The probe can fail: `factors list` needs the factor engine, hence pandas.
    assert "pandas" in loaded_heavy_modules("factors", "list")


def test_spelled_out_defaults_match_their_sources():
    from analysis import spans
    from analysis.weights import METHODS
    from commands import factors, weights
    from factors.cache import DEFAULT_CACHE_DIR

    assert weights.METHODS == METHODS
    assert weights.MIN_ANNUALISED_DAYS == spans.MIN_ANNUALISED_DAYS
    assert weights.MIN_DAILY_RETURNS == spans.MIN_DAILY_RETURNS
    assert factors.DEFAULT_CACHE_DIR == DEFAULT_CACHE_DIR


def test_light_listing_commands_import_no_heavy_module(tmp_path):
    assert loaded_heavy_modules("strategies", "list") == []
    url = f"sqlite:///{tmp_path / 'listing.db'}"
    # a new file: the SQLAlchemy path creates the tables (and may load what it needs)
    assert "sqlalchemy" in loaded_heavy_modules("data", "list", "--db", url)
    # an existing database is read with the stdlib sqlite3 module
    assert loaded_heavy_modules("data", "list", "--db", url) == []


def test_stdlib_listing_reads_the_same_rows_as_sqlalchemy(tmp_path):
    from factors.synthetic import random_walk_bars
    from store.bars import save_bars, series_rows
    from store.catalog import sqlite_series_rows

    url = f"sqlite:///{tmp_path / 'rows.db'}"
    assert sqlite_series_rows(url) is None  # no file yet: the caller takes the full path
    for interval in ("5m", "1m", "1h"):
        save_bars(url, "binance", "X/Y", interval, random_walk_bars(50, interval, seed=1))
    rows = sqlite_series_rows(url)
    assert rows == series_rows(url)
    assert [r[2] for r in rows] == ["1m", "5m", "1h"]  # by interval length, not by text
    assert sqlite_series_rows("postgresql+psycopg://u@127.0.0.1:1/x") is None


def test_spelled_out_intervals_match_factors():
    from factors.bars import TRADING_INTERVALS
    from strategies.base import TRADING_INTERVALS as STRATEGY_INTERVALS

    assert STRATEGY_INTERVALS == TRADING_INTERVALS
