"""The documented user strategy, examples/ema_cross.py:EmaCross, loaded by file spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from factors.synthetic import random_walk_bars
from strategies.base import ExitRules, StrategyError
from strategies.registry import BUILTIN, make_strategy, strategy_class
from tests.strategies.frames import assert_no_lookahead, bars_from, load_sample, signal_bars

ROOT = Path(__file__).resolve().parents[2]
SPEC = f"{ROOT / 'examples' / 'ema_cross.py'}:EmaCross"

# Flat at 100 for 60 bars, 101 for 10 bars, then 95. fast=12, slow=48:
#   bar 60: fast = 100 + 2/13 > slow = 100 + 2/49 -> cross up (bars 0..59: equal, not above)
#   bar 70: fast = 100.81 + (2/13)(95 - 100.81) = 99.92 < slow = 100.34 + (2/49)(95 - 100.34)
#           = 100.12 -> cross down
CLOSE = [100.0] * 60 + [101.0] * 10 + [95.0] * 10
BARS = bars_from([c + 0.5 for c in CLOSE], [c - 0.5 for c in CLOSE], CLOSE, freq="5min")


def test_loads_from_the_file_spec_and_is_not_a_builtin() -> None:
    cls = strategy_class(SPEC)
    assert cls.__name__ == "EmaCross" and cls.name == "ema_cross"
    assert "ema_cross" not in BUILTIN
    assert not (ROOT / "strategies" / "ema_cross.py").exists()


def test_hand_computed_crosses() -> None:
    out = make_strategy(SPEC, {"allow_short": "true"}).compute(BARS)
    assert signal_bars(out, "enter_long") == [60]
    assert signal_bars(out, "exit_long") == [70]
    assert signal_bars(out, "enter_short") == [70]
    assert signal_bars(out, "exit_short") == [60]
    # ATR(14) of bars 47..60 (true range 1, then 1.5 at bar 60) x 2
    assert out["stop_distance"].iloc[60] == pytest.approx(2 * (13 * 1 + 1.5) / 14)
    assert out["target_distance"].iloc[60] == pytest.approx(4 * (13 * 1 + 1.5) / 14)


def test_long_only_by_default_and_exit_rules() -> None:
    strategy = make_strategy(SPEC)
    assert not strategy.compute(BARS)["enter_short"].any()
    assert strategy.exit_rules() == ExitRules(sl_pct=None, tp_pct=None, max_bars=288)


def test_bad_parameters() -> None:
    with pytest.raises(StrategyError, match="slow must be greater than fast"):
        make_strategy(SPEC, {"fast": "50", "slow": "20"})
    with pytest.raises(StrategyError, match="unknown parameter 'fsat'"):
        make_strategy(SPEC, {"fsat": "5"})


def test_no_lookahead_and_trades_on_real_and_synthetic_data() -> None:
    strategy = make_strategy(SPEC, {"allow_short": "true"})
    for seed, bars in enumerate([load_sample("ETH_BTC-5m"), random_walk_bars(3000, "15m")]):
        full = assert_no_lookahead(strategy, bars, seed, "example")
        assert full["enter_long"].sum() > 0 and full["enter_short"].sum() > 0


def test_the_docs_show_the_example_verbatim() -> None:
    docs = (ROOT / "docs" / "strategies.md").read_text()
    example = (ROOT / "examples" / "ema_cross.py").read_text()
    assert f"```python\n{example}```" in docs
    for name in BUILTIN:
        assert f"| `{name}` |" in docs


def test_cli_backtest_runs_the_example(tmp_path: Path) -> None:
    out = tmp_path / "ema"
    args = ["--data", "data/sample/ETH_BTC-5m.csv.gz", "--symbol", "ETH/BTC", "--interval", "5m"]
    result = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "backtest",
            "--strategy",
            "examples/ema_cross.py:EmaCross",
            *args,
            "--param",
            "fast=8",
            "--out",
            str(out),
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) > 0 and set(trades["strategy"]) == {"ema_cross"}
    assert json.loads((out / "results.json").read_text())["params"]["fast"] == 8
