"""Market streams on the routed endpoints, combined-stream mode (shared/binance/PROTOCOL.md §1.3).

Book streams (``bookTicker``, ``depth*``, ``rpiDepth``) live on ``<base>/public``, everything
else (``aggTrade``, ``markPrice@1s``, ``kline_<i>`` ...) on ``<base>/market``; the legacy
``/ws`` and ``/stream`` paths were retired on 2026-04-23 and fail silently. The raw ``@trade``
stream is not in the official route table; it was measured arriving on ``/public``
(PROTOCOL.md §10), so it is routed there (prefer ``@aggTrade``). One connection per route (more
past ``MAX_STREAMS`` streams), opened as ``<route>/stream?streams=a/b/c`` with lowercase
symbols; frames arrive as ``{"stream": name, "data": payload}`` and go through
``parse_market_event`` (core/binance/parse_market.py), which routes them on ``e``.

* Pings: Binance pings every 3 minutes; the websockets library answers every ping with a pong
  carrying the same payload (we send no pings of our own: ``ping_interval=None``).
* Watchdog: a connection that delivers no frame for ``silence_s`` is closed and reopened (a
  silent socket is the failure mode of a wrong route or a half-dead connection). ``/public``
  carries bookTicker and depth, pushed only on change: an illiquid symbol's book can be quiet
  for minutes (PROTOCOL.md §10), so there a silent connection is pinged instead and kept while
  it answers; only ``public_silence_s`` without any data frame reopens it.
* Rotation: a connection is replaced before Binance's 24 h limit, make-before-break: the new
  one is opened first, then the old one closed.
* Rate: Binance allows 10 incoming messages per second per connection. Subscriptions are in
  the URL, so the bot normally sends nothing; ``subscribe`` (live SUBSCRIBE) goes through
  ``ControlRate``, 5 messages/s like the official SDK.
* Reconnects use exponential backoff with jitter; every up/down is published as
  ``ConnectionStatus(stream="market/<route>")`` and logged.
* Paths (``paths``): ``routed`` as above; ``unrouted`` is ``<base>/stream?streams=...`` (the
  testnet form nautilus_trader uses; retired on mainnet); ``auto`` starts routed and falls back
  to unrouted for a connection that was refused twice or stayed silent before its first frame
  (the USD-M testnet's routed paths are unverified, PROTOCOL.md §10). Use ``auto`` on the
  testnet only: on mainnet the unrouted paths are retired and fail silently.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import websockets

from core.binance.clock import Backoff
from core.binance.parse_market import parse_market_event
from core.binance.wire import ParseError
from core.binance.ws_api import WIRE_LOG
from core.events import ConnectionStatus
from utils.aio import cancel_and_wait

logger = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("bookTicker", "depth", "rpiDepth", "trade")
MAX_STREAMS = 200
ROTATE_S = 23 * 3600 + 30 * 60
CONTROL_RATE_PER_S = 5.0
PUBLIC_SILENCE_S = 600.0


def route_of(stream: str) -> str:
    """``public`` for book streams and ``@trade``, ``market`` for the rest (PROTOCOL.md §1.3
    table; ``@trade``: §10)."""
    kind = stream.split("@", 1)[1] if "@" in stream else stream.lstrip("!")
    return "public" if kind.startswith(PUBLIC_PREFIXES) else "market"


def stream_names(symbols: Iterable[str], kinds: Iterable[str]) -> list[str]:
    """``["btcusdt@aggTrade", ...]``: every kind for every symbol, symbols lowercased."""
    kinds = list(kinds)
    return [f"{s.lower()}@{k}" for s in symbols for k in kinds]


def connection_urls(base: str, streams: Iterable[str], *, per_connection: int = MAX_STREAMS,
                    unrouted: bool = False) -> list[tuple[str, str]]:
    """``[(route, url)]``: streams grouped by route, at most ``per_connection`` per URL
    (``unrouted``: ``<base>/stream?streams=`` without the route prefix)."""
    by_route: dict[str, list[str]] = {}
    for s in dict.fromkeys(streams):
        by_route.setdefault(route_of(s), []).append(s)
    out = []
    for route in sorted(by_route):
        names = by_route[route]
        for i in range(0, len(names), per_connection):
            chunk = "/".join(names[i:i + per_connection])
            prefix = "" if unrouted else f"/{route}"
            out.append((route, f"{base.rstrip('/')}{prefix}/stream?streams={chunk}"))
    return out


class ControlRate:
    """Token bucket for messages we send on a stream connection (sans-I/O).

    ``delay(now)`` reserves the next slot and returns how long to wait before sending.
    """

    __slots__ = ("interval", "_next")

    def __init__(self, per_second: float = CONTROL_RATE_PER_S) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0

    def delay(self, now: float) -> float:
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now


class _Conn:
    __slots__ = ("route", "url", "name", "ws", "last", "last_frame", "rate", "frames",
                 "connects", "pings", "fallback", "refusals")

    def __init__(self, route: str, url: str, name: str, fallback: str = "") -> None:
        self.route, self.url, self.name = route, url, name
        self.fallback = fallback  # the unrouted URL to switch to (paths="auto")
        self.refusals = 0
        self.ws: Any = None
        self.last = 0.0        # last sign of life: a frame, or a pong on /public
        self.last_frame = 0.0  # last data frame
        self.pings = 0
        self.rate = ControlRate()
        self.frames = 0
        self.connects = 0


class MarketStreams:
    """Market data connections feeding the bus.

    Args:
        base_url: stream base, e.g. wss://fstream.binance.com.
        streams: stream names (see ``stream_names``).
        publish: called with each parsed engine market event (the bus's ``publish``); None to
            skip parsing (the recorder).
        on_raw: called with every raw text frame and its local receive time (ns since epoch).
        bus_status: called with ConnectionStatus events (the bus's ``publish``).
        silence_s: watchdog threshold. rotate_s: connection lifetime.
        public_silence_s: longest ``/public`` silence while pings are answered.
        ping_wait_s: how long a liveness ping waits for its pong.
    """

    def __init__(self, base_url: str, streams: Iterable[str], *,
                 publish: Callable[[Any], None] | None = None,
                 on_raw: Callable[[str, int], None] | None = None,
                 bus_status: Callable[[ConnectionStatus], None] | None = None,
                 silence_s: float = 10.0, rotate_s: float = ROTATE_S,
                 public_silence_s: float = PUBLIC_SILENCE_S, ping_wait_s: float = 10.0,
                 paths: str = "routed",
                 backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0,
                 per_connection: int = MAX_STREAMS) -> None:
        self.streams = list(dict.fromkeys(streams))
        self._publish = publish
        self._on_raw = on_raw
        self._bus_status = bus_status
        self.silence_s = silence_s
        self.public_silence_s = public_silence_s
        self.ping_wait_s = ping_wait_s
        self.rotate_s = rotate_s
        self._backoff = (backoff_base_s, backoff_cap_s)
        if paths not in ("routed", "unrouted", "auto"):
            raise ValueError(f"paths must be routed, unrouted or auto, not {paths!r}")
        urls = connection_urls(base_url, self.streams, per_connection=per_connection,
                               unrouted=paths == "unrouted")
        plain = connection_urls(base_url, self.streams, per_connection=per_connection,
                                unrouted=True) if paths == "auto" else [("", "")] * len(urls)
        self.conns = [_Conn(route, url, f"market/{route}" + (f"#{n}" if len(urls) > 2 else ""),
                            fallback)
                      for n, ((route, url), (_, fallback)) in enumerate(zip(urls, plain,
                                                                            strict=True), 1)]
        self._tasks: list[asyncio.Task] = []
        self.events = 0
        self.bad_frames = 0
        self.reconnects = 0
        self.last_frame_ns = 0  # perf_counter_ns of the latest frame (latency bench)

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run(c), name=c.name) for c in self.conns]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)
        for c in self.conns:
            if c.ws is not None:
                await c.ws.close()
                c.ws = None

    def connected(self) -> bool:
        return all(c.ws is not None for c in self.conns)

    async def subscribe(self, streams: Iterable[str]) -> None:
        """Add streams at runtime with live SUBSCRIBE messages, paced by ``ControlRate``."""
        for s in streams:
            conn = next((c for c in self.conns if c.route == route_of(s)), None)
            if conn is None or conn.ws is None:
                raise RuntimeError(f"no open {route_of(s)} connection for {s}")
            wait = conn.rate.delay(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            msg = {"method": "SUBSCRIBE", "params": [s], "id": next(_CONTROL_IDS)}
            await conn.ws.send(orjson.dumps(msg).decode())
            self.streams.append(s)

    # ------------------------------------------------------------------ connections

    def _status(self, conn: _Conn, up: bool, detail: str) -> None:
        if self._bus_status is not None:
            self._bus_status(ConnectionStatus(stream=conn.name, up=up, detail=detail,
                                              ts_ms=time.time_ns() // 1_000_000))

    async def _connect(self, conn: _Conn, backoff: Backoff) -> Any:
        while True:
            try:
                ws = await websockets.connect(
                    conn.url, ping_interval=None, compression=None, proxy=None,
                    max_size=2 ** 22, close_timeout=1, open_timeout=10, logger=WIRE_LOG)
                conn.connects += 1
                conn.refusals = 0
                if conn.connects > 1:
                    self.reconnects += 1
                logger.info("%s connected (%d streams)", conn.name, conn.url.count("@"))
                self._status(conn, True, "connected")
                return ws
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                conn.refusals += 1
                if conn.refusals >= 2:
                    self._fall_back(conn, "refused twice")
                delay = backoff.next()
                detail = f"{type(exc).__name__}: {exc}"[:200]
                logger.warning("%s: connect failed (%s); retrying in %.2fs", conn.name, detail,
                               delay)
                self._status(conn, False, detail)
                await asyncio.sleep(delay)

    async def _run(self, conn: _Conn) -> None:
        backoff = Backoff(*self._backoff)
        ws = None
        try:
            while True:
                if ws is None:
                    if conn.connects:  # a lost connection: back off before the next one
                        await asyncio.sleep(backoff.next())
                    ws = await self._connect(conn, backoff)
                conn.ws = ws
                ws = await self._pump(conn, ws, backoff)
        finally:
            if conn.ws is not None:
                conn.ws.transport.abort()
                conn.ws = None

    async def _pump(self, conn: _Conn, ws: Any, backoff: Backoff) -> Any:
        """Read ``ws`` until it drops, goes silent or is due for rotation; returns the next
        connection (already open on rotation) or None (reconnect)."""
        loop = asyncio.get_running_loop()
        born = conn.last = conn.last_frame = loop.time()
        reader = asyncio.create_task(self._read(conn, ws), name=f"{conn.name}-reader")
        check = min(1.0, self.silence_s / 4, self.rotate_s / 4)
        try:
            while True:
                done, _ = await asyncio.wait({reader}, timeout=check)
                if done:
                    try:
                        reader.result()
                        detail = "closed by the server"
                    except websockets.ConnectionClosed as exc:
                        detail = f"connection lost ({exc.rcvd.code if exc.rcvd else 1006})"
                    return self._lost(conn, detail, backoff)
                now = loop.time()
                if conn.frames and now - conn.last < 60:
                    backoff.reset()  # the connection works: the next drop starts from base
                if (now - conn.last > self.silence_s and conn.route == "public"
                        and now - conn.last_frame < self.public_silence_s
                        and await self._answers_ping(conn, ws)):
                    conn.last = loop.time()  # quiet book, live connection
                    continue
                if now - conn.last > self.silence_s:
                    if not conn.frames:
                        self._fall_back(conn, "silent before its first frame")
                    ws.transport.abort()
                    return self._lost(conn, f"silent for {now - conn.last:.1f}s (watchdog)",
                                      backoff)
                if now - born > self.rotate_s:
                    new = await self._connect(conn, backoff)
                    logger.info("%s rotated before the 24 h limit", conn.name)
                    reader.cancel()
                    await ws.close()
                    return new
        finally:
            reader.cancel()

    def _fall_back(self, conn: _Conn, why: str) -> None:
        """paths="auto": switch ``conn`` to its unrouted URL for good."""
        if conn.fallback and conn.url != conn.fallback:
            logger.warning("%s: routed path %s; falling back to the unrouted path", conn.name,
                           why)
            conn.url = conn.fallback

    async def _answers_ping(self, conn: _Conn, ws: Any) -> bool:
        """Ping ``ws``; True when the pong comes within ``ping_wait_s``."""
        conn.pings += 1
        try:
            waiter = await ws.ping()
            await asyncio.wait_for(waiter, min(self.ping_wait_s, self.silence_s))
            return True
        except asyncio.CancelledError:
            raise
        except Exception:  # no pong, or the connection is gone
            return False

    def _lost(self, conn: _Conn, detail: str, backoff: Backoff) -> None:  # noqa: ARG002
        conn.ws = None
        logger.warning("%s down: %s", conn.name, detail)
        self._status(conn, False, detail)
        return None

    async def _read(self, conn: _Conn, ws: Any) -> None:
        loop = asyncio.get_running_loop()
        publish, on_raw = self._publish, self._on_raw
        loads, parse = orjson.loads, parse_market_event
        async for raw in ws:
            conn.last = conn.last_frame = loop.time()
            conn.frames += 1
            self.last_frame_ns = time.perf_counter_ns()
            if on_raw is not None:
                on_raw(raw, time.time_ns())
            if publish is None:
                continue
            try:
                ev = parse(loads(raw))
            except (ParseError, orjson.JSONDecodeError) as exc:
                self.bad_frames += 1
                if self.bad_frames <= 3:
                    logger.warning("%s: bad frame skipped (%s)", conn.name, exc)
                continue
            if ev is not None:
                self.events += 1
                publish(ev)


_CONTROL_IDS = itertools.count(1)
