"""A user's mistake is one `error:` line and exit 2; anything else is a bug: traceback, exit 1."""

from __future__ import annotations

import sys

import pytest
from rich.table import Table

import cli
from commands.errors import BUG_HINT, report_user_errors
from core.errors import UserError
from store.validate import BarDataError


def run_main(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["cli.py", *args])
    monkeypatch.setenv("COLUMNS", "400")  # the one line is not wrapped by the console
    monkeypatch.delenv("RAYTRADER_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    return exit_.value.code


def test_a_user_mistake_exits_2_with_one_error_line(monkeypatch, capsys) -> None:
    code = run_main(monkeypatch, "strategies", "list", "--strategy", "nope")
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: unknown strategy 'nope'")
    assert "Traceback" not in err and BUG_HINT not in err


def test_a_library_value_error_inside_a_command_is_a_bug_with_its_traceback(
    monkeypatch, capsys
) -> None:
    def broken(*args, **kwargs):
        raise ValueError("broken inside rich")

    monkeypatch.setattr(Table, "add_row", broken)
    code = run_main(monkeypatch, "strategies", "list")
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err and "ValueError: broken inside rich" in err
    assert err.strip().splitlines()[-1] == BUG_HINT
    assert "error:" not in err


@pytest.mark.parametrize(
    "exc",
    [
        UserError("--cash -1 must be positive, e.g. --cash 10000"),
        BarDataError("bars.csv row 3: high below low; fix the row"),
        FileNotFoundError("bar file 'x.csv' not found"),
    ],
)
def test_user_errors_and_missing_files_are_one_line(capsys, exc: Exception) -> None:
    with pytest.raises(SystemExit) as exit_, report_user_errors():
        raise exc
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: {exc}\n"


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("column"), TypeError("x")])
def test_other_exceptions_are_bugs(capsys, exc: Exception) -> None:
    with pytest.raises(SystemExit) as exit_, report_user_errors():
        raise exc
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "Traceback" in err and type(exc).__name__ in err and BUG_HINT in err


def test_debug_shows_every_exception_as_raised() -> None:
    with pytest.raises(UserError), report_user_errors(debug=True):
        raise UserError("mistake")
    with pytest.raises(KeyError), report_user_errors(debug=True):
        raise KeyError("bug")


def test_keyboard_interrupt_and_exits_pass_through() -> None:
    with pytest.raises(KeyboardInterrupt), report_user_errors():
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as exit_, report_user_errors():
        raise SystemExit(0)
    assert exit_.value.code == 0


def test_live_start_up_errors_are_user_errors() -> None:
    from live.node import ReconcileError
    from live.ops.status import StatusError
    from live.setup import LiveSetupError
    from live.venues.ccxt_clients import rest_client

    assert all(
        issubclass(kind, UserError) for kind in (LiveSetupError, StatusError, ReconcileError)
    )
    with pytest.raises(UserError, match="unknown exchange 'nosuch'"):
        rest_client("nosuch")


# -- issue 24 §5: the last bad inputs, each one `error:` line, exit 2 and nothing written ------
BAD_INPUTS = [
    (["live", "--url", "not-a-url"], "--url 'not-a-url' is not an http(s) URL with a host"),
    (["live", "--url", "ftp://127.0.0.1:21"], "--url 'ftp://127.0.0.1:21' is not an http(s) URL"),
    (["live", "--url", "http://127.0.0.1:abc"], "--url 'http://127.0.0.1:abc' has no valid port"),
    (["live", "--cash", "inf"], "'inf' is not a positive, finite amount"),
    (["live", "--cash", "BTC=1,ETH"], "'ETH' is not QUOTE=AMOUNT"),
    (["live", "--cash-buffer", "1"], "--cash-buffer must be a fraction in [0, 1), got 1.0"),
    (["live", "--fee-bps", "-100"], "--fee-bps must be basis points in [0, 10000), got -100.0"),
    (["live", "--slippage-bps", "nan"], "--slippage-bps must be basis points in [0, 10000)"),
    (["live", "--duration", "-5"], "--duration must be seconds > 0"),
    (["live", "--min-notional", "inf"], "--min-notional must be a number >= 0"),
    (
        ["model", "experiment", "--kinds", "flaml", "--time-budget", "-1", "--strategies", "1"],
        "--time-budget must be seconds > 0 per model fit, got -1.0",
    ),
    (["model", "experiment", "--strategies", "-3"], "--strategies '-3' must be all or a count"),
    (["model", "eval", "--strategies", "-3"], "--strategies '-3' must be all or a count"),
    (["strategies", "disable", "-1"], "instance id '-1' is not an id (a whole number >= 1)"),
    (["strategies", "enable", "abc"], "instance id 'abc' is not an id (a whole number >= 1)"),
    (["strategies", "disable", "1"], "no database at "),
]


