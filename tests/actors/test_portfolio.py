"""Portfolio sizing, compliance and accounting, by calling its handlers directly."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import (
    CloseTrade,
    ExitSpec,
    OpenTrade,
    SignalRaised,
    SignalRejected,
    TradeClosed,
    TradeOpened,
)
from actors.portfolio import ExactSum, Portfolio


def enter(signal_id=1, side="long", price=100.0, strategy="s", symbol="X", **exits) -> SignalRaised:
    return SignalRaised(
        0, signal_id, strategy, symbol, "1m", side, "enter", price, ExitSpec(**exits)
    )


def opened(trade_id=1, signal_id=1, side="long", qty=50.0, price=100.0, fee=0.0, strategy="s"):
    return TradeOpened(0, trade_id, signal_id, strategy, "X", "1m", side, qty, price, fee)


def only(out: list, kind: type):
    assert len(out) == 1 and isinstance(out[0], kind), out
    return out[0]


def test_size_from_risk_and_stop_distance() -> None:
    book = Portfolio(cash=10_000, risk=0.01, fee_bps=10)
    order = only(book.handle(enter(sl_pct=0.02)), OpenTrade)
    assert order.quantity == pytest.approx(50.0)  # 0.01 * 10000 / (0.02 * 100)
    assert order.exits.sl_pct == 0.02 and order.side == "long"


def test_strategy_stop_distance_overrides_percent() -> None:
    book = Portfolio(cash=10_000, risk=0.01, fee_bps=0)
    order = only(book.handle(enter(sl_pct=0.02, stop_distance=4.0)), OpenTrade)
    assert order.quantity == pytest.approx(25.0)


def test_no_stop_counts_the_whole_notional_as_risk() -> None:
    book = Portfolio(cash=10_000, risk=0.5, fee_bps=0)
    assert only(book.handle(enter()), OpenTrade).quantity == pytest.approx(50.0)


def test_capped_by_cash_including_fee_and_slippage() -> None:
    book = Portfolio(cash=10_000, risk=0.05, fee_bps=10, slippage_bps=5)
    order = only(book.handle(enter(sl_pct=0.01)), OpenTrade)
    assert order.quantity == pytest.approx(10_000 / (100 * 1.0015))


def test_capped_by_symbol_and_total_exposure() -> None:
    book = Portfolio(cash=10_000, risk=1.0, fee_bps=0, max_symbol_exposure=0.3)
    assert only(book.handle(enter(sl_pct=0.01)), OpenTrade).quantity == pytest.approx(30.0)
    book = Portfolio(cash=10_000, risk=1.0, fee_bps=0, max_total_exposure=0.2, max_open_positions=5)
    assert only(book.handle(enter(1, sl_pct=0.01)), OpenTrade).quantity == pytest.approx(20.0)
    # the first entry (pending) already uses the whole total allowance
    rejected = only(book.handle(enter(2, symbol="Y", sl_pct=0.01)), SignalRejected)
    assert "total exposure" in rejected.reason
    assert book.rejections[-1]["reason"] == rejected.reason


def test_max_open_positions_and_hedge_rules() -> None:
    book = Portfolio(cash=10_000, risk=0.001, fee_bps=0)
    only(book.handle(enter(1, sl_pct=0.01)), OpenTrade)
    again = only(book.handle(enter(2, sl_pct=0.01)), SignalRejected)
    assert "max open positions" in again.reason
    short = only(book.handle(enter(3, side="short", sl_pct=0.01)), SignalRejected)
    assert "does not declare hedge" in short.reason
    hedged = Portfolio(cash=10_000, risk=0.001, fee_bps=0, hedged=frozenset({"s"}))
    only(hedged.handle(enter(1, sl_pct=0.01)), OpenTrade)
    assert only(hedged.handle(enter(2, side="short", sl_pct=0.01)), OpenTrade).side == "short"
    assert [r["signal_id"] for r in book.rejections] == [2, 3]


def test_position_limits_override_max_open_positions_per_strategy() -> None:
    # a pyramiding strategy "p" may hold 2 longs; "s" keeps the default limit of 1
    book = Portfolio(cash=10_000, risk=0.001, fee_bps=0, position_limits={"p": 2})
    only(book.handle(enter(1, strategy="p", sl_pct=0.01)), OpenTrade)
    only(book.handle(enter(2, strategy="p", sl_pct=0.01)), OpenTrade)
    third = only(book.handle(enter(3, strategy="p", sl_pct=0.01)), SignalRejected)
    assert "2 long of 2 allowed for p" in third.reason
    only(book.handle(enter(1, strategy="s", sl_pct=0.01)), OpenTrade)
    assert "1 long of 1" in only(book.handle(enter(2, sl_pct=0.01)), SignalRejected).reason


def test_cash_and_equity_accounting_long_and_short() -> None:
    book = Portfolio(cash=10_000, fee_bps=10)
    book.handle(opened(1, qty=50.0, price=100.0, fee=5.0))
    assert book.cash == pytest.approx(4_995.0)
    assert book.equity() == pytest.approx(9_995.0)
    book.marks["X"] = 104.0
    assert book.equity() == pytest.approx(4_995.0 + 50 * 104.0)
    book.handle(
        TradeClosed(0, 1, "s", "X", "long", 50.0, 0, 100.0, 110.0, 5.0, 5.5, 489.5, "take_profit")
    )
    assert book.cash == pytest.approx(10_489.5) and book.equity() == pytest.approx(10_489.5)
    book.handle(opened(2, 2, side="short", qty=10.0, price=100.0, fee=1.0))
    assert book.cash == pytest.approx(10_489.5 + 1_000 - 1)
    book.marks["X"] = 90.0
    assert book.equity() == pytest.approx(10_489.5 + 1_000 - 1 - 900)


def test_exit_signal_closes_only_matching_positions() -> None:
    book = Portfolio(cash=10_000, hedged=frozenset({"s"}), max_open_positions=2)
    book.handle(opened(1, 1, "long", 1.0))
    book.handle(opened(2, 2, "short", 1.0))
    book.handle(opened(3, 3, "long", 1.0, strategy="other"))
    out = book.handle(SignalRaised(5, 9, "s", "X", "1m", "long", "exit", 100.0))
    assert out == [CloseTrade(5, 1, "signal")]
    assert [p.trade_id for p in book.open_positions(strategy="s")] == [1, 2]
    assert [p.trade_id for p in book.open_positions(symbol="X", strategy="other")] == [3]
    book.handle(TradeClosed(6, 1, "s", "X", "long", 1.0, 0, 100.0, 101.0, 0.0, 0.0, 1.0, "signal"))
    assert [t.trade_id for t in book.closed_trades("s", "X")] == [1]
    assert book.closed_trades("other") == []


def test_failed_entry_releases_its_reservation() -> None:
    book = Portfolio(cash=10_000, risk=1.0, fee_bps=0)
    only(book.handle(enter(1, sl_pct=0.01)), OpenTrade)
    assert book.exposure("X") == pytest.approx(10_000.0)
    book.handle(SignalRejected(1, 1, "s", "X", "long", "entry cancelled: end_of_data"))
    assert book.exposure("X") == 0.0
    assert book.rejections[-1]["reason"] == "entry cancelled: end_of_data"
    assert only(book.handle(enter(2, sl_pct=0.01)), OpenTrade).quantity == pytest.approx(100.0)


def test_exact_sum_does_not_depend_on_order() -> None:
    values = [1e16, 1.0, -1e16, 0.1, 0.2, -0.3, 3.3333333333]
    results = set()
    for perm in itertools.permutations(values):
        total = ExactSum()
        for v in perm:
            total.add(v)
        results.add(total.value)
    # the one result is the exactly rounded sum: 1e16 cancels, 1.0 survives (a naive float sum
    # loses it: 1e16 + 1.0 == 1e16), and 0.1 + 0.2 - 0.3 leaves its binary residue 2**-55
    exact = float(sum(map(Fraction, values)))
    assert results == {exact}
    assert exact == pytest.approx(4.3333333333, abs=1e-15)
    assert Fraction(0.1) + Fraction(0.2) - Fraction(0.3) == Fraction(1, 2**55)
    assert sum(values) != exact and ExactSum(5.0).value == 5.0 and ExactSum().value == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12, allow_nan=False) | st.sampled_from([1e16, -1e16, 0.1])))
def test_exact_sum_is_the_exactly_rounded_sum(values: list[float]) -> None:
    total = ExactSum(7.0)
    for v in values:
        total.add(v)
    assert total.value == float(Fraction(7) + sum(map(Fraction, values), Fraction(0)))


# -- the cash buffer (live: a market buy fills at the next open, maybe above the close) --------
def buffered_entry(buffer: float, min_notional: float = 0.0) -> list:
    """1 unit of cash, risk 1 without a stop: the risk size is the whole cash, 1 unit at 1.0."""
    book = Portfolio(cash=1.0, risk=1.0, fee_bps=0, min_notional=min_notional, cash_buffer=buffer)
    return book.handle(enter(price=1.0))


def check_buffer_caps(out: list) -> None:
    # (1 - 0.02) x 1.0 cash / 1.0 = 0.98 units: filled at a next open 2% higher they cost
    # 0.9996, within the cash; 1 unit would cost 1.02 and the exchange would refuse it
    assert only(out, OpenTrade).quantity == pytest.approx(0.98, rel=1e-12)


def check_buffer_refuses(out: list) -> None:
    reason = only(out, SignalRejected).reason
    assert reason == (
        "below the minimum notional: 0.98 < 0.99 "
        "(cash less the 2% buffer limit allows 0.98 units at 1)"
    )


def test_the_cash_buffer_caps_an_entry_below_the_whole_cash() -> None:
    check_buffer_caps(buffered_entry(0.02))
    with pytest.raises(AssertionError):  # without a buffer: 1 unit, the whole cash
        check_buffer_caps(buffered_entry(0.0))


def test_an_entry_the_buffered_cash_cannot_pay_is_refused_with_the_reason() -> None:
    check_buffer_refuses(buffered_entry(0.02, min_notional=0.99))
    with pytest.raises(AssertionError):  # without a buffer it is sent (1 unit, notional 1)
        check_buffer_refuses(buffered_entry(0.0, min_notional=0.99))


def test_the_buffer_is_a_fraction_of_the_cash_left() -> None:
    book = Portfolio(cash=1.0, risk=1.0, fee_bps=0, cash_buffer=0.02)
    book.handle(opened(qty=0.5, price=1.0))  # cash 0.5 left
    book.marks["X"] = 1.0
    order = only(book.handle(enter(signal_id=2, price=1.0, strategy="t")), OpenTrade)
    assert order.quantity == pytest.approx(0.49, rel=1e-12)  # (0.5 - 0.02 x 0.5) / 1.0
