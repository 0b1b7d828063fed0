"""Synthetic `backtest --all` outputs (results.csv and the combined trades.csv) without running a
backtest: seeded runs of random trades, optionally one run with a real edge among the noise. For
the rolling selection's tests and benchmark (tests/analysis/test_rolling.py,
benchmarks/rolling.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

START = pd.Timestamp("2025-01-01", tz="UTC")
PRICE = 100.0
QUANTITY = 50.0  # notional 5,000: half of a 10,000 run's cash
FEE_RATE = 0.001  # 10 bps a leg


def synthetic_runs(
    instances: int,
    days: int,
    seed: int = 0,
    edge: int | None = None,
    drift: float = 0.004,
    trade_chance: float = 0.5,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, trades): `instances` runs of family "noise" (params {"k": i}) on five symbols,
    each trading on a day with `trade_chance`, one trade of 1 to 4 hours whose return is N(0, 1 %);
    run `edge` (if given) has mean return `drift` per trade instead of 0."""
    rng = np.random.default_rng(seed)
    traded = rng.random((instances, days)) < trade_chance
    run, day = np.nonzero(traded)
    n = len(run)
    entry = (
        START
        + pd.to_timedelta(day, unit="D")
        + pd.to_timedelta(rng.integers(0, 19 * 60, n), unit="min")
    )
    exit_ = entry + pd.to_timedelta(rng.integers(60, 241, n), unit="min")
    returns = rng.normal(0.0, 0.01, n) + (drift if edge is not None else 0.0) * (run == edge)
    exit_price = PRICE * (1 + returns)
    fees = FEE_RATE * QUANTITY * (PRICE + exit_price)
    pnl = QUANTITY * (exit_price - PRICE) - fees
    params = [json.dumps({"k": int(i)}, separators=(",", ":")) for i in range(instances)]
    symbols = [f"S{i % 5}/USD" for i in range(instances)]
    trades = pd.DataFrame(
        {
            "trade_id": np.arange(1, n + 1),
            "strategy": "noise",
            "symbol": np.array(symbols)[run],
            "interval": "1h",
            "side": "long",
            "entry_time": entry,
            "entry_price": PRICE,
            "exit_time": exit_,
            "exit_price": exit_price,
            "quantity": QUANTITY,
            "fees": fees,
            "pnl": pnl,
            "return_pct": pnl / (QUANTITY * PRICE),
            "exit_reason": "signal",
            "params": np.array(params)[run],
            "run_id": [f"run{i}" for i in run],
        }
    )
    counts = np.bincount(run, minlength=instances)
    results = pd.DataFrame(
        {
            "run_id": [f"run{i}" for i in range(instances)],
            "strategy": "noise",
            "symbol": symbols,
            "interval": "1h",
            "params": params,
            "status": "done",
            "trades": counts,
            "sortino": 0.0,  # the rolling selection computes its own figures per window
            "expectancy": 0.0,
            "volatility": 0.0,
        }
    )
    return results, trades


def write_runs_dir(out: Path, results: pd.DataFrame, trades: pd.DataFrame) -> Path:
    """DIR/results.csv and DIR/trades.csv (ISO-8601 UTC times) as `backtest --all` writes them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "results.csv", index=False)
    written = trades.copy()
    for column in ("entry_time", "exit_time"):
        written[column] = pd.DatetimeIndex(written[column]).strftime("%Y-%m-%dT%H:%M:%SZ")
    written.to_csv(out / "trades.csv", index=False)
    return out