@pytest.mark.parametrize(("args", "says"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_the_last_bad_inputs_are_one_error_line_and_write_nothing(
    monkeypatch, capsys, tmp_path, args, says
) -> None:
    out = ["--out", str(tmp_path / "out")] if args[0] == "model" else []
    db = ["--db", f"sqlite:///{tmp_path / 'new.db'}"]
    code = run_main(monkeypatch, *args, *out, *db)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and says in err, err
    assert list(tmp_path.iterdir()) == []  # no database, no output directory


def test_without_the_url_check_a_bad_url_is_no_longer_this_error(
    monkeypatch, capsys, tmp_path
) -> None:
    """The broken case: the check removed, `live --url not-a-url` says something else (here,
    with an empty database, that no instance is enabled), so the test above can fail."""
    import commands.live

    monkeypatch.setattr(commands.live, "_check_url", lambda url: None)
    code = run_main(monkeypatch, "live", "--url", "not-a-url", "--db", f"sqlite:///{tmp_path}/x")
    err = capsys.readouterr().err
    assert code == 2 and "is not an http(s) URL" not in err


def test_enable_and_disable_still_take_a_valid_id(monkeypatch, capsys, tmp_path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'r.db'}"]
    args = ["strategies", "add", "sr_breakout", "--symbol", "ETH/BTC", "--interval", "5m"]
    with pytest.raises(SystemExit) as added:
        monkeypatch.setattr(sys, "argv", ["cli.py", *args, *db])
        cli.main()
    assert added.value.code in (0, None)
    for verb in ("disable", "enable"):
        monkeypatch.setattr(sys, "argv", ["cli.py", "strategies", verb, "1", *db])
        with pytest.raises(SystemExit) as done:
            cli.main()
        assert done.value.code in (0, None)
        assert f"instance 1 {verb}d" in capsys.readouterr().out
    assert run_main(monkeypatch, "strategies", "enable", "7", *db) == 2
    assert "no strategy instance with id 7" in capsys.readouterr().err


def test_live_status_of_an_exchange_the_database_never_saw(monkeypatch, capsys, tmp_path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'r.db'}"]
    args = ["strategies", "add", "sr_breakout", "--symbol", "ETH/BTC", "--interval", "5m"]
    monkeypatch.setattr(sys, "argv", ["cli.py", *args, *db])
    with pytest.raises(SystemExit):
        cli.main()
    capsys.readouterr()
    before = (tmp_path / "r.db").stat().st_size
    assert run_main(monkeypatch, "live", "status", "--exchange", "nosuch", *db) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --exchange 'nosuch': the database has no instance, order, trade or bar on "
        "that exchange (it knows: binance); check the spelling or leave --exchange out\n"
    )
    monkeypatch.setattr(sys, "argv", ["cli.py", "live", "status", "--exchange", "binance", *db])
    with pytest.raises(SystemExit) as known:
        cli.main()
    assert known.value.code in (0, None) and "open positions: 0" in capsys.readouterr().out
    assert (tmp_path / "r.db").stat().st_size == before
