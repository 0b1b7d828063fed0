"""`cli.py data pairs list|enable|disable` (commands/pairs.py): the flag live reads each poll."""

from __future__ import annotations

from typer.testing import CliRunner

from cli import app
from store.instances import add_instance, live_states

runner = CliRunner()


def test_disable_and_enable_a_pair(sqlite_url) -> None:
    inst = add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {})
    out = runner.invoke(app, ["data", "pairs", "disable", "ETH/BTC", "--db", sqlite_url])
    assert out.exit_code == 0 and "pair binance ETH/BTC disabled" in out.output
    assert live_states(sqlite_url, "binance") == {inst.id: (False, 1.0)}  # instance still enabled
    listed = runner.invoke(app, ["data", "pairs", "list", "--db", sqlite_url])
    assert "binance ETH/BTC disabled" in listed.output
    runner.invoke(app, ["data", "pairs", "enable", "ETH/BTC", "--db", sqlite_url])
    assert live_states(sqlite_url, "binance") == {inst.id: (True, 1.0)}


def test_an_unknown_pair_is_one_error(sqlite_url) -> None:
    add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {})
    out = runner.invoke(app, ["data", "pairs", "disable", "XRP/BTC", "--db", sqlite_url])
    assert isinstance(out.exception, ValueError)
    assert "no pair XRP/BTC on binance" in str(out.exception) and "known: ETH/BTC" in str(
        out.exception
    )
