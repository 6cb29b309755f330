"""Live channels over one WebSocket per client: ``GET /api/v1/ws``.

Channels: ``metrics`` (mode, phase, position with live PnL, equity, feed; every second),
``trade_updates`` (signals and verdicts, orders, position opened/updated, trades closed, mode
and phase changes), ``alerts`` (the alert lines Telegram and the console get), ``logs``
(redacted log lines), ``candles`` (the engine's closed candles, and the bar in progress built
from trades, at most every ``CANDLE_EVERY_S``).

Every message is one JSON text frame ``{"type", "channel", "ts_ms", "data"}``. A client sends
``{"type": "subscribe"|"unsubscribe", "channels": [...]}`` (or ``?channels=a,b`` on the URL);
the server answers ``subscribed`` with the current set, or ``error`` for a bad request.

The engine is never slowed: bus handlers only append the event to a list when a client is
connected (nothing at all otherwise); one pump task, off the engine's stack, turns events into
JSON once and offers them to each subscriber's bounded queue (``API_WS_QUEUE``). A client whose
queue is full is disconnected (close code 4008) instead of being waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import WSMsgType, web

from core.alerts import ALERT_EVENTS, alert_text
from core.events import (
    Candle,
    MarketTick,
    OrderUpdate,
    PositionOpened,
    PositionUpdate,
    RiskRejected,
    SignalRejected,
    StateChanged,
    TradeClosed,
    TradeSignal,
)
from core.journal import to_jsonable
from utils.aio import cancel_and_wait
from utils.log_setup import PlainFormatter, RedactingFilter, redact
from web.readmodel import BotView, dumps, trade_row
from web.security import WS_PROTOCOL

logger = logging.getLogger(__name__)

CHANNELS = ("metrics", "trade_updates", "alerts", "logs", "candles")
TRADE_EVENTS = {TradeSignal: "signal", SignalRejected: "signal_rejected",
                RiskRejected: "risk_rejected", OrderUpdate: "order",
                PositionOpened: "position_opened", PositionUpdate: "position",
                TradeClosed: "trade_closed", StateChanged: "state"}
METRICS_EVERY_S = 1.0
CANDLE_EVERY_S = 0.25
MAX_CLIENTS = 32
CLOSE_TOO_SLOW = 4008


def _now_ms() -> int:
    return int(time.time() * 1000)


class Client:
    """One WebSocket connection: its channels and bounded outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse, queue_size: int) -> None:
        self.ws = ws
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.dropped = False
        self.sent = 0

    async def run_sender(self) -> None:
        while True:
            text = await self.queue.get()
            await self.ws.send_str(text)
            self.sent += 1


