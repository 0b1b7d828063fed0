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
