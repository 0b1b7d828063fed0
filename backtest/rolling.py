"""The rolling selection's stitched out-of-sample portfolio: one shared account
(docs/analysis.md#rolling-re-selection).

The stored trades of the selected instances are replayed, in time order, through the portfolio
backtest's own account (actors.weighted_portfolio.WeightedPortfolio: an instance risks
`risk x weight` of the account equity per trade, cash and exposure caps account-wide, dust and lot
rules), so the sizes follow the rule of `backtest --portfolio`, not a copy of it. No bar is read:
- a stored trade's stop distance is the one its own run sized it with, recovered from its size:
  d = risk x the run's equity at the entry / quantity (exact when the risk bound the size there);
  the account then sizes it risk x weight x account equity / d, capped as the portfolio caps it;
- the trade keeps its prices; quantity, fees and pnl scale by account size / stored size;
- the account's positions are marked at the latest price any stored trade of their symbol
  entered or exited at (no later price is known without bars).
A trade is taken when its instance has a weight in the selection in force at its entry, and runs
to its stored exit; with close_on_deselect it is closed at a re-selection that drops its instance,
at that mark, paying the fee on the exit notional.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actors.messages import ExitSpec, OpenTrade, SignalRaised, TradeClosed, TradeOpened
from actors.weighted_portfolio import WeightedPortfolio
from analysis.columns import TIME_FORMAT, TRADE_COLUMNS, currency_of
from analysis.rolling import Schedule, instance_name
from backtest.account import AccountSettings
from backtest.run import metrics_for, write_trades_equity
from core.vocabulary import Side, SignalAction

DESELECTED = "deselected"  # exit_reason of a trade closed by --close-on-deselect
# at one time: exits, re-selections, entries, then the exits of trades entered at that time
EXIT, RESELECT, ENTRY, SAME_BAR_EXIT = 0, 1, 2, 3


@dataclass
class Account:
    trades: pd.DataFrame  # trades.csv columns
    equity: pd.DataFrame  # timestamp, equity, cash
    refused: int  # entries the account had no size for
    metrics: dict[str, Any]


def replay(s: Schedule, settings: AccountSettings, close_on_deselect: bool = False) -> Account:
    """The schedule's trades on one account of `settings.cash`, from the first re-selection."""
    m, rows = s.market, s.market.rows
    labels = [instance_name(key) for key in m.keys]
    period = s.period_of(m.entry_ns)
    weight = np.where(period >= 0, s.weights[np.maximum(period, 0), m.owner], 0.0)
    account = WeightedPortfolio(
        settings,
        {},
        {},
        hedged=frozenset(labels),  # the runs already applied their own position rules
        position_limits=dict.fromkeys(labels, 1 << 30),
    )
    state = _Replay(s, rows, labels, weight, account, settings)
    for ts, kind, index in _events(s):
        if kind == RESELECT:
            if close_on_deselect:
                state.deselect(ts, int(index))
        elif kind == ENTRY:
            state.enter(ts, int(index))
        else:  # EXIT, SAME_BAR_EXIT
            state.exit(ts, int(index))
    trades = _trades_frame(state.closed)
    equity = _equity_frame(state.curve, s, settings.cash)
    return Account(trades, equity, state.refused, metrics_for(trades, equity, settings.cash))


def _events(s: Schedule) -> list[tuple[int, int, int]]:
    """(time ns, kind, trade or re-selection index) in the order they are played."""
    m = s.market
    n = len(m.entry_ns)
    times = np.concatenate([m.exit_ns, s.times.as_unit("ns").asi8, m.entry_ns])
    exits = np.where(m.exit_ns == m.entry_ns, SAME_BAR_EXIT, EXIT)
    kinds = np.concatenate([exits, np.full(len(s.starts), RESELECT), np.full(n, ENTRY)])
    index = np.concatenate([np.arange(n), np.arange(len(s.starts)), np.arange(n)])
    order = np.lexsort((index, kinds, times))
    return list(
        zip(times[order].tolist(), kinds[order].tolist(), index[order].tolist(), strict=True)
    )


