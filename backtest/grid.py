"""Parameter grids for `backtest --all --grid lookback=10,20,50 sl_pct=0.01,0.02`.

A grid maps parameter names to lists of values (kept as strings: the strategy's own parameter
types coerce them, exactly like `--param`). Expanding a grid over an instance gives one parameter
set per combination, the grid values overriding the instance's own values.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from core.errors import UserError


class GridError(UserError):
    """A malformed --grid argument; the message says which one and how to write it."""


_EXAMPLE = "e.g. --grid lookback=10,20,50 --grid sl_pct=0.01,0.02"


def parse_grid(items: Iterable[str] | None) -> dict[str, list[str]]:
    """['lookback=10,20', 'sl_pct=0.01,0.02'] -> {'lookback': ['10', '20'], 'sl_pct': [...]}.

    An item may hold several space-separated `key=v1,v2` pairs ("lookback=10,20 sl_pct=0.01"),
    so a quoted grid works as well as a repeated option. Order of keys is kept; duplicate
    values within a key are dropped (they would only repeat the same run).
    """
    grid: dict[str, list[str]] = {}
    for item in items or ():
        for pair in str(item).split():
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise GridError(f"--grid {pair!r} is not of the form key=v1,v2,...; {_EXAMPLE}")
            values = [v.strip() for v in raw.split(",")]
            if not raw.strip() or any(not v for v in values):
                raise GridError(
                    f"--grid {pair!r}: empty value for {key!r}; list values separated by "
                    f"commas without spaces, {_EXAMPLE}"
                )
            if key in grid:
                raise GridError(
                    f"--grid names parameter {key!r} twice; give all its values once, "
                    f"e.g. --grid {key}={','.join(grid[key] + values)}"
                )
            grid[key] = list(dict.fromkeys(values))
    return grid


def grid_size(grid: dict[str, list[str]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def expand_params(base: dict[str, Any], grid: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every combination of the grid values applied over `base` (base itself when grid is empty)."""
    if not grid:
        return [dict(base)]
    keys = list(grid)
    combos = itertools.product(*(grid[k] for k in keys))
    return [{**base, **dict(zip(keys, combo, strict=True))} for combo in combos]


def restrict_grid(grid: dict[str, list[str]], known: Iterable[str]) -> dict[str, list[str]]:
    """The part of `grid` whose keys are parameters in `known` (one strategy's parameters)."""
    names = set(known)
    return {k: v for k, v in grid.items() if k in names}


def check_grid_keys(grid: dict[str, list[str]], families: dict[str, Iterable[str]]) -> None:
    """Raise GridError for a grid key that none of the selected strategy families has.

    `families` maps a family name to its parameter names. A key known to some families only
    applies to those (a grid over `lookback` leaves families without `lookback` unchanged).
    """
    everything: set[str] = set()
    for names in families.values():
        everything.update(names)
    unknown = [k for k in grid if k not in everything]
    if unknown:
        listing = "; ".join(
            f"{family}: {', '.join(sorted(names)) or 'no parameters'}"
            for family, names in sorted(families.items())
        )
        raise GridError(
            f"--grid parameter {unknown[0]!r} belongs to none of the selected strategies "
            f"({listing or 'no strategies selected'}); check the spelling with "
            "`cli.py strategies list`"
        )


def check_grid_values(grid: dict[str, list[str]], classes: dict[str, type]) -> None:
    """Raise GridError for a grid value that a family cannot take (`lookback=abc`), before any
    run: otherwise every combination would be stored as a failed run.

    `classes` maps a family to its Strategy class (None when it could not be loaded)."""
    from strategies.base import coerce_param

    for family, cls in classes.items():
        if cls is None:
            continue
        known = cls.parameters()
        for key, values in restrict_grid(grid, known).items():
            for value in values:
                try:
                    coerce_param(family, key, value, known[key][0])
                except ValueError as exc:
                    raise GridError(f"--grid {key}={','.join(values)}: {exc}") from None
