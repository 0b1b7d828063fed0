"""The vectorised controls (ml/controls.py) against the engine run they replay."""

from __future__ import annotations

import numpy as np
import pytest

from ml.controls import Replay, random_weights
from ml.evaluate import WARMUP_BARS, Instance, OosWindow, trade_signal_ns
from ml.synthetic import planted_market
from strategies.sr_breakout import SRBreakout


@pytest.fixture(scope="module")
def replayed():
    bars = planted_market(6_000, effect=True, seed=5)
    inst = Instance(1, SRBreakout(sl_pct=0.005, tp_pct=0.005), bars, "X/Y", "5m")
    oos = 3_000
    start = int(bars.index[oos].value) + 300_000_000_000  # close of the first oos bar
    window = OosWindow(start, oos - WARMUP_BARS, oos)
    run = window.run(inst, None, inst_config())
    replay = Replay.of(
        run.equity, run.trades, inst_config().cash, trade_signal_ns(inst, run.trades)
    )
    return run, replay


def inst_config():
    from backtest.run import BacktestConfig

    return BacktestConfig()


def test_keeping_every_trade_gives_back_the_engine_sortino(replayed):
    run, replay = replayed
    assert run.metrics["trades"] > 20
    assert replay.sortinos(np.ones((1, len(replay.pnl))))[0] == pytest.approx(
        run.metrics["sortino"], rel=1e-9
    )


def test_skipping_every_trade_is_flat_and_skipping_losers_beats_the_run(replayed):
    run, replay = replayed
    none, winners = np.zeros(len(replay.pnl)), (replay.pnl > 0).astype(float)
    flat, best = replay.sortinos(np.stack([none, winners]))
    # no trades: flat but for the marks of trades open overnight (the replay's approximation)
    assert abs(flat) < 0.1 < abs(run.metrics["sortino"])
    assert best > run.metrics["sortino"]


def test_random_skips_are_seeded_and_at_the_rate():
    a, b = random_weights(0.3, 4, 5_000), random_weights(0.3, 4, 5_000)
    assert (a == b).all()
    assert abs(1 - a.mean() - 0.3) < 0.02