class _Replay:
    """The account and the trades open in it while the events are played."""

    def __init__(self, s, rows, labels, weight, account, settings) -> None:
        self.s, self.labels, self.weight = s, labels, weight
        self.account, self.settings = account, settings
        self.symbol = rows["symbol"].astype(str).tolist()
        self.interval = rows["interval"].astype(str).tolist()
        self.side = [Side(v) for v in rows["side"].astype(str)]
        self.family = rows["strategy"].astype(str).tolist()
        self.entry_price = rows["entry_price"].to_numpy(float)
        self.exit_price = rows["exit_price"].to_numpy(float)
        self.quantity = rows["quantity"].to_numpy(float)
        self.fees = rows["fees"].to_numpy(float)
        self.pnl = rows["pnl"].to_numpy(float)
        self.reason = rows["exit_reason"].astype(str).tolist()
        self.open: dict[int, tuple[float, float]] = {}  # trade -> (quantity, entry fee)
        self.closed: list[dict[str, Any]] = []
        self.curve: list[tuple[int, float, float]] = []
        self.refused = 0

    def enter(self, ts: int, t: int) -> None:
        price = self.entry_price[t]
        self.account.marks[self.symbol[t]] = price
        if self.weight[t] <= 0:
            return
        label = self.labels[self.s.market.owner[t]]
        self.account.weights[label] = float(self.weight[t])
        stored = self.quantity[t]
        distance = self.settings.risk * self.s.market.single_equity[t] / stored
        signal = SignalRaised(
            ts, t, label, self.symbol[t], self.interval[t], self.side[t], SignalAction.ENTER,
            price, ExitSpec(stop_distance=distance),
        )  # fmt: skip
        answer = self.account.on_signal(signal)
        if not answer or not isinstance(answer[0], OpenTrade):
            self.refused += 1
            return
        quantity = answer[0].quantity
        # the stored fees are both legs at one rate: the entry's share is its notional's
        notional = self.entry_price[t] + self.exit_price[t]
        entry_fee = self.fees[t] * quantity / stored * (price / notional if notional else 0.5)
        self.account.on_trade_opened(
            TradeOpened(
                ts, t, t, label, self.symbol[t], self.interval[t], self.side[t], quantity,
                price, entry_fee,
            )
        )  # fmt: skip
        self.open[t] = (quantity, entry_fee)
        self.record(ts)

    def exit(self, ts: int, t: int) -> None:
        self.account.marks[self.symbol[t]] = self.exit_price[t]
        if t not in self.open:
            return
        quantity, entry_fee = self.open.pop(t)
        scale = quantity / self.quantity[t]
        exit_fee = self.fees[t] * scale - entry_fee
        self._close(ts, t, quantity, self.exit_price[t], entry_fee, exit_fee, self.reason[t])

    def deselect(self, ts: int, p: int) -> None:
        """Close the open trades of instances the re-selection `p` drops, at their marks."""
        dropped = self.s.weights[p] <= 0
        for t in [t for t in self.open if dropped[self.s.market.owner[t]]]:
            quantity, entry_fee = self.open.pop(t)
            mark = self.account.marks.get(self.symbol[t], self.entry_price[t])
            exit_fee = quantity * mark * self.settings.fee_bps / 1e4
            self._close(ts, t, quantity, mark, entry_fee, exit_fee, DESELECTED)

    def _close(self, ts, t, quantity, price, entry_fee, exit_fee, reason) -> None:
        sign = 1.0 if self.side[t] == Side.LONG else -1.0
        pnl = sign * quantity * (price - self.entry_price[t]) - entry_fee - exit_fee
        if reason != DESELECTED:  # the stored pnl, scaled: the same floats as the stored trade's
            pnl = self.pnl[t] * quantity / self.quantity[t]
        label = self.labels[self.s.market.owner[t]]
        entry_ns = int(self.s.market.entry_ns[t])
        self.account.on_trade_closed(
            TradeClosed(
                ts, t, label, self.symbol[t], self.side[t], quantity, entry_ns,
                self.entry_price[t], price, entry_fee, exit_fee, pnl, reason,
            )
        )  # fmt: skip
        self.closed.append(
            {
                "strategy": self.family[t],
                "symbol": self.symbol[t],
                "interval": self.interval[t],
                "side": str(self.side[t]),
                "entry_time": entry_ns,
                "entry_price": self.entry_price[t],
                "exit_time": ts,
                "exit_price": price,
                "quantity": quantity,
                "fees": entry_fee + exit_fee,
                "pnl": pnl,
                "return_pct": pnl / (quantity * self.entry_price[t]),
                "exit_reason": reason,
            }
        )
        self.record(ts)

    def record(self, ts: int) -> None:
        """Equity after a fill (marks move it between fills too, but only a fill is known)."""
        self.curve.append((ts, self.account.equity(), self.account.cash))


