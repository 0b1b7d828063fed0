"""Engine throughput: sr_breakout(lookback 20, sl 1%, tp 2%) on a generated year of 1m bars.

Prints, as medians of --repeat runs (CPU seconds of this process, and wall):
- fast mode (discrete events over vectorized data): the kernel alone (trades) and the whole
  run_backtest (plus equity curve and metrics), in bars/s;
- the cost per trade and per bar, from a second run on the same bars with few trades
  (lookback 2000): per-trade = d(time) / d(trades);
- replay mode (every bar through the actors, as live) once, and whether its trades are identical;
- vectorbt's Portfolio.from_signals on the same series: entries shifted to the next bar and
  filled at its open, the same 1% / 2% stops checked on high/low, the same fee; how many of its
  trades equal ours (entry and exit bar), its bars/s with trades only and with equity + stats;
- with --backtesting-py, backtesting.py on the same rules (slow: tens of seconds).
Usage: python benchmarks/engine.py [--bars N] [--repeat 3] [--backtesting-py]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.kernel import run_kernel  # noqa: E402
from actors.runtime import CountingRuntime  # noqa: E402
from backtest.run import BacktestConfig, run_backtest  # noqa: E402
from factors.synthetic import random_walk_bars  # noqa: E402
from strategies.sr_breakout import SRBreakout  # noqa: E402

LOOKBACK, SL, TP, FEE_BPS = 20, 0.01, 0.02, 10.0


def measure(fn, repeat: int) -> tuple[float, float, object]:
    """(median CPU s, median wall s, last result) of `repeat` calls."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall), result


