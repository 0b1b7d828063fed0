"""Binance's request-weight limit, per client address, when the local exchange is given one.

Every REST request costs its endpoint's weight (Binance's, roughly: most 1, klines 2, account,
exchangeInfo, allOrders and myTrades 20). Past `limit` weight in a rolling `window_s` a request
gets HTTP 429 (code -1003) with `Retry-After` (seconds until enough weight frees); a client that
keeps sending while told to wait is banned: HTTP 418 with `Retry-After` until the ban ends, as
Binance bans an IP that ignores its 429s. Every answer carries `X-MBX-USED-WEIGHT-1M`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

WEIGHTS = {
    "/api/v3/exchangeInfo": 20,
    "/api/v3/klines": 2,
    "/api/v3/account": 20,
    "/api/v3/allOrders": 20,
    "/api/v3/myTrades": 20,
    "/api/v3/openOrders": 6,
    "/sapi/v1/margin/account": 10,
}
TOO_MANY_REQUESTS = -1003
BAN_WINDOWS = 2  # a ban lasts two windows
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WeightLimit:
    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._spent: dict[str, deque[tuple[float, int]]] = {}  # client -> (time, weight)
        self._told_until: dict[str, float] = {}  # client -> end of its last Retry-After
        self._banned_until: dict[str, float] = {}

    def used(self, client: str, now: float) -> int:
        spent = self._spent.setdefault(client, deque())
        while spent and spent[0][0] <= now - self.window_s:
            spent.popleft()
        return sum(weight for _, weight in spent)

    def check(self, client: str, weight: int, now: float) -> web.Response | None:
        """None when the request may go on (its weight counted); else the 429 or 418 answer."""
        banned = self._banned_until.get(client, 0.0)
        if now < banned:
            return refusal(418, banned - now, f"IP banned until {banned:.0f} (monotonic s).")
        used = self.used(client, now)
        if used + weight <= self.limit:
            self._spent[client].append((now, weight))
            return None
        if now < self._told_until.get(client, 0.0):  # told to wait and kept going: banned
            until = now + BAN_WINDOWS * self.window_s
            self._banned_until[client] = until
            return refusal(
                418, until - now, "Way too much request weight used; IP banned for a while."
            )
        wait = self._wait(client, used + weight - self.limit, now)
        self._told_until[client] = now + wait
        return refusal(
            429,
            wait,
            f"Too much request weight used; current limit is {self.limit} request weight per "
            f"{self.window_s:g} s.",
        )

    def _wait(self, client: str, excess: int, now: float) -> float:
        """Seconds until `excess` weight leaves the window."""
        freed = 0
        for at, weight in self._spent[client]:
            freed += weight
            if freed >= excess:
                return max(at + self.window_s - now, 0.0)
        return self.window_s

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def limit_weight(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith(("/_local/", "/ws")):
                return await handler(request)
            client, now = request.remote or "?", time.monotonic()
            refused = self.check(client, WEIGHTS.get(request.path, 1), now)
            if refused is not None:
                return refused
            answer = await handler(request)
            answer.headers["X-MBX-USED-WEIGHT-1M"] = str(self.used(client, now))
            return answer

        return limit_weight


def refusal(status: int, retry_after: float, message: str) -> web.Response:
    seconds = max(1, math.ceil(retry_after))
    return web.json_response(
        {"code": TOO_MANY_REQUESTS, "msg": message},
        status=status,
        headers={"Retry-After": str(seconds)},
    )
