"""User mistakes as one clear line (exit 2); anything else is a bug: its traceback (exit 1)."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape

from core.errors import UserError

__all__ = ["BUG_HINT", "UserError", "report_user_errors"]

_stderr = Console(stderr=True, soft_wrap=True)  # one line, never wrapped at 80 columns

# A file the user named that is missing or unreadable is the user's to fix, not a bug: the
# operating system's message names the path.
_FILE_PROBLEMS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)

BUG_HINT = "this is a bug in raytrader, please report it with the traceback above"


@contextlib.contextmanager
def report_user_errors(debug: bool = False) -> Iterator[None]:
    """A UserError (or a file problem) prints `error: <message>` and exits 2; any other
    exception is a bug: its traceback and a hint to report it, exit 1. `debug` re-raises all."""
    try:
        yield
    except (UserError, *_FILE_PROBLEMS) as exc:
        if debug:
            raise
        _stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
    except Exception:
        if debug:
            raise
        traceback.print_exc()
        _stderr.print(f"[bold red]{BUG_HINT}[/]", highlight=False)
        raise SystemExit(1) from None
