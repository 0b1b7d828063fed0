"""`cli.py model experiment | train | eval` on a stored planted market, on one local Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
FAST = ["--folds", "3"]


@pytest.fixture(scope="module")
def ray_local(ray_shared):
    return ray_shared  # the session's Ray (tests/ray_local.py)


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[str, int]:
    """A database with the planted market stored as bars and one sr_breakout instance."""
    from ml.synthetic import planted_market
    from store.bars import save_bars
    from store.instances import add_instance

    url = f"sqlite:///{tmp_path_factory.mktemp('mlcli') / 'ml.db'}"
    save_bars(url, "binance", "PLT/USD", "5m", planted_market(8_000, effect=True, seed=3))
    inst = add_instance(
        url, "sr_breakout", "binance", "PLT/USD", "5m", {"sl_pct": 0.005, "tp_pct": 0.005}
    )
    return url, int(inst.id)


def model(*args: str):
    result = runner.invoke(app, ["model", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def experiment(stored, out: Path):
    url, iid = stored
    return model(
        "experiment",
        "--instances",
        str(iid),
        "--kinds",
        "logreg,rf",
        "--selections",
        "none,mi",
        "--out",
        str(out),
        "--db",
        url,
        *FAST,
    )


@pytest.fixture(scope="module")
def first_experiment(ray_local, stored, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    return out, experiment(stored, out)


def test_experiment_train_eval_find_the_planted_effect(
    ray_local, stored, first_experiment, tmp_path
):
    url, iid = stored
    exp_dir, result = first_experiment
    doc = json.loads((exp_dir / "experiment.json").read_text())
    assert len(doc["rows"]) == 4 and doc["best"]["kind"] in ("logreg", "rf")
    assert all(r["roc_auc"] > 0.7 for r in doc["rows"])  # time of day decides: easy to learn
    assert "best:" in result.output
    assert 'id="leaderboard"' in (exp_dir / "experiment.html").read_text()

    model(
        "train",
        "--instances",
        str(iid),
        "--db",
        url,
        "--models-dir",
        str(tmp_path / "models"),
        *FAST,
    )
    from ml.modelstore import latest_models, load_model

    row = latest_models(url, [iid])[iid]
    assert row.version == 1 and row.trades > 80
    assert json.loads(row.spec_json)["kind"] == doc["best"]["kind"]  # the latest experiment's
    trained = load_model(row.path)
    assert trained.instance_id == iid and trained.model.columns
    again = model(
        "train",
        "--instances",
        str(iid),
        "--db",
        url,
        "--models-dir",
        str(tmp_path / "models"),
        *FAST,
    )
    assert "1 already trained (skipped)" in again.output
    assert latest_models(url, [iid])[iid].version == 1

    out = tmp_path / "eval"
    model(
        "eval",
        "--instances",
        str(iid),
        "--db",
        url,
        "--out",
        str(out),
        "--placebo-seeds",
        "3",
        "--random-seeds",
        "3",
        "--methods",
        "filter,kelly",
        *FAST,
    )
    frame = pd.read_csv(out / "eval.csv")
    assert list(frame.columns[:9]) == [
        "instance_id",
        "method",
        "trades_without",
        "trades_with",
        "sortino_without",
        "sortino_with",
        "sortino_placebo_mean",
        "sortino_placebo_p95",
        "sortino_random_skip_p95",
    ]
    assert list(frame["method"]) == ["filter", "kelly"]
    assert (frame["sortino_with"] > frame["sortino_without"]).all()
    assert (frame["sortino_with"] > frame["sortino_placebo_p95"]).all()
    assert 'id="sortino"' in (out / "eval.html").read_text()
    trades = pd.read_csv(out / "trades_by_model.csv")
    assert list(trades.columns[:3]) == ["instance_id", "method", "trade_id"]
    assert trades.columns[-1] == "p"
    counts = trades.groupby("method").size()
    assert counts["none"] == frame["trades_without"].iloc[0]  # the without-model run's trades
    assert counts["filter"] == frame.set_index("method").loc["filter", "trades_with"]
    taken = trades[trades["method"] == "filter"]
    assert taken["p"].notna().all() and (taken["p"].between(0, 1)).all()


def test_same_data_and_configuration_give_the_same_leaderboard(
    ray_local, stored, first_experiment, tmp_path
):
    first, _ = first_experiment
    experiment(stored, tmp_path / "b")
    a = pd.read_csv(first / "leaderboard.csv")
    b = pd.read_csv(tmp_path / "b" / "leaderboard.csv")
    pd.testing.assert_frame_equal(a, b)
    rows = (first / "rows.jsonl").read_text()
    assert len(rows.splitlines()) == 4
    experiment(stored, first)  # every row already there: nothing recomputed or appended
    assert (first / "rows.jsonl").read_text() == rows
    pd.testing.assert_frame_equal(pd.read_csv(first / "leaderboard.csv"), a)


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--out", "X", "--strategies", "0"], "--strategies '0' must be all or a count"),
        (["train", "--instances", "999"], "no strategy instance with id 999"),
        (["experiment", "--out", "X", "--strategies", "all", "--kinds", "svm"], "--kinds 'svm'"),
        (["eval", "--out", "X", "--strategies", "all", "--folds", "1"], "--folds 1"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(stored, tmp_path, args, message):
    url, _ = stored
    args = [a.replace("X", str(tmp_path / "o")) for a in args]
    done = subprocess.run(
        [sys.executable, "cli.py", "model", *args, "--db", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_method_option_makes_each_method_a_combination(ray_local, stored, tmp_path):
    url, iid = stored
    model(
        "experiment",
        "--instances",
        str(iid),
        "--kinds",
        "logreg",
        "--selections",
        "none",
        "--method",
        "filter,kelly",
        "--out",
        str(tmp_path),
        "--db",
        url,
        *FAST,
    )
    doc = json.loads((tmp_path / "experiment.json").read_text())
    assert sorted(e["label"] for e in doc["leaderboard"]) == [
        "logreg/none/filter",
        "logreg/none/kelly",
    ]
    assert doc["best"]["method"] in ("filter", "kelly")


def test_train_reads_the_runs_backtest_all_stored(ray_local, tmp_path):
    from ml.synthetic import planted_market
    from store.bars import save_bars
    from store.instances import add_instance

    url = f"sqlite:///{tmp_path / 'ml.db'}"
    save_bars(url, "binance", "PLT/USD", "5m", planted_market(8_000, effect=True, seed=4))
    iid = add_instance(
        url, "sr_breakout", "binance", "PLT/USD", "5m", {"sl_pct": 0.005, "tp_pct": 0.005}
    ).id
    done = runner.invoke(app, ["backtest", "--all", "--db", url, "--out", str(tmp_path / "bt")])
    assert done.exit_code == 0, done.output
    result = model(
        "train",
        "--instances",
        str(iid),
        "--db",
        url,
        "--models-dir",
        str(tmp_path / "models"),
        *FAST,
    )
    assert "1 trained" in result.output
    assert "(1 read their stored backtest run's trades" in " ".join(result.output.split())


def test_train_on_too_few_trades_says_why_and_what_to_do(ray_local, stored, tmp_path):
    """Few bars (the demo's case: 3-10 trades per instance): nothing trained, each instance's
    trade count and the 38 trades a model needs are said, and what to do about it."""
    from ml.synthetic import planted_market

    url, iid = stored
    index = planted_market(8_000, effect=True, seed=3).index
    window = ["--start", index[0].isoformat(), "--end", index[400].isoformat()]
    result = model(
        "train", "--instances", str(iid), "--db", url, "--models-dir", str(tmp_path), *window
    )
    text = " ".join(result.output.split())
    assert "0 trained" in text and "1 not trainable" in text
    assert f"not trained #{iid}: " in text and " trades are too few: walk-forward trains" in text
    assert "so at least 38 trades" in text
    assert "no model trained (the reasons above): a model needs >= 38 trades" in text
    assert list(tmp_path.iterdir()) == []  # no model file
