"""Differential test: the engine against an independent per-bar model of docs/design.md#fill-semantics.

`model_trades` below is deliberately simple and shares no code with the engine: one loop over the
bars that applies the fill rules as docs/design.md states them, for a strategy that
holds one position at a time (no hedge, no pyramiding):

- a signal at the close of bar t fills at the OPEN of the next bar, slippage against you;
- brackets are set from the fill price (percent of it, or the strategy's distance in price
  units) and are live from the entry bar itself; within a bar the open fills first (entries,
  exit signals, time exits), then the stop at min(open, stop) (a long; shorts mirror), then the
  take profit at max(open, target), which gets no slippage;
- a time exit (max_bars held, or the end of the entry's UTC day) fills at the first open at or
  after its time; open positions close at the last close at the end of data (no slippage);
- the fee (bps of notional) is charged on every fill; pnl is net of entry and exit fees;
  return_pct = pnl / entry notional; entry_time / exit_time are the open times of the fill bars;
- size = min(risk * equity / stop distance (or / price without a stop), cash / (price * (1 +
  fee + slippage)), exposure limit * equity / price) at the signal bar's close; flat, equity
  is the cash.

Hypothesis draws bars with gaps between a close and the next open and missing bars, signals,
brackets, fees, slippage and risk; every trade of the engine (fast mode and replay) must equal
the model's: times, prices, quantity, fees, pnl, return and exit reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.run import BacktestConfig
from strategies.base import Strategy
from tests.actors.helpers import backtest

DAY_NS = 86_400 * 10**9
STEP_NS = {"1m": 60 * 10**9, "5m": 300 * 10**9}
SIGNALS = ("enter_long", "exit_long", "enter_short", "exit_short")


@dataclass(frozen=True)
class TableParams:
    sl_pct: float = 0.0
    tp_pct: float = 0.0
    max_bars: int = 0
    allow_short: bool = True


class Table(Strategy):
    """Plays back a precomputed signal table (class attribute `table`, one row per bar)."""

    name = "table"
    Params = TableParams
    table: pd.DataFrame = pd.DataFrame()

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        return self.table.set_axis(bars.index)


@dataclass
class Scenario:
    bars: pd.DataFrame
    interval: str
    table: pd.DataFrame
    params: TableParams
    session_exit: bool
    config: BacktestConfig

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: short
        rows = [tuple(round(v, 4) for v in r) for r in self.bars.iloc[:, :4].itertuples(False)]
        where = {c: np.flatnonzero(self.table[c]).tolist() for c in SIGNALS}
        distances = [c for c in ("stop_distance", "target_distance") if c in self.table]
        return (
            f"Scenario({self.interval} from {self.bars.index[0]}, bars (o, h, l, c)={rows}, "
            f"times={[str(t.time()) for t in self.bars.index]}, signals={where}, "
            f"distances={distances}, {self.params}, session_exit={self.session_exit}, "
            f"{self.config})"
        )

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints this, not the frames
        printer.text(repr(self))

    def strategy(self) -> Strategy:
        attrs = {"table": self.table, "session_exit": self.session_exit}
        cls = type("TableStrategy", (Table,), attrs)
        return cls(**vars(self.params))


# -- scenarios ---------------------------------------------------------------------------------
# One bar: (gap of its open from the previous close, close/open - 1, upper wick, lower wick,
# bar numbers since the previous bar (> 1: missing bars), the four signal flags, stop and target
# distance as a fraction of the close (nan: none)). Bars are one list so hypothesis shrinks a
# failure by dropping bars.
DISTANCE = st.one_of(st.just(math.nan), st.floats(0.001, 0.03))
BAR = st.tuples(
    st.floats(-0.03, 0.03),
    st.floats(-0.03, 0.03),
    st.floats(0, 0.02),
    st.floats(0, 0.02),
    st.sampled_from([1, 1, 1, 1, 2, 4]),
    *[st.booleans()] * len(SIGNALS),
    DISTANCE,
    DISTANCE,
)


@st.composite
def scenarios(draw) -> Scenario:
    drawn = draw(st.lists(BAR, min_size=2, max_size=50))
    interval = draw(st.sampled_from(["1m", "5m"]))
    # some runs start shortly before midnight UTC so that session exits fall inside the data
    start = draw(st.sampled_from(["2024-01-01 00:00", "2024-03-05 23:20", "2024-03-05 23:50"]))
    offsets = np.cumsum([0, *(b[4] for b in drawn[1:])])
    index = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(offsets * STEP_NS[interval], "ns")
    rows, price = [], 100.0
    for gap, ret, up, down, *_ in drawn:
        o = price * (1 + gap)  # the open gaps away from the previous close
        c = o * (1 + ret)
        rows.append((o, max(o, c) * (1 + up), min(o, c) * (1 - down), c))
        price = c
    bars = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    bars.index.name = "timestamp"
    bars["volume"] = 1.0
    table = pd.DataFrame({c: [b[5 + j] for b in drawn] for j, c in enumerate(SIGNALS)})
    for j, column in enumerate(("stop_distance", "target_distance")):
        if draw(st.booleans()):  # in price units, known at the signal bar
            table[column] = np.array([b[9 + j] for b in drawn]) * bars["close"].to_numpy()
    params = TableParams(
        sl_pct=draw(st.sampled_from([0.0, 0.002, 0.01, 0.03])),
        tp_pct=draw(st.sampled_from([0.0, 0.005, 0.02, 0.05])),
        max_bars=draw(st.sampled_from([0, 1, 2, 5])),
    )
    config = BacktestConfig(
        cash=draw(st.sampled_from([10_000.0, 1_234.5])),
        fee_bps=draw(st.sampled_from([0.0, 2.5, 10.0, 30.0])),
        slippage_bps=draw(st.sampled_from([0.0, 1.0, 5.0, 20.0])),
        risk=draw(st.sampled_from([0.01, 0.2, 1.0])),
        max_symbol_exposure=draw(st.sampled_from([1.0, 1.0, 0.3])),
        max_total_exposure=draw(st.sampled_from([1.0, 1.0, 0.5])),
    )
    return Scenario(bars, interval, table, params, draw(st.booleans()), config)


# -- the model ---------------------------------------------------------------------------------
@dataclass
class Position:
    side: str
    quantity: float
    entry_bar: int
    entry_price: float
    entry_fee: float
    stop: float | None
    target: float | None
    time_exit_ns: float  # inf: none
    exit_signalled: bool = False
    sign: float = field(init=False)

    def __post_init__(self) -> None:
        self.sign = 1.0 if self.side == "long" else -1.0


def finite_positive(value: float) -> float | None:
    return value if math.isfinite(value) and value > 0 else None


class Model:
    """The trades of a scenario by the rules in the module docstring, one bar at a time."""

    def __init__(self, s: Scenario) -> None:
        self.s = s
        self.o, self.h, self.low, self.c = (
            s.bars[k].to_numpy() for k in ("open", "high", "low", "close")
        )
        self.times = s.bars.index.as_unit("ns").asi8
        self.fee, self.slip = s.config.fee_bps / 1e4, s.config.slippage_bps / 1e4
        nan = pd.Series(math.nan, index=s.table.index)
        self.stop_d = s.table.get("stop_distance", nan).to_numpy()
        self.target_d = s.table.get("target_distance", nan).to_numpy()
        self.cash, self.trades = s.config.cash, []
        self.position: Position | None = None
        self.entry: tuple[str, float, int] | None = None  # (side, qty, signal bar): next open

    def run(self) -> list[dict]:
        last = len(self.times) - 1
        for k in range(last + 1):
            self.at_open(k)
            self.intrabar(k)
            if k == last:
                if self.position is not None:
                    self.close(k, self.c[k], "end_of_data")  # the last close, no slippage
                break
            self.at_close(k)
        return self.trades

    def at_open(self, k: int) -> None:
        """A pending entry fills at this open; else a due exit signal or time exit does."""
        p, t = self.position, self.times[k]
        if self.entry is not None:
            self.open_position(k)
        elif p is not None and (p.time_exit_ns <= t or p.exit_signalled):
            reason = "time" if p.time_exit_ns <= t else "signal"
            self.close(k, self.o[k] * (1 - p.sign * self.slip), reason)

    def open_position(self, k: int) -> None:
        side, quantity, t = self.entry
        sign = 1.0 if side == "long" else -1.0
        price = self.o[k] * (1 + sign * self.slip)
        params = self.s.params
        sd = finite_positive(self.stop_d[t]) or (params.sl_pct * price or None)
        td = finite_positive(self.target_d[t]) or (params.tp_pct * price or None)
        stop = price - sign * sd if sd else None
        target = price + sign * td if td else None
        deadlines = [math.inf]
        if params.max_bars:
            deadlines.append(self.times[k] + params.max_bars * STEP_NS[self.s.interval])
        if self.s.session_exit:
            deadlines.append((self.times[k] // DAY_NS + 1) * DAY_NS)
        self.position = Position(
            side,
            quantity,
            k,
            price,
            abs(price * quantity) * self.fee,
            stop if stop and stop > 0 else None,
            target if target and target > 0 else None,
            min(deadlines),
        )
        self.entry = None

    def intrabar(self, k: int) -> None:
        """The stop before the take profit; a gap through the stop fills at the open."""
        p = self.position
        if p is None:
            return
        o, long = self.o[k], p.side == "long"
        if p.stop is not None and (self.low[k] <= p.stop if long else self.h[k] >= p.stop):
            worse = min(o, p.stop) if long else max(o, p.stop)
            self.close(k, worse * (1 - p.sign * self.slip), "stop_loss")
        elif p.target is not None and (self.h[k] >= p.target if long else self.low[k] <= p.target):
            self.close(k, max(o, p.target) if long else min(o, p.target), "take_profit")

    def at_close(self, k: int) -> None:
        """Exit signals first, then entries (long before short), only when flat."""
        table = self.s.table
        if self.position is not None:
            if table[f"exit_{self.position.side}"].iloc[k]:
                self.position.exit_signalled = True
            return
        for side in ("long", "short"):
            if table[f"enter_{side}"].iloc[k]:
                quantity = self.size(k)
                if quantity > 0:
                    self.entry = (side, quantity, k)
                return

    def size(self, k: int) -> float:
        """Flat, equity is the cash: the risk size capped by what the cash buys with fee and
        slippage and by the exposure limits (fractions of equity)."""
        price, equity, config = float(self.c[k]), self.cash, self.s.config
        distance = finite_positive(self.stop_d[k]) or (self.s.params.sl_pct * price) or price
        if equity <= 0:
            return 0.0
        by_cash = equity / (price * (1 + self.fee + self.slip))
        limit = min(config.max_symbol_exposure, config.max_total_exposure)
        return min(config.risk * equity / distance, by_cash, limit * equity / price)

    def close(self, k: int, price: float, reason: str) -> None:
        p = self.position
        exit_fee = abs(price * p.quantity) * self.fee
        pnl = p.sign * p.quantity * (price - p.entry_price) - p.entry_fee - exit_fee
        self.cash += pnl
        self.trades.append(
            {
                "side": p.side,
                "entry_time": int(self.times[p.entry_bar]),
                "entry_price": float(p.entry_price),
                "exit_time": int(self.times[k]),
                "exit_price": float(price),
                "quantity": float(p.quantity),
                "fees": float(p.entry_fee + exit_fee),
                "pnl": float(pnl),
                "return_pct": float(pnl / (p.quantity * p.entry_price)),
                "exit_reason": reason,
            }
        )
        self.position = None


def model_trades(s: Scenario) -> list[dict]:
    return Model(s).run()


# -- comparison --------------------------------------------------------------------------------
FLOATS = ("entry_price", "exit_price", "quantity", "fees", "pnl", "return_pct")


def assert_same_trades(engine: pd.DataFrame, model: list[dict], mode: str) -> None:
    got = [
        {
            "side": t.side,
            "entry_time": t.entry_time.value,
            "exit_time": t.exit_time.value,
            "exit_reason": t.exit_reason,
            **{f: getattr(t, f) for f in FLOATS},
        }
        for t in engine.itertuples()
    ]
    assert len(got) == len(model), f"{mode}: {len(got)} trades, model {len(model)}\n{engine}"
    for i, (g, m) in enumerate(zip(got, model, strict=True)):
        for key in ("side", "entry_time", "exit_time", "exit_reason"):
            assert g[key] == m[key], f"{mode} trade {i}: {key} {g[key]} != model {m[key]}\n{g}"
        for key in FLOATS:
            assert math.isclose(g[key], m[key], rel_tol=1e-9, abs_tol=1e-9), (
                f"{mode} trade {i}: {key} {g[key]!r} != model {m[key]!r}\nengine {g}\nmodel  {m}"
            )


def check(s: Scenario) -> list[dict]:
    expected = model_trades(s)
    for mode in ("fast", "replay"):
        run = backtest(s.strategy(), s.bars, mode, s.interval, **vars(s.config))
        assert_same_trades(run.trades, expected, mode)
    return expected


# report_multiple_bugs=False: one shrunk failure, not one per assertion line
@settings(
    max_examples=200,
    deadline=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenarios())
def test_engine_matches_the_per_bar_model(scenario: Scenario) -> None:
    check(scenario)


def test_model_and_engine_on_a_hand_computed_case() -> None:
    """The model itself checked by hand: a stop gapped through at the open, then a short whose
    take profit fills at its level without slippage; 10 bps fee, 10 bps slippage."""
    rows = [
        (100, 101, 99, 100),
        (102, 104, 101, 103),
        (98, 99, 97, 98.5),
        (97, 97.5, 92, 93),
        (93, 94, 92.5, 93.5),
    ]
    index = pd.date_range("2024-01-01", periods=len(rows), freq="1min", tz="UTC", name="timestamp")
    bars = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    bars["volume"] = 1.0
    table = pd.DataFrame({c: [False] * len(rows) for c in SIGNALS})
    table.loc[0, "enter_long"] = True
    table.loc[2, "enter_short"] = True
    config = BacktestConfig(fee_bps=10.0, slippage_bps=10.0)
    s = Scenario(bars, "1m", table, TableParams(sl_pct=0.02, tp_pct=0.05), False, config)
    # long: signal close 100, stop distance 0.02 * 100 -> size 0.01 * 10000 / 2 = 50 (the cash
    # cap 10000 / (100 * 1.002) is larger); fill at the gapped open 102 + 10 bps = 102.102;
    # stop 102.102 * 0.98 = 100.05996; bar 2 opens at 98 below it: 98 - 10 bps = 97.902
    long_pnl = 50 * (97.902 - 102.102) - 50 * 102.102 * 0.001 - 50 * 97.902 * 0.001
    # short: equity 10000 + long_pnl, stop distance 0.02 * 98.5; fill 97 - 10 bps = 96.903;
    # target 96.903 * 0.95 = 92.05785 inside bar 3 (low 92): filled at the target, no slippage
    qty = 0.01 * (10_000 + long_pnl) / (0.02 * 98.5)
    short_pnl = qty * (96.903 - 92.05785) - qty * (96.903 + 92.05785) * 0.001
    minute = 60 * 10**9
    t0 = index[0].value
    expected = [
        {
            "side": "long",
            "entry_time": t0 + minute,
            "entry_price": 102.102,
            "exit_time": t0 + 2 * minute,
            "exit_price": 97.902,
            "quantity": 50.0,
            "fees": 10.0002,
            "pnl": long_pnl,
            "return_pct": long_pnl / (50 * 102.102),
            "exit_reason": "stop_loss",
        },
        {
            "side": "short",
            "entry_time": t0 + 3 * minute,
            "entry_price": 96.903,
            "exit_time": t0 + 3 * minute,
            "exit_price": 92.05785,
            "quantity": qty,
            "fees": qty * (96.903 + 92.05785) * 0.001,
            "pnl": short_pnl,
            "return_pct": short_pnl / (qty * 96.903),
            "exit_reason": "take_profit",
        },
    ]
    assert long_pnl == pytest.approx(-220.0002)
    model = model_trades(s)
    assert_same_trades(
        pd.DataFrame(
            [
                {
                    **t,
                    "entry_time": pd.Timestamp(t["entry_time"]),
                    "exit_time": pd.Timestamp(t["exit_time"]),
                }
                for t in model
            ]
        ),
        expected,
        "model",
    )
    check(s)