def _trades_frame(closed: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(closed, columns=[c for c in TRADE_COLUMNS if c != "trade_id"])
    frame = frame.sort_values(["entry_time", "exit_time"], kind="stable").reset_index(drop=True)
    frame.insert(0, "trade_id", np.arange(1, len(frame) + 1, dtype=np.int64))
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column].astype("int64"), utc=True)
    return frame


def _equity_frame(curve: list[tuple[int, float, float]], s: Schedule, cash: float) -> pd.DataFrame:
    """Equity after the last fill of each time, and at every 00:00 UTC from the first
    re-selection to the day after the last stored exit (a quiet day is a day, not a gap of no
    data)."""
    start = int(s.times.as_unit("ns").asi8[0])
    events = pd.DataFrame([(start, cash, cash), *curve], columns=["ns", "equity", "cash"])
    events = events.groupby("ns", sort=True).last()
    # to 00:00 after the last stored exit: the selection was in force to the end of the data
    last = max(int(events.index[-1]), int(s.market.exit_ns.max()))
    midnights = pd.date_range(
        pd.Timestamp(start, tz="UTC"),
        pd.Timestamp(last, tz="UTC").floor("D") + pd.Timedelta(days=1),
    )
    stamps = np.union1d(events.index.to_numpy(np.int64), midnights.as_unit("ns").asi8)
    at = np.searchsorted(events.index.to_numpy(np.int64), stamps, "right") - 1
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(stamps, utc=True),
            "equity": events["equity"].to_numpy()[at],
            "cash": events["cash"].to_numpy()[at],
        }
    )


# ---------------------------------------------------------------- the output directory


def results_document(account: Account, s: Schedule, params: dict[str, Any], settings) -> dict:
    """results.json of the stitched portfolio: a single backtest's keys plus the schedule's."""
    rows = s.market.rows
    symbols = list(dict.fromkeys(rows["symbol"].astype(str)))
    intervals = list(dict.fromkeys(rows["interval"].astype(str)))
    equity = account.equity
    return {
        "run_id": uuid.uuid4().hex,
        "strategy": "rolling selection",
        "symbol": ",".join(symbols),
        "interval": ",".join(intervals),
        "params": params,
        "start": pd.Timestamp(equity["timestamp"].iloc[0]).strftime(TIME_FORMAT),
        "end": pd.Timestamp(equity["timestamp"].iloc[-1]).strftime(TIME_FORMAT),
        "bars": len(equity),
        "metrics": account.metrics,
        "currency": currency_of(symbols),
        "signals_rejected": account.refused,
        "settings": asdict(settings),
        "selections": len(s.starts),
    }


def write_directory(
    out: Path,
    account: Account,
    document: dict,
    selections: pd.DataFrame,
    comparison: pd.DataFrame,
) -> None:
    """trades.csv, equity.csv, results.json (the backtest formats), selections.csv,
    comparison.csv."""
    write_trades_equity(account.trades, account.equity, Path(out))
    (Path(out) / "results.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    selections.to_csv(Path(out) / "selections.csv", index=False)
    comparison.to_csv(Path(out) / "comparison.csv", index=False)
