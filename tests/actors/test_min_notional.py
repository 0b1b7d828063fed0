"""A dust order (issue 14: notional 0.0079 filled) is refused below the minimum notional, with
its reason; the default (0.01 % of the starting cash) never refuses a normal BTC-quoted trade."""

from __future__ import annotations

import pytest

from actors.messages import ExitSpec, OpenTrade, SignalRaised, SignalRejected, TradeOpened
from actors.portfolio import Portfolio
from backtest.run import MIN_NOTIONAL_FRACTION, BacktestConfig, run_backtest
from factors.bars import OHLCV
from strategies.registry import make_strategy


def _enter(signal_id: int, price: float = 100.0) -> SignalRaised:
    return SignalRaised(
        0, signal_id, f"s{signal_id}", "X", "1m", "long", "enter", price, ExitSpec()
    )


def test_the_cash_left_is_dust_and_the_order_is_refused_with_the_reason() -> None:
    book = Portfolio(cash=1_000, risk=1.0, fee_bps=0, max_open_positions=5, min_notional=1.0)
    first = book.handle(_enter(1))[0]
    assert isinstance(first, OpenTrade) and first.quantity == pytest.approx(10.0)
    # the first position leaves 0.0079 of cash: before, the next entry bought 0.0079 worth
    book.handle(TradeOpened(0, 1, 1, "s1", "X", "1m", "long", 9.999921, 100.0, 0.0))
    assert book.cash == pytest.approx(0.0079)
    refused = book.handle(_enter(2))
    assert len(refused) == 1 and isinstance(refused[0], SignalRejected)
    assert refused[0].reason.startswith("below the minimum notional: 0.0079 < 1 (cash limit")
    assert book.rejections[-1]["reason"] == refused[0].reason
    # without a minimum the same dust is an order, as before
    loose = Portfolio(cash=1_000, risk=1.0, fee_bps=0, max_open_positions=5)
    loose.handle(_enter(1))
    loose.handle(TradeOpened(0, 1, 1, "s1", "X", "1m", "long", 9.999921, 100.0, 0.0))
    assert isinstance(loose.handle(_enter(2))[0], OpenTrade)


def test_default_is_relative_to_the_cash_and_validated() -> None:
    assert BacktestConfig().min_order_notional() == pytest.approx(10_000 * MIN_NOTIONAL_FRACTION)
    assert BacktestConfig(cash=0.5).min_order_notional() == pytest.approx(0.5e-4)  # 0.5 BTC
    assert BacktestConfig(min_notional=0).min_order_notional() == 0.0
    with pytest.raises(ValueError, match="min_notional"):
        BacktestConfig(min_notional=-1)


def _sample(sample_dir, rows: int = 3000):
    import pandas as pd

    raw = pd.read_csv(sample_dir / "ETH_BTC-5m.csv.gz").head(rows)
    index = pd.DatetimeIndex(
        pd.to_datetime(raw["timestamp"], unit="ms", utc=True), name="timestamp"
    )
    return pd.DataFrame({c: raw[c].to_numpy(float) for c in OHLCV}, index=index)


def test_default_keeps_every_normal_btc_quoted_trade(sample_dir) -> None:
    bars = _sample(sample_dir)
    strategy = make_strategy("sr_breakout", {})
    off = run_backtest(strategy, bars, "ETH/BTC", "5m", BacktestConfig(min_notional=0))
    default = run_backtest(strategy, bars, "ETH/BTC", "5m", BacktestConfig())
    assert len(off.trades) > 10
    assert default.trades.drop(columns="trade_id").equals(off.trades.drop(columns="trade_id"))
    # a minimum above any order refuses every entry, each with its reason
    strict = run_backtest(strategy, bars, "ETH/BTC", "5m", BacktestConfig(min_notional=9_999))
    assert len(strict.trades) == 0 and len(strict.rejections) > 10
    assert all(r["reason"].startswith("below the minimum notional") for r in strict.rejections)


def test_lot_size_rounds_down_to_whole_lots_and_refuses_less_than_one() -> None:
    # no stop: risk 0.3 x 1,000 / 100 = 3 units; lots of 0.7 -> 4 lots = 2.8 units
    book = Portfolio(cash=1_000, risk=0.3, fee_bps=0, max_open_positions=5, lot_size=0.7)
    order = book.handle(_enter(1))[0]
    assert isinstance(order, OpenTrade) and order.quantity == pytest.approx(2.8)
    exact = Portfolio(cash=1_000, risk=0.3, fee_bps=0, lot_size=0.1)  # 3 / 0.1 in floats
    assert exact.handle(_enter(1))[0].quantity == pytest.approx(3.0)
    tiny = Portfolio(cash=1_000, risk=0.3, fee_bps=0, lot_size=5.0)
    refused = tiny.handle(_enter(1))
    assert isinstance(refused[0], SignalRejected)
    assert refused[0].reason == "below one lot: 3 units < lot size 5"
    with pytest.raises(ValueError, match="lot_size"):
        BacktestConfig(lot_size=-1)
