"""A fake Binance USDⓈ-M exchange on 127.0.0.1, speaking the real 2026 protocol (PROTOCOL.md).

One aiohttp server on a random free port carries REST (``/fapi/...``), the WebSocket API
(``/ws-fapi/v1``), market streams (``/public``, ``/market``), the user data stream
(``/private``) and the retired ``/ws`` / ``/stream`` paths (handshake, then silence)::

    async with FakeBinance() as fake:
        fake.rest_url, fake.ws_api_url, fake.stream_url   # the client appends /public ...
        fake.set_price("BTCUSDT", Decimal("68000"))       # MARKET fills, triggers algo orders
        await fake.push_market("btcusdt@aggTrade", {...})

Credentials: ``api_key``/``api_secret`` (HMAC) and ``ed25519_api_key``/``ed25519_private_key``.
Fault switches: ``drop_all_sockets``, ``go_silent``/``resume``, ``throttle_next`` (429/418),
``skew_next`` (-1021), ``unknown_error_next_order`` (503 after executing),
``reject_next_order`` (-2019, -4164, -2021, ...), ``expire_listen_key``, ``fills_per_order``.
Every request is logged in ``requests`` as ``(transport, method, params)``.
"""

from __future__ import annotations

import math
import secrets
import string
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.fakes.binance_account import Position
from tests.fakes.binance_auth import (
    BAD_KEY,
    BAD_SIGNATURE,
    NONE,
    SIGNED,
    USER_STREAM,
    ApiKey,
    RateCounters,
    check_timestamp,
    new_key_id,
    split_rest_signature,
)
from tests.fakes.binance_data import ApiError, Params, exchange_info
from tests.fakes.binance_engine import REJECT_MESSAGES, Exchange
from tests.fakes.binance_faults import Faults
from tests.fakes.binance_ws import (
    Conn,
    legacy_handler,
    market_handler,
    stream_route,
    user_handler,
    ws_api_handler,
)

UNKNOWN_ERROR_MSG = "Unknown error, please check your request or try again later."


class Request(NamedTuple):
    transport: str              # "rest" | "ws-api"
    method: str                 # "POST /fapi/v1/order" | "order.place"
    params: dict[str, Any]      # as received, without "signature"


class RestRoute(NamedTuple):
    method: str
    path: str
    security: str
    weight: int
    handler: Callable[[dict[str, str]], Any]
    orders: bool = False        # counts ORDERS and is subject to unknown_error_next_order


