"""The strategy API: a small declarative class with vectorized signals.

A strategy is pure: it sees a bar frame (see factors/bars.py) and returns, for every bar t,
whether to enter or exit on each side once bar t has closed. The engine turns a signal at t into
a market order filled at the open of bar t+1 (docs/design.md#fill-semantics). Strategies never do I/O and
never import actors/, store/ or ray.

Live trading needs the signals at the newest bar only, within milliseconds for 100 instances:
`signals` over a frame costs 2-12 ms of pandas whatever its length. A family may therefore also
own `newest_signals`, the same rule evaluated at the newest bar in numpy over the `RecentBars`
it reads (at most `history_bars`), next to its `signals` in the family's module. The two must
agree at every bar for every parameter value: tests/strategies/test_newest.py draws parameters
from the family's `param_space` and series, and compares them bar by bar.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from core.errors import UserError

if TYPE_CHECKING:  # pandas loads when signals are computed: listing strategies stays light
    import numpy as np
    import pandas as pd

# factors.bars.TRADING_INTERVALS spelled out (importing factors would load pandas); a test
# keeps the two equal.
TRADING_INTERVALS = ("1m", "3m", "5m", "15m", "1h")

SIGNAL_COLUMNS = ("enter_long", "exit_long", "enter_short", "exit_short")
# Optional per-bar bracket distances in price units, known at t (e.g. k x ATR_t). When present
# and finite they override the percent brackets of the parameters for entries at that bar.
DISTANCE_COLUMNS = ("stop_distance", "target_distance")


class StrategyError(UserError):
    """A strategy that cannot be found, built or run as asked; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class ExitRules:
    """How positions of a strategy end besides exit signals.

    sl_pct / tp_pct: bracket distance as a fraction of the entry fill price (None: no leg).
    max_bars: time exit after this many bars held (None: no limit).
    session_end: close at the end of the UTC day the position was opened in.
    """

    sl_pct: float | None = None
    tp_pct: float | None = None
    max_bars: int | None = None
    session_end: bool = False


@dataclass(frozen=True)
class NoParams:
    pass


class SignalRow(NamedTuple):
    """The signal columns at one bar; a distance is None when the strategy has no such column."""

    enter_long: bool
    exit_long: bool
    enter_short: bool
    exit_short: bool
    stop_distance: float | None = None
    target_distance: float | None = None


