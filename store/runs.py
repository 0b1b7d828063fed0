"""Backtest runs and their trades/orders, written in bulk at the end of a backtest (one run at a
time, or a whole batch of `backtest --all` in one transaction)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from core.vocabulary import TradeStatus
from factors.bars import parse_utc
from store.db import get_engine
from store.models import BacktestRun, OrderRecord, TradeRecord, canonical_json, utcnow

_TRADE_FIELDS = (
    "trade_id strategy symbol interval side entry_time entry_price exit_time exit_price "
    "quantity fees pnl return_pct exit_reason"
).split()
_ORDER_FIELDS = {c.name for c in OrderRecord.__table__.columns}
RUN_INDEX = "run_index"  # in a batch's trades: the position of the trade's run in the batch
_IN_CHUNK = 500  # keys/ids per IN (...) list: SQLite caps the bound parameters of a statement


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


def save_backtest_batch(url: str, runs: list[dict], trades: pd.DataFrame | None) -> None:
    """Store a batch of runs with their trades in ONE transaction: all of them or none (a batch
    cut short leaves nothing, and the next `backtest --all` runs it again). `trades` holds the
    trades of every run, tagged with the run's position in `runs` (RUN_INDEX column).

    Per run_key as save_backtest_run (done: skipped; failed: replaced; within the batch as if
    stored one after another). One executemany for the run rows and one for all trades: a
    transaction per run cost the driver CPU that the Ray workers needed. When another driver
    stores one of the keys meanwhile (IntegrityError), the whole transaction is rolled back and
    the batch is stored run by run, so nothing is lost or stored twice.
    """
    if not runs:
        return
    try:
        with get_engine(url).begin() as conn:
            chosen = _claim_keys(conn, runs)
            if chosen:
                conn.execute(insert(BacktestRun), [_run_row(runs[i]) for i in chosen])
                kept = trades
                if trades is not None and len(chosen) < len(runs):
                    kept = trades[trades[RUN_INDEX].isin(chosen).to_numpy()]
                rows = _batch_trade_rows(runs, kept)
                if rows:
                    conn.execute(insert(TradeRecord), rows)
    except IntegrityError:
        per_run = _trades_by_position(trades)
        for i, run in enumerate(runs):
            save_backtest_run(url, run, per_run.get(i))


def _claim_keys(conn: Any, runs: list[dict]) -> list[int]:
    """Positions in `runs` to insert, after deleting the stored failed runs they replace. The
    batch is read as if stored run by run: a key already done (stored, or earlier in the batch)
    is skipped, a failed one is replaced by the later run."""
    keys = list({r["run_key"] for r in runs if r.get("run_key") is not None})
    stored: dict[str, tuple[str, str]] = {}
    for i in range(0, len(keys), _IN_CHUNK):
        query = select(BacktestRun.run_key, BacktestRun.id, BacktestRun.status)
        for key, run_id, status in conn.execute(
            query.where(BacktestRun.run_key.in_(keys[i : i + _IN_CHUNK]))
        ):
            stored[key] = (run_id, status)
    status = {key: s for key, (_, s) in stored.items()}
    chosen: dict[Any, int] = {}  # key (or position, for a run without key) -> position
    for i, run in enumerate(runs):
        key = run.get("run_key")
        if key is not None and status.get(key) == "done":
            continue
        chosen[key if key is not None else ("position", i)] = i
        if key is not None:
            status[key] = run.get("status") or "done"
    replaced = [stored[k][0] for k in chosen if k in stored]  # stored, and not done: failed
    for i in range(0, len(replaced), _IN_CHUNK):
        _delete_runs(conn, replaced[i : i + _IN_CHUNK])
    return sorted(chosen.values())


def _delete_runs(conn: Any, ids: list[Any]) -> None:
    """Delete stored runs with their trades and orders (failed runs about to be replaced)."""
    for table in (TradeRecord, OrderRecord):
        conn.execute(delete(table).where(table.run_id.in_(ids)))
    conn.execute(delete(BacktestRun).where(BacktestRun.id.in_(ids)))


def _trades_by_position(trades: pd.DataFrame | None) -> dict[int, pd.DataFrame]:
    if trades is None or trades.empty:
        return {}
    return {int(i): frame for i, frame in trades.groupby(RUN_INDEX, sort=False)}


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
    _delete_runs(conn, [stored.id])
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


def _trade_rows(run: dict, trades: pd.DataFrame | None) -> list[dict[str, Any]]:
    if trades is None or trades.empty:
        return []
    return _batch_trade_rows([run], trades.assign(**{RUN_INDEX: 0}))


def _batch_trade_rows(runs: list[dict], trades: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Trade rows for `runs`, from a frame of trades tagged with their run's position in `runs`
    (RUN_INDEX); trades of other positions are left out. Converted a column at a time (a row
    at a time cost ~2 ms per backtest of driver CPU): NaN/NaT become None, numpy scalars Python
    ones, times UTC datetimes; a missing strategy/symbol/interval is the run's."""
    if trades is None or trades.empty:
        return []
    trades = trades[trades[RUN_INDEX].isin(range(len(runs))).to_numpy()]
    owners = [runs[i] for i in trades[RUN_INDEX].tolist()]
    cols = {k: _plain(trades[k]) if k in trades else [None] * len(trades) for k in _TRADE_FIELDS}
    cols["trade_id"] = [str(v) for v in cols["trade_id"]]
    cols["entry_time"] = _times(trades, "entry_time")
    cols["exit_time"] = _times(trades, "exit_time")
    for key in ("strategy", "symbol", "interval"):
        cols[key] = [v or run[key] for v, run in zip(cols[key], owners, strict=True)]
    cols["fees"] = [v or 0.0 for v in cols["fees"]]
    cols["run_id"] = [str(run["run_id"]) for run in owners]
    cols["instance_id"] = [run.get("instance_id") for run in owners]
    closed, active = TradeStatus.CLOSED, TradeStatus.ACTIVE
    cols["status"] = [closed if t is not None else active for t in cols["exit_time"]]
    names = list(cols)
    return [dict(zip(names, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def _plain(column: pd.Series) -> list[Any]:
    """Python values of a column (object dtype converts numpy scalars), None for NaN/NaT."""
    return column.astype(object).where(column.notna(), None).tolist()


def _times(trades: pd.DataFrame, name: str) -> list[Any]:
    """A time column as UTC datetimes (naive values are UTC, as parse_utc), None when missing."""
    if name not in trades:
        return [None] * len(trades)
    stamps = pd.to_datetime(trades[name], utc=True, format="ISO8601")
    values = stamps.dt.to_pydatetime()
    return values.where(stamps.notna(), None).tolist()


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
