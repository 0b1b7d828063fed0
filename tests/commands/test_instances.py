"""`cli.py strategies add|enable|disable|list-instances|load`."""

from typer.testing import CliRunner

from cli import app
from store.instances import list_instances, set_enabled, set_weight
from strategies.base import StrategyError
from strategies.registry import BUILTIN

runner = CliRunner()


def _ok(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_add_enable_disable_list(sqlite_url):
    out = _ok(
        "strategies",
        "add",
        "sr_breakout",
        "-s",
        "ETH/BTC",
        "-i",
        "5m",
        "-p",
        "lookback=30",
        "--db",
        sqlite_url,
    )
    assert "instance 1" in out and '"lookback":30' in out
    # defaults are stored too, so naming a default value gives the same instance
    _ok(
        "strategies",
        "add",
        "sr_breakout",
        "-s",
        "ETH/BTC",
        "-i",
        "5m",
        "-p",
        "lookback=30",
        "-p",
        "sl_pct=0.01",
        "--db",
        sqlite_url,
    )
    assert len(list_instances(sqlite_url)) == 1
    _ok("strategies", "disable", "1", "--db", sqlite_url)
    assert list_instances(sqlite_url, enabled_only=True) == []
    _ok("strategies", "enable", "1", "--db", sqlite_url)
    assert "1 instances" in _ok(
        "strategies", "list-instances", "--enabled-only", "--db", sqlite_url
    )


def test_bad_parameter_is_a_user_error(sqlite_url):
    result = runner.invoke(
        app,
        [
            "strategies",
            "add",
            "sr_breakout",
            "-s",
            "A/B",
            "-i",
            "5m",
            "-p",
            "nope=1",
            "--db",
            sqlite_url,
        ],
    )
    assert isinstance(result.exception, StrategyError)
    assert list_instances(sqlite_url) == []


def test_load_yaml_every_family_on_every_interval(sqlite_url, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "exchange: binance\nfamilies: all\npairs:\n  - {symbol: ETH/BTC, intervals: [5m, 1h]}\n"
        "instances:\n  - {family: sr_breakout, symbol: LTC/BTC, interval: 15m, params: {lookback: 10}, weight: 2}\n"
    )
    assert f"{2 * len(BUILTIN) + 1} instances" in _ok(
        "strategies", "load", str(spec), "--db", sqlite_url
    )
    assert "(0 new, 0 re-enabled)" in _ok("strategies", "load", str(spec), "--db", sqlite_url)
    [ltc] = list_instances(sqlite_url, symbol="LTC/BTC")
    assert ltc.weight == 2 and ltc.params["lookback"] == 10


def test_load_is_declarative_after_weights_disabled_instances(sqlite_url, tmp_path):
    """`weights` sets enabled = weight > 0; loading the file again turns them back on."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "families: [sr_breakout]\npairs:\n  - {symbol: ETH/BTC, intervals: [5m, 1h]}\n"
        "instances:\n"
        "  - {family: sr_breakout, symbol: LTC/BTC, interval: 15m, weight: 0.5}\n"
        "  - {family: sr_breakout, symbol: ADA/BTC, interval: 15m, enabled: false}\n"
    )
    _ok("strategies", "load", str(spec), "--db", sqlite_url)
    by_symbol = {(i.symbol, i.interval): i for i in list_instances(sqlite_url)}
    assert not by_symbol[("ADA/BTC", "15m")].enabled  # the file's own enabled: false
    # what `cli.py weights` does to losers: weight 0 and disabled
    for inst in list_instances(sqlite_url):
        set_weight(sqlite_url, inst.id, 0.0)
        set_enabled(sqlite_url, inst.id, False)
    out = _ok("strategies", "load", str(spec), "--db", sqlite_url)
    assert "4 instances in s.yaml (0 new, 3 re-enabled)" in out
    after = {(i.symbol, i.interval): i for i in list_instances(sqlite_url)}
    assert [k for k, i in after.items() if not i.enabled] == [("ADA/BTC", "15m")]
    assert after[("LTC/BTC", "15m")].weight == 0.5  # explicit weight restored
    assert after[("ETH/BTC", "5m")].weight == 0.0  # no weight in the file: left as it was
    # `add` stays idempotent and does not touch an existing instance
    _ok("strategies", "disable", str(after[("ETH/BTC", "5m")].id), "--db", sqlite_url)
    _ok("strategies", "add", "sr_breakout", "-s", "ETH/BTC", "-i", "5m", "--db", sqlite_url)
    assert len(list_instances(sqlite_url)) == 4
    assert not list_instances(sqlite_url, symbol="ETH/BTC", interval="5m")[0].enabled


def test_load_rejects_a_bad_enabled_flag(sqlite_url, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "instances:\n  - {family: sr_breakout, symbol: LTC/BTC, interval: 15m, enabled: maybe}\n"
    )
    result = runner.invoke(app, ["strategies", "load", str(spec), "--db", sqlite_url])
    assert result.exit_code != 0
    assert "enabled must be true or false" in str(result.exception)


def test_bad_yaml_is_one_line_naming_where(sqlite_url, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs:\n  - symbol: [ETH/BTC\n")
    result = runner.invoke(app, ["strategies", "load", str(bad), "--db", sqlite_url])
    message = str(result.exception)
    assert "not valid YAML" in message and "at line 3, column 1" in message
    assert "\n" not in message
    assert list_instances(sqlite_url) == []