class RecentBars(Protocol):
    """The newest bars of one series in numpy, oldest first (live/series_book.SeriesBook).

    open_ns: bar open times (int ns); open/high/low/close: float64 columns; day_start: the row
    of the current UTC day's first bar; days / day_rows: one entry per UTC day of the WHOLE
    history (day number since the epoch; [first open, max high, min low, last close]), however
    few bars are kept; memo / memo_day: a value computed once per bar / per day and shared by
    every strategy reading these bars.
    """

    n: int
    day_start: int
    days: list[int]
    day_rows: list[list[float]]

    @property
    def open_ns(self) -> np.ndarray: ...

    @property
    def open(self) -> np.ndarray: ...

    @property
    def high(self) -> np.ndarray: ...

    @property
    def low(self) -> np.ndarray: ...

    @property
    def close(self) -> np.ndarray: ...

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any: ...

    def memo_day(self, key: Any, compute: Callable[[], Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Range:
    """Values a parameter may take: low..high (ints or floats), or one of `choices`.

    `param_space` declares one per parameter; the equivalence test of `newest_signals` and
    `signals` draws parameters from it, so it must cover every value `validate` accepts that a
    user would plausibly give (a float range may be a useful bounded part of an open one).
    """

    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()


class Strategy:
    """Base class. Subclasses set the class attributes and implement `signals`."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams  # a frozen dataclass; every field has a default
    intervals: ClassVar[tuple[str, ...]] = TRADING_INTERVALS
    factors: ClassVar[tuple[str, ...]] = ()
    hedge: ClassVar[bool] = False  # may hold a long and a short at the same time
    # Pyramiding: with `pyramiding = True` an entry signal on a side that already holds a
    # position opens ANOTHER position (its own trade, size and brackets), up to `max_entries`
    # open positions per side; entry signals beyond that are ignored. `max_entries` replaces
    # the backtest's max_open_positions for this strategy. Without pyramiding a strategy holds
    # at most one position per side and entry signals while it is open are ignored.
    pyramiding: ClassVar[bool] = False
    max_entries: ClassVar[int] = 3
    session_exit: ClassVar[bool] = False  # positions close at the end of their UTC day
    # Parameter name -> Range: the space a family declares for its parameters (see Range)
    param_space: ClassVar[dict[str, Range]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = build_params(self, params)
        self.validate()
        self.entry_limit()  # a bad max_entries fails when the strategy is built, not mid-run

    def entry_limit(self) -> int:
        """Open positions this strategy may hold per side: max_entries if pyramiding, else 1."""
        if not self.pyramiding:
            return 1
        limit = self.max_entries
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise StrategyError(
                f"strategy {self.name!r}: max_entries must be an integer >= 1 when pyramiding, "
                f"got {limit!r}; set e.g. `max_entries = 3` on the class"
            )
        return limit

    # -- to implement -------------------------------------------------------------------------
    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Boolean columns of SIGNAL_COLUMNS (missing ones count as False), indexed like bars."""
        raise NotImplementedError

    def validate(self) -> None:
        """Check parameter values; raise StrategyError saying which value is wrong and why."""

    # -- optional: the newest bar alone (live hosts, live/hosts.py) ---------------------------
    def newest_signals(self, bars: RecentBars) -> SignalRow:
        """`signals` at the newest bar of `bars` only, the same values (not close: equal).

        Reads at most the last `history_bars` bars (plus the book's per-day rows). Before
        `compute`'s normalisation: return what `signals` returns at that bar. Optional: a class
        that does not define it is recomputed with `compute` over the kept bars.
        """
        raise NotImplementedError

    def history_bars(self, interval_ns: int) -> int:
        """Bars of history `newest_signals` reads at `interval_ns` bars (a live book keeps them)."""
        raise NotImplementedError

    @classmethod
    def evaluates_newest(cls) -> bool:
        """Whether this very class defines `newest_signals`. A subclass that does not define it
        again gets no newest-bar evaluation: it may have changed `signals` or what it uses."""
        return "newest_signals" in vars(cls)

    def compute_newest(self, bars: RecentBars) -> SignalRow:
        """`newest_signals` normalised as `compute` normalises `signals` (a side the parameters
        forbid never enters); identical instances reading the same bars evaluate once a bar."""
        el, xl, es, xs, stop, target = bars.memo(
            (type(self), self.params), lambda: self.newest_signals(bars)
        )
        return SignalRow(
            el and self.allows_long(), xl, es and self.allows_short(), xs, stop, target
        )

    # -- optional hooks (called by the strategy host, in live and in replay) -------------------
    def on_start(self, context: Any) -> None: ...

    def on_order(self, event: Any) -> None: ...

    def on_trade(self, event: Any) -> None: ...

    def on_stop(self) -> None: ...

    # -- provided -----------------------------------------------------------------------------
    def exit_rules(self) -> ExitRules:
        p = self.params
        return ExitRules(
            sl_pct=_positive_or_none(getattr(p, "sl_pct", None)),
            tp_pct=_positive_or_none(getattr(p, "tp_pct", None)),
            max_bars=getattr(p, "max_bars", None) or None,
            session_end=self.session_exit or bool(getattr(p, "session_exit", False)),
        )

    def compute(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Run `signals` and normalise the result: all signal columns, bool, aligned to bars."""
        import pandas as pd

        raw = self.signals(bars)
        if not isinstance(raw, pd.DataFrame) or not raw.index.equals(bars.index):
            raise StrategyError(
                f"strategy {self.name!r}: signals() must return a DataFrame indexed like the bars"
            )
        out = pd.DataFrame(index=bars.index)
        for column in SIGNAL_COLUMNS:
            values = raw[column] if column in raw else False
            out[column] = pd.Series(values, index=bars.index).fillna(False).astype(bool)
        for column in DISTANCE_COLUMNS:
            if column in raw:
                out[column] = raw[column].astype("float64")
        if not self.allows_short():
            out["enter_short"] = False
        if not self.allows_long():
            out["enter_long"] = False
        return out

    def allows_short(self) -> bool:
        return bool(getattr(self.params, "allow_short", True))

    def allows_long(self) -> bool:
        return bool(getattr(self.params, "allow_long", True))

    def require(self, ok: bool, key: str, rule: str) -> None:
        """Raise a StrategyError `name: key must be <rule>, got <value>` unless `ok`."""
        if not ok:
            value = getattr(self.params, key, None)
            raise StrategyError(
                f"strategy {self.name!r}: parameter {key} must be {rule}, got {value!r}; "
                f"e.g. --param {key}=<value>"
            )

    def describe(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.param_dict().items())
        return f"{self.name}({values})"

    def param_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.params)

    @classmethod
    def parameters(cls) -> dict[str, tuple[type, Any]]:
        """Parameter name -> (type, default)."""
        return dict(_parameters_of(cls.Params))


@functools.lru_cache(maxsize=256)
def _parameters_of(params: type) -> dict[str, tuple[type, Any]]:
    """Strategy.parameters of a Params dataclass, resolved once: typing.get_type_hints costs
    ~0.5 ms, and a grid of 1,000 runs builds 1,000 strategies (a user file reloaded gives a new
    class, so a new entry)."""
    hints = typing.get_type_hints(params)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(params)}


def _positive_or_none(value: float | None) -> float | None:
    return float(value) if value is not None and value > 0 else None


def build_params(strategy: Strategy, given: dict[str, Any]) -> Any:
    """Coerce `given` (values may be strings from the CLI) into the strategy's Params."""
    known = type(strategy).parameters()
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(known) or "none"
        raise StrategyError(
            f"strategy {strategy.name!r}: unknown parameter {unknown[0]!r}; its parameters: {names}"
        )
    values = {
        key: coerce_param(strategy.name, key, value, known[key][0]) for key, value in given.items()
    }
    return type(strategy).Params(**values)


def coerce_param(strategy: str, key: str, value: Any, kind: type) -> Any:
    """Turn `value` into `kind` (bool, int, float, str), or raise a StrategyError naming it."""
    base = (
        typing.get_args(kind)[0] if typing.get_origin(kind) in (typing.Union, _UnionType) else kind
    )
    try:
        if base is bool:
            return _to_bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if base is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        return base(value)
    except (TypeError, ValueError):
        raise StrategyError(
            f"strategy {strategy!r}: parameter {key}={value!r} is not a valid "
            f"{getattr(base, '__name__', base)}; e.g. --param {key}=<{getattr(base, '__name__', base)}>"
        ) from None


def _to_bool(value: Any) -> bool:
    numpy = sys.modules.get("numpy")  # a numpy bool can only exist once numpy is loaded
    if isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


_UnionType = type(int | None)
