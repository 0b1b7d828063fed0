"""Finding strategies by name or file spec, and the errors for every way that goes wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from strategies.base import Strategy, StrategyError
from strategies.registry import BUILTIN, make_strategy, parse_param_args, strategy_class

FAMILIES = {
    "orb": "open_range_breakout",
    "volatility_breakout": "volatility_breakout",
    "trend_day": "trend_day",
    "reversal_breakout": "reversal_breakout",
    "sr_breakout": "support_resistance_breakout",
}

USER_FILE = """
from dataclasses import dataclass
import pandas as pd
from strategies.base import Strategy

@dataclass(frozen=True)
class P:
    n: int = 3

class Mine(Strategy):
    name = "mine"
    Params = P

    def signals(self, bars):
        return pd.DataFrame({"enter_long": bars["close"] > bars["close"].shift(self.params.n)})

class Helper:
    pass
"""


def test_every_family_is_registered_with_its_name() -> None:
    assert {name: cls.family for name, cls in BUILTIN.items()} == FAMILIES
    for name, cls in BUILTIN.items():
        assert strategy_class(name) is cls
        assert cls.intervals == ("1m", "3m", "5m", "15m", "1h")
        assert cls.summary


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_defaults_build_and_every_family_trades_both_sides(name: str) -> None:
    params = BUILTIN[name].parameters()
    assert params["allow_short"] == (bool, False)
    strategy = make_strategy(name, {"allow_short": "true"})
    assert strategy.allows_short() and strategy.allows_long()
    assert strategy.exit_rules().sl_pct == 0.01


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(StrategyError, match=r"unknown strategy 'orbb'; built-in strategies: orb, "):
        strategy_class("orbb")


def test_unknown_and_bad_parameters_through_make_strategy() -> None:
    with pytest.raises(StrategyError, match=r"'orb': unknown parameter 'range'"):
        make_strategy("orb", {"range": "30"})
    with pytest.raises(StrategyError, match=r"parameter range_minutes='half' is not a valid int"):
        make_strategy("orb", {"range_minutes": "half"})
    with pytest.raises(StrategyError, match=r"parameter lookback must be greater than swing"):
        make_strategy("reversal_breakout", {"lookback": "3", "swing": "5"})


def test_parse_param_args() -> None:
    assert parse_param_args(["lookback=20", " sl_pct = 0.01 "]) == {
        "lookback": "20",
        "sl_pct": "0.01",
    }
    with pytest.raises(StrategyError, match="not of the form key=value"):
        parse_param_args(["lookback"])
    with pytest.raises(StrategyError, match="not of the form key=value"):
        parse_param_args(["=3"])


def test_user_file_loads_and_runs(tmp_path: Path) -> None:
    file = tmp_path / "mine.py"
    file.write_text(USER_FILE)
    cls = strategy_class(f"{file}:Mine")
    assert issubclass(cls, Strategy) and cls.name == "mine"
    assert make_strategy(f"{file}:Mine", {"n": "5"}).params.n == 5


@pytest.mark.parametrize(
    "spec_suffix,message",
    [
        (":Nope", r"has no Strategy subclass named 'Nope'; Strategy subclasses in it: Mine"),
        (":Helper", r"has no Strategy subclass named 'Helper'"),
        (":", r"names no class; use path/to/file.py:ClassName"),
        ("", r"names no class; use .*mine.py:ClassName"),
    ],
)
def test_bad_file_specs(tmp_path: Path, spec_suffix: str, message: str) -> None:
    file = tmp_path / "mine.py"
    file.write_text(USER_FILE)
    with pytest.raises(StrategyError, match=message):
        strategy_class(f"{file}{spec_suffix}")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match=r"strategy file '.*nothere.py' not found"):
        strategy_class(f"{tmp_path / 'nothere.py'}:X")


def test_file_that_fails_to_import(tmp_path: Path) -> None:
    file = tmp_path / "broken.py"
    file.write_text("import not_a_module_anywhere\n")
    with pytest.raises(StrategyError, match=r"failed to load: ModuleNotFoundError"):
        strategy_class(f"{file}:X")
    file.write_text("def (:\n")
    with pytest.raises(StrategyError, match=r"failed to load: SyntaxError"):
        strategy_class(f"{file}:X")


@pytest.mark.parametrize(
    "body,message",
    [
        (
            "class X(Strategy):\n    Params = P\n    def signals(self, b): return b",
            "set the class attribute name",
        ),
        ("class X(Strategy):\n    name = 'x'\n    Params = P", "implement signals"),
        (
            "class X(Strategy):\n    name = 'x'\n    Params = int\n    def signals(self, b): return b",
            "Params must be a @dataclass",
        ),
        (
            "class X(Strategy):\n    name = 'x'\n    Params = Q\n    def signals(self, b): return b",
            "every parameter needs a default; missing for 'm'",
        ),
    ],
)
def test_incomplete_user_class(tmp_path: Path, body: str, message: str) -> None:
    header = (
        "from dataclasses import dataclass\nfrom strategies.base import Strategy\n"
        "@dataclass(frozen=True)\nclass P:\n    n: int = 1\n"
        "@dataclass(frozen=True)\nclass Q:\n    m: int\n"
    )
    file = tmp_path / "user.py"
    file.write_text(header + body + "\n")
    with pytest.raises(StrategyError, match=message):
        strategy_class(f"{file}:X")


def test_two_files_with_the_same_stem_do_not_collide(tmp_path: Path) -> None:
    for folder, name in (("a", "first"), ("b", "second")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mine.py").write_text(USER_FILE.replace('"mine"', f'"{name}"'))
    assert strategy_class(f"{tmp_path / 'a' / 'mine.py'}:Mine").name == "first"
    assert strategy_class(f"{tmp_path / 'b' / 'mine.py'}:Mine").name == "second"