def load_average() -> str:
    """The machine's load (the figures are CPU seconds, but a shared machine slows those too)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"


def line(name: str, n: int, cpu: float, wall: float, extra: str = "") -> None:
    print(
        f"{name:<34} {n / cpu:>11,.0f} bars/s by CPU ({cpu:.3f} s), "
        f"{n / wall:>11,.0f} by wall ({wall:.3f} s){extra}",
        flush=True,
    )


def vectorbt_entries(strategy: SRBreakout, bars: pd.DataFrame) -> np.ndarray:
    """The strategy's long entries as vectorbt takes them: a signal at the close of t fills at
    the open of t+1, so the signal column is shifted one bar."""
    signal = strategy.compute(bars)["enter_long"].to_numpy(bool)
    entries = np.zeros_like(signal)
    entries[1:] = signal[:-1]
    return entries


def vectorbt_kwargs(
    bars: pd.DataFrame,
    entries: np.ndarray,
    sl: float | np.ndarray,
    tp: float | np.ndarray,
    fee_bps: float = FEE_BPS,
) -> dict:
    """Portfolio.from_signals arguments for sr_breakout's rules: fill at the next open, stops
    from the fill price checked on high/low, the fee per fill. `sl` / `tp` may be arrays (one
    value per column; benchmarks/sweep.py passes a row of a grid's columns)."""
    # numpy arrays, not Series: vectorbt's fast path (its pandas wrapping of a datetime index
    # costs ~30x more here). Stops from the fill price, as ours (vectorbt's default: the close).
    columns = {c: bars[c].to_numpy(np.float64) for c in ("open", "high", "low", "close")}
    return dict(
        **columns,
        entries=entries,
        exits=False,
        price=columns["open"],
        sl_stop=sl,
        tp_stop=tp,
        stop_entry_price="fillprice",
        fees=fee_bps / 1e4,
        init_cash=10_000.0,
        size=np.inf,
        freq="1min",
    )


def vectorbt_run(bars: pd.DataFrame, strategy: SRBreakout, ours: pd.DataFrame, repeat: int):
    try:
        import vectorbt as vbt
    except ImportError:
        print("vectorbt: not installed (pip install -e '.[bench]')")
        return None
    kwargs = vectorbt_kwargs(bars, vectorbt_entries(strategy, bars), SL, TP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vbt.Portfolio.from_signals(**kwargs).stats()  # compile (numba) outside the timing

        def trades_only():
            portfolio = vbt.Portfolio.from_signals(**kwargs)
            return portfolio, portfolio.trades.records

        def with_stats():
            portfolio = vbt.Portfolio.from_signals(**kwargs)
            return portfolio.stats()

        result = measure(trades_only, repeat)
        stats = measure(with_stats, repeat)
    portfolio, records = result[2]
    index = bars.index
    theirs = set(zip(index[records["entry_idx"]], index[records["exit_idx"]], strict=True))
    mine = set(zip(ours["entry_time"], ours["exit_time"], strict=True))
    return result[:2], stats[:2], len(records), len(theirs & mine)


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
        start = time.process_time()
        stats = bt.run()
    return time.process_time() - start, int(stats["# Trades"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=525_600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backtesting-py", action="store_true")
    args = parser.parse_args()
    bars = random_walk_bars(args.bars, "1m", seed=42)
    strategy = SRBreakout(lookback=LOOKBACK, sl_pct=SL, tp_pct=TP)
    few = SRBreakout(lookback=2000, sl_pct=SL, tp_pct=TP)
    config = BacktestConfig(fee_bps=FEE_BPS)
    n = len(bars)
    print(
        f"sr_breakout(lookback={LOOKBACK}, sl={SL:.0%}, tp={TP:.0%}) on {n:,} 1m bars, "
        f"medians of {args.repeat}; {load_average()}"
    )
    run_backtest(strategy, bars, "BENCH", "1m", config)  # warm-up

    def kernel(s):
        return lambda: run_kernel(s, bars, "BENCH", "1m", config)

    k_cpu, k_wall, out = measure(kernel(strategy), args.repeat)
    trades = sum(r["status"] == "CLOSED" for r in out.trades)
    counted = run_kernel(strategy, bars, "BENCH", "1m", config, runtime=CountingRuntime())
    line(
        "fast mode, kernel (trades)",
        n,
        k_cpu,
        k_wall,
        f"; {trades} trades, {counted.messages} messages",
    )
    f_cpu, f_wall, fast = measure(
        lambda: run_backtest(strategy, bars, "BENCH", "1m", config), args.repeat
    )
    line("fast mode, + equity and metrics", n, f_cpu, f_wall)
    q_cpu, _q_wall, few_out = measure(kernel(few), args.repeat)
    few_trades = sum(r["status"] == "CLOSED" for r in few_out.trades)
    per_trade = (k_cpu - q_cpu) / max(trades - few_trades, 1)
    per_bar = (k_cpu - per_trade * trades) / n
    print(
        f"cost per trade {per_trade * 1e6:.0f} us CPU; per bar {per_bar * 1e9:.0f} ns "
        f"(lookback 2000 gives {few_trades} trades in {q_cpu:.3f} s)"
    )
    r_cpu, r_wall, replay = measure(
        lambda: run_backtest(strategy, bars, "BENCH", "1m", config, "replay"), 1
    )
    same = fast.trades.equals(replay.trades)
    line("replay mode (every bar)", n, r_cpu, r_wall, f"; identical trades: {same}")
    other = vectorbt_run(bars, strategy, fast.trades, args.repeat)
    if other is not None:
        (v_cpu, v_wall), (s_cpu, s_wall), count, matched = other
        line(
            "vectorbt from_signals (trades)",
            n,
            v_cpu,
            v_wall,
            f"; {count} trades, {matched} equal to ours",
        )
        line("vectorbt + equity and stats", n, s_cpu, s_wall)
        print(
            f"ours / vectorbt by CPU: kernel {v_cpu / k_cpu:.2f}x; with equity and "
            f"metrics vs with stats {s_cpu / f_cpu:.2f}x"
        )
    print(f"done; {load_average()}")
    if args.backtesting_py:
        result = backtesting_py(bars)
        if result is None:
            print("backtesting.py: not installed (pip install -e '.[bench]')")
            return
        bt_s, bt_trades = result
        print(
            f"backtesting.py: {n / bt_s:>11,.0f} bars/s by CPU ({bt_s:.3f} s, {bt_trades} "
            f"trades); fast mode is {bt_s / f_cpu:.1f}x"
        )


if __name__ == "__main__":
    main()
