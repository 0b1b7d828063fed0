"""A signal gate that asks the inference API (`cli.py model run`) at signal time.

It is the strategy host's `signal_gate` (actors/strategy_host.py) for live trading: called with
an entry signal, it computes that signal bar's features (a callable the host wiring supplies, the
same ml/features.FeatureBuilder rows `model train` learned from), sends the model's own columns
to POST /predict and returns the API's (take, size) — the decision `model eval` makes in-process
with ml/apply.decide.

When the API is down, slow (no answer within `timeout` seconds) or refuses the request, the gate
falls back to a fixed rule and logs one warning line saying so:
- fallback="trade" (the default): take the signal at normal size, as without a model;
- fallback="skip": skip the signal (for a strategy that should only trade with its model).

With RAYTRADER_API_TOKEN set, every request carries it as a bearer token (an API served beyond
loopback answers only with it, ml/serve.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import requests

from core.errors import UserError
from ml.api_limits import TOKEN_ENV

log = logging.getLogger("raytrader.ml.gate")
FALLBACKS = {"trade": (True, 1.0), "skip": (False, 0.0)}


class RemoteModelGate:
    def __init__(
        self,
        base_url: str,
        instance_id: int,
        features: Callable[[Any], dict[str, float]],
        fallback: str = "trade",
        timeout: float = 0.25,
    ) -> None:
        if fallback not in FALLBACKS:
            raise UserError(f"unknown fallback {fallback!r}; use one of {', '.join(FALLBACKS)}")
        self.base_url = base_url.rstrip("/")
        self.instance_id, self.features = instance_id, features
        self.fallback, self.timeout = fallback, timeout
        self.asked = self.fell_back = 0
        self._cached_columns: list[str] | None = None
        self._session = requests.Session()  # one kept-alive connection: ~1 ms per question
        token = os.environ.get(TOKEN_ENV, "").strip()
        if token:  # an API served beyond loopback answers only with it (ml/serve.api_token)
            self._session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, signal: Any) -> tuple[bool, float]:
        self.asked += 1
        try:
            answer = self._ask(signal)
            if answer.status_code == 422:  # a retrained model may use other columns: look again
                self._cached_columns = None
                answer = self._ask(signal)
            if answer.status_code != 200:
                return self._fall_back(signal, f"HTTP {answer.status_code}: {_detail(answer)}")
            body = answer.json()
            return bool(body["take"]), float(body["size"])
        except (requests.RequestException, ValueError, KeyError) as exc:
            return self._fall_back(signal, f"{type(exc).__name__}: {exc}")

    def _ask(self, signal: Any) -> requests.Response:
        row = self.features(signal)
        columns = self._columns()
        features = {name: row[name] for name in columns} if columns else row
        return self._session.post(
            f"{self.base_url}/predict",
            timeout=self.timeout,
            json={"instance_id": self.instance_id, "features": features},
        )

    def _columns(self) -> list[str] | None:
        """The model's own feature columns (GET /models, cached), so extra ones are not sent."""
        if self._cached_columns is None:
            answer = self._session.get(f"{self.base_url}/models", timeout=self.timeout)
            answer.raise_for_status()
            for model in answer.json()["models"]:
                if model["instance_id"] == self.instance_id:
                    self._cached_columns = list(model["features"])
        return self._cached_columns

    def _fall_back(self, signal: Any, why: str) -> tuple[bool, float]:
        self.fell_back += 1
        rule = "trading without the model" if self.fallback == "trade" else "skipping the signal"
        log.warning(
            "model API for instance %s unavailable at signal %s (%s): %s",
            self.instance_id,
            getattr(signal, "signal_id", "?"),
            why,
            rule,
        )
        return FALLBACKS[self.fallback]


def _detail(answer: requests.Response) -> str:
    try:
        return str(answer.json().get("detail"))
    except ValueError:
        return answer.text[:200]