class FakeBinance:
    """The fake exchange. Use as ``async with FakeBinance() as fake``."""

    def __init__(self, *, balance: Decimal = Decimal("10000"), margin_type: str = "CROSSED",
                 host: str = "127.0.0.1") -> None:
        self.host, self.port = host, 0
        self.api_key, self.api_secret = new_key_id("fakeHmac"), secrets.token_hex(32)
        self.ed25519_private_key = Ed25519PrivateKey.generate()
        self.ed25519_api_key = new_key_id("fakeEd25519")
        self.keys: dict[str, ApiKey] = {
            self.api_key: ApiKey(self.api_key, secret=self.api_secret.encode()),
            self.ed25519_api_key: ApiKey(self.ed25519_api_key,
                                         public_key=self.ed25519_private_key.public_key()),
        }
        self.exchange = Exchange(emit=self._emit_user, clock=self.now_ms, balance=balance,
                                 margin_type=margin_type)
        self.account = self.exchange.account
        self.rates = RateCounters()
        self.requests: list[Request] = []
        self.user_events: list[dict[str, Any]] = []     # every user event produced
        self.conns: set[Conn] = set()
        self.clock_offset_ms = 0                         # server clock = local + offset
        self.silent = False
        self.dual_side_position = False                  # True: the account is in hedge mode
        self.listen_key: str | None = None
        self._listen_key_live = False
        self._throttle: list[tuple[int, float]] = []
        self._skew = 0
        self._unknown = 0
        self._runner: web.AppRunner | None = None
        self.faults = Faults()
        self.faults.execute = self._execute_held

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        for route in self._rest_routes():
            app.router.add_route(route.method, route.path, partial(self._rest, route=route))
        ws = [
            ("/ws-fapi/v1", ws_api_handler),
            ("/{route:public|market}/{mode:stream}", market_handler),
            ("/{route:public|market}/{mode:ws}", market_handler),
            ("/{route:public|market}/{mode:ws}/{tail:.+}", market_handler),
            ("/private/{mode:ws|stream}", user_handler),
            ("/private/{mode:ws}/{tail:[^/]+}", user_handler),
            ("/stream", legacy_handler), ("/ws", legacy_handler), ("/ws/{tail:.+}", legacy_handler),
        ]
        for path, handler in ws:
            app.router.add_get(path, partial(handler, self))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        for conn in list(self.conns):
            conn.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_api_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws-fapi/v1"

    @property
    def stream_url(self) -> str:
        """Base of the stream routes: append ``/public``, ``/market`` or ``/private``."""
        return f"ws://{self.host}:{self.port}"

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    # ------------------------------------------------------------------ test API

    def set_price(self, symbol: str, price: Decimal | str | int) -> None:
        """Set the price MARKET orders fill at; triggers algo orders and resting LIMITs."""
        self.exchange.set_price(symbol, Decimal(str(price)))

    async def push_market(self, stream: str, data: Any) -> int:
        """Send ``data`` to every subscriber of ``stream`` on its route (``/public`` for book
        streams, ``/market`` otherwise); combined connections get ``{"stream", "data"}``.
        Returns the number of connections it was queued for."""
        route, sent = stream_route(stream), 0
        for conn in list(self.conns):
            if (conn.kind == "market" and conn.route in (route, "*")
                    and stream in conn.streams):
                conn.send({"stream": stream, "data": data} if conn.combined else data)
                sent += 1
        return sent

    def market_subscribers(self, stream: str) -> int:
        route = stream_route(stream)
        return sum(1 for c in self.conns
                   if c.kind == "market" and c.route in (route, "*") and stream in c.streams)

    async def ping_all(self, kind: str, payload: bytes = b"") -> int:
        """Send a ping frame with ``payload`` on every socket of ``kind`` (as Binance does every
        3 minutes); the pongs land in each ``Conn.pongs``. Returns the number pinged."""
        conns = [c for c in self.conns if c.kind == kind and c.ws is not None]
        for conn in conns:
            await conn.ws.ping(payload)  # type: ignore[union-attr]
        return len(conns)

    def connections(self, kind: str) -> int:
        """Open server-side sockets of ``kind``: ws-api, market, user or legacy."""
        return sum(1 for c in self.conns if c.kind == kind)

    @property
    def fills_per_order(self) -> int:
        return self.exchange.fills_per_order

    @fills_per_order.setter
    def fills_per_order(self, n: int) -> None:
        """Fill every taking order in ``n`` parts (PARTIALLY_FILLED ..., then FILLED)."""
        self.exchange.fills_per_order = max(1, int(n))

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Params of every logged request to ``method`` ("order.place", "POST /fapi/v1/order")."""
        return [r.params for r in self.requests if r.method == method]

    def position(self, symbol: str) -> Position:
        return self.account.position(symbol)

    @property
    def wallet_balance(self) -> Decimal:
        return self.account.wallet

    # ------------------------------------------------------------------ fault switches

    async def drop_all_sockets(self) -> int:
        """Abort every WebSocket (no close frame): clients see an abnormal closure (1006)."""
        conns = list(self.conns)
        for conn in conns:
            conn.abort()
        return len(conns)

    def go_silent(self) -> None:
        """Keep sockets open but send nothing and ignore incoming WS frames (as if lost)."""
        self.silent = True

    def resume(self) -> None:
        self.silent = False

    def throttle_next(self, n: int = 1, *, status: int = 429, retry_after_s: float = 1.0
                      ) -> None:
        """Answer the next ``n`` REST/WS API requests with 429 (or 418) -1003: REST adds a
        ``Retry-After`` header, the WS API ``error.data.retryAfter`` (epoch ms)."""
        if status not in (418, 429):
            raise ValueError("status must be 418 or 429")
        self._throttle += [(status, retry_after_s)] * n

    def skew_next(self, n: int = 1) -> None:
        """Answer the next ``n`` SIGNED requests with -1021 (timestamp outside recvWindow)."""
        self._skew += n

    def unknown_error_next_order(self, n: int = 1) -> None:
        """Execute the next ``n`` order/algo placements, then answer 503 "Unknown error..."."""
        self._unknown += n

    def reject_next_order(self, code: int, msg: str | None = None) -> None:
        """Reject the next order or algo placement with ``code`` (-2019, -4164, -2021, ...)."""
        self.exchange.rejections.append((code, msg or REJECT_MESSAGES.get(code, "Rejected.")))

    def margin_call(self, symbol: str, maintenance_margin: str = "12.5") -> None:
        """Send a cross MARGIN_CALL for ``symbol``'s position (user stream, docs shape)."""
        pos, now = self.position(symbol), self.now_ms()
        self._emit_user({"e": "MARGIN_CALL", "E": now, "cw": f"{self.account.cross_wallet():.8f}",
                         "p": [{"s": symbol, "ps": "BOTH", "pa": str(pos.amount), "mt": "CROSSED",
                                "iw": "0", "mp": str(self.exchange.prices[symbol]),
                                "up": str(self.account.upnl(pos)), "mm": maintenance_margin}]})

    def expire_listen_key(self) -> None:
        """Send ``listenKeyExpired`` (``E`` as a string, like the docs) and invalidate the key:
        no more events on it, -1125 on keepalive."""
        if self.listen_key is None:
            return
        now = self.now_ms()
        event = {"e": "listenKeyExpired", "E": str(now), "listenKey": self.listen_key}
        self._emit_user(event)
        self._listen_key_live = False

    def _execute_held(self, method: str, params: dict[str, Any]) -> Any:
        handler = self.exchange.place_order if method == "order.place" else self.exchange.place_algo
        return handler(params)

    # ------------------------------------------------------------------ used by the WS side

    def log(self, transport: str, method: str, params: dict[str, Any]) -> None:
        self.requests.append(Request(transport, method,
                                     {k: v for k, v in params.items() if k != "signature"}))

    def take_throttle(self) -> tuple[int, float, ApiError] | None:
        if not self._throttle:
            return None
        status, retry_s = self._throttle.pop(0)
        if status == 418:
            until = self.now_ms() + int(retry_s * 1000)
            return status, retry_s, ApiError(-1003, f"Way too many requests; IP(127.0.0.1) "
                                             f"banned until {until}. Please use WebSocket "
                                             "Streams for live updates to avoid bans.", 418)
        return status, retry_s, ApiError(-1003, "Too many requests; current limit of "
                                         "IP(127.0.0.1) request weight is 2400 per minute. "
                                         "Please use WebSocket Streams for live updates to "
                                         "avoid polling the API.", 429)

    def take_skew(self) -> bool:
        if self._skew:
            self._skew -= 1
            return True
        return False

    def take_unknown_error(self) -> bool:
        if self._unknown:
            self._unknown -= 1
            return True
        return False

    @staticmethod
    def unknown_error() -> ApiError:
        return ApiError(-1000, UNKNOWN_ERROR_MSG, 503)

    def start_listen_key(self) -> str:
        if self.listen_key is None or not self._listen_key_live:
            alphabet = string.ascii_letters + string.digits
            self.listen_key = "".join(secrets.choice(alphabet) for _ in range(64))
            self._listen_key_live = True
        return self.listen_key

    def ping_listen_key(self) -> str:
        if not self._listen_key_live or self.listen_key is None:
            raise ApiError(-1125, "This listenKey does not exist.")
        return self.listen_key

    def stop_listen_key(self) -> None:
        self._listen_key_live = False

    def listen_key_valid(self, key: str) -> bool:
        return self._listen_key_live and key == self.listen_key

    def _emit_user(self, event: dict[str, Any]) -> None:
        self.user_events.append(event)
        if not self._listen_key_live:
            return
        for conn in list(self.conns):
            if conn.kind == "user" and conn.listen_key == self.listen_key:
                conn.send({"stream": self.listen_key, "data": event} if conn.combined else event)

    # ------------------------------------------------------------------ REST

    def _rest_routes(self) -> list[RestRoute]:
        ex, acct = self.exchange, self.account
        return [
            RestRoute("GET", "/fapi/v1/ping", NONE, 1, lambda p: {}),
            RestRoute("GET", "/fapi/v1/time", NONE, 1, lambda p: {"serverTime": self.now_ms()}),
            RestRoute("GET", "/fapi/v1/exchangeInfo", NONE, 1,
                      lambda p: exchange_info(self.now_ms())),
            RestRoute("POST", "/fapi/v1/leverage", SIGNED, 1, ex.set_leverage),
            RestRoute("POST", "/fapi/v1/marginType", SIGNED, 1, ex.set_margin_type),
            RestRoute("GET", "/fapi/v1/positionSide/dual", SIGNED, 30,
                      lambda p: {"dualSidePosition": self.dual_side_position}),
            RestRoute("POST", "/fapi/v1/listenKey", USER_STREAM, 1,
                      lambda p: {"listenKey": self.start_listen_key()}),
            RestRoute("PUT", "/fapi/v1/listenKey", USER_STREAM, 1,
                      lambda p: {"listenKey": self.ping_listen_key()}),
            RestRoute("DELETE", "/fapi/v1/listenKey", USER_STREAM, 1,
                      lambda p: self.stop_listen_key() or {}),
            RestRoute("GET", "/fapi/v1/openOrders", SIGNED, 1,
                      lambda p: ex.open_orders(p) + self.faults.extra_open_orders),
            RestRoute("GET", "/fapi/v1/order", SIGNED, 1, ex.query_order),
            RestRoute("POST", "/fapi/v1/order", SIGNED, 0, ex.place_order, orders=True),
            RestRoute("DELETE", "/fapi/v1/order", SIGNED, 1, ex.cancel_order),
            RestRoute("GET", "/fapi/v1/openAlgoOrders", SIGNED, 1,
                      lambda p: ex.open_algos(p) + self.faults.extra_open_algos),
            RestRoute("GET", "/fapi/v1/leverageBracket", SIGNED, 1,
                      lambda p: self.faults.brackets_payload if self.faults.brackets_payload
                      is not None else ex.leverage_brackets(p)),
            RestRoute("GET", "/fapi/v1/klines", NONE, 2,
                      lambda p: self.faults.klines.get(p.get("symbol", ""), [])),
            RestRoute("GET", "/fapi/v1/userTrades", SIGNED, 5, ex.user_trades),
            RestRoute("GET", "/fapi/v1/algoOrder", SIGNED, 1, ex.query_algo),
            RestRoute("POST", "/fapi/v1/algoOrder", SIGNED, 0, ex.place_algo, orders=True),
            RestRoute("DELETE", "/fapi/v1/algoOrder", SIGNED, 1, ex.cancel_algo),
            RestRoute("GET", "/fapi/v2/positionRisk", SIGNED, 5,
                      lambda p: acct.positions_json(p.get("symbol"), v2=True)),
            RestRoute("GET", "/fapi/v3/positionRisk", SIGNED, 5,
                      lambda p: acct.positions_json(p.get("symbol"), v2=False)),
            RestRoute("GET", "/fapi/v2/balance", SIGNED, 5, lambda p: acct.balances_json()),
            RestRoute("GET", "/fapi/v3/balance", SIGNED, 5, lambda p: acct.balances_json()),
            RestRoute("GET", "/fapi/v2/account", SIGNED, 5, lambda p: acct.status_json()),
            RestRoute("GET", "/fapi/v3/account", SIGNED, 5, lambda p: acct.status_json()),
        ]

    async def _rest(self, request: web.Request, *, route: RestRoute) -> web.Response:
        query = request.query_string
        body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(parse_qsl(query, keep_blank_values=True))   # the query string wins
        self.log("rest", f"{route.method} {route.path}", params)
        await self.faults.run_hooks(f"{route.method} {route.path}")
        now = self.now_ms()
        throttle = self.take_throttle()
        if throttle is not None:
            status, retry_s, err = throttle
            self.rates.add(1, False, now)
            headers = self.rates.headers(False) | {"Retry-After": str(math.ceil(retry_s))}
            return _error(err, headers)
        self.rates.add(route.weight, route.orders, now)
        headers = self.rates.headers(route.orders)
        try:
            self._rest_auth(request, route.security, query, body, params, now)
            result = route.handler(params)
        except ApiError as exc:
            return _error(exc, headers)
        if route.orders and self.take_unknown_error():
            return _error(self.unknown_error(), headers)
        return web.Response(text=orjson.dumps(result).decode(), headers=headers,
                            content_type="application/json")

    def _rest_auth(self, request: web.Request, security: str, query: str, body: str,
                   params: dict[str, str], now: int) -> None:
        if security == NONE:
            return
        key = self.keys.get(request.headers.get("X-MBX-APIKEY", ""))
        if key is None:
            raise BAD_KEY
        if security == USER_STREAM:
            return
        if self.take_skew():
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        check_timestamp(Params(params), now)
        total, signature = split_rest_signature(query, body)
        if signature is None:
            raise ApiError(-1102, "Mandatory parameter 'signature' was not sent, was "
                                  "empty/null, or malformed.")
        if not key.verify(total, signature):
            raise BAD_SIGNATURE


def _error(exc: ApiError, headers: dict[str, str]) -> web.Response:
    return web.Response(text=orjson.dumps({"code": exc.code, "msg": exc.msg}).decode(),
                        status=exc.status, headers=headers, content_type="application/json")
