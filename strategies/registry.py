"""Find strategies by name or by `path/to/file.py:ClassName`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from strategies.base import Strategy, StrategyError
from strategies.sr_breakout import SRBreakout

# Built-in families by name. Each family module registers its classes here.
BUILTIN: dict[str, type[Strategy]] = {cls.name: cls for cls in (SRBreakout,)}


def strategy_class(spec: str) -> type[Strategy]:
    """The class for a built-in name or a `file.py:ClassName` spec."""
    if ":" in spec and spec.split(":", 1)[0].endswith(".py"):
        return _load_from_file(*spec.rsplit(":", 1))
    try:
        return BUILTIN[spec]
    except KeyError:
        names = ", ".join(sorted(BUILTIN))
        raise StrategyError(
            f"unknown strategy {spec!r}; built-in strategies: {names}; "
            "or give a user strategy as path/to/file.py:ClassName"
        ) from None


def make_strategy(spec: str, params: dict[str, Any] | None = None) -> Strategy:
    return strategy_class(spec)(**(params or {}))


def parse_param_args(pairs: list[str]) -> dict[str, str]:
    """['lookback=20', 'sl_pct=0.01'] -> {'lookback': '20', 'sl_pct': '0.01'}."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StrategyError(
                f"parameter {pair!r} is not of the form key=value, e.g. lookback=20"
            )
        params[key.strip()] = value.strip()
    return params


def _load_from_file(path: str, class_name: str) -> type[Strategy]:
    file = Path(path)
    if not file.is_file():
        raise StrategyError(f"strategy file {path!r} not found (spec {path}:{class_name})")
    module_name = f"user_strategy_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise StrategyError(f"cannot load strategy file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses need the module registered while executing
    spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"{path!r} has no Strategy subclass named {class_name!r}")
    return cls
