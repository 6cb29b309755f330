"""WebSocket API client (``ws-fapi``): one connection, request id -> future.

Facts (shared/binance/PROTOCOL.md §2): one JSON request per text frame with a unique ``id``;
the response echoes it with ``status``, ``result`` or ``error``, and ``rateLimits``. HMAC keys
sign every SIGNED request (sorted params, ``apiKey`` and ``timestamp`` included); an Ed25519 key
sends ``session.logon`` once per connection, after which SIGNED requests carry only
``timestamp``/``recvWindow``. Decimals go as strings (core.binance.signing). The server pings
every 3 minutes and the websockets library answers each ping with a pong; our own pings wait
``pong_timeout_s`` (2 minutes) for theirs, never a few seconds.

Outcomes:

* no answer within ``timeout_s``, or the connection drops with the request in flight:
  ``UnknownOutcome`` (the caller resolves an order with ``order.status``, never resends); the
  connection is then considered broken and is reopened,
* a 429/418: the shared limiter is blocked for ``retryAfter``, ``RetryLater``/``IpBanned``,
* -1021: the clock is resynced (``resync``) and the request is signed and sent again, once,
* not connected within ``connect_wait_s``: ``RetryLater`` (nothing was sent).

The connection is reopened with exponential backoff and jitter, and rotated before Binance's
24 h limit once no request is in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from core.binance.clock import Backoff, ServerClock
from core.binance.errors import (
    ClockSkew,
    Fatal,
    RetryLater,
    UnknownOutcome,
    scrub,
    timeout_error,
)
from core.binance.parse import ParseError, parse_ws_api_response
from core.binance.rate_limit import RateLimiter
from core.binance.signing import (
    Ed25519Signer,
    SecretLike,
    Signer,
    reveal,
    sign_ws_params,
    ws_params,
)
from utils.aio import cancel_and_wait

logger = logging.getLogger(__name__)

NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"
ROTATE_S = 23 * 3600 + 30 * 60
HANDSHAKE_WEIGHT = 5
PONG_TIMEOUT_S = 120.0

# websockets logs frames and request lines at DEBUG (API key, signature, listenKey): every
# connection the adapter opens uses this logger, which never logs below INFO.
WIRE_LOG = logging.getLogger("core.binance.wire_io")
WIRE_LOG.setLevel(logging.INFO)


class WsApiClient:
    """A reconnecting WS API connection.

    Args:
        url: full endpoint, e.g. wss://ws-fapi.binance.com/ws-fapi/v1.
        api_key / signer: credentials; an ``Ed25519Signer`` logs the session on.
        clock, limiter: shared with the REST client.
        resync: coroutine that resyncs ``clock`` (REST ``GET /fapi/v1/time``) after -1021.
        on_status: ``(up, detail)`` on every connect and disconnect.
        timeout_s: per-request answer timeout.
        connect_wait_s: how long ``call`` waits for a connection before ``RetryLater``.
        ping_interval_s: our own keepalive pings (None: rely on Binance's pings).
        pong_timeout_s: how long our ping may wait for its pong before the connection is
            considered dead. Binance pings every 3 minutes and waits 10 minutes for the pong
            (PROTOCOL.md §2.1, §10): a few seconds here drops a loaded connection for nothing.
        on_sent: ``(method, request id)`` right after a frame is written (latency bench).
    """

    def __init__(self, url: str, *, api_key: SecretLike | str | None, signer: Signer | None,
                 clock: ServerClock, limiter: RateLimiter,
                 resync: Callable[[], Awaitable[Any]] | None = None,
                 on_status: Callable[[bool, str], None] | None = None,
                 recv_window_ms: int = 5000, timeout_s: float = 5.0,
                 connect_wait_s: float = 5.0, ping_interval_s: float | None = 60.0,
                 pong_timeout_s: float | None = PONG_TIMEOUT_S,
                 backoff: Backoff | None = None, rotate_s: float = ROTATE_S,
                 on_sent: Callable[[str, int], None] | None = None) -> None:
        self.url = url
        self._api_key: str | None = None if api_key is None else reveal(api_key)
        self._signer = signer
        self._logon = isinstance(signer, Ed25519Signer)
        self.clock = clock
        self.limiter = limiter
        self._resync = resync
        self._on_status = on_status
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.connect_wait_s = connect_wait_s
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.backoff = backoff or Backoff()
        self.rotate_s = rotate_s
        self.on_sent = on_sent
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.connects = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ws-api")

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._ready.clear()
        self._fail_pending("WS API client stopped")

    def reconnect(self, reason: str) -> None:
        """Drop the connection (it is reopened): a request timed out, the session is stale."""
        ws = self._ws
        if ws is not None:
            logger.warning("WS API: reconnecting (%s)", reason)
            self._ready.clear()
            ws.transport.abort()

    async def _run(self) -> None:
        while True:
            try:
                await self.limiter.acquire(HANDSHAKE_WEIGHT, urgent=True, max_wait_s=3600)
                async with websockets.connect(
                    self.url, ping_interval=self.ping_interval_s, ping_timeout=self.pong_timeout_s,
                    compression=None, proxy=None, open_timeout=self.connect_wait_s,
                    max_size=2 ** 22, close_timeout=1, logger=WIRE_LOG,
                ) as ws:
                    self._ws = ws
                    reader = asyncio.create_task(self._read(ws), name="ws-api-reader")
                    try:
                        if self._logon:
                            await self._session_logon()
                        self.connects += 1
                        self.backoff.reset()
                        self._ready.set()
                        logger.info("WS API connected (%s)", "session.logon" if self._logon
                                    else "HMAC per request")
                        self._status(True, "connected")
                        self._status(False, await self._until_rotation(reader))
                    finally:
                        reader.cancel()
                        self._ready.clear()
                        self._ws = None
                        self._fail_pending("WS API connection lost with the request in flight")
            except asyncio.CancelledError:
                raise
            except Fatal as exc:
                logger.error("WS API: %s; retrying later", exc)
                self._status(False, str(exc))
            except Exception as exc:  # connect refused, handshake failed, dropped
                self._status(False, scrub(f"{type(exc).__name__}: {exc}")[:200])
            delay = self.backoff.next()
            logger.warning("WS API disconnected; reconnecting in %.2fs", delay)
            await asyncio.sleep(delay)

    async def _until_rotation(self, reader: asyncio.Task) -> str:
        """Wait until the connection ends (raising if it dropped) or is due for rotation;
        the reason it ended."""
        done, _ = await asyncio.wait({reader}, timeout=self.rotate_s)
        if done:
            reader.result()  # raises ConnectionClosed: the connection dropped
            return "connection closed"
        self._ready.clear()  # rotation: no new requests; let those in flight finish
        deadline = time.monotonic() + self.timeout_s
        while self._pending and time.monotonic() < deadline and not reader.done():  # noqa: ASYNC110  (polls a deadline and two conditions)
            await asyncio.sleep(0.01)
        logger.info("WS API: rotating the connection before the 24 h limit")
        return "rotating before the 24 h limit"

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            try:
                resp = parse_ws_api_response(raw)
            except ParseError as exc:
                logger.warning("WS API: unreadable frame skipped (%s)", exc)
                continue
            fut = self._pending.pop(resp.id, None) if isinstance(resp.id, int) else None
            if fut is not None:
                if not fut.done():
                    fut.set_result(resp)
            elif resp.id is None and not resp.ok:  # connection-level error (revoked key)
                err = resp.exception()
                logger.error("WS API connection error: %s", err)
                self._status(False, str(err))
                self._fail_pending(str(err))
                return

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(UnknownOutcome(why))

    def _status(self, up: bool, detail: str) -> None:
        if self._on_status is not None:
            try:
                self._on_status(up, detail)
            except Exception:
                logger.exception("WS API status listener failed")

    async def _session_logon(self) -> None:
        params = self._signed({}, force_signature=True)
        resp = await self._exchange("session.logon", params, self.timeout_s)
        if not resp.ok:
            raise resp.exception() or Fatal("session.logon failed")

    # ------------------------------------------------------------------ requests

    def _signed(self, params: Mapping[str, Any], *, force_signature: bool = False
                ) -> dict[str, Any]:
        if self._api_key is None or self._signer is None:
            raise Fatal("SIGNED WS API request without API credentials", http_status=401)
        body = dict(params)
        body["recvWindow"] = self.recv_window_ms
        if self._logon and not force_signature:
            body["timestamp"] = self.clock.now_ms()
            return ws_params(body)
        return sign_ws_params(body, api_key=self._api_key, signer=self._signer,
                              timestamp_ms=self.clock.now_ms())

    async def _exchange(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        ws = self._ws
        if ws is None:
            raise RetryLater(f"{method}: WS API not connected")
        req_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        frame = orjson.dumps({"id": req_id, "method": method, "params": params}).decode()
        try:
            await ws.send(frame)
        except websockets.ConnectionClosed:
            self._pending.pop(req_id, None)
            raise UnknownOutcome(f"{method}: connection closed while sending") from None
        if self.on_sent is not None:
            self.on_sent(method, req_id)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self._pending.pop(req_id, None)
            self.reconnect(f"no answer to {method} within {timeout:g}s")
            raise timeout_error(method, timeout) from None

    async def call(self, method: str, params: Mapping[str, Any] | None = None, *,
                   security: str = SIGNED, weight: int = 1, orders: int = 0,
                   urgent: bool = False, timeout: float | None = None) -> Any:
        """Send ``method`` and return its ``result``.

        Raises:
            RetryLater / IpBanned: not sent (no connection, no rate-limit room) or 429/418.
            UnknownOutcome: sent, but no answer (timeout, connection lost).
            ExchangeError: any other classified error answer.
        """
        timeout = self.timeout_s if timeout is None else timeout
        for attempt in (1, 2):
            if not self._ready.is_set():
                try:
                    await asyncio.wait_for(self._ready.wait(), self.connect_wait_s)
                except TimeoutError:
                    raise RetryLater(f"{method}: WS API not connected") from None
            await self.limiter.acquire(weight, orders, urgent=urgent)
            if security == SIGNED:
                body = self._signed(params or {})
            elif security == USER_STREAM:
                body = ws_params({**(params or {}), "apiKey": self._api_key})
            else:
                body = ws_params(params or {})
            resp = await self._exchange(method, body, timeout)
            self.limiter.observe(resp.rate_limits)
            if resp.ok:
                return resp.result
            err = resp.exception()
            assert err is not None  # resp is not ok
            self.limiter.backoff(err)
            if isinstance(err, ClockSkew) and attempt == 1 and self._resync is not None:
                logger.warning("WS API %s: -1021 timestamp outside recvWindow; resyncing the "
                               "clock and retrying once", method)
                await self._resync()
                continue
            raise err
        raise AssertionError("unreachable")
