"""Backtest runs and their trades/orders, written in bulk at the end of a backtest."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from factors.bars import parse_utc
from store.db import get_engine
from store.models import BacktestRun, OrderRecord, TradeRecord, canonical_json, utcnow

_TRADE_FIELDS = (
    "trade_id strategy symbol interval side entry_time entry_price exit_time exit_price "
    "quantity fees pnl return_pct exit_reason"
).split()
_ORDER_FIELDS = {c.name for c in OrderRecord.__table__.columns}


def save_backtest_run(
    url: str, run: dict, trades: pd.DataFrame, orders: list[dict] | None = None
) -> None:
    """Store one run with its trades (and orders) in one transaction.

    Each run_key is stored once: a key already stored as done is skipped; a key stored as failed
    is replaced (row, trades and orders deleted in the same transaction), so a retried run never
    leaves two rows and a done run is never overwritten by a later failure.
    """
    engine = get_engine(url)
    run_key = run.get("run_key")
    try:
        with engine.begin() as conn:
            if run_key is not None and not _clear_failed(conn, run_key, run):
                return
            conn.execute(insert(BacktestRun), [_run_row(run)])
            trade_rows = _trade_rows(run, trades)
            if trade_rows:
                conn.execute(insert(TradeRecord), trade_rows)
            order_rows = [_order_row(run, o) for o in orders or []]
            if order_rows:
                conn.execute(insert(OrderRecord), order_rows)
    except IntegrityError:
        # Another driver stored the same run_key between our check and insert: that is fine.
        if run_key is None or _stored_status(url, run_key) is None:
            raise


def _clear_failed(conn: Any, run_key: str, run: dict) -> bool:
    """True when the run may be inserted: no row has its key, or only a failed one, which is
    deleted here with its trades and orders. False when the key is already stored as done."""
    stored = conn.execute(
        select(BacktestRun.id, BacktestRun.status).where(BacktestRun.run_key == run_key)
    ).first()
    if stored is None:
        return True
    if stored.status == "done":
        return False
    for table in (TradeRecord, OrderRecord):
        conn.execute(delete(table).where(table.run_id == stored.id))
    conn.execute(delete(BacktestRun).where(BacktestRun.id == stored.id))
    return True


def _stored_status(url: str, run_key: str) -> str | None:
    with get_engine(url).connect() as conn:
        return conn.execute(
            select(BacktestRun.status).where(BacktestRun.run_key == run_key)
        ).scalar()


def completed_run_keys(url: str) -> set[str]:
    """Keys of the runs stored as done; a failed run is not completed (it is run again)."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            select(BacktestRun.run_key).where(
                BacktestRun.run_key.is_not(None), BacktestRun.status == "done"
            )
        ).scalars()
        return set(rows)


def load_runs(url: str, strategy: str | None = None) -> pd.DataFrame:
    """Stored runs as a frame (one row per run; metrics and params as JSON text)."""
    query = select(BacktestRun.__table__)
    if strategy:
        query = query.where(BacktestRun.strategy == strategy)
    with get_engine(url).connect() as conn:
        rows = conn.execute(query.order_by(BacktestRun.created_at)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def load_trades(url: str, run_id: str) -> pd.DataFrame:
    query = select(TradeRecord.__table__).where(TradeRecord.run_id == run_id)
    with get_engine(url).connect() as conn:
        rows = conn.execute(query.order_by(TradeRecord.id)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def _run_row(run: dict) -> dict[str, Any]:
    return {
        "id": str(run["run_id"]),
        "run_key": run.get("run_key"),
        "instance_id": run.get("instance_id"),
        "strategy": run["strategy"],
        "symbol": run["symbol"],
        "interval": run["interval"],
        "params_json": canonical_json(run.get("params") or {}),
        "start": _dt(run.get("start")),
        "end": _dt(run.get("end")),
        "bars": int(run.get("bars") or 0),
        "status": run.get("status") or "done",
        "error": run.get("error"),
        "metrics_json": canonical_json(_clean(run.get("metrics") or {})),
        "engine_version": str(run.get("engine_version") or ""),
        "created_at": utcnow(),
    }


def _trade_rows(run: dict, trades: pd.DataFrame) -> list[dict[str, Any]]:
    if trades is None or trades.empty:
        return []
    out = []
    for record in trades.to_dict("records"):
        row = {k: _value(record.get(k)) for k in _TRADE_FIELDS}
        row["trade_id"] = str(row["trade_id"])
        row["entry_time"] = _dt(row["entry_time"])
        row["exit_time"] = _dt(row["exit_time"])
        row["strategy"] = row["strategy"] or run["strategy"]
        row["symbol"] = row["symbol"] or run["symbol"]
        row["interval"] = row["interval"] or run["interval"]
        row["fees"] = row["fees"] or 0.0
        row.update(run_id=str(run["run_id"]), instance_id=run.get("instance_id"))
        row["status"] = "CLOSED" if row["exit_time"] is not None else "ACTIVE"
        out.append(row)
    return out


def _order_row(run: dict, order: dict) -> dict[str, Any]:
    row = {k: _value(v) for k, v in order.items() if k in _ORDER_FIELDS}
    row.setdefault("run_id", str(run["run_id"]))
    row.setdefault("instance_id", run.get("instance_id"))
    row.setdefault("strategy", run["strategy"])
    row["id"] = str(order.get("id") or order.get("order_id"))
    for key in ("created_at", "updated_at"):
        if key in row:
            row[key] = _dt(row[key])
    return row


def _value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):
        return value.item()  # numpy scalar -> Python
    return value


def _dt(value: Any) -> Any:
    stamp = parse_utc(value, "time")
    return None if stamp is None else stamp.to_pydatetime()


def _clean(value: Any) -> Any:
    """Metrics as JSON: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    value = _value(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
