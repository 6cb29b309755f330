"""User data stream: listenKey lifecycle and the ``/private`` connection.

Facts (shared/binance/PROTOCOL.md §1.3, §3.1, §8.4): user data does not arrive on the WS API
connection; the WS API (or REST) only creates (``userDataStream.start``, which returns the active
key if there is one) and extends (``userDataStream.ping``) a listenKey, valid 60 minutes. We
extend it every 30 minutes. Events arrive on ``<stream base>/private/ws?listenKey=<key>`` (raw
payloads; the form nautilus_trader uses). ``listenKeyExpired`` or -1125 on keepalive: create a
key and reconnect. A connection lasts at most 24 h, so it is reopened before that.

Every (re)connect calls ``on_connected`` (the adapter reconciles: anything that happened while
the stream was down is read back from the exchange). Messages go to ``on_message`` as raw text;
the listenKey never appears in a log line or an exception message.

``paths``: ``routed`` (``/private/ws?listenKey=``), ``unrouted`` (``/ws/<listenKey>``, the
USD-M testnet form nautilus_trader uses), or ``auto``: routed, falling back to unrouted for good
after two refused connects in a row (the testnet's ``/private`` is unverified, PROTOCOL.md §10).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import websockets

from core.binance.clock import Backoff
from core.binance.errors import InvalidListenKey, scrub
from core.binance.ws_api import WIRE_LOG
from utils.aio import cancel_and_wait

logger = logging.getLogger(__name__)

KEEPALIVE_S = 30 * 60
ROTATE_S = 23 * 3600 + 30 * 60


class UserStream:
    """Keeps one ``/private`` connection with a live listenKey.

    Args:
        stream_base: e.g. wss://fstream.binance.com (``/private/ws`` is appended).
        new_key: coroutine returning the account's listenKey (WS API, REST fallback).
        keepalive: coroutine extending it; raises ``InvalidListenKey`` (-1125) when it is gone.
        on_message: called with every text frame (sync, on the reader's stack).
        on_connected: called after each successful connect (sync; schedule work, don't block).
        on_status: ``(up, detail)``.
    """

    def __init__(self, stream_base: str, *, new_key: Callable[[], Awaitable[str]],
                 keepalive: Callable[[], Awaitable[Any]],
                 on_message: Callable[[str | bytes], None],
                 on_connected: Callable[[], None] | None = None,
                 on_status: Callable[[bool, str], None] | None = None,
                 keepalive_s: float = KEEPALIVE_S, ping_interval_s: float | None = 60.0,
                 ping_timeout_s: float | None = 120.0, backoff: Backoff | None = None,
                 rotate_s: float = ROTATE_S, paths: str = "routed") -> None:
        self.stream_base = stream_base.rstrip("/")
        self._new_key = new_key
        self._keepalive = keepalive
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_status = on_status
        self.keepalive_s = keepalive_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.backoff = backoff or Backoff()
        self.rotate_s = rotate_s
        self.paths = paths
        self.unrouted = paths == "unrouted"
        self._refusals = 0
        self._task: asyncio.Task | None = None
        self._ws: Any = None
        self._up = asyncio.Event()
        self.connects = 0
        self.renewals = 0

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="user-stream")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._up.clear()

    def renew(self, reason: str) -> None:
        """The listenKey is gone (listenKeyExpired, -1125): reconnect with a new one."""
        self.renewals += 1
        logger.warning("user stream: %s; reconnecting with a new listenKey", reason)
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    async def _run(self) -> None:
        while True:
            detail = "closed"
            try:
                key = await self._new_key()
                url = (f"{self.stream_base}/ws/{key}" if self.unrouted
                       else f"{self.stream_base}/private/ws?listenKey={key}")
                async with websockets.connect(
                    url, ping_interval=self.ping_interval_s, ping_timeout=self.ping_timeout_s,
                    compression=None, proxy=None, max_size=2 ** 22, close_timeout=1,
                    logger=WIRE_LOG,
                ) as ws:
                    self._ws = ws
                    self._refusals = 0
                    self.connects += 1
                    self.backoff.reset()
                    self._up.set()
                    logger.info("user stream connected")
                    self._status(True, "connected")
                    if self._on_connected is not None:
                        self._on_connected()
                    keeper = asyncio.create_task(self._keep_alive(), name="listen-key-keepalive")
                    try:
                        detail = await self._pump(ws)
                    finally:
                        keeper.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = scrub(f"{type(exc).__name__}: {exc}")[:200]
                if isinstance(exc, websockets.InvalidStatus) and not self.connected:
                    self._refused()
            finally:
                self._ws = None
                if self._up.is_set():
                    self._up.clear()
            self._status(False, detail)
            delay = self.backoff.next()
            logger.warning("user stream down (%s); reconnecting in %.2fs", detail, delay)
            await asyncio.sleep(delay)

    def _refused(self) -> None:
        """A connect was refused: with paths="auto", the second in a row switches to the
        unrouted path for good."""
        self._refusals += 1
        if self.paths == "auto" and not self.unrouted and self._refusals >= 2:
            logger.warning("user stream: /private refused twice; falling back to the unrouted "
                           "path")
            self.unrouted = True

    async def _pump(self, ws: Any) -> str:
        reader = asyncio.create_task(self._read(ws), name="user-stream-reader")
        try:
            done, _ = await asyncio.wait({reader}, timeout=self.rotate_s)
            if done:
                reader.result()
                return "connection closed"
            logger.info("user stream: rotating the connection before the 24 h limit")
            return "rotating before the 24 h limit"
        finally:
            reader.cancel()

    async def _read(self, ws: Any) -> None:
        on_message = self._on_message
        async for raw in ws:
            try:
                on_message(raw)
            except Exception:  # one bad message must not stop the stream
                logger.exception("user stream: message handler failed")

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self._keepalive()
                logger.debug("listenKey extended")
            except InvalidListenKey:
                self.renew("listenKey keepalive answered -1125")
                return
            except Exception as exc:  # try again at the next interval; the key lives 60 min
                logger.warning("listenKey keepalive failed: %s", scrub(str(exc)))

    def _status(self, up: bool, detail: str) -> None:
        if self._on_status is not None:
            try:
                self._on_status(up, detail)
            except Exception:
                logger.exception("user stream status listener failed")