class _LogTap(logging.Handler):
    """Log records -> the hub's ``logs`` channel (redacted; thread-safe)."""

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.hub, self.loop = hub, loop
        self.addFilter(RedactingFilter())
        self.setFormatter(PlainFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if not self.hub.wants("logs"):
            return
        try:
            line = redact(self.format(record))
        except Exception:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self.loop.call_soon_threadsafe(self.hub.enqueue, "logs", "log",
                                           int(record.created * 1000), {"line": line})


class Hub:
    """The WebSocket fan-out. ``start()`` after the loop runs, ``stop()`` closes every client.

    Args:
        view: the read model (metrics snapshots, bus).
        queue_size: messages buffered per client before it is dropped.
        max_clients: connections accepted at once (503 beyond).
    """

    def __init__(self, view: BotView, *, queue_size: int = 256,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.view = view
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.clients: set[Client] = set()
        self._subscribed: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        self._inbox: list[tuple[str, Any]] = []
        self._wake = asyncio.Event()
        self._bars: dict[str, list[Any]] = {}
        self._dirty: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[Any]] = set()
        self._tap: _LogTap | None = None
        self.dropped = 0
        bus = view.services.engine.bus
        for cls in TRADE_EVENTS:
            bus.subscribe(cls, self._on_trade_event)
        for cls in ALERT_EVENTS:
            bus.subscribe(cls, self._on_alert_event)
        bus.subscribe(Candle, self._on_candle)
        bus.subscribe(MarketTick, self._on_tick)
        self._tf_ms = view.settings.timeframe_ms

    # ------------------------------------------------------------------ bus handlers (hot)

    def wants(self, channel: str) -> bool:
        return self._subscribed[channel] > 0

    def _on_trade_event(self, ev: Any) -> None:
        if self._subscribed["trade_updates"]:
            self._inbox.append(("trade_updates", ev))
            self._wake.set()

    def _on_alert_event(self, ev: Any) -> None:
        if self._subscribed["alerts"]:
            self._inbox.append(("alerts", ev))
            self._wake.set()

    def _on_candle(self, c: Candle) -> None:
        if self._subscribed["candles"]:
            self._inbox.append(("candles", c))
            self._wake.set()

    def _on_tick(self, ev: MarketTick) -> None:
        if not self._subscribed["candles"]:
            return
        t, p = ev.trade_ms, ev.price
        start = t - t % self._tf_ms
        bar = self._bars.get(ev.symbol)
        if bar is None or start > bar[0]:
            self._bars[ev.symbol] = [start, p, p, p, p, ev.quantity, ev.ts_ms]
        elif start == bar[0]:
            if p > bar[2]:
                bar[2] = p
            elif p < bar[3]:
                bar[3] = p
            bar[4] = p
            bar[5] += ev.quantity
            bar[6] = ev.ts_ms
        self._dirty.add(ev.symbol)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pump(), name="ws-pump"),
                       loop.create_task(self._ticker(), name="ws-metrics")]
        self._tap = _LogTap(self, loop)
        logging.getLogger().addHandler(self._tap)

    async def stop(self) -> None:
        if self._tap is not None:
            logging.getLogger().removeHandler(self._tap)
            self._tap = None
        await cancel_and_wait(*self._tasks, *self._closing)
        self._tasks = []
        for client in list(self.clients):
            await client.ws.close(code=1001, message=b"server stopping")

    # ------------------------------------------------------------------ fan-out

    def enqueue(self, channel: str, kind: str, ts_ms: int, data: Any) -> None:
        """Send one message now to every subscriber of ``channel`` (event-loop thread)."""
        self._broadcast(channel, dumps({"type": kind, "channel": channel, "ts_ms": ts_ms,
                                        "data": data}).decode())

    def _broadcast(self, channel: str, text: str) -> None:
        for client in list(self.clients):
            if channel in client.channels:
                self._offer(client, text)

    def _offer(self, client: Client, text: str) -> None:
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop(client)

    def _drop(self, client: Client) -> None:
        if client.dropped:
            return
        client.dropped = True
        self.dropped += 1
        self._remove(client)
        logger.warning("dashboard WebSocket client dropped: %d messages behind",
                       client.queue.qsize())
        task = asyncio.get_running_loop().create_task(
            client.ws.close(code=CLOSE_TOO_SLOW, message=b"too slow"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            inbox, self._inbox = self._inbox, []
            for channel, ev in inbox:
                try:
                    message = self._message(channel, ev)
                except Exception:
                    logger.exception("dashboard: cannot encode %s", type(ev).__name__)
                    continue
                if message is not None:
                    self._broadcast(channel, message)
            await asyncio.sleep(0)  # let the senders run between bursts

    async def _ticker(self) -> None:
        last_metrics = 0.0
        while True:
            await asyncio.sleep(CANDLE_EVERY_S)
            if self._dirty and self.wants("candles"):
                dirty, self._dirty = self._dirty, set()
                for symbol in dirty:
                    b = self._bars[symbol]
                    self.enqueue("candles", "candle", b[6], {
                        "symbol": symbol, "interval_ms": self._tf_ms, "open_ms": b[0],
                        "open": b[1], "high": b[2], "low": b[3], "close": b[4],
                        "volume": b[5], "closed": False})
            now = time.monotonic()
            if now - last_metrics >= METRICS_EVERY_S and self.wants("metrics"):
                last_metrics = now
                try:
                    self.enqueue("metrics", "metrics", self.view.services.now_ms(),
                                 self.metrics())
                except Exception:
                    logger.exception("dashboard: metrics snapshot failed")

    def metrics(self) -> dict[str, Any]:
        """The ``metrics`` message body."""
        view = self.view
        status = view.status()
        bal = view.balance()
        return {"mode": status["mode"], "mode_reason": status["mode_reason"],
                "phase": status["phase"], "health": status["health"],
                "uptime_s": status["uptime_s"], "position": view.position(),
                "equity": bal["equity"], "unrealized_pnl": bal["unrealized_pnl"],
                "balances": bal["balances"], "clients": len(self.clients)}

    def _message(self, channel: str, ev: Any) -> str | None:
        ts = getattr(ev, "ts_ms", 0) or _now_ms()
        if channel == "candles":
            c: Candle = ev
            data: Any = {"symbol": c.symbol, "interval_ms": c.interval_ms,
                         "open_ms": c.open_ms, "open": c.open, "high": c.high, "low": c.low,
                         "close": c.close, "volume": c.volume, "closed": c.closed}
            kind = "candle"
        elif channel == "alerts":
            text = alert_text(ev)
            if text is None:
                return None
            data, kind = {"text": redact(text), "event": type(ev).__name__}, "alert"
        else:
            kind = TRADE_EVENTS[type(ev)]
            if isinstance(ev, TradeClosed):
                data = trade_row(ev.trade)
            elif isinstance(ev, (TradeSignal, SignalRejected, RiskRejected)):
                data = to_jsonable(ev)
                if isinstance(ev, SignalRejected):
                    data["reason"] = redact(ev.reason)
            else:
                data = to_jsonable(ev)
        return dumps({"type": kind, "channel": channel, "ts_ms": ts, "data": data}).decode()

    # ------------------------------------------------------------------ connections

    def _set_channels(self, client: Client, channels: Iterable[str]) -> None:
        for ch in client.channels:
            self._subscribed[ch] -= 1
        client.channels = set(channels)
        for ch in client.channels:
            self._subscribed[ch] += 1

    def _remove(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self._set_channels(client, ())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/ws`` (authorised by the middleware)."""
        if len(self.clients) >= self.max_clients:
            from web.security import error_response

            return error_response(503, "busy", "Too many dashboard connections.")
        wanted, bad = _parse_channels(request.query.get("channels", ""))
        if bad:
            from web.security import error_response

            return error_response(400, "bad_request", f"unknown channels: {', '.join(bad)}")
        ws = web.WebSocketResponse(protocols=(WS_PROTOCOL,), heartbeat=30.0,
                                   max_msg_size=16 * 1024)
        await ws.prepare(request)
        client = Client(ws, self.queue_size)
        self.clients.add(client)
        self._set_channels(client, wanted)
        sender = asyncio.get_running_loop().create_task(client.run_sender(), name="ws-send")
        self._offer(client, self._control("hello", {"channels": list(CHANNELS),
                                                     "subscribed": sorted(client.channels)}))
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                reply = self._on_client_message(client, msg.data)
                if not client.dropped:
                    self._offer(client, reply)
        finally:
            self._remove(client)
            await cancel_and_wait(sender)
        return ws

    def _on_client_message(self, client: Client, raw: str) -> str:
        import orjson

        try:
            msg = orjson.loads(raw)
            kind, channels = msg["type"], msg.get("channels", [])
            if kind not in ("subscribe", "unsubscribe") or not isinstance(channels, list):
                raise ValueError
            wanted, bad = _parse_channels(",".join(str(c) for c in channels))
        except (ValueError, KeyError, TypeError):
            return self._control("error", {"message": 'send {"type": "subscribe", '
                                                      '"channels": ["metrics", ...]}'})
        if bad:
            return self._control("error", {"message": f"unknown channels: {', '.join(bad)}"})
        now = (client.channels | wanted) if kind == "subscribe" else (client.channels - wanted)
        self._set_channels(client, now)
        return self._control("subscribed", {"channels": sorted(client.channels)})

    @staticmethod
    def _control(kind: str, data: Any) -> str:
        return dumps({"type": kind, "channel": "control", "ts_ms": _now_ms(),
                      "data": data}).decode()


def _parse_channels(text: str) -> tuple[set[str], list[str]]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return {n for n in names if n in CHANNELS}, [n for n in names if n not in CHANNELS]
