"""Scripted strategies and hand-made bars for engine tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from actors.kernel import run_kernel
from backtest.run import BacktestConfig, BacktestResult, assemble_result
from strategies.base import Strategy

START = pd.Timestamp("2024-01-01", tz="UTC")
# A quiet bar that touches no bracket within 1 %. It opens at 100 and closes at 99.8, so every
# quiet bar after another opens 0.2 away from the previous close: a fill at the signal bar's
# close instead of the next open (or marking at the open instead of the close) shows in the
# numbers, which flat bars (next open == close) would hide. Signals at a quiet bar are sized on
# its close 99.8; their market fills come at the open 100.
QUIET = (100.0, 100.5, 99.5, 99.8)
QUIET_ROWS = [QUIET] * 3


def make_bars(
    rows: list[tuple[float, float, float, float]], start: Any = START, freq: str = "1min"
) -> pd.DataFrame:
    """A bar frame from (open, high, low, close) rows."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = 1.0
    return frame


@dataclass(frozen=True)
class ScriptParams:
    sl_pct: float = 0.0
    tp_pct: float = 0.0
    max_bars: int = 0
    allow_short: bool = True


class Scripted(Strategy):
    """Signals given as bar indices per column (class attribute `script`)."""

    name = "scripted"
    Params = ScriptParams
    script: dict[str, list[int]] = {}

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(False, index=bars.index, columns=list(self.script) or ["enter_long"])
        for column, where in self.script.items():
            for i in where:
                out.iloc[i, out.columns.get_loc(column)] = True
        return out


def scripted(
    hedge: bool = False,
    session: bool = False,
    pyramiding: bool = False,
    max_entries: int = 3,
    **script: list[int],
) -> type[Scripted]:
    attrs = {
        "script": script,
        "hedge": hedge,
        "session_exit": session,
        "pyramiding": pyramiding,
        "max_entries": max_entries,
    }
    return type("ScriptedStrategy", (Scripted,), attrs)


def backtest(
    strategy: Strategy,
    bars: pd.DataFrame,
    mode: str = "fast",
    interval: str = "1m",
    observers: tuple = (),
    **config: Any,
) -> BacktestResult:
    cfg = BacktestConfig(**{"fee_bps": 0.0, **config})
    out = run_kernel(strategy, bars, "TEST", interval, cfg, mode, observers=observers)
    return assemble_result(strategy, bars, "TEST", interval, cfg, out)


def both_modes(strategy: Strategy, bars: pd.DataFrame, **kwargs: Any) -> BacktestResult:
    """Run fast and replay; assert identical trades and orders; return the fast result."""
    fast = backtest(strategy, bars, "fast", **kwargs)
    replay = backtest(strategy, bars, "replay", **kwargs)
    pd.testing.assert_frame_equal(fast.trades, replay.trades)
    assert fast.orders == replay.orders
    pd.testing.assert_frame_equal(fast.equity, replay.equity)
    return fast
