"""WebSocket side of the fake Binance: connections, the WS API (``/ws-fapi/v1``), market streams
(``/public``, ``/market``) and the user data stream (``/private``), PROTOCOL.md §1.3 and §2.

Every server-side socket is a ``Conn`` with an outbound queue and one writer task, so events can
be produced synchronously (by the matching engine) in a deterministic order. A connection is
registered *before* its handshake completes, so a frame produced right after a client's
``connect()`` returned is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from tests.fakes.binance_auth import BAD_KEY, NONE, SIGNED, USER_STREAM, check_timestamp, ws_payload
from tests.fakes.binance_data import ApiError, Params

if TYPE_CHECKING:
    from tests.fakes.binance import FakeBinance

PUBLIC_EVENTS = ("bookTicker", "depth", "rpiDepth")
ORDER_METHODS = ("order.place", "algoOrder.place")


def stream_route(name: str) -> str:
    """``public`` for book streams (bookTicker, depth, rpiDepth), ``market`` for the rest."""
    event = name.split("@", 1)[1] if "@" in name else name.lstrip("!")
    return "public" if event.startswith(PUBLIC_EVENTS) else "market"


class Conn:
    """One server-side WebSocket: ``kind`` is ws-api, market, user or legacy."""

    def __init__(self, fake: FakeBinance, kind: str, *, route: str = "", combined: bool = True,
                 streams: list[str] | None = None, listen_key: str | None = None) -> None:
        self.fake, self.kind, self.route, self.combined = fake, kind, route, combined
        self.streams: list[str] = streams or []
        self.listen_key = listen_key
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.ws: web.WebSocketResponse | None = None
        self.transport: asyncio.BaseTransport | None = None
        self.api_key: str | None = None              # WS API session.logon
        self.connected_ms = fake.now_ms()
        self.authorized_ms: int | None = None
        self.return_rate_limits = True               # WS API: ?returnRateLimits=false
        self.pongs: list[bytes] = []                 # payloads of pongs received
        self.pings = 0                               # pings received (answered unless no_pong)
        self.pongs_sent = 0
        self.text_frames = 0                         # text frames received (control rate)

    def send(self, obj: Any) -> None:
        if not self.fake.silent:
            self.queue.put_nowait(orjson.dumps(obj).decode())

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def run(self, request: web.Request, on_text: Any = None) -> web.WebSocketResponse:
        # autoping off: pings are answered here and pongs recorded (Binance pings every 3 min)
        ws = web.WebSocketResponse(timeout=1.0, autoping=False)
        self.fake.conns.add(self)
        writer = None
        try:
            await ws.prepare(request)
            self.ws, self.transport = ws, request.transport
            writer = asyncio.create_task(self._write(ws))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.text_frames += 1
                    if on_text is not None and not self.fake.silent:
                        on_text(self, msg.data)
                elif msg.type == WSMsgType.PING:
                    self.pings += 1
                    delay = self.fake.faults.pong_delay_s
                    if self.fake.faults.no_pong:
                        pass
                    elif delay:
                        asyncio.get_running_loop().call_later(
                            delay, lambda d=msg.data: asyncio.ensure_future(self._late_pong(d)))
                    else:
                        await ws.pong(msg.data)
                        self.pongs_sent += 1
                elif msg.type == WSMsgType.PONG:
                    self.pongs.append(bytes(msg.data))
                elif msg.type == WSMsgType.CLOSE:
                    await ws.close()
        except ConnectionError:
            pass
        finally:
            self.fake.conns.discard(self)
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        return ws

    async def _late_pong(self, data: bytes) -> None:
        if self.ws is not None and not self.ws.closed:
            try:
                await self.ws.pong(data)
                self.pongs_sent += 1
            except ConnectionError:
                pass

    async def _write(self, ws: web.WebSocketResponse) -> None:
        try:
            while True:
                await ws.send_str(await self.queue.get())
        except (ConnectionError, RuntimeError):
            pass


# --------------------------------------------------------------------------- market streams


def _refused() -> web.WebSocketResponse:
    return web.json_response({"code": -1, "msg": "Not found."},  # type: ignore[return-value]
                             status=404)


async def market_handler(fake: FakeBinance, request: web.Request) -> web.WebSocketResponse:
    """``/{public|market}/stream?streams=a/b`` (combined) and ``/{public|market}/ws/a/b``
    (raw). Streams on the wrong route are accepted but never delivered."""
    if fake.faults.unrouted_only:
        return _refused()
    route = request.match_info["route"]
    combined = request.match_info.get("mode") == "stream"
    names = (request.query.get("streams", "") if combined
             else request.match_info.get("tail", ""))
    conn = Conn(fake, "market", route=route, combined=combined,
                streams=[s for s in names.split("/") if s])
    return await conn.run(request, _stream_control)


async def legacy_handler(fake: FakeBinance, request: web.Request) -> web.WebSocketResponse:
    """Retired ``/ws/...`` and ``/stream?streams=`` (2026-04-23): handshake, then nothing.
    With ``faults.unrouted_only`` (a testnet without the routed paths) they are live instead:
    ``/stream?streams=`` carries every market stream, ``/ws/<listenKey>`` the user stream."""
    if not fake.faults.unrouted_only:
        return await Conn(fake, "legacy").run(request)
    tail = request.match_info.get("tail")
    if request.path.startswith("/ws/") and tail and fake.listen_key_valid(tail):
        return await Conn(fake, "user", combined=False, listen_key=tail).run(
            request, _stream_control)
    names = request.query.get("streams", "") if request.path == "/stream" else (tail or "")
    conn = Conn(fake, "market", route="*", combined=request.path == "/stream",
                streams=[s for s in names.split("/") if s])
    return await conn.run(request, _stream_control)


def _stream_control(conn: Conn, text: str) -> None:
    """Live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS (PROTOCOL.md §4)."""
    try:
        req = orjson.loads(text)
        method, params, req_id = req["method"], req.get("params") or [], req["id"]
        if not isinstance(params, list):
            raise TypeError
    except (orjson.JSONDecodeError, KeyError, TypeError):
        conn.send({"code": 2, "msg": "Invalid request: malformed"})
        return
    if conn.kind == "user" and method == "SUBSCRIBE":
        conn.listen_key = params[0] if params else None
        conn.send({"result": None, "id": req_id})
    elif method == "SUBSCRIBE":
        conn.streams += [s for s in params if s not in conn.streams]
        conn.send({"result": None, "id": req_id})
    elif method == "UNSUBSCRIBE":
        conn.streams = [s for s in conn.streams if s not in params]
        conn.send({"result": None, "id": req_id})
    elif method == "LIST_SUBSCRIPTIONS":
        conn.send({"result": list(conn.streams), "id": req_id})
    else:
        conn.send({"code": 2, "msg": f"Invalid request: unknown method {method}", "id": req_id})


# --------------------------------------------------------------------------- user data stream


async def user_handler(fake: FakeBinance, request: web.Request) -> web.WebSocketResponse:
    """``/private/ws?listenKey=`` and ``/private/ws/<key>`` (raw events),
    ``/private/stream?listenKey=`` (``{"stream": key, "data": ...}``), or ``/private/stream``
    plus ``SUBSCRIBE [key]``. An unknown key is refused before the handshake (HTTP 400 -1125;
    the real server's behaviour here is unverified)."""
    if fake.faults.unrouted_only:
        return _refused()
    combined = request.match_info.get("mode") == "stream"
    key = request.query.get("listenKey") or request.match_info.get("tail") or None
    if key is not None and not fake.listen_key_valid(key):
        return web.json_response({"code": -1125, "msg": "This listenKey does not exist."},
                                 status=400)  # type: ignore[return-value]
    conn = Conn(fake, "user", combined=combined, listen_key=key)
    return await conn.run(request, _stream_control)


# --------------------------------------------------------------------------- WS API

# method -> (security, weight, counts ORDERS, handler(fake, raw params dict, conn))
_WsHandler = Any
WS_METHODS: dict[str, tuple[str, int, bool, _WsHandler]] = {
    "order.place": (SIGNED, 0, True, lambda f, p, c: f.exchange.place_order(p)),
    "order.cancel": (SIGNED, 1, False, lambda f, p, c: f.exchange.cancel_order(p)),
    "order.status": (SIGNED, 1, False, lambda f, p, c: f.exchange.query_order(p)),
    "algoOrder.place": (SIGNED, 0, False, lambda f, p, c: f.exchange.place_algo(p)),
    "algoOrder.cancel": (SIGNED, 1, False, lambda f, p, c: f.exchange.cancel_algo(p)),
    "v2/account.balance": (SIGNED, 5, False, lambda f, p, c: f.account.balances_json()),
    "account.balance": (SIGNED, 5, False, lambda f, p, c: f.account.balances_json()),
    "v2/account.position": (SIGNED, 5, False,
                            lambda f, p, c: f.account.positions_json(p.get("symbol"), v2=False)),
    "account.position": (SIGNED, 5, False,
                         lambda f, p, c: f.account.positions_json(p.get("symbol"), v2=True)),
    "v2/account.status": (SIGNED, 5, False, lambda f, p, c: f.account.status_json()),
    "account.status": (SIGNED, 5, False, lambda f, p, c: f.account.status_json()),
    "userDataStream.start": (USER_STREAM, 1, False,
                             lambda f, p, c: {"listenKey": f.start_listen_key()}),
    "userDataStream.ping": (USER_STREAM, 1, False,
                            lambda f, p, c: {"listenKey": f.ping_listen_key()}),
    "userDataStream.stop": (USER_STREAM, 1, False, lambda f, p, c: f.stop_listen_key() or {}),
    "session.logon": (NONE, 2, False, lambda f, p, c: _logon(f, p, c)),
    "session.status": (NONE, 2, False, lambda f, p, c: _session(f, c)),
    "session.logout": (NONE, 2, False, lambda f, p, c: _logout(f, c)),
}


async def ws_api_handler(fake: FakeBinance, request: web.Request) -> web.WebSocketResponse:
    conn = Conn(fake, "ws-api")
    conn.return_rate_limits = request.query.get("returnRateLimits", "true") != "false"
    return await conn.run(request, _ws_api_request)


def _ws_api_request(conn: Conn, text: str) -> None:
    fake = conn.fake
    try:
        req = orjson.loads(text)
        req_id, method = req.get("id"), req["method"]
        params = req.get("params") or {}
        if not isinstance(params, dict):
            raise TypeError
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        conn.send({"id": None, "status": 400,
                   "error": {"code": -1102, "msg": "Malformed request."}})
        return
    fake.log("ws-api", method, params)
    spec = WS_METHODS.get(method)
    orders = spec is not None and spec[2]
    want_limits = params.get("returnRateLimits", conn.return_rate_limits) not in (False, "false")
    now = fake.now_ms()

    def reply(status: int, *, result: Any = None, error: ApiError | None = None,
              data: dict[str, Any] | None = None) -> None:
        out: dict[str, Any] = {"id": req_id, "status": status}
        if error is not None:
            out["error"] = {"code": error.code, "msg": error.msg} | ({"data": data} if data else {})
        else:
            out["result"] = result
        if want_limits:
            out["rateLimits"] = fake.rates.ws_json(orders)
        conn.send(out)

    throttle = fake.take_throttle()
    if throttle is not None:
        status, retry_s, err = throttle
        fake.rates.add(1, False, now)
        reply(status, error=err, data={"serverTime": now, "retryAfter": now + int(retry_s * 1000)})
        return
    if spec is None:
        reply(400, error=ApiError(-1102, f"Unknown method '{method}'."))
        return
    security, weight, _, handler = spec
    fake.rates.add(weight, orders, now)
    try:
        _authenticate(fake, conn, params, security, now)
        if method in ORDER_METHODS and fake.faults.take_late():
            fake.faults.held.append((method, dict(params)))   # executes later, or never
            reply(503, error=fake.unknown_error())
            return
        result = handler(fake, params, conn)
    except ApiError as exc:
        reply(exc.status, error=exc)
        return
    if method in ORDER_METHODS and fake.take_unknown_error():
        reply(503, error=fake.unknown_error())
        return
    reply(200, result=result)


def _authenticate(fake: FakeBinance, conn: Conn, raw: dict[str, Any], security: str,
                  now: int) -> None:
    if security == NONE:
        return
    p = Params(raw)
    if security == USER_STREAM:
        key = p.get("apiKey") or conn.api_key
        if key is None or fake.keys.get(key) is None:
            raise BAD_KEY
        return
    if fake.take_skew():
        raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
    if p.get("signature") is None and p.get("apiKey") is None and conn.api_key is not None:
        check_timestamp(p, now)              # authenticated by session.logon
        return
    key = fake.keys.get(p.req("apiKey"))
    if key is None:
        raise BAD_KEY
    check_timestamp(p, now)
    if not key.verify(ws_payload(raw), p.req("signature")):
        raise ApiError(-1022, "Signature for this request is not valid.")


def _logon(fake: FakeBinance, raw: dict[str, Any], conn: Conn) -> dict[str, Any]:
    p = Params(raw)
    key = fake.keys.get(p.req("apiKey"))
    if key is None:
        raise BAD_KEY
    if not key.is_ed25519:
        raise ApiError(-4056, "HMAC_SHA256 API key is not supported.")
    if fake.take_skew():
        raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
    check_timestamp(p, fake.now_ms())
    if not key.verify(ws_payload(p.raw), p.req("signature")):
        raise ApiError(-1022, "Signature for this request is not valid.")
    conn.api_key, conn.authorized_ms = key.key, fake.now_ms()
    return _session(fake, conn)


def _session(fake: FakeBinance, conn: Conn) -> dict[str, Any]:
    return {"apiKey": conn.api_key, "authorizedSince": conn.authorized_ms,
            "connectedSince": conn.connected_ms, "returnRateLimits": conn.return_rate_limits,
            "serverTime": fake.now_ms()}


def _logout(fake: FakeBinance, conn: Conn) -> dict[str, Any]:
    conn.api_key = conn.authorized_ms = None
    return _session(fake, conn)
