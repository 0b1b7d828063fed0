"""The strategy API: parameter coercion, errors, compute() normalisation, exit rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from strategies.base import ExitRules, Strategy, StrategyError
from tests.strategies.frames import bars_from


@dataclass(frozen=True)
class ToyParams:
    n: int = 2
    sl_pct: float = 0.01
    tp_pct: float = 0.0
    max_bars: int = 0
    allow_long: bool = True
    allow_short: bool = False
    label: str = "x"
    limit: float | None = None


class Toy(Strategy):
    name = "toy"
    Params = ToyParams

    def validate(self) -> None:
        self.require(self.params.n >= 1, "n", ">= 1")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        up = bars["close"] > bars["close"].shift(self.params.n)  # NaN compare -> False
        return pd.DataFrame(
            {"enter_long": up, "enter_short": ~up, "stop_distance": bars["close"] * 0.1},
            index=bars.index,
        )


BARS = bars_from([2, 3, 4, 3, 2], [0, 1, 2, 1, 0], [1, 2, 3, 2, 1])


def test_params_coerced_from_cli_strings() -> None:
    toy = Toy(n="3", sl_pct="0.02", allow_short="yes", label=5, limit="1.5")
    assert toy.params == ToyParams(n=3, sl_pct=0.02, allow_short=True, label="5", limit=1.5)
    assert Toy().params == ToyParams()


@pytest.mark.parametrize(
    "text,expected", [("1", True), ("off", False), ("TRUE", True), ("no", False)]
)
def test_bool_spellings(text: str, expected: bool) -> None:
    assert Toy(allow_short=text).params.allow_short is expected


def test_unknown_parameter_names_the_known_ones() -> None:
    with pytest.raises(
        StrategyError, match=r"unknown parameter 'lookbak'.*its parameters: n, sl_pct"
    ):
        Toy(lookbak=3)


@pytest.mark.parametrize(
    "key,value,kind",
    [
        ("n", "abc", "int"),
        ("n", 2.5, "int"),
        ("sl_pct", "nan", "float"),
        ("allow_short", "maybe", "bool"),
    ],
)
def test_bad_type_says_which_parameter(key: str, value: object, kind: str) -> None:
    with pytest.raises(StrategyError, match=rf"parameter {key}=.* is not a valid {kind}"):
        Toy(**{key: value})


def test_bad_value_from_validate() -> None:
    with pytest.raises(StrategyError, match=r"'toy': parameter n must be >= 1, got 0"):
        Toy(n=0)


def test_strategy_error_is_a_value_error() -> None:
    assert issubclass(StrategyError, ValueError)


def test_compute_fills_every_column_as_bool_and_masks_shorts() -> None:
    out = Toy().compute(BARS)
    assert list(out.columns) == [
        "enter_long",
        "exit_long",
        "enter_short",
        "exit_short",
        "stop_distance",
    ]
    assert out["enter_long"].tolist() == [False, False, True, False, False]
    assert not out["enter_short"].any()  # allow_short=False
    assert not out["exit_long"].any() and out["exit_long"].dtype == bool
    assert out["stop_distance"].dtype == np.float64


def test_compute_allow_short_and_no_long() -> None:
    out = Toy(allow_short=True, allow_long=False).compute(BARS)
    assert not out["enter_long"].any()
    assert out["enter_short"].tolist() == [True, True, False, True, True]


def test_compute_rejects_a_misaligned_frame() -> None:
    class Bad(Toy):
        def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"enter_long": [True]})

    with pytest.raises(StrategyError, match="indexed like the bars"):
        Bad().compute(BARS)


def test_exit_rules_from_params() -> None:
    assert Toy().exit_rules() == ExitRules(sl_pct=0.01, tp_pct=None, max_bars=None)
    assert Toy(tp_pct=0.03, max_bars=12).exit_rules() == ExitRules(0.01, 0.03, 12, False)

    class Session(Toy):
        session_exit = True

    assert Session().exit_rules().session_end is True


def test_parameters_and_describe() -> None:
    params = Toy.parameters()
    assert params["n"] == (int, 2)
    assert params["limit"] == (float | None, None)
    assert Toy(n=4).describe().startswith("toy(n=4, sl_pct=0.01")
    assert Toy().param_dict()["label"] == "x"


def test_entry_limit_is_one_without_pyramiding_and_max_entries_with_it() -> None:
    assert Toy().entry_limit() == 1
    pyramid = type("Pyramid", (Toy,), {"pyramiding": True})
    assert pyramid().entry_limit() == 3  # the default max_entries
    assert type("P5", (pyramid,), {"max_entries": 5})().entry_limit() == 5
    # max_entries only matters with pyramiding
    assert type("NoPyr", (Toy,), {"max_entries": 0})().entry_limit() == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_bad_max_entries_fails_when_built(bad: object) -> None:
    broken = type("Broken", (Toy,), {"pyramiding": True, "max_entries": bad})
    with pytest.raises(StrategyError, match="max_entries must be an integer >= 1"):
        broken()
