"""SQLModel tables (docs/design.md#store).

Times: bars carry `ts` = bar open time in epoch milliseconds (UTC, BigInteger) because that is
the exchanges' own key and makes bulk load/save cheap; every other table uses timezone-aware
UTC datetimes. Parameters and metrics are canonical JSON text (sorted keys) so that equal
parameter sets compare equal in SQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from core.vocabulary import OrderKind, OrderRole, OrderStatus, TradeStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON: the same dict always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, datetime):
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


def _ts_column(nullable: bool = False, index: bool = False) -> Any:
    column = Column(UTCDateTime(), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


class Pair(SQLModel, table=True):
    """A tradable market on an exchange, e.g. binance ETH/BTC."""

    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("exchange", "symbol", name="uq_pairs_exchange_symbol"),)

    id: int | None = Field(default=None, primary_key=True)
    exchange: str = Field(max_length=64)
    symbol: str = Field(max_length=64)  # ccxt spelling: BASE/QUOTE
    base: str = Field(default="", max_length=32)
    quote: str = Field(default="", max_length=32)
    active: bool = True
    created_at: datetime = _ts_column()


class StrategyInstance(SQLModel, table=True):
    """One strategy family with one parameter set on one market and interval."""

    __tablename__ = "strategy_instances"
    __table_args__ = (
        UniqueConstraint(
            "family", "exchange", "symbol", "interval", "params_json", name="uq_strategy_instance"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    family: str = Field(max_length=128, index=True)  # registry name or file.py:Class spec
    exchange: str = Field(max_length=64)
    symbol: str = Field(max_length=64, index=True)
    interval: str = Field(max_length=8)
    params_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    enabled: bool = True
    weight: float = 1.0
    created_at: datetime = _ts_column()

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)


class Bar(SQLModel, table=True):
    """One OHLCV bar; `ts` is the bar open time in epoch ms UTC."""

    __tablename__ = "bars"
    # SQLite: cluster rows by the key, so one series is one contiguous range (fast bulk load).
    __table_args__ = {"sqlite_with_rowid": False}

    exchange: str = Field(primary_key=True, max_length=64)
    symbol: str = Field(primary_key=True, max_length=64)
    interval: str = Field(primary_key=True, max_length=8)
    ts: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    open: float = Field(sa_column=Column(Float, nullable=False))
    high: float = Field(sa_column=Column(Float, nullable=False))
    low: float = Field(sa_column=Column(Float, nullable=False))
    close: float = Field(sa_column=Column(Float, nullable=False))
    volume: float = Field(sa_column=Column(Float, nullable=False))


class BarSeries(SQLModel, table=True):
    """Summary of one stored series, kept up to date by store.bars.save_bars (for `data list`)."""

    __tablename__ = "bar_series"

    exchange: str = Field(primary_key=True, max_length=64)
    symbol: str = Field(primary_key=True, max_length=64)
    interval: str = Field(primary_key=True, max_length=8)
    first_ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    bars: int = 0
    gaps: int = 0  # number of holes between consecutive bars
    missing_bars: int = 0  # bars missing inside [first, last]
    largest_gap_ms: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = _ts_column()


class OrderRecord(SQLModel, table=True):
    """An order: NEW (-> UNKNOWN) -> SUBMITTED -> FILLED | CANCELLED | REJECTED; brackets point
    at a parent. UNKNOWN: live, the answer to its request was lost (live/venues/outcomes.py)."""

    __tablename__ = "orders"

    id: str = Field(primary_key=True, max_length=64)  # our client order id
    # None in real live trading, "dry-run" in a live dry run, the run id in a backtest
    run_id: str | None = Field(default=None, max_length=64, index=True)
    instance_id: int | None = Field(default=None, index=True)
    exchange_order_id: str | None = Field(default=None, max_length=128)
    parent_id: str | None = Field(default=None, max_length=64, index=True)
    role: str = Field(default=OrderRole.ENTRY, max_length=16)  # an OrderRole
    strategy: str = Field(default="", max_length=128)
    exchange: str = Field(default="", max_length=64)
    symbol: str = Field(max_length=64)
    side: str = Field(max_length=8)  # an OrderSide
    type: str = Field(default=OrderKind.MARKET, max_length=16)  # market, limit or stop
    quantity: float
    price: float | None = None  # limit price
    stop_price: float | None = None
    status: str = Field(default=OrderStatus.NEW, max_length=16, index=True)  # an OrderStatus
    filled_quantity: float = 0.0
    avg_fill_price: float | None = None
    fee: float = 0.0
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts_column()
    updated_at: datetime | None = _ts_column(nullable=True)
    # live entries: the exits and interval of the signal (a restart places the bracket from it)
    exits_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class TradeRecord(SQLModel, table=True):
    """A position from entry to exit: ACTIVE -> CLOSED. Columns follow trades.csv."""

    __tablename__ = "trades"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, max_length=64, index=True)  # None in live trading
    trade_id: str = Field(max_length=64)
    instance_id: int | None = Field(default=None, index=True)
    strategy: str = Field(default="", max_length=128)
    exchange: str = Field(default="", max_length=64)
    symbol: str = Field(max_length=64)
    interval: str = Field(default="", max_length=8)
    side: str = Field(max_length=8)  # a Side
    status: str = Field(default=TradeStatus.ACTIVE, max_length=16)  # a TradeStatus
    entry_time: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    entry_price: float
    exit_time: datetime | None = _ts_column(nullable=True)
    exit_price: float | None = None
    quantity: float
    fees: float = 0.0
    pnl: float | None = None
    return_pct: float | None = None
    exit_reason: str | None = Field(default=None, max_length=32)
    # live open trades: the latest mark (written every 30 s and on shutdown)
    mark_price: float | None = None
    unrealised_pnl: float | None = None
    marked_at: datetime | None = _ts_column(nullable=True)
    # live: the quantity closed so far by partial exits (a take profit that filled in part);
    # the position still open is quantity - exited_quantity (None: nothing closed yet)
    exited_quantity: float | None = None


class BacktestRun(SQLModel, table=True):
    """One finished (or failed) backtest with its metrics."""

    __tablename__ = "backtest_runs"

    id: str = Field(primary_key=True, max_length=64)  # run_id
    run_key: str | None = Field(
        default=None, sa_column=Column(String(256), unique=True, nullable=True)
    )
    instance_id: int | None = Field(default=None, index=True)
    strategy: str = Field(max_length=128, index=True)
    symbol: str = Field(max_length=64)
    interval: str = Field(max_length=8)
    params_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    start: datetime | None = _ts_column(nullable=True)
    end: datetime | None = _ts_column(nullable=True)
    bars: int = 0
    status: str = Field(default="done", max_length=16)  # done|failed
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    metrics_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    engine_version: str = Field(default="", max_length=32)
    created_at: datetime = _ts_column()

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_json)


class RiskState(SQLModel, table=True):
    """A live portfolio's risk-limit state (live/risk_limits.py), one row per scope: an account
    (one quote currency's portfolio, scope "BTC") or one instance in it ("BTC #3 sr_breakout[..]").
    The baselines (`day_start`, `high_water`: equity, or an instance's pnl) let a restart go on
    measuring; a breach stays until its day rolls (daily loss) or `cli.py live reset-limits`."""

    __tablename__ = "risk_states"

    exchange: str = Field(primary_key=True, max_length=64)
    mode: str = Field(primary_key=True, max_length=16)  # "real" or "dry-run": never mixed up
    scope: str = Field(primary_key=True, max_length=200)
    day: str | None = Field(default=None, max_length=10)  # UTC day of day_start, YYYY-MM-DD
    day_start: float | None = None
    high_water: float | None = None
    breach_kind: str | None = Field(default=None, max_length=32)  # a LimitKind
    breach_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    breach_day: str | None = Field(default=None, max_length=10)  # UTC day of the breach
    breached_at: datetime | None = _ts_column(nullable=True)  # market time of the breach
    updated_at: datetime = _ts_column()
