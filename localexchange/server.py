"""A local exchange speaking enough of the Binance spot API for the unmodified ccxt clients.

REST at Binance's paths under /api/v3 (exchangeInfo, klines, ticker, time, account, order,
openOrders, allOrders, myTrades, orderList/oco), market streams at /ws/<n> (SUBSCRIBE to
<sym>@kline_<interval>) and the user-data stream at /ws-api/v3 (userDataStream.subscribe.signature
then executionReport events), which ccxt.pro's watch_orders uses for spot. Cross margin (shorts)
answers at /sapi/v1/margin/... (localexchange/margin.py) on each key's margin account.

Signed requests are checked as Binance checks them: the X-MBX-APIKEY header names the account
(funded on first use) and `signature` must be the HMAC-SHA256 of the rest of the query (or body)
with that key's secret (`keys`; without any, every key signs with the demo secret), then the
parameters' formats, the timestamp and the filters (localexchange/validation.py). The market replays stored bars (localexchange/replay.py) at `speed` x real time, or one step
per POST /_local/step in tests (speed 0); POST /_local/drop closes every market stream (tests of
reconnects). After the data ends it keeps serving and says so in the log. Given a FaultPlan
(localexchange/faults.py) it injects seeded faults; GET /_local/faults lists those applied.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from core.errors import UserError
from localexchange import binance_format as fmt
from localexchange.accounts import OPEN, Account, ExchangeError, MatchingEngine, Order
from localexchange.faults import FaultMiddleware, FaultPlan, drop_streams_every, faults_json
from localexchange.margin import AccountHandler, RouteHandler, margin_routes
from localexchange.rate_limit import WeightLimit
from localexchange.replay import Closed, ReplayMarket
from localexchange.streams import stream_request
from localexchange.validation import (
    check_formats,
    check_integer,
    check_order_filters,
    check_timestamp,
    parse_params,
)

log = logging.getLogger("raytrader.exchange")
DEFAULT_SECRET = "local-secret"
_TYPES = {"MARKET", "LIMIT", "STOP_LOSS"}
DEFAULT_KLINES, MAX_KLINES = 500, 1000


class LocalExchange:
    def __init__(
        self,
        market: ReplayMarket,
        funding: dict[str, float],
        speed: float = 0.0,
        secret: str = DEFAULT_SECRET,
        fee_rate: float = 0.001,
        keys: dict[str, str] | None = None,
        remote_control: bool = False,
        weight_limit: WeightLimit | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.market = market
        self.engine = MatchingEngine(market, funding, fee_rate)
        self.speed = speed
        self.secret = secret  # of every key when `keys` is empty (the demos' open mode)
        self.keys = dict(keys or {})  # api key -> its own secret; only these keys when given
        self.remote_control = remote_control  # /_local/* from other hosts than loopback
        self.weight_limit = weight_limit  # Binance's request-weight limit, when given one
        self.faults = faults  # the seeded fault mode, when given a plan
        self._fault_middleware = None if faults is None else FaultMiddleware(faults)
        if faults is not None:
            self.engine.partial = faults.fill_part
        self._ws_drops: asyncio.Task | None = None
        self._market_ws: dict[web.WebSocketResponse, set[str]] = {}
        self._user_ws: dict[web.WebSocketResponse, str] = {}  # socket -> api key
        self._runner: web.AppRunner | None = None
        self._replay: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.bars_sent = 0
        self.stream_connections = 0  # market stream connections accepted so far
        self.announced_at: dict[int, float] = {}  # bar open ms -> wall time its close was sent
        self.orders_at: list[tuple[float, str]] = []  # (wall time, client order id) received

    # -- lifecycle ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        middlewares = [] if self.weight_limit is None else [self.weight_limit.middleware()]
        if self._fault_middleware is not None:  # inside the weight limit: a fault costs weight
            middlewares.append(self._fault_middleware.middleware())
        app = web.Application(middlewares=middlewares)
        api = "/api/v3/"
        app.add_routes(
            [
                web.get(api + "ping", lambda r: web.json_response({})),
                web.get(api + "time", lambda r: web.json_response({"serverTime": _now_ms()})),
                web.get(api + "exchangeInfo", self.exchange_info),
                web.get(api + "klines", self.klines),
                web.get(api + "ticker/24hr", self.ticker),
                web.get(api + "ticker/price", self.ticker),
                web.get(api + "account", self.signed(self.account)),
                web.post(api + "order", self.signed(self.new_order)),
                web.get(api + "order", self.signed(self.get_order)),
                web.delete(api + "order", self.signed(self.cancel_order)),
                web.get(api + "openOrders", self.signed(self.open_orders)),
                web.get(api + "allOrders", self.signed(self.all_orders)),
                web.get(api + "myTrades", self.signed(self.my_trades)),
                web.post(api + "orderList/oco", self.signed(self.new_oco)),
                *margin_routes(self),
                web.get("/ws", self.market_stream),
                web.get("/ws/{stream}", self.market_stream),
                web.get("/ws-api/v3", self.user_stream),
                web.post("/_local/step", self.local_only(self.step_request)),
                web.post("/_local/drop", self.local_only(self.drop_request)),
                web.get("/_local/state", self.local_only(self.state_request)),
                web.get("/_local/faults", self.local_only(self.faults_request)),
            ]
        )
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(
            self.app(), access_log=log if log.isEnabledFor(logging.DEBUG) else None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # the port chosen for port 0
        if self.speed > 0:
            self._replay = asyncio.create_task(self._replay_loop())
        if self.faults is not None and self.faults.spec.ws_drop_every is not None:
            self._ws_drops = asyncio.create_task(drop_streams_every(self.faults, self.drop_all))
        return int(bound)

    async def stop(self) -> None:
        for task in (self._replay, self._ws_drops):
            if task is not None:
                task.cancel()
        if self._fault_middleware is not None:
            self._fault_middleware.release()
        for ws in [*self._market_ws, *self._user_ws]:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _replay_loop(self) -> None:
        wall0, market0 = time.monotonic(), self.market.now_ms
        while True:
            due = self.market.next_close_ms()
            if due is None:
                log.warning(
                    "replay reached the end of its data at %s; still serving",
                    _utc(self.market.now_ms),
                )
                return
            next_open = self.market.next_open_ms()
            if next_open is not None and next_open > self.market.now_ms:
                # no series has a bar until next_open: jump over the span instead of waiting
                log.info(
                    "no bars from %s to %s: skipped", _utc(self.market.now_ms), _utc(next_open)
                )
                market0 += next_open - self.market.now_ms
                self.market.now_ms = next_open
            wait = (due - market0) / 1000.0 / self.speed - (time.monotonic() - wall0)
            if wait > 0:
                await asyncio.sleep(wait)
            await self.step(1)

    async def step(self, n: int = 1) -> int:
        """Close the next n bar times; returns how many bars closed."""
        count = 0
        async with self._lock:
            for _ in range(n):
                closed = self.market.step()
                if not closed:
                    break
                count += len(closed)
                await self._announce(closed)
        return count

    async def _announce(self, closed: list[Closed]) -> None:
        event_ms = self.market.now_ms
        changed = self.engine.on_bars_closed(closed)
        messages: dict[str, list[str]] = {}
        for c in closed:
            stream = f"{c.series.market_id.lower()}@kline_{c.series.interval}"
            texts = [json.dumps(fmt.kline_event(c.series, c.index, True, event_ms))]
            if c.next_index is not None:
                texts.append(json.dumps(fmt.kline_event(c.series, c.next_index, False, event_ms)))
            messages[stream] = texts
        # <sym>@ticker and <sym>@miniTicker (what watch_ticker reads): the new last price
        for symbol in {c.series.symbol for c in closed}:
            for stream, event in fmt.ticker_events(self.market, symbol).items():
                messages[stream] = [json.dumps(event)]
        for ws, streams in list(self._market_ws.items()):
            for stream in streams & messages.keys():
                for text in messages[stream]:
                    await _send(ws, text)
        sent = time.time()
        for c in closed:
            self.announced_at[int(c.series.open_ms[c.index])] = sent
        self.bars_sent += len(closed)
        await self._report(changed)

    async def _report(self, changed: list[tuple[Account, Order]]) -> None:
        for acct, order in changed:
            if acct.margin:  # margin updates go to Binance's margin stream, not served here
                continue
            event = {"subscriptionId": 0, "event": fmt.execution_report(order, order.update_ms)}
            text = json.dumps(event)
            for ws, key in list(self._user_ws.items()):
                if key == acct.api_key:
                    await _send(ws, text)

    # -- auth ---------------------------------------------------------------------------------
    def signed(self, handler: AccountHandler, margin: bool = False) -> RouteHandler:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                acct, params = await self._authenticate(request, margin)
                async with self._lock:
                    result, changed = handler(acct, params)
                await self._report(changed)
                return web.json_response(result)
            except ExchangeError as exc:
                return _refused(exc)

        return wrapped

    def secret_of(self, key: str) -> str:
        """The key's own secret; -2015 for a key this exchange was not given."""
        if not self.keys:
            return self.secret
        secret = self.keys.get(key)
        if secret is None:
            raise ExchangeError(-2015, "Invalid API-key, IP, or permissions for action.")
        return secret

    async def _authenticate(
        self, request: web.Request, margin: bool = False
    ) -> tuple[Account, dict[str, str]]:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise ExchangeError(-2014, "API-key format invalid.")
        if request.method in ("GET", "DELETE"):
            raw = request.query_string
        else:
            raw = _utf8(await request.read())
        secret = self.secret_of(key)
        payload, _, signature = raw.rpartition("&signature=")
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature, expected):
            raise ExchangeError(-1022, "Signature for this request is not valid.")
        params = parse_params(payload)
        check_formats(params)
        check_timestamp(params)
        book = self.engine.margin_account if margin else self.engine.account
        return book(key, secret), params

    # -- public -------------------------------------------------------------------------------
    async def exchange_info(self, request: web.Request) -> web.Response:
        limit = None if self.weight_limit is None else self.weight_limit.limit
        return web.json_response(fmt.exchange_info(self.market, limit))

    async def klines(self, request: web.Request) -> web.Response:
        try:
            q = parse_params(request.query_string)
            symbol = self.require_symbol(q)
            interval = q.get("interval", "")
            if interval not in self.market.intervals(symbol):
                raise ExchangeError(-1120, "Invalid interval.")
            start = check_integer(q.get("startTime"), "startTime")
            end = check_integer(q.get("endTime"), "endTime")
            limit = check_integer(q.get("limit"), "limit")
            if limit is not None and not 1 <= limit <= MAX_KLINES:
                raise ExchangeError(
                    -1100,
                    f"Illegal characters found in parameter 'limit'; legal range is "
                    f"'1 .. {MAX_KLINES}'.",
                )
        except ExchangeError as exc:
            return _refused(exc)
        rows = self.market.klines(symbol, interval, start, end, limit or DEFAULT_KLINES)
        return web.json_response(rows)

    async def ticker(self, request: web.Request) -> web.Response:
        try:
            q = parse_params(request.query_string)
            symbols = [self.require_symbol(q)] if "symbol" in q else self.market.symbols()
        except ExchangeError as exc:
            return _refused(exc)
        rows = [fmt.ticker(self.market, s) for s in symbols]
        return web.json_response(rows[0] if "symbol" in q else rows)

    def _symbol(self, market_id: str) -> str | None:
        return next((s for s in self.market.symbols() if s.replace("/", "") == market_id), None)

    # -- private (called under the lock; return (json, changed orders)) -----------------------
    def account(self, acct: Account, params: dict) -> tuple[Any, list]:
        return fmt.account_json(acct, self.market.now_ms), []

    def new_order(self, acct: Account, params: dict) -> tuple[Any, list]:
        symbol = self.require_symbol(params)
        type_ = params.get("type", "")
        if type_ not in _TYPES:
            raise ExchangeError(-1116, f"Invalid orderType {type_!r}; use one of {sorted(_TYPES)}")
        self.check_order_filters(symbol, params)
        client_id = params.get("newClientOrderId") or f"local-{time.monotonic_ns()}"
        self.orders_at.append((time.time(), client_id))
        orders = self.engine.place(
            acct,
            symbol,
            params.get("side", ""),
            type_,
            _float(params.get("quantity")),
            _float(params.get("price")),
            _float(params.get("stopPrice")),
            client_id,
            side_effect=params.get("sideEffectType") or "NO_SIDE_EFFECT",
        )
        return fmt.order_json(orders[0], full=True), [(acct, o) for o in orders]

    def new_oco(self, acct: Account, params: dict) -> tuple[Any, list]:
        symbol = self.require_symbol(params)
        self.check_order_filters(symbol, params)
        list_client = params.get("listClientOrderId", f"list-{time.monotonic_ns()}")
        # a sell OCO has its stop below the market, a buy OCO (closing a short) above it
        at, other = (
            ("above", "below") if params.get("aboveType") == "STOP_LOSS" else ("below", "above")
        )
        ids = (
            params.get(f"{at}ClientOrderId") or f"{list_client}-s",
            params.get(f"{other}ClientOrderId") or f"{list_client}-t",
        )
        stop = _float(params.get(f"{at}StopPrice") or params.get("stopPrice"))
        limit = _float(params.get(f"{other}Price") or params.get("price"))
        orders = self.engine.place_oco(
            acct, symbol, params.get("side", ""), _float(params.get("quantity")), limit, stop, ids
        )
        return fmt.order_list_json(orders, list_client), [(acct, o) for o in orders]

    def get_order(self, acct: Account, params: dict) -> tuple[Any, list]:
        return fmt.order_json(self._find(acct, params)), []

    def cancel_order(self, acct: Account, params: dict) -> tuple[Any, list]:
        changed = self.engine.cancel(acct, self._find(acct, params))
        return fmt.order_json(changed[0]), [(acct, o) for o in changed]

    def open_orders(self, acct: Account, params: dict) -> tuple[Any, list]:
        symbol = self._symbol(params.get("symbol", "")) if params.get("symbol") else None
        rows = [
            fmt.order_json(o)
            for o in acct.orders.values()
            if o.status in OPEN and (symbol is None or o.symbol == symbol)
        ]
        return rows, []

    def all_orders(self, acct: Account, params: dict) -> tuple[Any, list]:
        symbol = self.require_symbol(params)
        return [fmt.order_json(o) for o in acct.orders.values() if o.symbol == symbol], []

    def my_trades(self, acct: Account, params: dict) -> tuple[Any, list]:
        symbol = self.require_symbol(params)
        since = _int(params.get("startTime")) or 0
        from_id, order_id = _int(params.get("fromId")) or 0, _int(params.get("orderId"))
        rows = [
            fmt.my_trade_json(t)
            for t in acct.trades
            if t["order"].symbol == symbol
            and t["time"] >= since
            and t["id"] >= from_id
            and (order_id is None or t["order"].order_id == order_id)
        ]
        return rows, []

    def require_symbol(self, params: dict) -> str:
        if not params.get("symbol"):
            raise ExchangeError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        symbol = self._symbol(params["symbol"])
        if symbol is None:
            raise ExchangeError(-1121, "Invalid symbol.")
        return symbol

    def check_order_filters(self, symbol: str, params: dict) -> None:
        """PRICE_FILTER, LOT_SIZE and NOTIONAL as exchangeInfo publishes them for the symbol."""
        min_notional, step = self.market.limits.get(symbol, (0.0, fmt.DEFAULT_LOT))
        check_order_filters(params, step, min_notional, self.market.last_price(symbol))

    def _find(self, acct: Account, params: dict) -> Order:
        order_id, client_id = _int(params.get("orderId")), params.get("origClientOrderId")
        for order in acct.orders.values():
            if order.order_id == order_id or (client_id and order.client_id == client_id):
                return order
        raise ExchangeError(-2013, "Order does not exist.")

    # -- websockets ---------------------------------------------------------------------------
    async def market_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._market_ws[ws] = set()
        self.stream_connections += 1
        log.debug("market stream opened: %s", request.path)
        try:
            async for msg in ws:
                log.debug("market stream message: %s %s", msg.type, msg.data)
                if msg.type == WSMsgType.TEXT:
                    answer = stream_request(self._market_ws.setdefault(ws, set()), msg.data)
                    await _send(ws, json.dumps(answer))
        except Exception:
            log.exception("market stream failed")
            raise
        finally:
            self._market_ws.pop(ws, None)
            log.debug("market stream closed: %s %s", request.path, ws.close_code)
        return ws

    async def user_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await _send(ws, json.dumps(self._user_request(ws, json.loads(msg.data))))
        finally:
            self._user_ws.pop(ws, None)
        return ws

    def _user_request(self, ws: web.WebSocketResponse, body: dict) -> dict:
        request_id = body.get("id")
        if body.get("method") != "userDataStream.subscribe.signature":
            return {
                "id": request_id,
                "status": 400,
                "error": {"code": -1100, "msg": f"unsupported method {body.get('method')}"},
            }
        params = body.get("params")
        params = {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}
        signature = params.pop("signature", "")
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        try:
            secret = self.secret_of(params.get("apiKey", ""))
            expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(signature, expected):
                raise ExchangeError(-1022, "Signature for this request is not valid.")
            check_formats(params)
            check_timestamp(params)
        except ExchangeError as exc:
            return {
                "id": request_id,
                "status": 401 if exc.code == -2015 else 400,
                "error": {"code": exc.code, "msg": exc.message},
            }
        self.engine.account(params["apiKey"], secret)
        self._user_ws[ws] = params["apiKey"]
        return {"id": request_id, "status": 200, "result": {"subscriptionId": 0}}

    # -- test control -------------------------------------------------------------------------
    def local_only(self, handler: RouteHandler) -> RouteHandler:
        """/_local/* answers loopback clients only, unless started to allow others."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not (self.remote_control or _loopback(request.remote)):
                return web.json_response(
                    {
                        "code": -1002,
                        "msg": "/_local/* answers loopback clients only "
                        "(exchange serve --allow-remote-control)",
                    },
                    status=403,
                )
            return await handler(request)

        return wrapped

    async def step_request(self, request: web.Request) -> web.Response:
        try:
            n = check_integer(request.query.get("n", "1"), "n") or 0
        except ExchangeError as exc:
            return _refused(exc)
        closed = await self.step(n)
        return web.json_response(
            {"closed": closed, "now": self.market.now_ms, "ended": self.market.ended}
        )

    async def drop_request(self, request: web.Request) -> web.Response:
        sockets = list(self._market_ws)
        for ws in sockets:
            await ws.close()
        return web.json_response({"dropped": len(sockets)})

    async def drop_all(self) -> int:
        """Close every market and user-data stream socket (ws_drop_every); how many."""
        sockets = [*self._market_ws, *self._user_ws]
        for ws in sockets:
            await ws.close()
        return len(sockets)

    async def faults_request(self, request: web.Request) -> web.Response:
        return web.json_response(faults_json(self.faults, request.query.getall("kind", [])))

    async def state_request(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "now": self.market.now_ms,
                "ended": self.market.ended,
                "bars_sent": self.bars_sent,
                "market_streams": len(self._market_ws),
                "user_streams": len(self._user_ws),
            }
        )


async def _send(ws: web.WebSocketResponse, text: str) -> None:
    if not ws.closed:
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; its handler cleans up


def _refused(exc: ExchangeError) -> web.Response:
    status = 401 if exc.code == -2015 else 400
    return web.json_response({"code": exc.code, "msg": exc.message}, status=status)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ExchangeError(-1100, "Illegal characters found in a parameter.") from None


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def parse_balance(text: str) -> dict[str, float]:
    """'BTC=10,ETH=100' -> {'BTC': 10.0, 'ETH': 100.0}; UserError with the fix otherwise."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        asset, sep, amount = part.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not asset.strip() or not (math.isfinite(value) and value >= 0):
            raise UserError(
                f"--balance entry {part!r} is not ASSET=AMOUNT; e.g. --balance BTC=10,USDT=100000"
            )
        out[asset.strip().upper()] = value
    return out


def parse_keys(pairs: list[str], path: Path | None) -> dict[str, str]:
    """{api key: its secret} from --key KEY:SECRET options and a --keys file of such lines."""
    lines = [(f"--key {pair!r}", pair) for pair in pairs]
    if path is not None:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(
                f"--keys {str(path)!r} cannot be read ({exc}); give a file of KEY:SECRET lines"
            ) from None
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append((f"{path}:{number}", line.strip()))
    keys: dict[str, str] = {}
    for where, line in lines:
        key, sep, secret = line.partition(":")
        if not sep or not key.strip() or not secret.strip():
            raise UserError(f"{where} is not KEY:SECRET; e.g. --key demo-key:demo-secret")
        if key.strip() in keys:
            raise UserError(f"{where}: key {key.strip()!r} is given twice; give each key once")
        keys[key.strip()] = secret.strip()
    return keys
