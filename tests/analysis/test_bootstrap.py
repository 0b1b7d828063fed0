"""Bootstrap bands over blocks of days (analysis/bootstrap.py), checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import bootstrap as bs
from analysis.metrics import compute_metrics

DAY = pd.Timestamp("2024-01-01", tz="UTC")


def trades_by_day(days: list[list[float]]) -> pd.DataFrame:
    """One trade per pnl, exiting in order within its day (entries 1 h before exit)."""
    rows = []
    for d, pnls in enumerate(days):
        for k, pnl in enumerate(pnls):
            exit_time = DAY + pd.Timedelta(days=d, hours=2 + k)
            rows.append(
                {
                    "entry_time": exit_time - pd.Timedelta(hours=1),
                    "exit_time": exit_time,
                    "pnl": pnl,
                }
            )
    return pd.DataFrame(rows)


def test_two_days_every_draw_is_one_of_the_two_rotations() -> None:
    # day 0: +100; day 1: -50, -50. Blocks of 2 days, circular: a draw is (0, 1) or (1, 0).
    bands = bs.bootstrap(trades_by_day([[100.0], [-50.0, -50.0]]), 1000.0, 2000, 3, block_days=2)
    # (0, 1): 1000 -> 1100 -> 1000, drawdown 100/1100; (1, 0): 1000 -> 900 -> 1000, 0.1
    assert bands.observed["max_drawdown"] == pytest.approx(1 / 11)
    p5, _p50, p95 = bands.bands["max_drawdown"]
    assert (p5, p95) == (pytest.approx(1 / 11), pytest.approx(0.1))
    # sortino: returns (0.1, -1/11) and (-0.1, 1/9), population downside deviation
    first = math.sqrt(365) * (0.1 - 1 / 11) / 2 / math.sqrt((1 / 11) ** 2 / 2)
    second = math.sqrt(365) * (-0.1 + 1 / 9) / 2 / math.sqrt(0.01 / 2)
    assert bands.observed["sortino"] == pytest.approx(first)
    assert (bands.bands["sortino"][0], bands.bands["sortino"][2]) == (
        pytest.approx(first),
        pytest.approx(second),
    )
    assert bands.bands["longest_losing_streak"] == (2.0, 2.0, 2.0)


def test_losing_streaks_run_across_the_drawn_days() -> None:
    # days: [L], [L W L], [L]; rotations (0,1,2) -> 2, (1,2,0) -> 3, (2,0,1) -> 3
    series = bs.daily_trades(trades_by_day([[-1.0], [-1.0, 1.0, -1.0], [-1.0]]), 100.0)
    order = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1], [1, 1, 1], [0, 2, 0]])
    streaks = bs.statistics(series, order)["longest_losing_streak"]
    assert streaks.tolist() == [2.0, 3.0, 3.0, 2.0, 3.0]


def test_blocks_are_consecutive_days_wrapping_round() -> None:
    idx = bs.block_indices(10, 50, 4, np.random.default_rng(1))
    assert idx.shape == (50, 10)
    for row in idx:
        for block in (row[0:4], row[4:8], row[8:10]):
            assert all((b - a) % 10 == 1 for a, b in zip(block, block[1:], strict=False))


def random_trades(seed: int, n: int = 300, mean: float = 2.0, sd: float = 40.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, 200 * 24 * 60, n))
    entry = DAY + pd.to_timedelta(minutes, unit="min")
    exit_time = entry + pd.to_timedelta(rng.integers(1, 600, n), unit="min")
    return pd.DataFrame(
        {"entry_time": entry, "exit_time": exit_time, "pnl": rng.normal(mean, sd, n)}
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bands_are_ordered_and_observed_matches_the_metrics(seed: int) -> None:
    trades = random_trades(seed)
    bands = bs.bootstrap(trades, 10_000.0, seed=seed)
    for low, mid, high in bands.bands.values():
        assert low <= mid <= high
    metrics = compute_metrics(trades, None, 10_000.0)
    assert bands.observed["sortino"] == pytest.approx(metrics["sortino"], rel=1e-9)
    assert bands.observed["longest_losing_streak"] == metrics["longest_losing_streak"]
    # end-of-day equity sees fewer troughs than every exit
    assert bands.observed["max_drawdown"] <= metrics["max_drawdown"] + 1e-12


def test_identical_days_collapse_every_band_to_the_point_value() -> None:
    bands = bs.bootstrap(trades_by_day([[-5.0, 2.0]] * 30), 1_000.0, seed=7)
    for name in bs.STATISTICS:
        assert bands.bands[name] == pytest.approx((bands.observed[name],) * 3, rel=1e-12)
    assert bands.observed["max_drawdown"] == pytest.approx(0.09)  # 30 x -3 on 1000
    assert bands.observed["longest_losing_streak"] == 1


def test_a_steady_winner_has_a_lower_p95_drawdown_than_a_volatile_one() -> None:
    steady = bs.bootstrap(random_trades(4, mean=5.0, sd=10.0), 10_000.0)
    volatile = bs.bootstrap(random_trades(4, mean=5.0, sd=120.0), 10_000.0)
    assert steady.bands["max_drawdown"][2] < 0.5 * volatile.bands["max_drawdown"][2]


def regimes() -> pd.DataFrame:
    """Strong day-to-day dependence: 15 losing days, then 15 winning days, over and over."""
    days = [[-30.0] if (d // 15) % 2 == 0 else [31.0] for d in range(240)]
    return trades_by_day(days)


def block_matters() -> bool:
    """The check: blocks of 15 days keep the losing runs, so their p95 drawdown and losing
    streak are far above those of single-day resampling, which scatters the losing days."""
    single = bs.bootstrap(regimes(), 10_000.0, block_days=1)
    blocks = bs.bootstrap(regimes(), 10_000.0, block_days=15)
    return (
        blocks.bands["max_drawdown"][2] > 1.5 * single.bands["max_drawdown"][2]
        and blocks.bands["longest_losing_streak"][1] > 2 * single.bands["longest_losing_streak"][1]
    )


def test_blocks_of_days_keep_the_dependence_single_draws_lose(monkeypatch) -> None:
    assert block_matters()

    # broken: a bootstrap that ignores the block length and draws single days
    def single_days(days, draws, _block, rng):
        return rng.integers(0, days, size=(draws, days))

    monkeypatch.setattr(bs, "block_indices", single_days)
    assert not block_matters()


def test_draws_are_seeded() -> None:
    trades = random_trades(5)
    first = bs.bootstrap(trades, 10_000.0, seed=11).to_json()
    assert first == bs.bootstrap(trades, 10_000.0, seed=11).to_json()
    assert first != bs.bootstrap(trades, 10_000.0, seed=12).to_json()
    assert bs.bootstrap(trades.iloc[:0], 10_000.0) is None
