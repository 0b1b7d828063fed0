"""`cli.py live` risk-limit flags, the prod.json "limits" object, `live reset-limits` and the
limits in `live status` (commands/live.py, backtest/portfolio_config.load_limits, store/risk.py),
in process: a bad value is one `error:` line, exit 2, nothing written; flags win over prod.json;
a prod.json without limits loads as before."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from backtest.portfolio_config import PortfolioConfigError, load_limits, load_portfolio_config
from commands.live import risk_limits
from live.risk_limits import OnBreach, RiskLimits
from store.risk import load_risk, save_risk
from tests.commands.test_errors import run_main

runner = CliRunner()
INSTANCE = {"family": "sr_breakout", "symbol": "ETH/BTC", "interval": "5m", "weight": 1.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-daily-loss", "-0.05"], "--max-daily-loss must be a fraction of equity in (0, 1]"),
        (
            ["--max-drawdown", "1.5"],
            "--max-drawdown must be a fraction of equity in (0, 1], got 1.5",
        ),
        (["--max-order-notional", "0"], "--max-order-notional must be a fraction of equity"),
        (["--max-open", "-1"], "--max-open must be a whole number >= 1, got -1"),
        (["--max-orders-per-minute", "0"], "--max-orders-per-minute must be a whole number >= 1"),
        (["--on-breach", "sell"], "--on-breach must be block or close, got 'sell'"),
    ],
)
def test_a_bad_limit_is_one_error_line_exit_2_and_nothing_written(
    monkeypatch, capsys, tmp_path, args, message
) -> None:
    db = tmp_path / "live.db"
    code = run_main(monkeypatch, "live", "--db", f"sqlite:///{db}", *args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {message}"), err
    assert not db.exists()


def test_prod_json_limits_load_and_flags_win(tmp_path: Path) -> None:
    prod = tmp_path / "prod.json"
    limits = {"max_drawdown": 0.2, "max_open": 10, "on_breach": "close"}
    prod.write_text(json.dumps({"instances": [INSTANCE], "limits": limits}))
    assert len(load_portfolio_config(prod)) == 1  # the instances load as before
    assert risk_limits(prod) == RiskLimits(max_drawdown=0.2, max_open=10, on_breach=OnBreach.CLOSE)
    flags = {"max_drawdown": 0.1, "max_daily_loss": 0.05, "on_breach": None}
    assert risk_limits(prod, **flags) == RiskLimits(
        max_daily_loss=0.05, max_drawdown=0.1, max_open=10, on_breach=OnBreach.CLOSE
    )
    # a flag at its default value still wins over the file
    assert risk_limits(prod, on_breach="block").on_breach == OnBreach.BLOCK
    old = tmp_path / "old.json"  # an older prod.json, without limits
    old.write_text(json.dumps({"instances": [INSTANCE]}))
    assert load_limits(old) == {} and risk_limits(old) == RiskLimits()
    assert len(load_portfolio_config(old)) == 1


def test_a_bad_prod_json_limit_names_the_file_and_key(monkeypatch, capsys, tmp_path) -> None:
    prod = tmp_path / "prod.json"
    prod.write_text(json.dumps({"instances": [INSTANCE], "limits": {"max_drawdown": 2}}))
    code = run_main(monkeypatch, "live", "--config", str(prod), "--db", f"sqlite:///{tmp_path}/x")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f'{prod} "limits": max_drawdown must be a fraction of equity in (0, 1], got 2' in err
    prod.write_text(json.dumps({"instances": [INSTANCE], "limits": [0.2]}))
    with pytest.raises(PortfolioConfigError, match='"limits" must be an object'):
        load_limits(prod)


def breach(db_url: str) -> None:
    save_risk(
        db_url,
        "binance",
        "dry-run",
        "BTC",
        {
            "day": "2024-03-01",
            "day_start": 10.0,
            "high_water": 10.0,
            "breach_kind": "drawdown",
            "breach_reason": "drawdown 20% from the high-water mark 10 (limit 20%)",
            "breach_day": "2024-03-01",
            "breached_at": dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC),
        },
    )


def test_status_shows_a_breach_and_reset_limits_clears_it(sqlite_url) -> None:
    breach(sqlite_url)
    shown = runner.invoke(cli.app, ["live", "status", "--db", sqlite_url])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "risk limits: 1 breached" in lines
    assert (
        "  BREACHED binance dry-run BTC [drawdown]: drawdown 20% from the high-water mark 10 "
        "(limit 20%) at 2024-03-01T12:00:00Z; new entries stopped until reset-limits"
    ) in lines
    assert "  binance dry-run BTC: day 2024-03-01 started at 10, high-water mark 10" in lines
    done = runner.invoke(cli.app, ["live", "reset-limits", "--db", sqlite_url])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        "cleared: binance dry-run BTC: drawdown 20% from the high-water mark 10 (limit 20%)"
    ]
    assert load_risk(sqlite_url, "binance", "dry-run") == {}
    shown = runner.invoke(cli.app, ["live", "status", "--db", sqlite_url])
    assert "risk limits" not in shown.output
    again = runner.invoke(cli.app, ["live", "reset-limits", "--db", sqlite_url])
    assert again.output.strip() == "no risk limit was breached; baselines cleared"


def test_a_breach_is_one_warning_line_not_one_per_bar() -> None:
    from commands.live import new_breaches

    said: set[str] = set()
    quotes = {"BTC": {"breaches": ["risk limit drawdown breached (BTC): x"]}, "ETH": {}}
    assert new_breaches(quotes, said) == ["risk limit drawdown breached (BTC): x"]
    assert new_breaches(quotes, said) == []  # the next bar: nothing again
    assert new_breaches({"BTC": {"breaches": []}}, said) == []  # cleared (reset-limits) ...
    assert new_breaches(quotes, said) == ["risk limit drawdown breached (BTC): x"]  # ... said anew
