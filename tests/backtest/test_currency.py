"""One quote currency per account, and every output says which (issue 14: a portfolio added
BTC- and ETH-quoted pnl into one "10,000 cash" with no unit)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from analysis.columns import currency_of, quote_currency
from backtest.portfolio_config import PortfolioConfigError, load_portfolio_config
from cli import app
from tests.commands.test_portfolio_cli import stored_db

runner = CliRunner()


def _prod(path: Path, symbols: list[str]) -> Path:
    instances = [
        {"family": "sr_breakout", "symbol": s, "interval": "5m", "params": {}, "weight": 1.0}
        for s in symbols
    ]
    path.write_text(json.dumps({"instances": instances}))
    return path


def test_quote_currency_of_symbols() -> None:
    assert quote_currency("ETH/BTC") == "BTC"
    assert quote_currency("btc/usdt") == "USDT"
    assert quote_currency("BTC/USDT:USDT") == "USDT"  # ccxt perpetual: settled in USDT
    assert quote_currency("ETHBTC") is None and quote_currency(None) is None
    assert currency_of(["ETH/BTC", "LTC/BTC"]) == "BTC"
    assert currency_of(["ETH/BTC", "XRP/ETH"]) == "mixed (BTC, ETH)"


def test_a_portfolio_over_two_quote_currencies_is_refused(tmp_path: Path) -> None:
    path = _prod(tmp_path / "prod.json", ["ETH/BTC", "LTC/BTC", "XRP/ETH"])
    with pytest.raises(PortfolioConfigError) as info:
        load_portfolio_config(path)
    message = str(info.value)
    assert "one account holds one currency" in message
    assert "BTC: ETH/BTC, LTC/BTC; ETH: XRP/ETH" in message
    assert "keep the BTC-quoted instances only" in message
    assert len(load_portfolio_config(_prod(tmp_path / "ok.json", ["ETH/BTC", "LTC/BTC"]))) == 2


def test_cli_refuses_it_before_writing_or_storing(tmp_path: Path, sqlite_url: str) -> None:
    from store.runs import load_runs

    out = tmp_path / "out"
    prod = _prod(tmp_path / "prod.json", ["ETH/BTC", "XRP/ETH"])
    args = ["backtest", "--portfolio", str(prod), "--out", str(out), "--db", sqlite_url]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, PortfolioConfigError)
    # refused before --out is created (issue 14: a bad prod.json leaves no empty directory)
    assert not out.exists() and len(load_runs(sqlite_url)) == 0


def test_single_and_portfolio_outputs_carry_the_currency(
    tmp_path: Path, sqlite_url: str, sample_dir: Path
) -> None:
    url = stored_db(sqlite_url, sample_dir)
    single = tmp_path / "single"
    args = ["backtest", "--strategy", "sr_breakout", "--symbol", "ETH/BTC", "--interval", "5m"]
    result = runner.invoke(app, [*args, "--db", url, "--out", str(single)])
    assert result.exit_code == 0, result.output
    assert json.loads((single / "results.json").read_text())["currency"] == "BTC"
    text = " ".join(result.output.split())  # rich wraps at the runner's 80 columns
    assert "equity 10,000.00 -> " in text and " BTC;" in text
    folio = tmp_path / "folio"
    prod = _prod(tmp_path / "prod.json", ["ETH/BTC", "LTC/BTC"])
    result = runner.invoke(
        app, ["backtest", "--portfolio", str(prod), "--out", str(folio), "--db", url]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((folio / "results.json").read_text())["currency"] == "BTC"
    assert " BTC;" in " ".join(result.output.split())
    # the text report says what the money is counted in
    report = runner.invoke(app, ["analyze", str(single)], terminal_width=200)
    assert report.exit_code == 0, report.output
    assert "initial cash 10,000.00 BTC" in report.output
    assert "Metrics (money in BTC)" in report.output


def test_analyze_warns_about_trades_in_several_currencies(tmp_path: Path) -> None:
    from analysis.report import analyse
    from analysis.trades_io import load_trade_set

    trades = pd.DataFrame(
        {
            "symbol": ["ETH/BTC", "XRP/ETH"],
            "entry_time": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
            "exit_time": ["2024-01-01T05:00:00Z", "2024-01-02T05:00:00Z"],
            "pnl": [1.0, -0.5],
        }
    )
    path = tmp_path / "trades.csv"
    trades.to_csv(path, index=False)
    analysis = analyse(load_trade_set(path))
    assert analysis.currency == "mixed (BTC, ETH)"
    assert any("several quote currencies, (BTC, ETH)" in n for n in analysis.notes)


def test_backtest_all_summary_groups_by_currency() -> None:
    from analysis.report import results_summary_table

    rows = pd.DataFrame(
        {
            "strategy": ["sr_breakout"] * 2,
            "interval": ["5m"] * 2,
            "symbol": ["ETH/BTC", "XRP/ETH"],
            "status": ["done"] * 2,
            "trades": [3, 4],
            **{k: [0.1, 0.2] for k in ("win_rate", "expectancy", "total_return", "max_drawdown")},
            "sortino": [None, None],
        }
    )
    console = Console(width=200, record=True)
    console.print(results_summary_table(rows))
    lines = [line for line in console.export_text().splitlines() if "sr_breakout" in line]
    assert len(lines) == 2 and "BTC" in lines[0] and "ETH" in lines[1]
