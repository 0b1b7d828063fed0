"""`cli.py deploy` (commands/deploy.py): a step backtests the candidates up to the re-selection
time on Ray (stored runs skipped), chooses the rolling selection's newest weights and writes
prod.json atomically; a second step without new bars computes nothing; bad flags are one
`error:` line. Small data: four days of ETH/BTC 5m from the samples, four instances."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from commands.deploy import check_plan, loop, next_step, run_step, write_atomic
from live.ops.config_watch import read_entries
from tests.commands.test_errors import run_main
from tests.live.helpers import sample

FITNESS = (-100.0, -1e9, 3, 1.0, 2)  # min sortino, expectancy, trades, days, daily returns
CANDIDATES = [
    ("sr_breakout", {"lookback": 10}),
    ("sr_breakout", {"lookback": 30}),
    ("reversal_breakout", {}),
    ("volatility_breakout", {}),
]


@pytest.fixture
def stored(sqlite_url: str) -> str:
    """ETH/BTC 5m from 2018-01-10 04:55 to 2018-01-14 00:30 and the candidates; one of them
    disabled (not deployed: still a candidate)."""
    from store.bars import save_bars
    from store.instances import add_instance

    save_bars(sqlite_url, "binance", "ETH/BTC", "5m", sample(n=1100))
    for k, (family, params) in enumerate(CANDIDATES):
        add_instance(sqlite_url, family, "binance", "ETH/BTC", "5m", params, enabled=k != 1)
    return sqlite_url


def plan_of(url: str, tmp: Path, method: str = "inverse_vol"):
    return check_plan(
        url, "binance", tmp / "live" / "prod.json", tmp / "work", "1d", "4d", method, 10_000.0,
        FITNESS, (None, None, None), None,
    )  # fmt: skip


@pytest.mark.ray
def test_a_step_writes_the_newest_selection_and_a_second_computes_nothing(
    ray_shared, stored, tmp_path, monkeypatch, capsys
) -> None:
    from analysis.weights import (
        FitnessRule,
        compute_weights,
        load_split_trades,
        per_instance_metrics,
    )
    from store.bars import save_bars

    plan = plan_of(stored, tmp_path)
    said: list[str] = []
    first = run_step(plan, said.append)
    assert first.at == pd.Timestamp("2018-01-14", tz="UTC")  # the newest bar closed that day
    assert (first.runs, first.skipped, first.computed) == (4, 0, 4)  # the disabled one too
    written = json.loads(plan.out.read_text())
    assert written["exchange"] == "binance" and written["selected_at"] == "2018-01-14T00:00:00Z"
    # by hand through the other path: `weights`' rule on the trades that exited in the 4 days
    trades = load_split_trades(plan.work / "trades.csv", plan.work / "results.csv")
    exits = pd.to_datetime(trades["exit_time"], utc=True)
    window = trades[(exits >= pd.Timestamp("2018-01-10", tz="UTC")) & (exits < first.at)]
    keys = list(
        dict.fromkeys(
            zip(*(trades[c] for c in ("strategy", "symbol", "interval", "params")), strict=True)
        )
    )
    metrics = per_instance_metrics(window, keys, 10_000.0, FitnessRule(*FITNESS).minimum)
    expected = compute_weights(metrics, "inverse_vol", FitnessRule(*FITNESS))
    by_hand = {
        (r["strategy"], json.loads(r["params"]).get("lookback")): w
        for (_, r), w in zip(metrics.iterrows(), expected, strict=True)
        if w > 0
    }
    got = {(e["family"], e["params"].get("lookback")): e["weight"] for e in written["instances"]}
    assert got.keys() == by_hand.keys() and len(got) >= 3
    assert got == pytest.approx(by_hand, rel=1e-9) and sum(got.values()) == pytest.approx(1.0)
    assert all(e["p95_drawdown"] is not None for e in written["instances"])
    assert sorted(os.listdir(plan.out.parent)) == ["prod.json"]  # no temporary file left
    followed = read_entries(plan.out, "binance")  # what `live --config` reads when it changes
    assert sorted(
        (e.family, e.params["lookback"], e.weight) for e in followed if "lookback" in e.params
    ) == sorted((f, lb, w) for (f, lb), w in got.items() if lb is not None)

    inode = plan.out.stat().st_ino
    code = run_main(  # the command a cron line runs; no new bar: every run is stored already
        monkeypatch, "deploy", "--once", "--db", stored, "--out", str(plan.out),
        "--dir", str(plan.work), "--lookback", "4d", "--method", "inverse_vol",
        "--min-sortino", "-100", "--min-expectancy", "-1e9", "--min-trades", "3",
        "--min-days", "1", "--min-daily-returns", "2",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert (
        f"backtests: 4 run(s), 4 already stored (skipped), 0 computed; wrote the selection of "
        f"2018-01-14: {len(got)} instance(s)"
    ) in err
    assert json.loads(plan.out.read_text()) == written
    assert plan.out.stat().st_ino != inode  # replaced as a whole, never rewritten in place

    strict = dataclasses.replace(plan, rule=dataclasses.replace(plan.rule, min_trades=10**6))
    refused = run_step(strict, said.append)  # nothing passes: the file stays as it was
    assert not refused.written and json.loads(plan.out.read_text()) == written
    assert said[-1].startswith("warning: no instance passed the fitness rule") and said[
        -1
    ].endswith(f"{plan.out} left as it was")

    more = sample(n=1400).iloc[1100:]  # bars to 2018-01-15 01:25: the next day's selection
    save_bars(stored, "binance", "ETH/BTC", "5m", more)
    later = run_step(plan, said.append)
    assert later.at == pd.Timestamp("2018-01-15", tz="UTC") and later.computed == 4
    assert json.loads(plan.out.read_text())["selected_at"] == "2018-01-15T00:00:00Z"

    bounded = run_step(dataclasses.replace(plan, history=4), said.append)  # 4 days of bars only
    assert bounded.computed == 4 and bounded.written
    results = pd.read_csv(plan.work / "results.csv")
    assert set(results["start"]) == {"2018-01-11T00:00:00Z"}
    assert set(results["end"]) == {"2018-01-14T23:55:00Z"}


@pytest.mark.ray
def test_retrain_trains_the_selected_instances_on_bars_before_the_selection(
    ray_shared, tmp_path, monkeypatch, capsys
) -> None:
    """--retrain: a model for each selected instance, on its bars that closed by t only (the
    model row's data range ends before t), stored before prod.json names the instance; the
    instance the rule drops gets none; a second step trains nothing again."""
    from ml.modelstore import latest_models
    from ml.synthetic import planted_market
    from store.bars import save_bars
    from store.instances import add_instance

    url = f"sqlite:///{tmp_path / 'ml.db'}"
    bars = planted_market(8_000, effect=True, seed=3)  # 2024-01-01 .. 2024-01-28 18:35, 5m
    save_bars(url, "binance", "PLT/USD", "5m", bars)
    chosen = add_instance(
        url, "sr_breakout", "binance", "PLT/USD", "5m", {"sl_pct": 0.005, "tp_pct": 0.005}
    ).id
    dropped = add_instance(  # lookback 200: too few trades in 14 days for --min-trades 30
        url, "sr_breakout", "binance", "PLT/USD", "5m", {"lookback": 200}
    ).id
    out, models = tmp_path / "prod.json", tmp_path / "models"
    args = [
        "deploy", "--once", "--retrain", "--models-dir", str(models), "--db", url,
        "--out", str(out), "--dir", str(tmp_path / "work"), "--lookback", "14d",
        "--method", "binary", "--min-sortino", "-100", "--min-expectancy", "-1e9",
        "--min-trades", "30", "--min-days", "1", "--min-daily-returns", "2",
    ]  # fmt: skip
    code = run_main(monkeypatch, *args)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    written = json.loads(out.read_text())
    assert [e["instance_id"] for e in written["instances"]] == [chosen]
    assert "models (" in err and "1 trained, 0 already trained (skipped)" in err, err
    stored = latest_models(url, [chosen, dropped])
    assert list(stored) == [chosen] and Path(stored[chosen].path).parent == models
    at = pd.Timestamp("2024-01-28", tz="UTC")  # the day the newest bar closed
    last = at - pd.Timedelta(minutes=5)  # the last bar that closed by t: none of t's day
    assert pd.Timestamp(stored[chosen].data_end) == last
    assert stored[chosen].trades >= 38

    assert run_main(monkeypatch, *args) == 0
    again = " ".join(capsys.readouterr().err.split())
    assert "0 trained, 1 already trained (skipped)" in again, again
    assert latest_models(url, [chosen])[chosen].version == 1


def test_the_write_is_atomic_a_failed_rename_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    out = tmp_path / "prod.json"
    write_atomic({"instances": [1]}, out)
    old = out.read_text()

    def broken(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_atomic({"instances": [2]}, out)
    assert out.read_text() == old and os.listdir(tmp_path) == ["prod.json"]


def test_the_loop_waits_for_the_next_midnight_and_ctrl_c_exits_130(
    stored, tmp_path, monkeypatch
) -> None:
    import typer

    import commands.deploy as deploy

    steps: list[str] = []
    monkeypatch.setattr(deploy, "run_step", lambda plan: steps.append("step") or None)
    monkeypatch.setattr(deploy, "report", lambda result: None)
    now = pd.Timestamp("2026-01-05T13:00Z").timestamp()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as stopped:
        loop(plan_of(stored, tmp_path), sleep=sleep, clock=lambda: now)
    assert stopped.value.exit_code == 130 and steps == ["step"] and slept == [60.0] * 3
    assert next_step(now, 1) == pd.Timestamp("2026-01-06T00:05Z").timestamp()
    assert next_step(now, 7) == pd.Timestamp("2026-01-12T00:05Z").timestamp()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--every", "2d"], "--every '2d' is not supported; use one of 1d, 7d, 30d"),
        (["--lookback", "soon"], "--lookback 'soon' is not a number of days"),
        (["--method", "best"], "--method 'best' is unknown"),
        (["--cash", "0"], "--cash 0.0 must be a positive amount"),
        (["--out", "prod.txt"], "must name a .json file"),
        (["--lookback", "10d"], "shorter than --min-days 30"),
        (["--exchange", "kraken"], "no strategy instances for kraken in the database"),
        (["--history", "30d"], "--history 30d is shorter than --lookback 60d"),
        (["--retrain", "--models-dir", "/etc/passwd"], "--models-dir '/etc/passwd' is a file"),
    ],
)
def test_bad_input_is_one_error_line_and_nothing_written(
    stored, tmp_path, monkeypatch, capsys, args, fragment
) -> None:
    out = tmp_path / "prod.json"
    code = run_main(
        monkeypatch, "deploy", "--once", "--db", stored, "--out", str(out),
        "--dir", str(tmp_path / "work"), *args,
    )  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error:") and fragment in lines[0], lines
    assert not out.exists() and not (tmp_path / "work").exists()
