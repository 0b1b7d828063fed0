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
