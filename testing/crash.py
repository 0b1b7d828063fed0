"""The crash hook of the kill -9 recovery tests, and nothing else.

Production code calls `crash_point(name)` at the moments where a crash would hurt most (an order
stored but not sent, sent but its answer not stored, a batch of writes half done). In normal runs
the environment variable is unset and the call returns at once. The recovery tests set
RAYTRADER_CRASH_AT="<name>:<n>[,<name>:<n>...]": the n-th time the process passes point `name`
it kills itself with SIGKILL, as a power cut or `kill -9` would, and the test restarts it and
compares the database with the exchange (tests/live/ops/test_recovery.py).

A point passed by many processes (the actor of every restarted session) would kill each of them;
with RAYTRADER_CRASH_ONCE=<directory> it kills only the first process that reaches it, which
leaves a file there saying so (one kill per test, however many restarts follow).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "RAYTRADER_CRASH_AT"
ONCE_ENV = "RAYTRADER_CRASH_ONCE"
_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die by SIGKILL on the n-th pass of point `name` if RAYTRADER_CRASH_AT asks for it."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    _passes[name] = _passes.get(name, 0) + 1
    for item in spec.split(","):
        point, _, n = item.partition(":")
        if point == name and str(_passes[name]) == n.strip() and _first(f"{name}-{n.strip()}"):
            os.kill(os.getpid(), signal.SIGKILL)


def _first(point: str) -> bool:
    """True unless RAYTRADER_CRASH_ONCE names a directory where this point already killed."""
    once = os.environ.get(ONCE_ENV)
    if not once:
        return True
    try:
        with open(os.path.join(once, point), "x"):
            return True
    except FileExistsError:
        return False
