"""One clear line for user mistakes instead of a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

_stderr = Console(stderr=True, soft_wrap=True)  # one line, never wrapped at 80 columns


class UserError(ValueError):
    """A mistake in what the user asked for or supplied; the message says what, where and how to fix."""


@contextlib.contextmanager
def report_user_errors(debug: bool = False) -> Iterator[None]:
    """Print `error: <message>` and exit 2 for user errors (ValueError and its kin)."""
    try:
        yield
    except (
        ValueError,
        FileNotFoundError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
    ) as exc:
        if debug:
            raise
        _stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None


def fail(message: str) -> typer.Exit:
    """Raise-able: `raise fail("...")` prints the message and exits 2."""
    _stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(2)
