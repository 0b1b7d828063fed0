"""Portfolio backtest: one shared account for many strategy instances (backtest/portfolio.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from actors.weighted_portfolio import PortfolioMember
from backtest.portfolio import (
    PortfolioConfigError,
    PortfolioEntry,
    build_members,
    load_portfolio_config,
    run_portfolio,
    write_portfolio_outputs,
)
from backtest.portfolio_ray import chunks
from backtest.run import TRADE_COLUMNS, BacktestConfig, run_backtest
from factors.synthetic import random_walk_bars
from strategies.registry import make_strategy
from tests.actors.helpers import make_bars, scripted


def flat_bars(price: float, n: int, freq: str = "1min") -> pd.DataFrame:
    return make_bars([(price, price, price, price)] * n, freq=freq)


def member(
    label: str, symbol: str, weight: float = 1.0, interval: str = "1m", **script: list[int]
) -> PortfolioMember:
    return PortfolioMember(label, scripted(**script)(), symbol, interval, weight)


def config(**kwargs) -> BacktestConfig:
    return BacktestConfig(**{"cash": 1000.0, "fee_bps": 0.0, **kwargs})


def run(members, series, **kwargs):
    return run_portfolio(members, series, config(**kwargs))


def sizes(result) -> dict[str, float]:
    trades = result.portfolio_trades
    return dict(zip(trades["instance"], trades["quantity"], strict=True))


# -- the shared account -----------------------------------------------------------------------
def test_second_signal_at_the_same_bar_is_sized_against_the_cash_left() -> None:
    # A at 10 and B at 20 both enter at the close of bar 0; risk 0.6, no stops:
    # A: 0.6 * 1000 / 10 = 60 units (600 of cash reserved);
    # B: risk allows 0.6 * 1000 / 20 = 30, but only 1000 - 600 = 400 cash is left -> 20 units.
    series = {("A", "1m"): flat_bars(10.0, 5), ("B", "1m"): flat_bars(20.0, 5)}
    members = [member("a", "A", enter_long=[0]), member("b", "B", enter_long=[0])]
    result = run(members, series, risk=0.6)
    assert sizes(result) == pytest.approx({"a": 60.0, "b": 20.0})
    # alone, B would have had its full risk size: the account is what limits it
    alone = run([members[1]], {("B", "1m"): series[("B", "1m")]}, risk=0.6)
    assert alone.trades["quantity"].tolist() == pytest.approx([30.0])
    # the config order decides who is sized first at the same bar
    swapped = run(members[::-1], series, risk=0.6)
    assert sizes(swapped) == pytest.approx({"b": 30.0, "a": 40.0})  # A: (1000 - 600) / 10


def test_config_order_wins_at_the_same_bar_whatever_was_scheduled_first() -> None:
    # B's signal at bar 5 is scheduled at the start; A's signal at bar 5 only after A's first
    # trade closed (bar 3). Config order still puts A first: A takes all the cash, B is refused.
    series = {("A", "1m"): flat_bars(10.0, 8), ("B", "1m"): flat_bars(20.0, 8)}
    members = [member("a", "A", enter_long=[0, 5], exit_long=[2]), member("b", "B", enter_long=[5])]
    result = run(members, series, risk=1.0)
    assert result.portfolio_trades["instance"].tolist() == ["a", "a"]
    assert [(r["strategy"], r["ts"]) for r in result.rejections] == [
        ("b", pd.Timestamp("2024-01-01 00:06", tz="UTC").value)
    ]


def test_weight_scales_the_risk_of_an_instance() -> None:
    # A weight 0.5: 0.6 * 0.5 * 1000 / 10 = 30 units; B: min(30 by risk, 700 cash / 20 = 35) = 30
    series = {("A", "1m"): flat_bars(10.0, 5), ("B", "1m"): flat_bars(20.0, 5)}
    members = [member("a", "A", 0.5, enter_long=[0]), member("b", "B", enter_long=[0])]
    result = run(members, series, risk=0.6)
    assert result.trades["quantity"].tolist() == pytest.approx([30.0, 30.0])
    assert result.by_strategy["a"]["weight"] == 0.5


def test_no_cash_left_rejects_with_a_recorded_reason() -> None:
    series = {("A", "1m"): flat_bars(10.0, 5), ("B", "1m"): flat_bars(20.0, 5)}
    members = [member("a", "A", enter_long=[0]), member("b", "B", enter_long=[0])]
    result = run(members, series, risk=1.0)
    assert result.trades["quantity"].tolist() == pytest.approx([100.0])
    assert len(result.rejections) == 1
    rejected = result.rejections[0]
    assert (rejected["strategy"], rejected["symbol"], rejected["side"]) == ("b", "B", "long")
    assert rejected["reason"].startswith("no size left: cash limit")
    assert result.by_strategy["b"]["signals_rejected"] == 1
    assert result.by_strategy["b"]["trades"] == 0


# -- time order across symbols and intervals --------------------------------------------------
def test_symbols_interleave_in_time_order_across_intervals() -> None:
    # A (1m, price 10) takes all the cash at the close of minute 0 and exits by signal at the
    # close of minute 2 (filled at the open of minute 3). B (5m, price 20) signals at the close
    # of its first bar (minute 5): A's cash is back by then, so B gets its full size.
    a = flat_bars(10.0, 12)
    b = flat_bars(20.0, 3, freq="5min")
    series = {("A", "1m"): a, ("B", "5m"): b}
    early = [
        member("a", "A", enter_long=[0], exit_long=[2]),
        member("b", "B", interval="5m", enter_long=[0]),
    ]
    result = run(early, series, risk=1.0)
    assert result.trades["quantity"].tolist() == pytest.approx([100.0, 50.0])
    assert result.trades["exit_time"].iloc[0] < result.trades["entry_time"].iloc[1]
    # A exits at minute 7 instead: B's signal at minute 5 finds no cash
    late = [
        member("a", "A", enter_long=[0], exit_long=[6]),
        member("b", "B", interval="5m", enter_long=[0]),
    ]
    result = run(late, series, risk=1.0)
    assert result.trades["symbol"].tolist() == ["A"]
    assert [r["strategy"] for r in result.rejections] == ["b"]
    # equity rows: every bar close of either series (minutes 1..12 and 15), stamped as the
    # finest bars (close - 1 minute)
    assert len(result.equity) == 13
    assert result.equity["timestamp"].iloc[-1] == pd.Timestamp("2024-01-01 00:14", tz="UTC")
    assert result.equity["equity"].iloc[-1] == pytest.approx(1000.0 + result.trades["pnl"].sum())


def test_a_coarse_bar_fill_is_known_to_the_account_only_when_that_bar_closed() -> None:
    # A (5m, price 10, stop 10%) takes all the cash: entry at the open of 00:05 = 10, 100 units.
    # Its 5m bar 00:05-00:10 touches 8, so the stop fills at 9, but the account can know that
    # only at 00:10. B (1m, price 20) signals at the close of minute 5 (00:06): no cash yet.
    a = make_bars([(10, 10, 10, 10), (10, 10, 8, 9), (9, 9, 9, 9)], freq="5min")
    b = flat_bars(20.0, 15)
    series = {("A", "5m"): a, ("B", "1m"): b}
    coarse = PortfolioMember("a", scripted(enter_long=[0])(sl_pct=0.1), "A", "5m", 1.0)
    members = [coarse, member("b", "B", enter_long=[5])]
    result = run(members, series, risk=1.0)
    assert result.trades["exit_price"].tolist() == pytest.approx([9.0])  # A's stop, as before
    assert result.trades["exit_time"].tolist() == [pd.Timestamp("2024-01-01 00:05", tz="UTC")]
    assert [(r["strategy"], r["reason"][:24]) for r in result.rejections] == [
        ("b", "no size left: cash limit")
    ]
    # B signalling at the close of minute 10 finds A's cash back (900 / 20 = 45 units)
    later = [coarse, member("b", "B", enter_long=[10])]
    assert sizes(run(later, series, risk=1.0)) == pytest.approx({"a": 100.0, "b": 45.0})


def test_long_and_short_at_once_across_instances() -> None:
    # Same symbol: one instance long, another short, both open until the end of data.
    # the signal bar closes at 10 and the next bar opens at 10.5: sized on 10, filled at 10.5
    bars = make_bars([(10, 10, 10, 10), (10.5, 11, 10.5, 11), (11, 12, 11, 12), (12, 12, 12, 12)])
    series = {("X", "1m"): bars}
    members = [member("up", "X", enter_long=[0]), member("down", "X", enter_short=[0])]
    result = run(members, series, risk=0.3, fee_bps=10.0)
    trades = result.portfolio_trades.set_index("instance")
    assert trades.loc["up", "side"] == "long" and trades.loc["down", "side"] == "short"
    assert trades.loc["up", "entry_time"] == trades.loc["down", "entry_time"]
    # 0.3 * 1000 / 10 = 30 units each (the short's collateral counts against the cash too)
    assert trades["quantity"].tolist() == pytest.approx([30.0, 30.0])
    assert trades["entry_price"].tolist() == [10.5, 10.5]
    # entry at 10.5, exit at the last close 12: +45 long, -45 short, minus fees on both legs
    fee = 30 * (10.5 + 12) * 0.001
    assert trades.loc["up", "pnl"] == pytest.approx(45 - fee)
    assert trades.loc["down", "pnl"] == pytest.approx(-45 - fee)
    assert result.equity["equity"].iloc[-1] == pytest.approx(1000 - 2 * fee)
    # while open the two positions offset each other: equity is the cash less the entry fees
    assert result.equity["equity"].iloc[1] == pytest.approx(1000 - 2 * 30 * 10.5 * 0.001)


# -- equivalences and determinism -------------------------------------------------------------
def two_walks() -> dict:
    eth = random_walk_bars(3000, "5m", seed=1)
    ltc = random_walk_bars(3000, "5m", seed=2)
    hourly = eth.resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    return {("ETH", "5m"): eth, ("LTC", "5m"): ltc, ("ETH", "1h"): hourly}


def entries() -> list[PortfolioEntry]:
    return [
        PortfolioEntry("sr_breakout", {"lookback": 20}, "ETH", "5m", 1.0),
        PortfolioEntry("sr_breakout", {"lookback": 30, "allow_short": True}, "LTC", "5m", 0.5),
        PortfolioEntry("sr_breakout", {"lookback": 10}, "ETH", "1h", 1.0),
    ]


def test_one_instance_portfolio_equals_the_single_backtest() -> None:
    bars = random_walk_bars(3000, "5m", seed=3)
    single = run_backtest(make_strategy("sr_breakout", {}), bars, "ETH", "5m", BacktestConfig())
    one = [PortfolioEntry("sr_breakout", {}, "ETH", "5m", 1.0)]
    result = run_portfolio(build_members(one), {("ETH", "5m"): bars}, BacktestConfig(), one)
    assert len(single.trades) > 10
    pd.testing.assert_frame_equal(result.trades, single.trades)
    pd.testing.assert_frame_equal(result.equity, single.equity)
    assert result.metrics == single.metrics


def test_portfolio_is_deterministic_and_books_balance() -> None:
    series = two_walks()
    first = run_portfolio(build_members(entries()), series, BacktestConfig(), entries())
    second = run_portfolio(build_members(entries()), series, BacktestConfig(), entries())
    pd.testing.assert_frame_equal(first.trades, second.trades)
    pd.testing.assert_frame_equal(first.equity, second.equity)
    assert first.rejections == second.rejections
    assert set(first.trades["interval"]) == {"5m", "1h"}
    assert set(first.trades["side"]) == {"long", "short"}
    final = first.equity["equity"].iloc[-1]
    assert final == pytest.approx(BacktestConfig().cash + first.trades["pnl"].sum())
    assert sum(s["trades"] for s in first.by_strategy.values()) == len(first.trades)


# -- config and files -------------------------------------------------------------------------
def test_config_errors_say_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cli.py weights"):
        load_portfolio_config(tmp_path / "missing.json")
    bad = tmp_path / "prod.json"
    for document, message in (
        ({"instances": []}, "lists no instances"),
        ({"instances": [{"family": "sr_breakout", "symbol": "X"}]}, "no interval"),
        (
            {
                "instances": [
                    {"family": "sr_breakout", "symbol": "X", "interval": "5m", "weight": 0}
                ]
            },
            "weight must be a positive number",
        ),
    ):
        bad.write_text(json.dumps(document))
        with pytest.raises(PortfolioConfigError, match=message):
            load_portfolio_config(bad)


def test_outputs_keep_the_single_backtest_columns(tmp_path: Path) -> None:
    result = run_portfolio(build_members(entries()), two_walks(), BacktestConfig(), entries())
    write_portfolio_outputs(result, tmp_path)
    trades = pd.read_csv(tmp_path / "trades.csv")
    assert tuple(trades.columns) == TRADE_COLUMNS
    assert set(trades["strategy"]) == {"sr_breakout"}
    combined = pd.read_csv(tmp_path / "portfolio_trades.csv")
    assert tuple(combined.columns[: len(TRADE_COLUMNS)]) == TRADE_COLUMNS
    assert set(combined["instance"]) == {
        "sr_breakout[ETH 5m]",
        "sr_breakout[LTC 5m lookback=30,allow_short=True]",
        "sr_breakout[ETH 1h lookback=10]",
    }
    assert list(pd.read_csv(tmp_path / "equity.csv").columns) == ["timestamp", "equity", "cash"]
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["strategy"] == "portfolio" and document["metrics"]["trades"] == len(trades)
    assert set(document["by_strategy"]) == set(combined["instance"])
    rejected = pd.read_csv(tmp_path / "rejections.csv")
    assert len(rejected) == document["signals_rejected"]


def test_ray_chunks_are_contiguous_balanced_and_complete() -> None:
    members = build_members(entries())
    parts = chunks(members, 2)
    assert [len(p) for p in parts] == [2, 1]
    assert [m.series for m in parts[0]] == [("ETH", "1h"), ("ETH", "5m")]  # sorted by series
    assert sorted(m.label for p in parts for m in p) == sorted(m.label for m in members)
    assert len(chunks(members, 10)) == 3
