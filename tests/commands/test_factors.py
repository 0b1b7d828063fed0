import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from factors.engine import DEFAULT_FACTORS, compute_factors
from tests.factors.helpers import SAMPLE, read_sample

runner = CliRunner()
DATA = str(SAMPLE / "UNITTEST_BTC-1m.csv.gz")


def export(tmp_path, *extra: str):
    args = ["factors", "export", "--symbol", "UNITTEST/BTC", "--interval", "1m"]
    args += ["--out", str(tmp_path / "f.csv"), "--cache-dir", str(tmp_path / "cache"), *extra]
    return runner.invoke(app, args)


def test_export_from_file_writes_the_table_and_second_run_hits_cache(tmp_path):
    first = export(tmp_path, "--data", DATA)
    assert first.exit_code == 0, first.output
    assert "factor cache miss" in first.output
    second = export(tmp_path, "--data", DATA)
    assert "factor cache hit" in second.output
    table = pd.read_csv(tmp_path / "f.csv")
    assert list(table.columns) == ["timestamp", *DEFAULT_FACTORS]
    expected = compute_factors(read_sample("UNITTEST_BTC-1m.csv.gz"))
    assert len(table) == len(expected)
    assert table["timestamp"].iloc[0] == "2017-11-04T23:02:00Z"
    np.testing.assert_allclose(table["slope_20"], expected["slope_20"], rtol=1e-12)


def test_export_selected_factors_and_range(tmp_path):
    result = export(
        tmp_path, "--data", DATA, "--factors", "range_10,r2_20@1h", "--no-cache",
        "--start", "2017-11-06", "--end", "2017-11-07",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "f.csv")
    assert list(table.columns) == ["timestamp", "range_10", "r2_20@1h"]
    assert table["timestamp"].iloc[0].startswith("2017-11-06")
    assert not (tmp_path / "cache").exists()


def test_export_from_database(tmp_path, sqlite_url):
    from store.bars import save_bars

    bars = read_sample("UNITTEST_BTC-1m.csv.gz")
    save_bars(sqlite_url, "binance", "UNITTEST/BTC", "1m", bars)
    result = export(tmp_path, "--db", sqlite_url, "--factors", "trend_10,prev_day_close")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "f.csv")
    expected = compute_factors(bars, ["trend_10", "prev_day_close"])
    np.testing.assert_allclose(table["trend_10"], expected["trend_10"], rtol=1e-12)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", DATA, "--factors", "momentum_3"], "unknown factor"),
        (["--data", "nope.csv"], "not found"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, extra, message):
    import subprocess
    import sys

    args = [sys.executable, "cli.py", "factors", "export", "--symbol", "X", "--interval", "1m"]
    args += ["--out", str(tmp_path / "f.csv"), *extra]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=SAMPLE.parents[1])
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_list_shows_families():
    result = runner.invoke(app, ["factors", "list"])
    assert result.exit_code == 0
    for name in ("volatility:", "trend:", "daily:", "range_100", "r2_50", "prev_day_atr"):
        assert name in result.output
