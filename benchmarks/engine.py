"""Engine throughput: sr_breakout(lookback 20, sl 1%, tp 2%) on a generated year of 1m bars.

Prints bars/s of the fast mode (discrete events over vectorized data), of the per-bar replay
mode (every bar through the actors, as live), and of backtesting.py on the same series and rules
in the same run (pip install -e ".[bench]"). Usage: python benchmarks/engine.py [--bars N]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.run import BacktestConfig, run_backtest  # noqa: E402
from factors.synthetic import random_walk_bars  # noqa: E402
from strategies.sr_breakout import SRBreakout  # noqa: E402

LOOKBACK, SL, TP = 20, 0.01, 0.02


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def backtesting_py(bars: pd.DataFrame) -> tuple[float, int] | None:
    try:
        from backtesting import Backtest, Strategy
    except ImportError:
        return None

    class SRBreakoutBT(Strategy):
        def init(self) -> None:
            def resistance(high):
                return pd.Series(high).shift(1).rolling(LOOKBACK).max().to_numpy()

            self.resistance = self.I(resistance, self.data.High)

        def next(self) -> None:
            close = self.data.Close[-1]
            if not self.position and close > self.resistance[-1]:
                # backtesting.py sets brackets from the signal close (we use the fill price)
                self.buy(size=0.99, sl=close * (1 - SL), tp=close * (1 + TP))

    frame = bars.rename(columns=str.capitalize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(frame, SRBreakoutBT, cash=10_000, commission=0.001, finalize_trades=True)
        seconds, stats = timed(bt.run)
    return seconds, int(stats["# Trades"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=525_600)
    args = parser.parse_args()
    bars = random_walk_bars(args.bars, "1m", seed=42)
    strategy = SRBreakout(lookback=LOOKBACK, sl_pct=SL, tp_pct=TP)
    config = BacktestConfig(fee_bps=10.0)
    n = len(bars)
    print(f"sr_breakout(lookback={LOOKBACK}, sl={SL:.0%}, tp={TP:.0%}) on {n:,} 1m bars")

    fast_s, fast = timed(lambda: run_backtest(strategy, bars, "BENCH", "1m", config), repeat=3)
    print(
        f"fast mode:      {n / fast_s:>12,.0f} bars/s  ({fast_s:.3f} s, {len(fast.trades)} trades)"
    )
    replay_s, replay = timed(lambda: run_backtest(strategy, bars, "BENCH", "1m", config, "replay"))
    print(
        f"replay mode:    {n / replay_s:>12,.0f} bars/s  ({replay_s:.3f} s, "
        f"{len(replay.trades)} trades, identical to fast: {fast.trades.equals(replay.trades)})"
    )
    other = backtesting_py(bars)
    if other is None:
        print("backtesting.py: not installed (pip install -e '.[bench]')")
        return
    bt_s, bt_trades = other
    print(f"backtesting.py: {n / bt_s:>12,.0f} bars/s  ({bt_s:.3f} s, {bt_trades} trades)")
    print(f"fast / backtesting.py = {bt_s / fast_s:.1f}x; replay / backtesting.py = "
          f"{bt_s / replay_s:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
