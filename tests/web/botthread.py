"""The whole bot (replayed capture, paper exchange, journal, status server with the dashboard) on
its own event loop in a background thread, so synchronous clients (Playwright, schemathesis,
urllib) can talk to it as a browser would.

``BotThread.call(fn)`` runs ``fn`` on the bot's loop and returns its result: the only safe
way for a test to read or change the bot's state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bootstrap import build_services
from core.engine import Engine
from core.events import PositionPhase
from core.replay.bar_ticks import with_bar_ticks
from core.replay.source import ReplaySource
from core.services import Services
from utils.log_setup import add_secret
from utils.settings import load_settings
from web.dashboard import Dashboard, status_server
from web.status_server import StatusServer

TOKEN = "test-token-7f3a9c0b2e"
SECRET = "s3cr3t-binance-value-never-shown"

#: The status-server test's parameters: 5 s candles on the 5m44s BTCUSDT capture trade.
FAST_STRATEGY = dict(timeframe="5s", ema_fast=5, ema_slow=13, adx_period=7, adx_min=15)


def server_of(services: Services) -> StatusServer:
    """The status server attached to ``services``."""
    return next(c for c in services.components if isinstance(c, StatusServer))


def dashboard_of(services: Services) -> Dashboard:
    """The dashboard served by that server."""
    ext = server_of(services).extensions[0]
    assert isinstance(ext, Dashboard)
    return ext


def paced_after_entry(paths: Sequence[str | Path], speed: float, entries: int = 1) -> Callable:
    """A feed that replays as fast as possible until the ``entries``-th position is open, then
    at ``speed`` x exchange time, so a browser sees it live (marks moving, PnL changing)."""
    source = ReplaySource(paths, reorder_ms=2_000)

    async def feed(engine: Engine, stop: asyncio.Event) -> int:
        count = opened = 0
        was_open = False
        t0: float | None = None
        first = 0
        for ev in with_bar_ticks(source):
            if stop.is_set():
                break
            is_open = engine.state.phase is PositionPhase.OPEN
            opened += is_open and not was_open
            was_open = is_open
            if t0 is None and opened >= entries:
                t0, first = time.monotonic(), ev.ts_ms
            if t0 is not None:
                delay = t0 + (ev.ts_ms - first) / 1000 / speed - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
            engine.bus.publish(ev)
            count += 1
            if not count % 2_000:
                await asyncio.sleep(0)
        return count

    return feed


class BotThread:
    """Start with ``start()``; ``stop()`` ends the feed, the server and the thread."""

    def __init__(self, data_dir: Path, capture: Path, *, paced_speed: float | None = None,
                 paced_entries: int = 1, autostart_feed: bool = True, **overrides: Any) -> None:
        settings = dict(FAST_STRATEGY, data_dir=data_dir, http_port=0, api_token=TOKEN,
                        binance_api_secret=SECRET, api_action_rate_per_min=600,
                        api_auth_failures_per_min=100_000,
                        market_analysis_executor="thread")
        settings.update(overrides)
        self.settings = load_settings(_env_file=None, **settings)
        self.capture, self.paced_speed = capture, paced_speed
        self.paced_entries, self.autostart_feed = paced_entries, autostart_feed
        self.loop = asyncio.new_event_loop()
        self.services: Services | None = None
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, name="bot", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_feed: bool = True) -> BotThread:
        self._thread.start()
        self.call_async(self._start(), timeout=60)
        if wait_feed:
            self.call_async(self.services.wait_feed(), timeout=120)  # type: ignore[union-attr]
        return self

    async def _start(self) -> None:
        if self.paced_speed is None:
            services = build_services(self.settings, replay=[str(self.capture)], speed=0)
        else:
            add_secret(SECRET)
            services = Services(self.settings, persist=True,
                                feed=paced_after_entry([self.capture], self.paced_speed,
                                                       self.paced_entries))
            services.attach(status_server(services))
        await services.start(start_feed=self.autostart_feed)
        self.services = services
        self.port = server_of(services).port

    def call(self, fn: Callable[[], Any], timeout: float = 10) -> Any:
        """``fn()`` on the bot's loop."""
        async def run() -> Any:
            return fn()
        return self.call_async(run(), timeout)

    def wait(self, cond: Callable[[], object], timeout: float = 30) -> None:
        """Until ``cond()`` (run on the bot's loop) is true; AssertionError after ``timeout``."""
        async def poll() -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise AssertionError("condition not met in time")
                await asyncio.sleep(0.01)
        self.call_async(poll(), timeout + 5)

    def call_async(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.services is not None:
            try:
                self.call_async(self.services.stop(), timeout=30)
            except concurrent.futures.TimeoutError:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    # ------------------------------------------------------------------ HTTP (sync)

    def request(self, method: str, path: str, token: str | None = TOKEN,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """(status, headers, decoded JSON or text)."""
        req = urllib.request.Request(self.url + path, method=method, headers=dict(headers or {}))
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, hdrs, body = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            status, hdrs, body = exc.code, dict(exc.headers), exc.read()
        text = body.decode("utf-8")
        try:
            return status, hdrs, json.loads(text)
        except ValueError:
            return status, hdrs, text
