"""Hand-computed fill scenarios (docs/design.md#fill-semantics), each in fast AND replay mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.messages import OrderFilled, SubmitOrder
from actors.sim_exchange import BarArrays, SimExchange, fill_price
from tests.actors.helpers import QUIET, both_modes, make_bars, scripted

SIZE = 0.005 * 10_000 / (0.01 * 99.8)  # risk 0.005, stop 1 % of the signal close: 50.1002


def one_trade(result) -> dict:
    assert len(result.trades) == 1, result.trades
    return result.trades.iloc[0].to_dict()


def test_gap_through_stop_fills_at_open() -> None:
    bars = make_bars([QUIET, QUIET, (97.0, 98.0, 96.0, 97.0), QUIET])
    s = scripted(enter_long=[0])(sl_pct=0.01, tp_pct=0.02)
    t = one_trade(both_modes(s, bars, risk=0.005))
    # size on the signal close 99.8: SIZE = 50.1002; entry at the open of bar 1 (100, not the
    # signal close); stop 1 % below the fill = 99, gapped through -> the open 97
    assert t["quantity"] == pytest.approx(SIZE) and SIZE == pytest.approx(50.1002004)
    assert t["entry_price"] == 100.0 and t["exit_price"] == 97.0
    assert t["pnl"] == pytest.approx(-3.0 * SIZE)
    assert t["exit_reason"] == "stop_loss"
    assert t["entry_time"] == bars.index[1] and t["exit_time"] == bars.index[2]


def test_stop_before_target_in_the_same_bar() -> None:
    bars = make_bars([QUIET, QUIET, (100.0, 103.0, 98.5, 101.0), QUIET])
    s = scripted(enter_long=[0])(sl_pct=0.01, tp_pct=0.02)
    t = one_trade(both_modes(s, bars, risk=0.005))
    assert (t["exit_price"], t["exit_reason"]) == (99.0, "stop_loss")
    assert t["pnl"] == pytest.approx(-1.0 * SIZE)


def test_take_profit_at_level_and_gap_above_at_open() -> None:
    s = scripted(enter_long=[0])(sl_pct=0.01, tp_pct=0.02)
    t = one_trade(
        both_modes(s, make_bars([QUIET, QUIET, (100.5, 102.5, 100.0, 101.0)]), risk=0.005)
    )
    assert (t["exit_price"], t["exit_reason"]) == (102.0, "take_profit")  # 100 * 1.02
    assert t["pnl"] == pytest.approx(2.0 * SIZE)
    t = one_trade(
        both_modes(s, make_bars([QUIET, QUIET, (103.0, 104.0, 102.5, 103.5)]), risk=0.005)
    )
    assert (t["exit_price"], t["exit_reason"]) == (103.0, "take_profit")


def test_brackets_live_in_the_entry_bar() -> None:
    bars = make_bars([QUIET, (100.0, 100.2, 98.0, 99.0), QUIET])
    s = scripted(enter_long=[0])(sl_pct=0.01, tp_pct=0.02)
    t = one_trade(both_modes(s, bars, risk=0.005))
    assert t["entry_time"] == t["exit_time"] == bars.index[1]
    assert (t["exit_price"], t["exit_reason"]) == (99.0, "stop_loss")


def test_exit_signal_closes_at_next_open() -> None:
    rows = [QUIET, QUIET, QUIET, (101.0, 101.5, 100.5, 101.0), (102.0, 102.0, 102.0, 102.0)]
    s = scripted(enter_long=[0], exit_long=[2])()
    t = one_trade(both_modes(s, make_bars(rows), risk=1.0))
    # no stop: whole notional at risk, 1.0 * 10000 / 99.8 (the signal close) = 100.2004 units
    qty = 10_000 / 99.8
    assert t["quantity"] == pytest.approx(qty)
    # the exit signal at bar 2 (close 99.8) fills at the open of bar 3: 101
    assert (t["exit_price"], t["exit_reason"]) == (101.0, "signal")
    assert t["pnl"] == pytest.approx(qty * (101.0 - 100.0))


def test_exit_signal_at_open_beats_stop_in_that_bar() -> None:
    rows = [QUIET, QUIET, QUIET, (100.0, 100.0, 95.0, 96.0), QUIET]
    s = scripted(enter_long=[0], exit_long=[2])(sl_pct=0.01)
    t = one_trade(both_modes(s, make_bars(rows), risk=0.005))
    assert (t["exit_price"], t["exit_reason"]) == (100.0, "signal")
    result = both_modes(s, make_bars(rows), risk=0.005)
    statuses = {o["role"]: o["status"] for o in result.orders}
    assert statuses == {"entry": "FILLED", "stop_loss": "CANCELLED", "signal": "FILLED"}


def test_time_exit_after_max_bars() -> None:
    rows = [QUIET, QUIET, QUIET, (100.7, 101.0, 100.0, 100.8), QUIET]
    s = scripted(enter_long=[0])(max_bars=2)
    t = one_trade(both_modes(s, make_bars(rows), risk=1.0))
    # entered at the open of bar 1, held bars 1 and 2, out at the open of bar 3
    assert t["exit_time"] == make_bars(rows).index[3]
    assert (t["exit_price"], t["exit_reason"]) == (100.7, "time")


def test_session_end_exit_at_first_open_of_next_day() -> None:
    rows = [QUIET, QUIET, QUIET, (100.3, 100.6, 100.1, 100.4), QUIET]
    bars = make_bars(rows, start="2024-01-01 23:57")
    s = scripted(session=True, enter_long=[0])()
    t = one_trade(both_modes(s, bars, risk=1.0))
    assert t["exit_time"] == pd.Timestamp("2024-01-02 00:00", tz="UTC")
    assert (t["exit_price"], t["exit_reason"]) == (100.3, "time")


def test_short_side_mirrors() -> None:
    rows = [QUIET, QUIET, (100.0, 101.5, 99.8, 101.0), QUIET]
    s = scripted(enter_short=[0])(sl_pct=0.01, tp_pct=0.02)
    t = one_trade(both_modes(s, make_bars(rows), risk=0.005))
    assert t["side"] == "short" and t["quantity"] == pytest.approx(SIZE)
    assert t["entry_price"] == 100.0  # sold at the open after the signal close 99.8
    assert (t["exit_price"], t["exit_reason"]) == (101.0, "stop_loss")  # 100 * 1.01
    assert t["pnl"] == pytest.approx(-1.0 * SIZE)
    gap = [QUIET, QUIET, (97.5, 97.9, 97.0, 97.5), QUIET]
    t = one_trade(both_modes(s, make_bars(gap), risk=0.005))
    assert (t["exit_price"], t["exit_reason"]) == (97.5, "take_profit")  # min(open, 98)
    assert t["pnl"] == pytest.approx(2.5 * SIZE)


def test_long_and_short_together_when_hedged() -> None:
    rows = [QUIET, QUIET, (100.0, 102.5, 99.5, 102.0), QUIET]
    s = scripted(hedge=True, enter_long=[0], enter_short=[0])(sl_pct=0.01, tp_pct=0.02)
    result = both_modes(s, make_bars(rows), risk=0.005)
    trades = result.trades.set_index("side")
    assert list(result.trades["side"]) == ["long", "short"]
    # long sized first: SIZE (cash cap 10000 / 99.8 is larger); the short then has 10000 -
    # 5000 reserved for the long left, 5000 / 99.8 = SIZE units: the same size
    assert list(result.trades["quantity"]) == pytest.approx([SIZE, SIZE])
    assert trades.loc["long", "exit_reason"] == "take_profit"
    assert trades.loc["long", "pnl"] == pytest.approx(2.0 * SIZE)
    assert trades.loc["short", "exit_reason"] == "stop_loss"
    assert trades.loc["short", "pnl"] == pytest.approx(-1.0 * SIZE)
    # not hedged: the short signal is ignored while the long is pending/open
    unhedged = scripted(enter_long=[0], enter_short=[0])(sl_pct=0.01, tp_pct=0.02)
    assert list(both_modes(unhedged, make_bars(rows), risk=0.005).trades["side"]) == ["long"]


def test_fees_and_slippage() -> None:
    rows = [QUIET, QUIET, (99.5, 99.6, 98.0, 98.5), QUIET]
    s = scripted(enter_long=[0])(sl_pct=0.01, tp_pct=0.02)
    t = one_trade(both_modes(s, make_bars(rows), risk=0.005, fee_bps=10.0, slippage_bps=10.0))
    entry = 100.0 * 1.001  # bought at the open plus 10 bps
    stop = entry * 0.99
    exit_ = min(99.5, stop) * 0.999  # stop-market sold 10 bps below the level
    qty = 0.005 * 10_000 / (0.01 * 99.8)  # sized on the signal close 99.8, not the fill
    fees = 0.001 * qty * (entry + exit_)
    assert t["entry_price"] == pytest.approx(entry)
    assert t["exit_price"] == pytest.approx(exit_)
    assert t["fees"] == pytest.approx(fees)
    assert t["pnl"] == pytest.approx(qty * (exit_ - entry) - fees)
    assert t["return_pct"] == pytest.approx(t["pnl"] / (qty * entry))


def test_end_of_data_closes_at_last_close() -> None:
    rows = [QUIET, QUIET, (100.0, 106.0, 99.8, 105.0)]
    s = scripted(enter_long=[0])(sl_pct=0.01, tp_pct=0.1)
    result = both_modes(s, make_bars(rows), risk=0.005)
    t = one_trade(result)
    assert (t["exit_price"], t["exit_reason"]) == (105.0, "end_of_data")
    assert t["exit_time"] == make_bars(rows).index[-1]
    assert result.equity["equity"].iloc[-1] == pytest.approx(10_000 + SIZE * (105.0 - 100.0))
    # marked at each close while open: bar 1 closes at 99.8, 0.2 below the entry
    assert result.equity["equity"].iloc[1] == pytest.approx(10_000 - SIZE * 0.2)


def test_end_of_data_fills_exactly_at_last_close_without_slippage_but_with_fee() -> None:
    # docs/design.md#fill-semantics rule 5: open positions close at the last close (no slippage there)
    rows = [QUIET, QUIET, (100.0, 104.0, 99.8, 103.0)]
    for side, column in (("long", "enter_long"), ("short", "enter_short")):
        s = scripted(**{column: [0]})(sl_pct=0.05)
        result = both_modes(s, make_bars(rows), risk=0.005, fee_bps=10.0, slippage_bps=10.0)
        t = one_trade(result)
        sign = 1.0 if side == "long" else -1.0
        entry = 100.0 * (1 + sign * 0.001)  # market entry: open of bar 1, 10 bps against us
        qty = 0.005 * 10_000 / (0.05 * 99.8)  # 10.02 units, sized on the signal close 99.8
        fees = 0.001 * qty * (entry + 103.0)  # 10 bps on both fills
        assert (t["exit_price"], t["exit_reason"]) == (103.0, "end_of_data")
        assert t["entry_price"] == pytest.approx(entry)
        assert t["fees"] == pytest.approx(fees)
        assert t["pnl"] == pytest.approx(sign * qty * (103.0 - entry) - fees)
        assert result.equity["equity"].iloc[-1] == pytest.approx(10_000 + t["pnl"])


def test_signal_on_last_bar_never_fills() -> None:
    s = scripted(enter_long=[2])(sl_pct=0.01)
    result = both_modes(s, make_bars([QUIET, QUIET, QUIET]))
    assert result.trades.empty
    assert [o["status"] for o in result.orders] == ["CANCELLED"]


def test_signals_while_open_are_ignored() -> None:
    rows = [QUIET] * 3 + [(100.0, 103.0, 99.9, 102.5)] + [QUIET] * 3
    s = scripted(enter_long=[0, 1, 2, 3, 4])(sl_pct=0.01, tp_pct=0.02)
    result = both_modes(s, make_bars(rows), risk=0.005)
    # trade 1 enters bar 1, exits at the target in bar 3; the signal at bar 3 enters at bar 4
    assert list(result.trades["entry_time"]) == [make_bars(rows).index[1], make_bars(rows).index[4]]
    assert list(result.trades["exit_reason"]) == ["take_profit", "end_of_data"]
    assert list(result.trades["entry_price"]) == [100.0, 100.0]  # quiet opens, not closes
    assert list(result.trades["exit_price"]) == [102.0, 99.8]  # the target; the last close


def ramp(n: int) -> list[tuple[float, float, float, float]]:
    """Bar i: open 100 + i, high open + 1, low open - 1, close open + 0.5."""
    return [(100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i) for i in range(n)]


def test_pyramiding_opens_a_second_position_on_the_same_side() -> None:
    s = scripted(pyramiding=True, enter_long=[5, 8])()
    result = both_modes(s, make_bars(ramp(12)), risk=0.1)
    index = make_bars(ramp(12)).index
    # no stop: qty = risk * equity / signal close. Signal 5: equity 10000, close 105.5.
    qty1 = 0.1 * 10_000 / 105.5
    # signal 8: the first position (bought at the open of bar 6, 106) marked at close 108.5
    equity8 = 10_000 + qty1 * (108.5 - 106.0)
    qty2 = 0.1 * equity8 / 108.5
    trades = result.trades
    assert len(trades) == 2 and list(trades["side"]) == ["long", "long"]
    assert list(trades["entry_time"]) == [index[6], index[9]]
    assert list(trades["entry_price"]) == [106.0, 109.0]
    assert list(trades["exit_price"]) == [111.5, 111.5]  # end of data: last close
    assert list(trades["exit_reason"]) == ["end_of_data", "end_of_data"]
    assert list(trades["quantity"]) == pytest.approx([qty1, qty2])
    assert list(trades["pnl"]) == pytest.approx([qty1 * 5.5, qty2 * 2.5])
    assert result.rejections == []
    # without pyramiding the signal at 8 is ignored while the first position is open
    single = both_modes(scripted(enter_long=[5, 8])(), make_bars(ramp(12)), risk=0.1)
    assert list(single.trades["entry_price"]) == [106.0]


def test_pyramiding_stops_at_max_entries_and_an_exit_signal_closes_all() -> None:
    s = scripted(pyramiding=True, max_entries=2, enter_long=[1, 3, 5], exit_long=[7])()
    result = both_modes(s, make_bars(ramp(10)), risk=0.1)
    trades = result.trades
    # entries fill at the opens of bars 2 and 4; the signal at 5 exceeds max_entries=2 and is
    # ignored (not rejected); the exit at 7 closes both at the open of bar 8
    assert list(trades["entry_price"]) == [102.0, 104.0]
    assert list(trades["exit_price"]) == [108.0, 108.0]
    assert list(trades["exit_reason"]) == ["signal", "signal"]
    assert result.rejections == []


# -- unit level ---------------------------------------------------------------------------------
def order(kind: str, side: str, price: float | None = None, **kw) -> SubmitOrder:
    return SubmitOrder(0, 1, "s", "X", side, 1.0, kind, "r", price, **kw)


def test_fill_price_rules() -> None:
    assert fill_price(order("stop", "sell", 99.0), 97.0, 0, 0.0) == 97.0
    assert fill_price(order("stop", "sell", 99.0), 100.0, 0, 0.0) == 99.0
    assert fill_price(order("stop", "buy", 101.0), 103.0, 0, 0.0) == 103.0
    assert fill_price(order("limit", "sell", 102.0), 103.0, 0, 0.01) == 103.0  # no slippage
    assert fill_price(order("limit", "buy", 98.0), 97.0, 0, 0.0) == 97.0
    assert fill_price(order("market", "buy"), 100.0, 0, 0.001) == pytest.approx(100.1)
    assert fill_price(order("close", "sell"), 100.0, 90.0, 0.0) == 90.0
    assert fill_price(order("close", "buy"), 100.0, 90.0, 0.01) == 90.0  # end of data: no slip


def test_exchange_rejects_bad_orders_and_ignores_unknown_cancel() -> None:
    bars = make_bars([QUIET, QUIET])
    ex = SimExchange(data={"X": BarArrays.from_frame(bars)})
    out = ex.handle(SubmitOrder(0, 1, "s", "X", "buy", 0.0, "market", "entry"))
    assert type(out[0]).__name__ == "OrderRejected" and "quantity" in out[0].reason
    out = ex.handle(SubmitOrder(0, 2, "s", "Y", "buy", 1.0, "market", "entry"))
    assert "no data for symbol" in out[0].reason
    from actors.messages import CancelOrder

    assert ex.handle(CancelOrder(0, 99, "x")) == []


def test_oco_group_fills_once_in_replay() -> None:
    from actors.messages import BarClosed

    ex = SimExchange()
    bar = BarClosed(60, "X", "1m", 0, 100.0, 103.0, 98.0, 101.0, 1.0)
    ex.handle(bar)
    stop = SubmitOrder(0, 1, "s", "X", "sell", 1.0, "stop", "stop_loss", 99.0, oco=7)
    target = SubmitOrder(0, 2, "s", "X", "sell", 1.0, "limit", "take_profit", 102.0, oco=7)
    fills = [m for m in ex.handle(stop) + ex.handle(target) if isinstance(m, OrderFilled)]
    assert [(f.order_id, f.price) for f in fills] == [(1, 99.0)]
    assert ex.open_orders() == [2]  # waits for the order manager's cancel


def test_fast_mode_holds_a_later_oco_leg_until_the_earlier_leg_is_cancelled() -> None:
    from actors.messages import CancelOrder, FillDue, OrderCancelled, Scheduled

    bars = make_bars(
        [QUIET] * 3
        + [(100.0, 100.2, 98.0, 99.0)]
        + [QUIET] * 3
        + [(100.0, 103.0, 99.5, 102.0)]
        + [QUIET]
    )
    arrays = BarArrays.from_frame(bars)
    ex = SimExchange(data={"X": arrays})
    start = int(arrays.open_ns[1])
    stop = SubmitOrder(start, 1, "s", "X", "sell", 1.0, "stop", "stop_loss", 99.0, None, start, 7)
    target = SubmitOrder(
        start, 2, "s", "X", "sell", 1.0, "limit", "take_profit", 102.0, None, start, 7
    )
    (accepted, stop_timer) = ex.handle(stop)
    assert isinstance(stop_timer, Scheduled) and stop_timer.msg.bar_index == 3
    assert [type(m).__name__ for m in ex.handle(target)] == ["OrderAccepted"]  # held back
    # the stop is cancelled before its bar: the target's timer is released, at bar 7
    out = ex.handle(CancelOrder(start, 1, "test"))
    assert isinstance(out[0], OrderCancelled)
    (released,) = out[1:]
    assert isinstance(released.msg, FillDue) and released.msg.bar_index == 7
    (fill,) = ex.handle(released.msg)
    assert (fill.order_id, fill.price) == (2, 102.0)
    # when the earlier leg fills instead, the held leg is never scheduled
    ex = SimExchange(data={"X": arrays})
    ex.handle(stop)
    ex.handle(target)
    (fill,) = ex.handle(stop_timer.msg)
    assert fill.order_id == 1 and ex.handle(CancelOrder(start, 2, "oco"))[1:] == []


def test_first_open_at_or_after_agrees_with_a_binary_search_with_and_without_gaps() -> None:
    minute = 60 * 10**9
    even = np.arange(0, 50) * minute + 7 * minute
    gapped = np.delete(even, [3, 4, 20])  # three bars missing: the arithmetic guess is off
    for opens in (even, gapped, even[:1], even[:2]):
        frame = pd.DataFrame(
            {c: 1.0 for c in ("open", "high", "low", "close")},
            index=pd.to_datetime(opens, utc=True),
        )
        arrays = BarArrays.from_frame(frame)
        probes = [int(t) + d for t in opens for d in (-minute // 2, 0, 1)] + [0, 10**18]
        for ts in probes:
            want = int(np.searchsorted(opens, ts))
            assert arrays.first_open_at_or_after(ts) == want, (len(opens), ts)
