"""Live trading with a model: each instance with a trained model asks it at signal time.

The gate is the strategy host's `signal_gate` (actors/strategy_host.py), the hook a with-model
backtest uses: called with each entry signal, it answers (take, size multiplier) by the model's
application method (ml/apply.decide, as `model eval` applies it). The signal bar's features are
computed from the bars known at the signal (ml/features.FeatureBuilder, the rows `model train`
learned from), so a backtest gated by `ml.apply.OnlineGate` over the same bars takes the same
decisions (tests/live/test_model_gates.py).

Two ways to ask, chosen by `cli.py live`:
- in process (no --model-url): the model file of the newest version in the model store is loaded
  once at start into the host's Ray actor (ml.apply.OnlineGate);
- over HTTP (--model-url, a `cli.py model run`): ml.remote_gate.RemoteModelGate. The features are
  still computed here (the model file says which), missing values filled with the model's
  training medians (what Model.predict_proba does in process; the API refuses NaN), and the API
  answers the decision of its newest model. When it is down, slow or refuses, the documented
  fallback applies (--model-fallback trade|skip) and the actor's log says so per signal.

`BarFeed` keeps the bars a gate needs: one per group of hosts on a series, placed before the
hosts in the group so each live bar is in the feed before any host evaluates it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from actors.messages import BarClosed
from core.intervals import interval_ns

if TYPE_CHECKING:
    from actors.messages import SignalRaised
    from live.hosts import LiveStrategyHost
    from ml.apply import OnlineGate
    from ml.modelstore import TrainedModel
    from ml.remote_gate import RemoteModelGate

COLUMNS = ["open", "high", "low", "close", "volume"]


class BarFeed:
    """The series' bars (warm-up, then every live bar once) for the gates' features."""

    def __init__(self, warm: pd.DataFrame, symbol: str, interval: str, window: int) -> None:
        self.symbol, self.interval, self.window = symbol, interval, window
        self._frame = warm.loc[:, COLUMNS].iloc[-window:]
        self._open_ns = pd.DatetimeIndex(self._frame.index).as_unit("ns").asi8.tolist()
        self._rows: list[tuple[int, tuple[float, ...]]] = []

    def subscriptions(self) -> tuple[type, ...]:
        return (BarClosed,)

    def handle(self, msg: BarClosed) -> list:
        if msg.symbol != self.symbol or msg.interval != self.interval:
            return []
        last = self._rows[-1][0] if self._rows else (self._open_ns[-1] if self._open_ns else None)
        if last is None or msg.bar_ts > last:  # a repeated bar is kept once, as the hosts do
            self._rows.append((msg.bar_ts, (msg.open, msg.high, msg.low, msg.close, msg.volume)))
        return []

    def bars(self) -> pd.DataFrame:
        if self._rows:
            stamps = np.array([t for t, _ in self._rows], dtype=np.int64)
            index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True), name=self._frame.index.name)
            live = pd.DataFrame([r for _, r in self._rows], columns=COLUMNS, index=index)
            joined = pd.concat([self._frame, live]) if len(self._frame) else live
            self._frame = joined.iloc[-self.window :]
            self._open_ns = pd.DatetimeIndex(self._frame.index).as_unit("ns").asi8.tolist()
            self._rows = []
        return self._frame

    def history(self, ts: int) -> pd.DataFrame:
        """The bars closed at or before ts (ml.apply.closed_bars over the live series)."""
        frame = self.bars()
        close_ns = np.asarray(self._open_ns, dtype=np.int64) + interval_ns(self.interval)
        return frame.iloc[: int(np.searchsorted(close_ns, ts, "right"))]


class ImputedFeatures:
    """The signal bar's feature row as the API takes it: the model's columns, NaN/inf filled
    with its training medians (exactly the row Model.predict_proba feeds the estimator)."""

    def __init__(
        self, trained: TrainedModel, interval: str, history: Callable[[int], pd.DataFrame]
    ) -> None:
        from ml.features import FeatureBuilder, FeatureConfig

        self.builder = FeatureBuilder(FeatureConfig.from_dict(trained.features))
        self.model, self.interval, self.history = trained.model, interval, history

    def __call__(self, signal: SignalRaised) -> dict[str, float]:
        bars = self.history(int(signal.ts))
        row = self.builder.rows(bars, self.interval, [len(bars) - 1])
        columns = list(self.model.columns) or list(row.columns)
        x = row.reindex(columns=columns).astype(np.float64).replace([np.inf, -np.inf], np.nan)
        x = x.fillna(self.model.medians).fillna(0.0)
        return {name: float(v) for name, v in x.iloc[0].items()}


@dataclass(frozen=True)
class ModelGates:
    """The trained models of the live instances and how to ask them."""

    models: dict[str, tuple[int, TrainedModel]]  # member label -> (instance id, its model)
    url: str | None = None  # a `cli.py model run` API; None: the models in process
    fallback: str = "trade"  # when the API is down, slow or refuses: trade | skip
    timeout: float = 0.5  # seconds the API may take for one prediction (--model-timeout)

    def gate(self, label: str, interval: str, feed: BarFeed) -> OnlineGate | RemoteModelGate:
        from ml.apply import OnlineGate
        from ml.remote_gate import RemoteModelGate

        instance_id, trained = self.models[label]
        if self.url is None:
            return OnlineGate(trained, trained.spec.method, interval, feed.history)
        features = ImputedFeatures(trained, interval, feed.history)
        return RemoteModelGate(self.url, instance_id, features, self.fallback, self.timeout)

    def attach(
        self,
        hosts: list[tuple[str, LiveStrategyHost]],
        warm: pd.DataFrame,
        symbol: str,
        interval: str,
        window: int,
    ) -> list[tuple[str, LiveStrategyHost | BarFeed]]:
        """The host group's members with a gate on each host that has a model (and the feed
        those gates read, first); unchanged when none has."""
        gated = [(label, host) for label, host in hosts if label in self.models]
        if not gated:
            return hosts
        feed = BarFeed(warm, symbol, interval, window)
        for label, host in gated:
            host.signal_gate = self.gate(label, interval, feed)
        return [(f"model bars {gated[0][0]}", feed), *hosts]


def load_model_gates(
    db_url: str,
    instances: dict[str, int | None],
    url: str | None,
    fallback: str,
    timeout: float = 0.5,
) -> ModelGates:
    """The newest stored model of each instance that has one (label -> instance id given)."""
    from ml.modelstore import latest_models, load_model

    ids = sorted({i for i in instances.values() if i is not None})
    rows = latest_models(db_url, ids) if ids else {}
    models = {
        label: (i, load_model(rows[i].path))
        for label, i in instances.items()
        if i is not None and i in rows
    }
    return ModelGates(models, url.rstrip("/") if url else None, fallback, timeout)
