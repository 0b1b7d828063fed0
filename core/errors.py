"""The one exception type for a user's mistake.

A UserError's message says what is wrong, where (the option, file, row or instance) and how to
fix it; the command line prints it as one `error: ...` line and exits 2. Any other exception is a
bug in raytrader and is reported with its traceback. It stays a ValueError: the mistakes it marks
are bad values, and code that guards a conversion with `except ValueError` keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user asked for or supplied; the message says what, where and how to fix."""
