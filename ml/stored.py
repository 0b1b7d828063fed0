"""The instances' stored backtest runs: their trades, read in bulk by the driver.

An instance's run is the one `backtest --all` stored under the same run key (backtest/runkeys.py:
family, series, full parameters, data range, account settings, engine version), so its trades
are exactly what a backtest here would give; instances without one are backtested inside their
Ray task (and not stored: `backtest --all` owns the runs table).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from core.vocabulary import TradeStatus
from ml.jobs import InstanceRef

CHUNK = 500  # ids per IN (...) query


def instance_run_keys(refs: Iterable[InstanceRef], series: dict, config: Any) -> dict[int, str]:
    """instance id -> the run key its backtest over `series` has (instances with data only)."""
    from backtest.fanout import _canonical_params, _strategy_class
    from backtest.runkeys import data_range, run_key

    keys: dict[int, str] = {}
    for ref in refs:
        bars = series.get(ref.series)
        if bars is None:
            continue
        params = _canonical_params(_strategy_class(ref.family)[0], ref.params)
        keys[ref.instance_id] = run_key(ref.family, *ref.series, params, data_range(bars), config)
    return keys


def stored_trades(
    url: str, refs: Sequence[InstanceRef], series: dict, config: Any
) -> dict[int, pd.DataFrame]:
    """instance id -> the trades (trades.csv columns) of its stored, finished run."""
    from sqlalchemy import select

    from store.db import get_engine
    from store.models import BacktestRun, TradeRecord

    keys = instance_run_keys(refs, series, config)
    by_key = {k: i for i, k in keys.items()}
    runs: dict[str, int] = {}
    engine = get_engine(url)
    with engine.connect() as conn:
        wanted = list(by_key)
        for k in range(0, len(wanted), CHUNK):
            query = select(BacktestRun.id, BacktestRun.run_key).where(
                BacktestRun.run_key.in_(wanted[k : k + CHUNK]), BacktestRun.status == "done"
            )
            runs.update({row.id: by_key[row.run_key] for row in conn.execute(query)})
        columns = [c for c in TradeRecord.__table__.columns if c.name not in ("id", "instance_id")]
        frames: dict[int, list[dict]] = {i: [] for i in runs.values()}
        ids = list(runs)
        for k in range(0, len(ids), CHUNK):
            query = (
                select(*columns)
                .where(
                    TradeRecord.run_id.in_(ids[k : k + CHUNK]),
                    TradeRecord.status == TradeStatus.CLOSED,
                )
                .order_by(TradeRecord.id)
            )
            for row in conn.execute(query).mappings():
                frames[runs[row["run_id"]]].append(dict(row))
    return {i: _frame(rows) for i, rows in frames.items()}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["trade_id", "entry_time", "exit_time", "pnl", "return_pct"])
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.drop(columns=["run_id", "status"], errors="ignore")
