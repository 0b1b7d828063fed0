"""The local exchange's seeded fault mode (`cli.py exchange serve --faults SPEC --seed N`).

A real exchange and the network between it and a client lose answers, refuse with 429, answer
5xx after doing the work, close websockets and fill resting orders in parts. The live code must
treat each as Binance's clients meet it (issue 20); this module makes them happen on purpose, and
reproducibly: every decision comes from a `random.Random` stream of its own kind, seeded from
(seed, kind), so a run with the same seed and the same requests makes the same decisions, and
turning one kind on or off does not move another kind's sequence. Every fault applied is one line
on the logger "raytrader.exchange" and a FaultRecord in `FaultPlan.log` (GET /_local/faults).

Faults (SPEC is `kind=value,...`):
- on the order endpoints (new order, OCO, cancel; spot and cross margin), at most one per request:
  drop_before_accept (the TCP connection is aborted, nothing processed), http_429 (not processed:
  429 code -1003 with Retry-After, as the weight limit answers), timeout_after_accept (processed,
  then the answer held `hang_ms` and the connection closed), http_5xx_after_accept (processed,
  then HTTP 500/502/503 with Binance's -1001 body);
- on the read endpoints (GET order, openOrders, allOrders, myTrades, account): http_5xx_read;
- latency_ms=A-B: every REST request waits a seeded uniform A..B ms before it is handled;
- ws_drop_every=S: every market and user-data stream socket is closed every S seconds;
- partial_fill: a resting LIMIT (or an OCO's LIMIT_MAKER leg) that a bar fills is filled only in
  part (localexchange/accounts.py applies it; `partial_quantity` decides how much).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from urllib.parse import parse_qsl

from aiohttp import web

from core.errors import UserError
from localexchange.accounts import Order
from localexchange.rate_limit import refusal

log = logging.getLogger("raytrader.exchange")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FaultKind(StrEnum):
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    DROP_BEFORE_ACCEPT = "drop_before_accept"
    HTTP_5XX_AFTER_ACCEPT = "http_5xx_after_accept"
    HTTP_5XX_READ = "http_5xx_read"
    HTTP_429 = "http_429"
    PARTIAL_FILL = "partial_fill"
    WS_DROP_EVERY = "ws_drop_every"
    LATENCY_MS = "latency_ms"


# The faults of an order request, in the order they are tried: the ones that leave the request
# unprocessed first (a dropped request cannot also time out).
ORDER_FAULTS = (
    FaultKind.DROP_BEFORE_ACCEPT,
    FaultKind.HTTP_429,
    FaultKind.TIMEOUT_AFTER_ACCEPT,
    FaultKind.HTTP_5XX_AFTER_ACCEPT,
)
PROBABILITY_FAULTS = (*ORDER_FAULTS, FaultKind.HTTP_5XX_READ, FaultKind.PARTIAL_FILL)
ORDER_ENDPOINTS = {
    ("POST", "/api/v3/order"),
    ("POST", "/api/v3/orderList/oco"),
    ("DELETE", "/api/v3/order"),
    ("DELETE", "/api/v3/orderList"),
    ("POST", "/sapi/v1/margin/order"),
    ("POST", "/sapi/v1/margin/order/oco"),
    ("DELETE", "/sapi/v1/margin/order"),
}
READ_ENDPOINTS = {
    ("GET", prefix + name)
    for prefix in ("/api/v3/", "/sapi/v1/margin/")
    for name in ("order", "openOrders", "allOrders", "myTrades", "account")
}
CLIENT_ID_PARAMS = (
    "newClientOrderId",
    "origClientOrderId",
    "listClientOrderId",
    "aboveClientOrderId",
    "belowClientOrderId",
    "limitClientOrderId",
    "stopClientOrderId",
)
SERVER_ERRORS = (500, 502, 503)
INTERNAL_ERROR = {
    "code": -1001,
    "msg": "Internal error; unable to process your request. Please try your request again.",
}
DEFAULT_HANG_MS = 15_000.0  # longer than ccxt's default 10 s timeout: the client gives up first
FORCED_LATENCY_MS = 1000.0  # a forced latency fault without a latency_ms range
PARTIAL_RANGE = (0.2, 0.8)  # the part of the remaining quantity one partial fill takes
SPEC_EXAMPLE = "timeout_after_accept=0.05,partial_fill=0.3,ws_drop_every=120,latency_ms=5-400"


@dataclass(frozen=True)
class FaultSpec:
    """What `--faults` turned on: a probability per request fault, and the timed ones."""

    timeout_after_accept: float = 0.0
    drop_before_accept: float = 0.0
    http_5xx_after_accept: float = 0.0
    http_5xx_read: float = 0.0
    http_429: float = 0.0
    partial_fill: float = 0.0
    ws_drop_every: float | None = None  # seconds between closes of every stream socket
    latency_ms: tuple[float, float] | None = None  # a uniform delay A..B ms per REST request
    hang_ms: float = DEFAULT_HANG_MS  # how long timeout_after_accept holds the answer

    def probability(self, kind: FaultKind) -> float:
        return float(getattr(self, kind.value)) if kind in PROBABILITY_FAULTS else 0.0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """'timeout_after_accept=0.05,latency_ms=5-400,...' -> FaultSpec; UserError otherwise."""
        values: dict[str, object] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = (s.strip() for s in part.partition("="))
            if not sep or not value:
                raise UserError(
                    f"--faults entry {part!r} is not KIND=VALUE; e.g. --faults {SPEC_EXAMPLE}"
                )
            if name in values:
                raise UserError(f"--faults names {name!r} twice; give each kind once")
            values[name] = _parse_value(name, value)
        return cls(**values)  # type: ignore[arg-type]  # names and types checked above

    def describe(self) -> str:
        """The faults that are on, as the start-up line says them ('none' when none is)."""
        on = [f"{k}={self.probability(k):g}" for k in PROBABILITY_FAULTS if self.probability(k)]
        if self.ws_drop_every is not None:
            on.append(f"ws_drop_every={self.ws_drop_every:g}s")
        if self.latency_ms is not None:
            on.append(f"latency_ms={self.latency_ms[0]:g}-{self.latency_ms[1]:g}")
        if self.timeout_after_accept:
            on.append(f"hang_ms={self.hang_ms:g}")
        return ", ".join(on) or "none"


def _parse_value(name: str, value: str) -> object:
    known = [f.name for f in fields(FaultSpec)]
    if name not in known:
        raise UserError(f"--faults: unknown fault kind {name!r}; known: {', '.join(known)}")
    if name == FaultKind.LATENCY_MS:
        low, sep, high = value.partition("-")
        bounds = (_number(low), _number(high)) if sep else (None, None)
        if bounds[0] is None or bounds[1] is None or not 0 <= bounds[0] <= bounds[1]:
            raise UserError(
                f"--faults latency_ms={value!r} is not A-B milliseconds with 0 <= A <= B; "
                "e.g. latency_ms=5-400"
            )
        return bounds
    number = _number(value)
    if name == FaultKind.WS_DROP_EVERY or name == "hang_ms":
        if number is None or number <= 0:
            raise UserError(
                f"--faults {name}={value!r} must be a number > 0 "
                f"({'seconds' if name == FaultKind.WS_DROP_EVERY else 'milliseconds'})"
            )
        return number
    if number is None or not 0 <= number <= 1:
        raise UserError(
            f"--faults {name}={value!r} must be a probability from 0 to 1; e.g. {name}=0.05"
        )
    return number


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class FaultRecord:
    """One fault applied: to which request (or order, for a partial fill) and when."""

    kind: FaultKind
    method: str  # the HTTP method; "BAR" for a partial fill, "WS" for a stream drop
    path: str  # the request path; the market id (ETHBTC) for a partial fill
    client_order_ids: tuple[str, ...]
    order_ids: tuple[str, ...]
    time: float  # wall clock, s
    number: int  # the plan's count of decisions when it was made (1-based)
    detail: str = ""  # e.g. "HTTP 503", "held 15000 ms", "filled 0.4 of 1"
    status: int | None = None  # the HTTP status answered, when one was

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["client_order_ids"], out["order_ids"] = (
            list(self.client_order_ids),
            list(self.order_ids),
        )
        return out


@dataclass
class FaultPlan:
    """The seeded decisions of one run, and the log of the faults applied."""

    spec: FaultSpec
    seed: int = 0
    log: list[FaultRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        # one stream per kind (and one for each kind's details: the 5xx status, the part
        # filled), seeded from text: str seeds are hashed with SHA-512, the same in every process
        self._draws = {k: random.Random(f"{self.seed}:{k.value}") for k in FaultKind}
        self._details = {k: random.Random(f"{self.seed}:{k.value}:detail") for k in FaultKind}
        self._forced: list[FaultKind] = []  # injected faults, in the order injected
        self.decisions = 0

    def inject_next(self, kind: FaultKind, count: int = 1) -> None:
        """Force the fault `kind` on the next `count` requests it applies to (order requests
        for the order faults, reads for http_5xx_read, any REST request for latency_ms, resting
        limits a bar fills for partial_fill), whatever the probabilities; several injected
        faults come in the order injected. For deterministic tests of the live code."""
        if kind is FaultKind.WS_DROP_EVERY:
            raise ValueError("ws_drop_every is timed, not per request: drop streams instead")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self._forced.extend([kind] * count)

    def counts(self) -> dict[str, int]:
        """Faults applied so far, by kind."""
        out: dict[str, int] = {}
        for record in self.log:
            out[record.kind] = out.get(record.kind, 0) + 1
        return out

    def to_json(self, kinds: Iterable[str] = ()) -> dict[str, object]:
        """The seed, the spec, the counts by kind and the records (of `kinds` only, if given)."""
        wanted = set(kinds)
        return {
            "seed": self.seed,
            "spec": self.spec.describe(),
            "counts": self.counts(),
            "faults": [r.to_json() for r in self.log if not wanted or r.kind in wanted],
        }

    # -- decisions ----------------------------------------------------------------------------
    def _draw(self, kind: FaultKind) -> bool:
        """The next draw of `kind`'s stream: always taken, so each stream stays aligned with the
        requests it was asked about, whatever the other kinds and the forced faults do."""
        return self._draws[kind].random() < self.spec.probability(kind)

    def _take_forced(self, kinds: tuple[FaultKind, ...]) -> FaultKind | None:
        """The first injected fault among `kinds` (in the order injected), used up."""
        for i, kind in enumerate(self._forced):
            if kind in kinds:
                del self._forced[i]
                return kind
        return None

    def _hit(self, kind: FaultKind) -> bool:
        drawn = self._draw(kind)
        return self._take_forced((kind,)) is not None or drawn

    def on_order_request(
        self,
        method: str,
        path: str,
        client_ids: tuple[str, ...] = (),
        order_ids: tuple[str, ...] = (),
    ) -> FaultRecord | None:
        """The fault of a request to an order endpoint, if it gets one (recorded and logged)."""
        self.decisions += 1
        hits = [kind for kind in ORDER_FAULTS if self._draw(kind)]
        kind = self._take_forced(ORDER_FAULTS) or (hits[0] if hits else None)
        if kind is None:
            return None
        detail, status = "", None
        if kind is FaultKind.HTTP_429:
            status = 429
        elif kind is FaultKind.HTTP_5XX_AFTER_ACCEPT:
            status = self._details[kind].choice(SERVER_ERRORS)
        elif kind is FaultKind.TIMEOUT_AFTER_ACCEPT:
            detail = f"answer held {self.spec.hang_ms:g} ms, then the connection closed"
        elif kind is FaultKind.DROP_BEFORE_ACCEPT:
            detail = "connection aborted, not processed"
        return self._record(kind, method, path, client_ids, tuple(order_ids), detail, status)

    def on_read_request(
        self,
        method: str,
        path: str,
        client_ids: tuple[str, ...] = (),
        order_ids: tuple[str, ...] = (),
    ) -> FaultRecord | None:
        """http_5xx_read for a request to a read endpoint, if it gets one."""
        self.decisions += 1
        if not self._hit(FaultKind.HTTP_5XX_READ):
            return None
        status = self._details[FaultKind.HTTP_5XX_READ].choice(SERVER_ERRORS)
        return self._record(
            FaultKind.HTTP_5XX_READ, method, path, client_ids, tuple(order_ids), "", status
        )

    def latency_s(self, method: str, path: str) -> float:
        """The delay of a REST request (0 when latency is off); logged at debug level only, as
        every request gets one, but recorded like any fault. A forced one waits the range's
        upper bound (FORCED_LATENCY_MS without a range)."""
        kind, bounds = FaultKind.LATENCY_MS, self.spec.latency_ms
        draw = self._draws[kind].uniform(*bounds) if bounds else None
        if self._take_forced((kind,)):
            draw = bounds[1] if bounds else FORCED_LATENCY_MS
        if draw is None:
            return 0.0
        self.decisions += 1
        self._record(kind, method, path, (), (), f"delayed {draw:.0f} ms", None, logging.DEBUG)
        return draw / 1000.0

    def partial_quantity(
        self, market_id: str, client_id: str, order_id: int, remaining: float, step: float
    ) -> float | None:
        """How much of a resting limit's `remaining` quantity a bar that reaches it fills:
        None to fill it all, else a seeded 20-80 % rounded down to the LOT_SIZE `step` (all of
        it when the part or the rest would be below one step)."""
        self.decisions += 1
        kind = FaultKind.PARTIAL_FILL
        if not self._hit(kind):
            return None
        fraction = self._details[kind].uniform(*PARTIAL_RANGE)
        part = round(math.floor(remaining * fraction / step + 1e-9) * step, 12)
        if part < step or remaining - part < step - 1e-12:
            return None
        detail = f"filled {part:.12g} of {remaining:.12g}"
        self._record(kind, "BAR", market_id, (client_id,), (str(order_id),), detail, None)
        return part

    def fill_part(self, order: Order, remaining: float, step: float) -> float | None:
        """MatchingEngine.partial: partial_quantity for a resting order a bar reaches."""
        market_id = order.symbol.replace("/", "")
        return self.partial_quantity(market_id, order.client_id, order.order_id, remaining, step)

    def streams_dropped(self, sockets: int) -> FaultRecord | None:
        """ws_drop_every closed `sockets` stream sockets (none open: no fault)."""
        if sockets == 0:
            return None
        self.decisions += 1
        detail = f"{sockets} stream sockets closed"
        return self._record(FaultKind.WS_DROP_EVERY, "WS", "/ws", (), (), detail, None)

    def _record(
        self,
        kind: FaultKind,
        method: str,
        path: str,
        client_ids: tuple[str, ...],
        order_ids: tuple[str, ...],
        detail: str,
        status: int | None,
        level: int = logging.WARNING,
    ) -> FaultRecord:
        record = FaultRecord(
            kind, method, path, client_ids, order_ids, time.time(), self.decisions, detail, status
        )
        self.log.append(record)
        if log.isEnabledFor(level):
            ids = f" clientOrderId={','.join(client_ids)}" if client_ids else ""
            ids += f" orderId={','.join(order_ids)}" if order_ids else ""
            what = f" HTTP {status}" if status else ""
            note = f" ({detail})" if detail else ""
            log.log(
                level,
                "fault %s: %s %s%s%s%s (seed %d, #%d)",
                kind,
                method,
                path,
                ids,
                what,
                note,
                self.seed,
                record.number,
            )
        return record


def faults_json(plan: FaultPlan | None, kinds: Iterable[str] = ()) -> dict[str, object]:
    """GET /_local/faults[?kind=K...]: the plan's log, or an empty one without a fault mode."""
    if plan is None:
        return {"seed": None, "spec": "none", "counts": {}, "faults": []}
    return plan.to_json(kinds)


