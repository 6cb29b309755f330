"""Limits that keep the HTTP server (health, metrics, dashboard) from being a way to hurt the
bot: bounded concurrency, a per-client request rate, a deadline per request, a body size cap,
idle connections closed, and /metrics behind a token when it is reachable beyond loopback.

* ``max_in_flight`` requests at once (WebSocket sessions not counted: the dashboard hub bounds
  them); the next one gets 503 with ``Retry-After: 1`` at once instead of queueing.
* ``rate_per_min`` requests per client address in a sliding minute; then 429 with
  ``Retry-After``. ``/healthz`` is exempt (the platform's health check must never be refused).
* ``request_timeout_s``: a handler that takes longer answers 504 (a slow client that cannot
  read its answer in time is cut off the same way); idle keep-alive connections close after
  ``keepalive_timeout_s``; request bodies over ``max_body_bytes`` get 413.
* ``/metrics`` (it shows position, equity and PnL) needs ``Authorization: Bearer <API_TOKEN>``
  when HTTP_HOST is not a loopback address; without a token configured it answers 403 there.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight: int = 64
    rate_per_min: int = 600
    request_timeout_s: float = 15.0
    keepalive_timeout_s: float = 15.0
    max_body_bytes: int = 64 * 1024
    max_clients_tracked: int = 4096


def _text(status: int, message: str, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))} if retry_after else None
    return web.Response(status=status, text=message + "\n", headers=headers)


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def guard_middleware(limits: Limits, *, clock: Callable[[], float] = time.monotonic
                     ) -> Callable:
    """The concurrency cap, per-client rate limit and per-request deadline (see module doc)."""
    in_flight = 0
    seen: dict[str, deque[float]] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if request.path != "/healthz":
            now = clock()
            client = request.remote or "?"
            window = seen.get(client)
            if window is None:
                if len(seen) >= limits.max_clients_tracked:  # forget the quietest
                    seen.pop(next(iter(seen)))
                window = seen[client] = deque()
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) >= limits.rate_per_min:
                return _text(429, "too many requests", 60.0 - (now - window[0]))
            window.append(now)
        if _is_websocket(request):
            return await handler(request)
        if in_flight >= limits.max_in_flight:
            return _text(503, "busy", 1.0)
        in_flight += 1
        try:
            async with asyncio.timeout(limits.request_timeout_s):
                return await handler(request)
        except TimeoutError:
            return _text(504, "request took too long")
        finally:
            in_flight -= 1

    return middleware


def metrics_allowed(request: web.Request, *, exposed: bool, token: str | None,
                    matches: Callable[[str, str | None], bool],
                    offered: Callable[[web.Request], str | None]) -> web.Response | None:
    """None when /metrics may answer; else the refusal (401 or 403)."""
    if not exposed:
        return None
    if token is None:
        return _text(403, "metrics are private beyond loopback: set API_TOKEN")
    if not matches(token, offered(request)):
        return web.Response(status=401, text="missing or wrong bearer token\n",
                            headers={"WWW-Authenticate": 'Bearer realm="dort5bot"'})
    return None
