"""`backtest --all --separate`: run directories that are complete or absent, never half-written.

A driver can die at any moment (SIGKILL, out of memory, power). So:
- while runs finish, a run's equity curve (the one file the database cannot give back) is staged
  as runs/.equity/<run dir>.csv, written to a temporary name and renamed (os.replace is atomic);
- at the end each run directory is assembled in runs/.tmp-<run dir>-<pid>/ and renamed into
  place; a directory that exists already is first renamed aside (.old-...) and then removed, so
  a reader sees the old directory, or for an instant none, or the new one, never a mixture;
- results.csv and the combined trades CSV are replaced the same way (temporary name, rename);
- the next start removes what a dead driver left (.tmp-*, .old-*, *.partial) and keeps staged
  equity curves of runs that were stored, so their directories still get equity.csv.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

STAGING = ".equity"
EQUITY_NAME = "equity.csv"


def runs_root(out: Path) -> Path:
    return Path(out) / "runs"


def clean_leftovers(out: Path) -> list[Path]:
    """Remove the temporary files and directories of a driver that died; returns them."""
    removed = []
    if Path(out).is_dir():  # results.csv / trades.csv being replaced when the driver died
        for partial in Path(out).glob(".*.partial"):
            partial.unlink(missing_ok=True)
            removed.append(partial)
    root = runs_root(out)
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if entry.name.startswith((".tmp-", ".old-")):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
            removed.append(entry)
    staging = root / STAGING
    if staging.is_dir():
        for partial in staging.glob("*.partial"):
            partial.unlink(missing_ok=True)
            removed.append(partial)
    return removed


def stage_equity(out: Path, name: str, equity: pd.DataFrame) -> Path:
    """Keep a run's equity curve until its directory is written (atomic: temp name + rename)."""
    staging = runs_root(out) / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    final = staging / f"{name}.csv"
    partial = staging / f"{name}.csv.{os.getpid()}.partial"
    equity.to_csv(partial, index=False)
    os.replace(partial, final)
    return final


def publish(out: Path, name: str, write_files: Callable[[Path], None]) -> Path:
    """Write a run directory through `write_files(folder)` in a temporary directory, add the
    staged or earlier equity.csv, then rename it into place."""
    root = runs_root(out)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    temp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    write_files(temp)
    staged = root / STAGING / f"{name}.csv"
    if staged.is_file():
        shutil.copyfile(staged, temp / EQUITY_NAME)  # removed once the directory is in place
    elif (final / EQUITY_NAME).is_file():
        shutil.copyfile(final / EQUITY_NAME, temp / EQUITY_NAME)  # from an earlier invocation
    if final.exists():
        aside = root / f".old-{name}-{os.getpid()}"
        os.replace(final, aside)
        os.replace(temp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(temp, final)
    staged.unlink(missing_ok=True)
    return final


def finish(out: Path) -> None:
    """Remove the staging directory once it is empty (every staged curve was published)."""
    staging = runs_root(out) / STAGING
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()
