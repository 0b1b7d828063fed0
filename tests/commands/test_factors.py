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
        tmp_path,
        "--data",
        DATA,
        "--factors",
        "range_10,r2_20@1h",
        "--no-cache",
        "--start",
        "2017-11-06",
        "--end",
        "2017-11-07",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "f.csv")
    assert list(table.columns) == ["timestamp", "range_10", "r2_20@1h"]
    # the factors are computed on the bars of the range only (open times, both ends included)
    bars = read_sample("UNITTEST_BTC-1m.csv.gz")
    part = bars[(bars.index >= "2017-11-06") & (bars.index <= "2017-11-07")]
    expected = compute_factors(part, ["range_10", "r2_20@1h"], interval="1m")
    assert len(table) == len(part) > 1000
    assert table["timestamp"].iloc[0] == "2017-11-06T00:00:00Z"
    assert table["timestamp"].iloc[-1] == part.index[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
    np.testing.assert_allclose(table["range_10"], expected["range_10"], rtol=1e-12)
    np.testing.assert_allclose(table["r2_20@1h"], expected["r2_20@1h"], rtol=1e-12)
    # range_10 by hand at the 10th bar: (max high - min low) / close over its first 10 bars
    window = part.iloc[:10]
    by_hand = (window["high"].max() - window["low"].min()) / window["close"].iloc[-1]
    assert table["range_10"].iloc[9] == pytest.approx(by_hand, rel=1e-12)
    assert table["range_10"].iloc[:9].isna().all()  # not enough bars yet
    assert f"wrote {len(part)} rows x 2 factors" in result.output
    assert not (tmp_path / "cache").exists()


def test_export_from_database(tmp_path, sqlite_url):
    from store.bars import save_bars

    bars = read_sample("UNITTEST_BTC-1m.csv.gz")
    save_bars(sqlite_url, "binance", "UNITTEST/BTC", "1m", bars)
    result = export(tmp_path, "--db", sqlite_url, "--factors", "trend_10,prev_day_close")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "f.csv")
    expected = compute_factors(bars, ["trend_10", "prev_day_close"])
    assert list(table.columns) == ["timestamp", "trend_10", "prev_day_close"]
    assert len(table) == len(bars)
    np.testing.assert_allclose(table["trend_10"], expected["trend_10"], rtol=1e-12)
    np.testing.assert_allclose(table["prev_day_close"], expected["prev_day_close"], rtol=1e-12)
    # by hand: from the first bar of a day on, prev_day_close is the previous day's last close
    day = bars.index.normalize()
    second_day = day.unique()[1]
    first_of_day = int(np.flatnonzero(day == second_day)[0])
    last_close = bars["close"][day == day.unique()[0]].iloc[-1]
    assert table["prev_day_close"].iloc[first_of_day] == last_close
    assert table["prev_day_close"].iloc[:first_of_day].isna().all()


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,open,high,low,close,volume\nmonday,1,2,0.5,1.5,10\n", "unreadable timestamps"),
        ("timestamp,open,high,low,close,volume\n1,one,2,0.5,1.5,10\n", "unreadable timestamps"),
        ('timestamp,open\n"1,2\n', "cannot read file"),
    ],
)
def test_a_bar_file_pandas_cannot_read_is_a_user_error(tmp_path, text, message):
    from commands.factors import read_bar_file
    from core.errors import UserError

    path = tmp_path / "bars.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_bar_file(path)


WINDOWS = (10, 20, 30, 50, 100)
LISTED = {
    "volatility": [*(f"range_{n}" for n in WINDOWS), "atr_14", "true_range"],
    "trend": [f"{kind}_{n}" for n in WINDOWS for kind in ("trend", "slope", "r2")],
    "daily": [
        "prev_day_high",
        "prev_day_low",
        "prev_day_close",
        "prev_day_range",
        "prev_day_return",
        "day_gap",
        "prev_day_atr",
        "day_open",
        "bar_of_day",
    ],
}


def listed(output: str) -> dict[str, dict[str, str]]:
    """`factors list` output as family -> {factor name: description}."""
    families: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            current = families.setdefault(line[:-1], {})
        elif line.startswith("  "):
            name, description = line.split(maxsplit=1)
            current[name] = description
    return families


def test_list_shows_every_default_factor_by_family():
    result = runner.invoke(app, ["factors", "list"])
    assert result.exit_code == 0
    families = listed(result.output)
    assert {f: list(names) for f, names in families.items()} == LISTED
    assert families["volatility"]["atr_14"] == "mean true range over the last N bars"
    assert families["trend"]["r2_50"] == "r^2 of that OLS fit"
    assert result.output.splitlines()[-1].startswith("any factor may be shown from a higher")
    only = runner.invoke(app, ["factors", "list", "--family", "trend"])
    assert {f: list(n) for f, n in listed(only.output).items()} == {"trend": LISTED["trend"]}
