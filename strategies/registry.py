"""Find strategies by name or by `path/to/file.py:ClassName`."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from strategies.base import Strategy, StrategyError
from strategies.orb import OpenRangeBreakout
from strategies.reversal_breakout import ReversalBreakout
from strategies.sr_breakout import SRBreakout
from strategies.trend_day import TrendDay
from strategies.volatility_breakout import VolatilityBreakout

# Built-in families by name. Each family module registers its classes here.
BUILTIN: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (OpenRangeBreakout, VolatilityBreakout, TrendDay, ReversalBreakout, SRBreakout)
}


def strategy_class(spec: str) -> type[Strategy]:
    """The class for a built-in name or a `file.py:ClassName` spec."""
    spec = spec.strip()
    if ":" in spec and spec.split(":", 1)[0].endswith(".py"):
        path, class_name = spec.rsplit(":", 1)
        if not class_name.strip():
            raise StrategyError(
                f"strategy spec {spec!r} names no class; use path/to/file.py:ClassName"
            )
        return _load_from_file(path, class_name.strip())
    if spec.endswith(".py"):
        raise StrategyError(
            f"strategy spec {spec!r} names no class; use {spec}:ClassName (the Strategy subclass)"
        )
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
        key = key.strip()
        if key in params:  # which one wins would be a guess: say so
            raise StrategyError(
                f"parameter {key!r} given twice ({key}={params[key]}, {key}={value.strip()}); "
                f"give --param {key}=... once"
            )
        params[key] = value.strip()
    return params


def _load_from_file(path: str, class_name: str) -> type[Strategy]:
    file = Path(path)
    if not file.is_file():
        raise StrategyError(f"strategy file {path!r} not found (spec {path}:{class_name})")
    # One module per resolved path: two user files with the same stem must not collide.
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]
    module_name = f"user_strategy_{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise StrategyError(f"cannot load strategy file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses need the module registered while executing
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user file with a bug: say where, not a traceback
        sys.modules.pop(module_name, None)
        raise StrategyError(
            f"strategy file {path!r} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        found = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, Strategy) and value is not Strategy
        )
        hint = f"; Strategy subclasses in it: {', '.join(found)}" if found else ""
        raise StrategyError(f"{path!r} has no Strategy subclass named {class_name!r}{hint}")
    _check_user_class(cls, f"{path}:{class_name}")
    return cls


def _check_user_class(cls: type[Strategy], spec: str) -> None:
    """The few things the engine relies on, checked once at load with a message that says how."""
    if not cls.name:
        raise StrategyError(f"{spec}: set the class attribute name, e.g. name = 'my_strategy'")
    if cls.signals is Strategy.signals:
        raise StrategyError(f"{spec}: implement signals(self, bars) -> DataFrame")
    if not dataclasses.is_dataclass(cls.Params):
        raise StrategyError(f"{spec}: Params must be a @dataclass(frozen=True) class")
    missing = [
        f.name
        for f in dataclasses.fields(cls.Params)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise StrategyError(f"{spec}: every parameter needs a default; missing for {missing[0]!r}")
