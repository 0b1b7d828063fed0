"""The eval table says n/a, with the reason, where a Sortino is ill-conditioned."""

from __future__ import annotations

from rich.console import Console

from ml.evalrun import eval_table
from ml.evaluate import few_losing_days


def rendered(row: dict) -> str:
    console = Console(width=250, record=True)
    console.print(eval_table([row]))
    return console.export_text()


def row(**changes) -> dict:
    base = {
        "instance_id": 83,
        "method": "size",
        "trades_without": 566,
        "trades_with": 566,
        "sortino_without": -5.71,
        "sortino_with": -6.27,
        "sortino_with_replay": 13.66,
        "sortino_placebo_mean": -4.5,
        "sortino_placebo_p95": -3.4,
        "sortino_random_skip_p95": -5.7,
        "improved": False,
    }
    return base | changes


def test_ill_conditioned_sortinos_are_na_with_the_reason() -> None:
    text = rendered(
        row(
            sortino_with_replay=float("nan"),
            replay_note="n/a (equity <= 0)",
            placebo_note="n/a (p95 seed: 2 losing days)",
            placebo_mean_note="n/a (1 of 5 seeds under 5 losing days)",
            random_note="1 of 20 seeds left out (equity <= 0)",
            with_note=few_losing_days({"losing_days": 3}),
        )
    )
    assert "n/a (equity <= 0)" in text and "13.66" not in text
    assert "n/a (p95 seed: 2 losing days)" in text and "-3.40" not in text
    assert "n/a (1 of 5 seeds under 5 losing days)" in text and "-4.50" not in text
    assert "-5.70 (1 of 20 seeds left out (equity <= 0))" in text
    assert "n/a (3 losing days)" in text and "-6.27" not in text
    # well-conditioned rows print their numbers as before
    plain = rendered(row(replay_note="", placebo_note="", random_note="", with_note=""))
    assert "13.66" in plain and "-6.27" in plain and "n/a" not in plain
    assert few_losing_days({"losing_days": 5}) == "" and few_losing_days({}) == ""
