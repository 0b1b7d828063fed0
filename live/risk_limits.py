"""Risk limits of a live portfolio (a kill switch): the rules, in one place.

`RiskLimits` are the settings (flags of `cli.py live`, or the "limits" object of a prod.json;
flags win). Every limit is OFF by default (None): a run without limits trades exactly as before.
Fractions are of equity, in the portfolio's quote currency (one portfolio per quote currency,
live/portfolios.py, is one "account"):

| limit                   | breached when                                              | latches |
|-------------------------|------------------------------------------------------------|---------|
| max_daily_loss  f       | (equity at the UTC day's first mark - equity) / it >= f    | until the UTC day rolls |
| max_drawdown    f       | (high-water mark of equity - equity) / high-water >= f     | until reset-limits |
| max_open        n       | an entry while n positions are open or pending              | no: that entry is refused |
| max_order_notional f    | an entry's quantity x price > f x equity                    | no: that entry is refused |
| max_orders_per_minute n | an entry after n entries in the last 60 s (market time)     | until reset-limits |

The daily loss and drawdown are checked on every mark (each closed bar) and before every entry,
for the account and for each instance in it (an instance's pnl, realised and unrealised since
the start, measured against the account's day-start equity and high-water mark: an instance that
alone lost f of the account stops, the others go on). A latched breach refuses every new entry
of its scope (exits, stops and targets work as before) or, with on_breach "close", also closes
its scope's open trades at market at the next bar. `RiskGuard` evaluates the rules and returns a
typed `Breach` with its reason; the portfolio (live/portfolios.GuardedPortfolio) acts on it.

Persisted (store/risk.py, table risk_states): each account's day-start equity and high-water
mark (written on a day roll, a breach, and a new high at most every 30 s) and every breach, so a
restart goes on measuring and stays stopped. `cli.py live reset-limits` deletes them; a running
trader that is stopped rereads its rows every 2 s and resumes when they are gone.
Times are market times (the bars' close, ns): a replay's day rolls on its data's days.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from core.errors import UserError

log = logging.getLogger("raytrader.live")
MINUTE_NS = 60_000_000_000
HIGH_WATER_EVERY_S = 30.0  # a new high-water mark is written at most this often
REREAD_EVERY_S = 2.0  # a breached guard looks this often whether reset-limits cleared it


class LimitKind(StrEnum):
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    OPEN_POSITIONS = "open_positions"
    ORDER_NOTIONAL = "order_notional"
    ORDERS_PER_MINUTE = "orders_per_minute"


# breaches that stop the scope's entries until the day rolls or reset-limits (a kill switch);
# the others only refuse the one entry that would pass them
LATCHING = frozenset({LimitKind.DAILY_LOSS, LimitKind.DRAWDOWN, LimitKind.ORDERS_PER_MINUTE})


class OnBreach(StrEnum):
    """What a latched breach does to the open trades of its scope."""

    BLOCK = "block"  # kept, managed by their exits; only new entries are refused
    CLOSE = "close"  # closed at market at the next bar


# setting name -> (flag, kind of value): fractions in (0, 1], counts >= 1
FRACTIONS = {
    "max_daily_loss": "--max-daily-loss",
    "max_drawdown": "--max-drawdown",
    "max_order_notional": "--max-order-notional",
}
COUNTS = {"max_open": "--max-open", "max_orders_per_minute": "--max-orders-per-minute"}
KEYS = (*FRACTIONS, *COUNTS, "on_breach")


@dataclass(frozen=True)
class RiskLimits:
    """The limits of every live portfolio of a run; None: that limit is off (the default)."""

    max_daily_loss: float | None = None  # fraction of the UTC day's starting equity
    max_drawdown: float | None = None  # fraction of the high-water mark of equity
    max_open: int | None = None  # open positions + pending entries per account
    max_order_notional: float | None = None  # one entry's notional, fraction of equity
    max_orders_per_minute: int | None = None  # entries per 60 s of market time per account
    on_breach: OnBreach = OnBreach.BLOCK

    @classmethod
    def parse(cls, values: Mapping[str, Any], where: str = "") -> RiskLimits:
        """Validated limits from flag values or a prod.json "limits" object (None: off);
        UserError naming the flag (or `where` and the key) for a bad value."""
        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            raise UserError(f"{where}unknown limit {', '.join(unknown)}; known: {', '.join(KEYS)}")
        out: dict[str, Any] = {}
        for key, value in values.items():
            name = (
                f"{where}{key}" if where else FRACTIONS.get(key) or COUNTS.get(key, "--on-breach")
            )
            if value is None:
                continue
            if key == "on_breach":
                if value not in tuple(OnBreach):
                    raise UserError(f"{name} must be block or close, got {value!r}")
                out[key] = OnBreach(value)
            elif key in FRACTIONS:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise UserError(f"{name} must be a fraction of equity in (0, 1], got {value!r}")
                if not 0 < value <= 1:
                    raise UserError(f"{name} must be a fraction of equity in (0, 1], got {value}")
                out[key] = float(value)
            else:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise UserError(f"{name} must be a whole number >= 1, got {value!r}")
                out[key] = int(value)
        return cls(**out)

    def active(self) -> bool:
        return any(getattr(self, key) is not None for key in (*FRACTIONS, *COUNTS))

    def watches_equity(self) -> bool:
        """A limit on equity: the portfolio then marks its positions on every bar."""
        return self.max_daily_loss is not None or self.max_drawdown is not None

    def text(self) -> str:
        """'daily loss 5%, drawdown 20%, open 10; on breach block', or 'off'."""
        parts = [
            f"{label} {_pct(value) if key in FRACTIONS else value}"
            for key, label in (
                ("max_daily_loss", "daily loss"),
                ("max_drawdown", "drawdown"),
                ("max_open", "open"),
                ("max_order_notional", "order notional"),
                ("max_orders_per_minute", "orders/min"),
            )
            if (value := getattr(self, key)) is not None
        ]
        return f"{', '.join(parts)}; on breach {self.on_breach}" if parts else "off"


@dataclass(frozen=True)
class Breach:
    kind: LimitKind
    scope: str  # the account ("BTC") or an instance in it ("BTC #3 sr_breakout[...]")
    reason: str
    ts: int  # market time, ns

    @property
    def latching(self) -> bool:
        return self.kind in LATCHING

    def text(self) -> str:
        return f"risk limit {self.kind} breached ({self.scope}): {self.reason}"

    def refusal(self) -> str:
        """The reason an entry is refused."""
        if self.latching:
            return f"{self.text()}: no new entries (reset with `cli.py live reset-limits`)"
        return f"risk limit {self.kind}: {self.reason}"


@dataclass
class Tracker:
    """One scope's baselines (day-start and high-water: equity, or an instance's pnl) and
    its latched breach."""

    day: str | None = None
    day_start: float | None = None
    high_water: float | None = None
    breach: Breach | None = None

    def row(self) -> dict[str, Any]:
        b = self.breach
        return {
            "day": self.day,
            "day_start": self.day_start,
            "high_water": self.high_water,
            "breach_kind": b.kind if b else None,
            "breach_reason": b.reason if b else None,
            "breach_day": utc_day(b.ts) if b else None,
            "breached_at": dt.datetime.fromtimestamp(b.ts / 1e9, dt.UTC) if b else None,
        }


class RiskStore(Protocol):
    """Where a guard keeps its state (store/risk.py through SqlRiskStore; None: memory only)."""

    def load(self) -> dict[str, dict[str, Any]]: ...
    def save(self, scope: str, row: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class SqlRiskStore:
    url: str
    exchange: str
    mode: str  # "real" or "dry-run"

    def load(self) -> dict[str, dict[str, Any]]:
        from store.risk import load_risk

        return load_risk(self.url, self.exchange, self.mode)

    def save(self, scope: str, row: dict[str, Any]) -> None:
        """A database hiccup must not stop trading: the state holds in memory and is written
        again with the next change."""
        from sqlalchemy.exc import SQLAlchemyError

        from store.risk import save_risk

        try:
            save_risk(self.url, self.exchange, self.mode, scope, row)
        except SQLAlchemyError as exc:
            log.warning("cannot write the risk-limit state of %s (%s)", scope, type(exc).__name__)


class RiskGuard:
    """Evaluates the limits of one account (a quote currency's portfolio) and its instances."""

    def __init__(
        self,
        limits: RiskLimits,
        account: str,
        store: RiskStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.account = account
        self.store = store
        self._clock = clock
        self.trackers: dict[str, Tracker] = {}
        self.entries: deque[int] = deque()  # market times of the entries let through
        self._saved_at = self._reread_at = clock()
        for scope, row in (store.load() if store is not None else {}).items():
            self.trackers[scope] = self._tracker_of(scope, row)

    def _tracker_of(self, scope: str, row: Mapping[str, Any]) -> Tracker:
        breach = None
        if row.get("breach_kind"):
            at = row.get("breached_at")
            ts = int(at.timestamp() * 1e9) if isinstance(at, dt.datetime) else 0
            breach = Breach(LimitKind(row["breach_kind"]), scope, row["breach_reason"] or "", ts)
        if scope != self.account:  # an instance's pnl starts at 0 again: only its breach stays
            return Tracker(breach=breach)
        return Tracker(row.get("day"), row.get("day_start"), row.get("high_water"), breach)

    def scope(self, instance: str) -> str:
        return f"{self.account} {instance}"

    # -- the rules -----------------------------------------------------------------------------
    def mark(self, ts: int, equity: float, instance_pnl: Mapping[str, float]) -> list[Breach]:
        """A mark (a closed bar, or an entry about to be sized): the day rolled? a new high?
        Returns the breaches that latched now (each once)."""
        self._maybe_reread()
        if not math.isfinite(equity):
            return []
        day = utc_day(ts)
        account = self._get(self.account)
        new = []
        self._baselines(account, day, equity, persist=True)
        found = self._equity_breach(ts, self.account, account, equity, account)
        if found:
            new.append(found)
        for instance, pnl in instance_pnl.items():
            scope = self.scope(instance)
            tracker = self.trackers.get(scope)
            if tracker is None or tracker.day is None:  # an instance's pnl starts at 0
                kept = tracker.breach if tracker is not None else None
                tracker = self.trackers[scope] = Tracker(day, 0.0, 0.0, kept)
            self._baselines(tracker, day, pnl, persist=False)
            if account.breach is not None:  # every entry is stopped already: one line is enough
                continue
            found = self._equity_breach(ts, scope, tracker, pnl, account)
            if found:
                new.append(found)
        return new

    def _baselines(self, tracker: Tracker, day: str, value: float, persist: bool) -> None:
        changed = False
        if tracker.day != day:  # a new UTC day: its loss counts from here
            tracker.day, tracker.day_start, changed = day, value, True
            if tracker.breach is not None and tracker.breach.kind == LimitKind.DAILY_LOSS:
                tracker.breach = None
                self._save_scope_of(tracker)
        if tracker.high_water is None or value > tracker.high_water:
            tracker.high_water = value
            if persist and self._clock() - self._saved_at >= HIGH_WATER_EVERY_S:
                changed = True
        if changed and persist:
            self._save(self.account, tracker)

    def _equity_breach(
        self, ts: int, scope: str, tracker: Tracker, value: float, account: Tracker
    ) -> Breach | None:
        """The daily loss and drawdown of `value` (the account's equity or an instance's pnl),
        as fractions of the account's day-start equity and high-water mark."""
        if tracker.breach is not None and tracker.breach.latching:
            return None
        lim = self.limits
        start, high = account.day_start, account.high_water
        if lim.max_daily_loss is not None and start and start > 0:
            loss = (tracker.day_start - value) / start
            if loss >= lim.max_daily_loss:
                return self._latch(
                    ts,
                    scope,
                    tracker,
                    LimitKind.DAILY_LOSS,
                    f"lost {_pct(loss)} of the day's starting equity {start:.8g} "
                    f"(limit {_pct(lim.max_daily_loss)})",
                )
        if lim.max_drawdown is not None and high and high > 0:
            drawdown = (tracker.high_water - value) / high
            if drawdown >= lim.max_drawdown:
                return self._latch(
                    ts,
                    scope,
                    tracker,
                    LimitKind.DRAWDOWN,
                    f"drawdown {_pct(drawdown)} from the high-water mark {high:.8g} "
                    f"(limit {_pct(lim.max_drawdown)})",
                )
        return None

    def before_entry(self, ts: int, instance: str, open_count: int) -> Breach | None:
        """Why an entry of `instance` may not be sent (None: it may), with `open_count`
        positions open or pending in the account."""
        self._maybe_reread()
        for scope in (self.account, self.scope(instance)):
            tracker = self.trackers.get(scope)
            if tracker is None or tracker.breach is None:
                continue
            breach = tracker.breach
            if breach.kind == LimitKind.DAILY_LOSS and utc_day(breach.ts) != utc_day(ts):
                tracker.breach = None  # rolled with the day (also without a mark: no bar watch)
                self._save(scope, tracker)
                continue
            return breach
        lim = self.limits
        if lim.max_open is not None and open_count >= lim.max_open:
            return Breach(
                LimitKind.OPEN_POSITIONS,
                self.account,
                f"{open_count} positions open or pending, {lim.max_open} allowed",
                ts,
            )
        if lim.max_orders_per_minute is not None:
            while self.entries and self.entries[0] <= ts - MINUTE_NS:
                self.entries.popleft()
            if len(self.entries) >= lim.max_orders_per_minute:
                return self._latch(
                    ts,
                    self.account,
                    self._get(self.account),
                    LimitKind.ORDERS_PER_MINUTE,
                    f"{len(self.entries) + 1} entries within a minute "
                    f"(limit {lim.max_orders_per_minute})",
                )
        return None

    def order_notional(self, ts: int, notional: float, equity: float) -> Breach | None:
        """An entry of `notional` (quantity x price) against the account's equity."""
        cap = self.limits.max_order_notional
        if cap is None or notional <= cap * equity:
            return None
        return Breach(
            LimitKind.ORDER_NOTIONAL,
            self.account,
            f"order notional {notional:.8g} > {_pct(cap)} of equity {equity:.8g}",
            ts,
        )

    def entered(self, ts: int) -> None:
        """An entry was let through (counted for max_orders_per_minute)."""
        if self.limits.max_orders_per_minute is not None:
            self.entries.append(ts)

    # -- state ---------------------------------------------------------------------------------
    def blocked(self, instance: str | None = None) -> Breach | None:
        """The latched breach stopping the account (or this instance), if any."""
        scopes = [self.account] + ([self.scope(instance)] if instance is not None else [])
        for scope in scopes:
            tracker = self.trackers.get(scope)
            if tracker is not None and tracker.breach is not None:
                return tracker.breach
        return None

    def breaches(self) -> list[Breach]:
        return [t.breach for t in self.trackers.values() if t.breach is not None]

    def _get(self, scope: str) -> Tracker:
        tracker = self.trackers.get(scope)
        if tracker is None:
            tracker = self.trackers[scope] = Tracker()
        return tracker

    def _latch(self, ts: int, scope: str, tracker: Tracker, kind: LimitKind, reason: str) -> Breach:
        tracker.breach = Breach(kind, scope, reason, ts)
        self._save(scope, tracker)
        return tracker.breach

    def _save_scope_of(self, tracker: Tracker) -> None:
        for scope, t in self.trackers.items():
            if t is tracker:
                self._save(scope, tracker)

    def _save(self, scope: str, tracker: Tracker) -> None:
        if scope == self.account:
            self._saved_at = self._clock()
        if self.store is not None:
            row = tracker.row()
            if scope != self.account:  # an instance's pnl restarts at 0: only its breach lasts
                row.update(day=None, day_start=None, high_water=None)
            self.store.save(scope, row)

    def _maybe_reread(self) -> None:
        """Stopped: has `cli.py live reset-limits` deleted the rows? Then measure anew."""
        if self.store is None or not self.breaches():
            return
        now = self._clock()
        if now - self._reread_at < REREAD_EVERY_S:
            return
        self._reread_at = now
        try:
            rows = self.store.load()
        except Exception:  # noqa: BLE001 - a database hiccup: still stopped, asked again later
            return
        for scope, tracker in list(self.trackers.items()):
            if tracker.breach is not None and not (rows.get(scope) or {}).get("breach_kind"):
                self.trackers[scope] = Tracker()  # baselines start again at the next mark
                self.entries.clear()


def utc_day(ts_ns: int) -> str:
    """The UTC day of a market time in ns, YYYY-MM-DD."""
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).date().isoformat()


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.6g}%"
