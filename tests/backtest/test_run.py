"""run_backtest / write_outputs: the public files of docs/design.md#public-formats."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from backtest.run import (
    EQUITY_COLUMNS,
    TRADE_COLUMNS,
    BacktestConfig,
    OutDirError,
    prepare_out_dir,
    run_backtest,
    write_outputs,
)
from factors.synthetic import random_walk_bars
from strategies.sr_breakout import SRBreakout

BARS = random_walk_bars(4_000, "5m", seed=11)


@pytest.fixture(scope="module")
def result():
    return run_backtest(SRBreakout(allow_short=True), BARS, "ETH/BTC", "5m", BacktestConfig())


def test_files_have_exactly_the_documented_columns_and_keys(result, tmp_path) -> None:
    write_outputs(result, tmp_path / "out")
    trades = pd.read_csv(tmp_path / "out" / "trades.csv")
    equity = pd.read_csv(tmp_path / "out" / "equity.csv")
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (
        tuple(trades.columns)
        == TRADE_COLUMNS
        == (
            "trade_id",
            "strategy",
            "symbol",
            "interval",
            "side",
            "entry_time",
            "entry_price",
            "exit_time",
            "exit_price",
            "quantity",
            "fees",
            "pnl",
            "return_pct",
            "exit_reason",
        )
    )
    assert tuple(equity.columns) == EQUITY_COLUMNS == ("timestamp", "equity", "cash")
    assert list(doc) == [
        "run_id",
        "strategy",
        "symbol",
        "interval",
        "params",
        "start",
        "end",
        "bars",
        "metrics",
        "currency",  # after the docs/design.md#resultsjson keys (issue 14): the quote currency
    ]
    assert doc["params"] == {"lookback": 20, "sl_pct": 0.01, "tp_pct": 0.02, "allow_short": True}
    assert (doc["bars"], doc["start"]) == (4_000, "2024-01-01T00:00:00Z")
    assert doc["end"] == BARS.index[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
    for key in (
        "trades",
        "win_rate",
        "expectancy",
        "avg_win",
        "avg_loss",
        "profit_factor",
        "total_return",
        "max_drawdown",
        "sortino",
        "sharpe",
        "pct_months_profitable",
        "pct_weeks_profitable",
    ):
        assert key in doc["metrics"]
    assert doc["metrics"]["trades"] == len(trades) > 10
    assert set(trades["side"]) == {"long", "short"}
    assert set(trades["exit_reason"]) <= {"stop_loss", "take_profit", "end_of_data"}
    assert trades["entry_time"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert len(equity) == 4_000 and equity["timestamp"].iloc[0] == "2024-01-01T00:00:00Z"


def test_pnl_is_net_of_fees_and_sums_to_the_equity_change(result) -> None:
    trades, equity = result.trades, result.equity
    sign = trades["side"].map({"long": 1.0, "short": -1.0})
    gross = sign * trades["quantity"] * (trades["exit_price"] - trades["entry_price"])
    pd.testing.assert_series_equal(gross - trades["fees"], trades["pnl"], check_names=False)
    notional = trades["quantity"] * trades["entry_price"]
    pd.testing.assert_series_equal(
        trades["pnl"] / notional, trades["return_pct"], check_names=False
    )
    assert math.isclose(trades["pnl"].sum(), equity["equity"].iloc[-1] - 10_000, rel_tol=1e-9)
    assert equity["equity"].iloc[0] == equity["cash"].iloc[0] == 10_000
    assert (trades["fees"] > 0).all()


def test_no_trades_gives_header_only_trades_and_flat_equity(tmp_path) -> None:
    flat = BARS.copy()
    flat[["open", "high", "low", "close"]] = 100.0
    result = run_backtest(SRBreakout(), flat, "X", "5m")
    assert result.trades.empty and result.metrics["trades"] == 0
    write_outputs(result, tmp_path)
    assert (tmp_path / "trades.csv").read_text().strip() == ",".join(TRADE_COLUMNS)
    assert (result.equity["equity"] == 10_000).all()


def test_bad_settings_and_inputs_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="risk"):
        BacktestConfig(risk=0)
    with pytest.raises(ValueError, match="fee_bps"):
        BacktestConfig(fee_bps=-1)
    with pytest.raises(ValueError, match="mode"):
        run_backtest(SRBreakout(), BARS, "X", "5m", mode="turbo")
    with pytest.raises(ValueError, match="no bars"):
        run_backtest(SRBreakout(), BARS.iloc[:0], "X", "5m")


def test_replay_mode_gives_the_same_result(result) -> None:
    replay = run_backtest(SRBreakout(allow_short=True), BARS, "ETH/BTC", "5m", mode="replay")
    pd.testing.assert_frame_equal(replay.trades, result.trades)
    pd.testing.assert_frame_equal(replay.equity, result.equity)


def test_prepare_out_dir_creates_nested_dirs_and_accepts_existing(tmp_path) -> None:
    target = tmp_path / "a" / "b"
    assert prepare_out_dir(target) == target and target.is_dir()
    assert prepare_out_dir(str(target)) == target  # already there: fine


@pytest.mark.parametrize("given", ["", "   ", None])
def test_prepare_out_dir_rejects_an_empty_path(given) -> None:
    with pytest.raises(OutDirError, match="--out is empty"):
        prepare_out_dir(given)


def test_prepare_out_dir_rejects_a_file_and_a_path_under_a_file(tmp_path) -> None:
    file = tmp_path / "taken.txt"
    file.write_text("x")
    with pytest.raises(OutDirError, match="exists and is not a directory"):
        prepare_out_dir(file)
    with pytest.raises(OutDirError, match="cannot create output directory"):
        prepare_out_dir(file / "sub")
    assert file.read_text() == "x"  # left as it was
    assert issubclass(OutDirError, ValueError)  # the CLI prints it as one `error:` line


def test_write_outputs_into_a_file_is_one_clear_value_error(result, tmp_path) -> None:
    file = tmp_path / "out"
    file.write_text("x")
    with pytest.raises(OutDirError, match="exists and is not a directory"):
        write_outputs(result, file)
