"""Stable keys that identify a backtest run, so `backtest --all` can resume and never store twice.

A run key is a SHA-256 over everything that determines a run's outcome:
strategy family (plus, for a user strategy file, the file's content), exchange, symbol,
interval, the strategy's full parameter set as canonical JSON (defaults filled in, values coerced
to their types, so `lookback=20` given as text or as a default gives the same key), the data
range (first and last bar open time and the number of bars), the account settings of the
backtest (cash, fees, risk, ...) and ENGINE_VERSION.

ENGINE_VERSION combines backtest.run.ENGINE_VERSION (bump it whenever a change to the engine,
fill rules or metrics changes results) with KEY_LAYOUT: either bump gives every run a new key, so
`backtest --all` recomputes everything instead of skipping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.run import ENGINE_VERSION as _ENGINE

# The engine's own version (bumped by whoever changes the engine's results) plus this module's
# key layout: bump KEY_LAYOUT when the ingredients of a key change.
KEY_LAYOUT = "1"
ENGINE_VERSION = f"{_ENGINE}+keys{KEY_LAYOUT}"
# Account settings added after keys were first stored, with the value that leaves a run as it was:
# at that value a setting stays out of the key, so adding it does not recompute every stored run.
NEUTRAL_SETTINGS: dict[str, Any] = {"cash_buffer": 0.0}


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, floats in repr form: equal values give equal text."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(value: Any) -> Any:
    """Turn numpy scalars, tuples and dataclasses into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar -> python scalar
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _without_neutral(config: Any) -> Any:
    """The account settings as they go into a key: NEUTRAL_SETTINGS at their neutral value left
    out."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        return config
    fields = dataclasses.asdict(config)
    for name, neutral in NEUTRAL_SETTINGS.items():
        if name in fields and fields[name] == neutral:
            del fields[name]
    return fields


def strategy_fingerprint(family: str) -> str:
    """For `path/to/file.py:Class`, a hash of the file so editing the strategy re-runs it."""
    path, sep, _ = family.rpartition(":")
    if sep and path.endswith(".py"):
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError:
            return "missing"
    return ""


def data_range(bars: pd.DataFrame) -> tuple[int, int, int]:
    """(first bar open time in epoch ms, last bar open time in epoch ms, number of bars)."""
    if len(bars) == 0:
        return (0, 0, 0)
    first = int(bars.index[0].value // 1_000_000)
    last = int(bars.index[-1].value // 1_000_000)
    return (first, last, len(bars))


def run_key(
    family: str,
    exchange: str,
    symbol: str,
    interval: str,
    params: dict[str, Any],
    data: tuple[int, int, int],
    config: Any = None,
    engine_version: str = ENGINE_VERSION,
) -> str:
    """Hex SHA-256 identifying one backtest run (see the module docstring for what goes in)."""
    payload = {
        "family": family,
        "code": strategy_fingerprint(family),
        "exchange": exchange,
        "symbol": symbol,
        "interval": interval,
        "params": params,
        "data": list(data),
        "config": _without_neutral(config),
        "engine": engine_version,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
