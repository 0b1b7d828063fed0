"""Small hand-made trades / equity / results files for the analysis tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.trades_io import TRADES_COLUMNS


def trade_rows(rows: list[dict]) -> pd.DataFrame:
    """Full trades.csv rows; each dict gives at least entry_time, exit_time, pnl."""
    base = {
        "trade_id": "",
        "strategy": "sr_breakout",
        "symbol": "ETH/BTC",
        "interval": "5m",
        "side": "long",
        "entry_price": 1.0,
        "exit_price": 1.0,
        "quantity": 1.0,
        "fees": 0.0,
        "return_pct": 0.0,
        "exit_reason": "take_profit",
    }
    out = []
    for i, row in enumerate(rows):
        full = {**base, "trade_id": str(i + 1), **row}
        out.append(
            {c: full[c] for c in (*TRADES_COLUMNS, *[k for k in row if k not in TRADES_COLUMNS])}
        )
    return pd.DataFrame(out, columns=list(out[0]) if out else list(TRADES_COLUMNS))


# Four trades, two strategies, hand-checkable: pnl +100, -50, +30, -20 on initial cash 1,000.
SIMPLE = [
    {
        "entry_time": "2024-01-01T00:00:00Z",
        "exit_time": "2024-01-01T06:00:00Z",
        "pnl": 100.0,
        "strategy": "sr_breakout",
        "side": "long",
        "exit_reason": "take_profit",
        "return_pct": 0.02,
    },
    {
        "entry_time": "2024-01-02T00:00:00Z",
        "exit_time": "2024-01-02T06:00:00Z",
        "pnl": -50.0,
        "strategy": "orb",
        "side": "short",
        "exit_reason": "stop_loss",
        "return_pct": -0.01,
    },
    {
        "entry_time": "2024-02-05T00:00:00Z",
        "exit_time": "2024-02-05T06:00:00Z",
        "pnl": 30.0,
        "strategy": "sr_breakout",
        "side": "long",
        "exit_reason": "signal",
        "return_pct": 0.006,
    },
    {
        "entry_time": "2024-02-06T00:00:00Z",
        "exit_time": "2024-02-06T06:00:00Z",
        "pnl": -20.0,
        "strategy": "orb",
        "side": "long",
        "exit_reason": "stop_loss",
        "return_pct": -0.004,
    },
]


def write_simple_trades(path: Path) -> Path:
    trade_rows(SIMPLE).to_csv(path, index=False)
    return path


def random_trades(n: int = 80, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    entry = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 120 * 24, n)), unit="h"
    )
    exit_ = entry + pd.to_timedelta(rng.integers(1, 30, n), unit="h")
    rows = [
        {
            "entry_time": a.isoformat(),
            "exit_time": b.isoformat(),
            "pnl": float(round(rng.normal(5, 40), 2)),
            "return_pct": float(rng.normal(0.001, 0.01)),
            "strategy": str(rng.choice(["sr_breakout", "orb", "trend_day"])),
            "symbol": str(rng.choice(["ETH/BTC", "ADA/BTC"])),
            "side": str(rng.choice(["long", "short"])),
            "exit_reason": str(rng.choice(["stop_loss", "take_profit", "end_of_data"])),
        }
        for a, b in zip(entry, exit_, strict=True)
    ]
    return trade_rows(rows)


def write_backtest_dir(out: Path) -> Path:
    """A single-backtest output directory: trades.csv, equity.csv, results.json."""
    out.mkdir(parents=True, exist_ok=True)
    trade_rows(SIMPLE[:1]).to_csv(out / "trades.csv", index=False)
    equity = pd.DataFrame(
        {
            "timestamp": [
                "2024-01-01T00:00:00+00:00",
                "2024-01-01T03:00:00+00:00",
                "2024-01-01T06:00:00+00:00",
                "2024-01-02T00:00:00+00:00",
            ],
            "equity": [1000.0, 900.0, 1100.0, 1100.0],
            "cash": [1000.0, 0.0, 1100.0, 1100.0],
        }
    )
    equity.to_csv(out / "equity.csv", index=False)
    results = {
        "run_id": "r1",
        "strategy": "sr_breakout",
        "symbol": "ETH/BTC",
        "interval": "5m",
        "params": {"lookback": 20},
        "metrics": {"initial_cash": 1000.0},
    }
    (out / "results.json").write_text(json.dumps(results))
    return out


# results.csv rows (`backtest --all` layout, only the columns weights reads plus volatility):
# A and B pass the default rule; C fails on sortino, D on trades (10 < 20), E has no sortino.
RESULTS_ROWS = [
    ("sr_breakout", '{"lookback":20}', 2.0, 5.0, 30, 0.2),
    ("orb", '{"minutes":30}', 1.0, 2.0, 25, 0.1),
    ("trend_day", "{}", -0.5, 3.0, 40, 0.3),
    ("sr_breakout", '{"lookback":50}', 3.0, 1.0, 10, 0.1),
    ("volatility_breakout", "{}", None, 1.0, 50, 0.1),
]

# Trades for --split 2024-03-01 (cash 10,000 per instance): A wins before and loses after the
# split, B the other way round; A's trade spanning the split belongs to neither side.
SPLIT_TRADES = [
    ("sr_breakout", '{"lookback":20}', "2024-01-01T01:00:00Z", "2024-01-01T05:00:00Z", 10.0),
    ("sr_breakout", '{"lookback":20}', "2024-01-02T01:00:00Z", "2024-01-02T05:00:00Z", -5.0),
    ("sr_breakout", '{"lookback":20}', "2024-01-03T01:00:00Z", "2024-01-03T05:00:00Z", 10.0),
    ("sr_breakout", '{"lookback":20}', "2024-02-29T01:00:00Z", "2024-03-01T12:00:00Z", 1000.0),
    ("sr_breakout", '{"lookback":20}', "2024-03-02T01:00:00Z", "2024-03-02T05:00:00Z", -10.0),
    ("sr_breakout", '{"lookback":20}', "2024-03-03T01:00:00Z", "2024-03-03T05:00:00Z", -10.0),
    ("orb", '{"minutes":30}', "2024-01-01T01:00:00Z", "2024-01-01T05:00:00Z", -10.0),
    ("orb", '{"minutes":30}', "2024-01-02T01:00:00Z", "2024-01-02T05:00:00Z", 5.0),
    ("orb", '{"minutes":30}', "2024-01-03T01:00:00Z", "2024-01-03T05:00:00Z", -10.0),
    ("orb", '{"minutes":30}', "2024-03-02T01:00:00Z", "2024-03-02T05:00:00Z", 20.0),
]


def write_results_dir(out: Path, instance_ids: list | None = None) -> Path:
    """DIR/results.csv and DIR/trades.csv as `backtest --all` writes them."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "run_id": f"run{i}",
            "instance_id": (instance_ids or [None] * len(RESULTS_ROWS))[i],
            "strategy": family,
            "symbol": "ETH/BTC",
            "interval": "5m",
            "params": params,
            "status": "done",
            "sortino": sortino,
            "expectancy": expectancy,
            "trades": trades,
            "volatility": vol,
        }
        for i, (family, params, sortino, expectancy, trades, vol) in enumerate(RESULTS_ROWS)
    ]
    rows.append({**rows[0], "run_id": "failed", "status": "failed", "params": '{"lookback":99}'})
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    trades = trade_rows(
        [
            {"strategy": s, "params": p, "entry_time": a, "exit_time": b, "pnl": pnl}
            for s, p, a, b, pnl in SPLIT_TRADES
        ]
    )
    trades.to_csv(out / "trades.csv", index=False)
    return out