# -- applying them to the aiohttp app -----------------------------------------------------------
class FaultMiddleware:
    """The REST faults as an aiohttp middleware (inside the weight limit, when there is one)."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._held: set[asyncio.Task] = set()  # answers held by timeout_after_accept

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self.handle(request, handler)

        return inject_faults

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(("/_local/", "/ws")):
            return await handler(request)
        delay = self.plan.latency_s(request.method, request.path)
        if delay > 0:
            await asyncio.sleep(delay)
        endpoint = (request.method, request.path)
        if endpoint in ORDER_ENDPOINTS:
            ids = await _order_ids(request)
            record = self.plan.on_order_request(request.method, request.path, *ids)
        elif endpoint in READ_ENDPOINTS:
            ids = await _order_ids(request)
            record = self.plan.on_read_request(request.method, request.path, *ids)
        else:
            record = None
        if record is None:
            return await handler(request)
        return await self._apply(record, request, handler)

    async def _apply(
        self, record: FaultRecord, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if record.kind is FaultKind.DROP_BEFORE_ACCEPT:
            return _abort(request)
        if record.kind is FaultKind.HTTP_429:
            return refusal(
                429,
                1.0,
                "Too much request weight used; please use WebSocket Streams for live "
                "updates to avoid polling the API.",
            )
        if record.kind is FaultKind.HTTP_5XX_READ:
            return server_error(record.status or 500)
        await handler(request)  # processed: the order is placed or cancelled, the answer lost
        if record.kind is FaultKind.HTTP_5XX_AFTER_ACCEPT:
            return server_error(record.status or 500)
        hold = asyncio.ensure_future(asyncio.sleep(self.plan.spec.hang_ms / 1000.0))
        self._held.add(hold)
        try:
            await hold
        except asyncio.CancelledError:
            pass  # the exchange is stopping: close now
        finally:
            self._held.discard(hold)
        return _abort(request)

    def release(self) -> None:
        """Stop holding answers (the exchange is stopping): their connections close now."""
        for hold in list(self._held):
            hold.cancel()


def server_error(status: int) -> web.Response:
    """Binance's own 500 carries its -1001 JSON (ccxt: OperationFailed); a 502 or 503 comes from
    the load balancer in front of it as an HTML page (ccxt: ExchangeNotAvailable)."""
    if status == 500:
        return web.json_response(INTERNAL_ERROR, status=status)
    reason = {502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Server Error")
    page = f"<html><head><title>{status} {reason}</title></head><body>{reason}</body></html>"
    return web.Response(text=page, status=status, content_type="text/html")


def _abort(request: web.Request) -> web.StreamResponse:
    """Close the client's TCP connection without an answer (it sees a dropped connection)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # aiohttp writes nothing to an aborted transport; the response only ends the handler
    return web.Response(status=500)


async def _order_ids(request: web.Request) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(client order ids, order ids) a request names, for the fault's log line."""
    raw = request.query_string
    if request.method == "POST":
        raw = (await request.read()).decode("utf-8", errors="replace")
    params = parse_qsl(raw, keep_blank_values=True)
    clients = tuple(v for k, v in params if k in CLIENT_ID_PARAMS and v)
    orders = tuple(v for k, v in params if k in ("orderId", "orderListId") and v)
    return clients, orders


async def drop_streams_every(plan: FaultPlan, drop: Callable[[], Awaitable[int]]) -> None:
    """ws_drop_every: close every stream socket each `ws_drop_every` seconds (a task)."""
    period = plan.spec.ws_drop_every
    if period is None:
        return
    while True:
        await asyncio.sleep(period)
        plan.streams_dropped(await drop())
