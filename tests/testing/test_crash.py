"""testing/crash.py: the n-th pass of a point kills the process; with a once-directory only the
first process that reaches it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from testing.crash import CRASH_ENV, ONCE_ENV

ROOT = Path(__file__).resolve().parents[2]
PASS_THREE_TIMES = (
    "from testing.crash import crash_point\n"
    "for i in range(3):\n"
    "    crash_point('flush')\n"
    "    print(i, flush=True)\n"
)


def run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PASS_THREE_TIMES],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_nth_pass_kills_and_without_the_variable_nothing_happens() -> None:
    killed = run({CRASH_ENV: "flush:2"})
    assert killed.returncode == -signal.SIGKILL
    assert killed.stdout.split() == ["0"]
    assert run({CRASH_ENV: ""}).stdout.split() == ["0", "1", "2"]


def test_with_a_once_directory_only_the_first_process_dies(tmp_path: Path) -> None:
    env = {CRASH_ENV: "flush:2", ONCE_ENV: str(tmp_path)}
    assert run(env).returncode == -signal.SIGKILL
    second = run(env)
    assert second.returncode == 0
    assert second.stdout.split() == ["0", "1", "2"]
    # without the directory every process dies (the check above can fail)
    assert run({CRASH_ENV: "flush:2"}).returncode == -signal.SIGKILL
