"""Wires the actor graph once: strategy host -> portfolio -> order manager -> exchange.

Backtest (this module): all actors in one runtime, in one process by default. `mode="fast"`
gives the exchange the series as arrays (discrete events only); `mode="replay"` feeds the bars
one at a time as BarClosed through the same actors, as live trading will.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.messages import BarClosed, Phase, RunStarted
from actors.order_manager import OrderManager
from actors.portfolio import Portfolio
from actors.runtime import LocalRuntime
from actors.sim_exchange import BarArrays, SimExchange
from actors.strategy_host import StrategyHost
from core.errors import UserError
from core.intervals import interval_ns
from strategies.base import Strategy

if TYPE_CHECKING:  # pandas only in run_kernel: the live actors that import this never load it
    import pandas as pd

MODES = ("fast", "replay")


@dataclass
class KernelOutput:
    orders: list[dict[str, Any]]
    trades: list[dict[str, Any]]  # order manager trade records (entry/exit fees apart)
    portfolio: dict[str, Any]  # cash, equity, positions, rejections
    messages: int | None  # messages delivered, when the runtime counts them (CountingRuntime)


def run_kernel(
    strategy: Strategy,
    bars: pd.DataFrame,
    symbol: str,
    interval: str,
    config: Any,
    mode: str = "fast",
    runtime: LocalRuntime | None = None,
    observers: tuple[tuple[str, Any], ...] = (),
    order_store: Any = None,
    signal_gate: Any = None,
) -> KernelOutput:
    """Run one strategy over `bars`; `config` has the BacktestConfig attributes.

    `observers` (name, actor) are added after the graph: they see every message they subscribe
    to after the graph's actors did (tests use them to check invariants while running).
    `order_store`: the order manager's store (default: in memory, written in bulk by the caller).
    `signal_gate`: asked about every entry signal (see StrategyHost; default none).
    """
    if mode not in MODES:
        raise ValueError(f"unknown backtest mode {mode!r}; use one of: {', '.join(MODES)}")
    if len(bars) == 0:
        raise UserError(f"no bars for {symbol} {interval}: nothing to backtest")
    runtime = runtime if runtime is not None else LocalRuntime()
    fast = mode == "fast"
    data = {symbol: BarArrays.from_frame(bars)} if fast else None
    hedged = frozenset({strategy.name}) if strategy.hedge else frozenset()
    # a pyramiding strategy's own per-side limit replaces config.max_open_positions
    limits = {strategy.name: strategy.entry_limit()} if strategy.pyramiding else {}
    # Delivery order of a message type follows this order: the exchange settles a bar's fills
    # before the strategy host sees that bar close.
    runtime.spawn("exchange", SimExchange, config.fee_bps, config.slippage_bps, data)
    runtime.spawn("orders", OrderManager, order_store)
    runtime.spawn(
        "portfolio",
        Portfolio,
        config.cash,
        config.risk,
        config.fee_bps,
        config.slippage_bps,
        config.max_symbol_exposure,
        config.max_total_exposure,
        config.max_open_positions,
        hedged,
        position_limits=limits,
        min_notional=config.min_order_notional(),
        lot_size=config.lot_size,
    )
    runtime.spawn(
        "host", StrategyHost, strategy, bars, symbol, interval, fast, signal_gate=signal_gate
    )
    for name, actor in observers:
        runtime.add(name, actor)
    import pandas as pd

    first = int(pd.DatetimeIndex(bars.index[:1]).as_unit("ns").asi8[0])
    last_close = int(pd.DatetimeIndex(bars.index[-1:]).as_unit("ns").asi8[0]) + interval_ns(
        interval
    )
    runtime.schedule(first, Phase.CLOSE, RunStarted(first))
    runtime.end(last_close)
    with collector_paused():
        runtime.run(None if fast else bar_messages(bars, symbol, interval))
        output = KernelOutput(
            orders=runtime.call("orders", "orders"),
            trades=runtime.call("orders", "trades"),
            portfolio=runtime.call("portfolio", "state"),
            messages=runtime.delivered,
        )
        del runtime  # a runtime of our own goes now, with its actors, before collection resumes
    return output


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the events run: a run allocates tens of thousands of
    short-lived messages and records (freed by reference counting, no cycles), which otherwise
    set off collections that scan the whole heap (about 5 % of a fast run)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def bar_messages(bars: pd.DataFrame, symbol: str, interval: str) -> Iterator[BarClosed]:
    """The series as BarClosed messages, one per bar, in time order."""
    import pandas as pd

    open_ns = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    close_ns = (open_ns + interval_ns(interval)).tolist()
    columns = [bars[c].to_numpy(np.float64).tolist() for c in ("open", "high", "low", "close")]
    volume = bars["volume"].to_numpy(np.float64).tolist() if "volume" in bars else [0.0] * len(bars)
    for ts, bar_ts, o, h, low, c, v in zip(
        close_ns, open_ns.tolist(), *columns, volume, strict=True
    ):
        yield BarClosed(ts, symbol, interval, bar_ts, o, h, low, c, v)
