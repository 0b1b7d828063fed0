"""The sweep benchmark's raytrader part on a tiny grid: its results.csv stays what it was.

benchmarks/sweep.py runs `cli.py backtest --all --grid ...` on a generated series; this runs the
same command (the benchmark's own database set-up and arguments) in process on the tests' Ray, on
3,000 bars and a 2 x 2 x 2 grid, and pins results.csv: every column's trade count equals
vectorbt's (from_signals with the same entries and stops: benchmarks/sweep.vectorbt_sweep, run
once to pin them here; vectorbt's numba compilation takes ~25 s, too long to repeat in a test),
and total return, max drawdown, expectancy and fees are today's figures. An engine change that moves any
result fails here; one that is meant to must say why and re-pin (print read_results(out)).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from benchmarks.sweep import Grid, cli_args, make_bars, read_results, store_database
from cli import app

BARS = 3_000
GRID = Grid.of_sizes(2, 2, 2)  # lookback 10, 20; sl_pct 0.005, 0.01; tp_pct 0.01, 0.02
# lookback, sl_pct, tp_pct -> trades (vectorbt's count, the engine's too), total_return,
# max_drawdown, expectancy, fees (the engine's; Sortino is undefined on two days of bars)
PINNED = {
    (10, 0.005, 0.01): (41, -0.079441, 0.096899, -19.375798, 792.907658),
    (10, 0.005, 0.02): (24, -0.057119, 0.076369, -23.799634, 465.319232),
    (10, 0.01, 0.01): (28, -0.039416, 0.060331, -14.077124, 546.703273),
    (10, 0.01, 0.02): (16, -0.025998, 0.055543, -16.248922, 315.342146),
    (20, 0.005, 0.01): (33, -0.082877, 0.090899, -25.114227, 627.403496),
    (20, 0.005, 0.02): (18, -0.040712, 0.049103, -22.617899, 349.675292),
    (20, 0.01, 0.01): (22, -0.047953, 0.062586, -21.79677, 425.331087),
    (20, 0.01, 0.02): (11, -0.026668, 0.043405, -24.243971, 215.458184),
}


@pytest.mark.ray
def test_a_small_sweep_keeps_its_results(ray_shared, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    store_database(url, make_bars(BARS), GRID)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, cli_args(url, out, GRID))
    assert result.exit_code == 0, result.output
    results = read_results(out)
    assert (results["status"] == "done").all()
    got = {
        (int(r.lookback), float(r.sl_pct), float(r.tp_pct)): (
            int(r.trades),
            float(r.total_return),
            float(r.max_drawdown),
            float(r.expectancy),
            float(r.fees),
        )
        for r in results.itertuples()
    }
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in PINNED.items()}
    # pinned to 6 decimals: a change of the results moves them by far more
    assert got == {k: pytest.approx(v, abs=1e-6) for k, v in PINNED.items()}
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == sum(v[0] for v in PINNED.values())
