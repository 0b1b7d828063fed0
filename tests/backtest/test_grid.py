"""--grid parsing and expansion."""

from __future__ import annotations

import pytest

from backtest.grid import (
    GridError,
    check_grid_keys,
    expand_params,
    grid_size,
    parse_grid,
    restrict_grid,
)


def test_parse_repeated_and_space_separated_items_give_the_same_grid():
    repeated = parse_grid(["lookback=10,20,50", "sl_pct=0.01,0.02"])
    quoted = parse_grid(["lookback=10,20,50 sl_pct=0.01,0.02"])
    assert repeated == quoted == {"lookback": ["10", "20", "50"], "sl_pct": ["0.01", "0.02"]}
    assert grid_size(repeated) == 6


def test_parse_drops_repeated_values_and_empty_input_is_empty_grid():
    assert parse_grid(["lookback=10,10,20"]) == {"lookback": ["10", "20"]}
    assert parse_grid(None) == {} and parse_grid([]) == {}
    assert grid_size({}) == 1


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("lookback", "key=v1,v2"),
        ("=10,20", "key=v1,v2"),
        ("lookback=", "empty value"),
        ("lookback=10,,20", "empty value"),
    ],
)
def test_malformed_items_raise_a_grid_error_naming_the_item(item, needle):
    with pytest.raises(GridError) as info:
        parse_grid([item])
    assert needle in str(info.value) and repr(item) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_key_given_twice_is_an_error_that_shows_the_merged_form():
    with pytest.raises(GridError, match=r"lookback=10,20"):
        parse_grid(["lookback=10", "lookback=20"])


def test_expand_is_the_cartesian_product_over_the_base_params():
    base = {"lookback": 5, "allow_short": True}
    grid = {"lookback": ["10", "20"], "sl_pct": ["0.01", "0.02", "0.03"]}
    combos = expand_params(base, grid)
    # grid values override the base, the last grid key varies fastest
    assert combos == [
        {"lookback": "10", "allow_short": True, "sl_pct": "0.01"},
        {"lookback": "10", "allow_short": True, "sl_pct": "0.02"},
        {"lookback": "10", "allow_short": True, "sl_pct": "0.03"},
        {"lookback": "20", "allow_short": True, "sl_pct": "0.01"},
        {"lookback": "20", "allow_short": True, "sl_pct": "0.02"},
        {"lookback": "20", "allow_short": True, "sl_pct": "0.03"},
    ]
    assert base == {"lookback": 5, "allow_short": True}  # not modified
    alone = expand_params(base, {})
    assert alone == [{"lookback": 5, "allow_short": True}]
    alone[0]["lookback"] = 99  # a copy: changing it leaves the base alone
    assert base["lookback"] == 5


def test_restrict_and_check_keys_per_family():
    grid = {"lookback": ["10"], "range_n": ["5"]}
    assert restrict_grid(grid, ["lookback", "sl_pct"]) == {"lookback": ["10"]}
    # each key known to some family: accepted (returns nothing, raises nothing)
    assert check_grid_keys(grid, {"a": ["lookback"], "b": ["range_n"]}) is None
    with pytest.raises(GridError) as info:
        check_grid_keys(grid, {"a": ["lookback", "sl_pct"], "c": []})
    assert str(info.value) == (
        "--grid parameter 'range_n' belongs to none of the selected strategies "
        "(a: lookback, sl_pct; c: no parameters); check the spelling with "
        "`cli.py strategies list`"
    )
    with pytest.raises(GridError, match=r"\(no strategies selected\)"):
        check_grid_keys(grid, {})
