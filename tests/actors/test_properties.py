"""Invariants over random bars and random signals (hypothesis), in fast and replay mode."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.kernel import run_kernel
from actors.messages import BarClosed, OrderCancelled, OrderFilled
from actors.runtime import Actor, LocalRuntime
from backtest.run import BacktestConfig, assemble_result
from tests.actors.helpers import make_bars, scripted

COLUMNS = ("enter_long", "exit_long", "enter_short", "exit_short")


class Probe(Actor):
    """Records fills and cancels; in replay checks the portfolio at every bar close."""

    handlers = {OrderFilled: "on_fill", OrderCancelled: "on_cancel", BarClosed: "on_bar"}

    def __init__(self, runtime: LocalRuntime) -> None:
        super().__init__()
        self.runtime = runtime
        self.events: list[tuple[str, int]] = []
        self.at_close: list[tuple[float, float]] = []  # (cash, cash + positions at close)

    def on_fill(self, msg: OrderFilled) -> list:
        self.events.append(("filled", msg.order_id))
        return []

    def on_cancel(self, msg: OrderCancelled) -> list:
        self.events.append(("cancelled", msg.order_id))
        return []

    def on_bar(self, msg: BarClosed) -> list:
        book = self.runtime.actor("portfolio")
        held = sum(p.sign * p.quantity * msg.close for p in book.positions.values())
        self.at_close.append((book.cash, book.cash + held))
        return []


@st.composite
def scenarios(draw):
    n = draw(st.integers(3, 40))
    moves = draw(
        st.lists(
            st.tuples(
                st.floats(-0.03, 0.03),
                st.floats(-0.03, 0.03),
                st.floats(0, 0.02),
                st.floats(0, 0.02),
            ),
            min_size=n,
            max_size=n,
        )
    )
    rows, price = [], 100.0
    for gap, ret, up, down in moves:
        o = price * (1 + gap)
        c = o * (1 + ret)
        rows.append((o, max(o, c) * (1 + up), min(o, c) * (1 - down), c))
        price = c
    script = {
        c: [
            i
            for i, flag in enumerate(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
            if flag
        ]
        for c in COLUMNS
    }
    params = dict(
        sl_pct=draw(st.sampled_from([0.0, 0.005, 0.01, 0.03])),
        tp_pct=draw(st.sampled_from([0.0, 0.01, 0.02, 0.05])),
        max_bars=draw(st.sampled_from([0, 1, 3])),
    )
    config = BacktestConfig(
        fee_bps=draw(st.sampled_from([0.0, 10.0])),
        slippage_bps=draw(st.sampled_from([0.0, 5.0])),
        risk=draw(st.sampled_from([0.01, 0.2, 1.0])),
        max_open_positions=draw(st.sampled_from([1, 2])),
    )
    hedge = draw(st.booleans())
    pyramiding = draw(st.booleans())
    strategy = scripted(hedge=hedge, pyramiding=pyramiding, **script)(**params)
    return make_bars(rows), strategy, config


def run(strategy, bars, config, mode):
    runtime = LocalRuntime()
    probe = Probe(runtime)
    out = run_kernel(strategy, bars, "TEST", "1m", config, mode, runtime, (("probe", probe),))
    return assemble_result(strategy, bars, "TEST", "1m", config, out), probe, out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants(scenario) -> None:
    bars, strategy, config = scenario
    fast, fast_probe, fast_out = run(strategy, bars, config, "fast")
    replay, probe, out = run(strategy, bars, config, "replay")

    # fast mode and bar-by-bar replay agree exactly
    pd.testing.assert_frame_equal(fast.trades, replay.trades)
    pd.testing.assert_frame_equal(fast.equity, replay.equity)
    assert fast.orders == replay.orders

    for events, result in ((fast_probe.events, fast), (probe.events, replay)):
        filled = [oid for kind, oid in events if kind == "filled"]
        cancelled = [oid for kind, oid in events if kind == "cancelled"]
        assert len(filled) == len(set(filled)), "an order filled twice"
        assert not set(filled) & set(cancelled), "a cancelled order filled"
        statuses = {o["order_id"]: o["status"] for o in result.orders}
        assert {oid for oid, s in statuses.items() if s == "FILLED"} == set(filled)
        assert {oid for oid, s in statuses.items() if s == "CANCELLED"} == set(cancelled)
        assert "SUBMITTED" not in statuses.values() and "NEW" not in statuses.values()

    # sum of net trade pnl == equity change; every position closed at the end
    final = replay.equity["equity"].iloc[-1]
    assert math.isclose(replay.trades["pnl"].sum(), final - config.cash, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(out.portfolio["cash"], final, rel_tol=1e-12, abs_tol=1e-9)
    assert out.portfolio["positions"] == 0

    # equity = cash + positions marked at the close, at every bar close (live portfolio state
    # during replay vs the vectorized rebuild); the last bar's row also holds the end_of_data exit
    live = np.array(probe.at_close[:-1])
    if len(live):
        np.testing.assert_allclose(
            live[:, 0], replay.equity["cash"].to_numpy()[:-1], rtol=1e-9, atol=1e-6
        )
        np.testing.assert_allclose(
            live[:, 1], replay.equity["equity"].to_numpy()[:-1], rtol=1e-9, atol=1e-6
        )

    for t in replay.trades.itertuples():
        assert t.exit_time >= t.entry_time and t.quantity > 0
        assert t.exit_reason in ("stop_loss", "take_profit", "signal", "time", "end_of_data")
        assert math.isclose(
            t.return_pct * t.quantity * t.entry_price, t.pnl, rel_tol=1e-9, abs_tol=1e-9
        )
    if not strategy.hedge:  # never long and short at once
        for a in replay.trades.itertuples():
            for b in replay.trades.itertuples():
                if a.side != b.side:
                    assert a.exit_time <= b.entry_time or b.exit_time <= a.entry_time
