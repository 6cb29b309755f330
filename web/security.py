"""The dashboard's locks: bearer token, bind check, action rate limit, CORS.

* Every ``/api/v1`` request (and the WebSocket) carries ``Authorization: Bearer <API_TOKEN>``;
  a browser WebSocket, which cannot set headers, offers the token as the subprotocol
  ``bearer.<token>`` next to ``dort5bot.v1``. Compared with ``hmac.compare_digest`` (constant
  time). No token configured: the API is off (503 ``api_off``), the page says so.
* ``check_bind``: a non-loopback ``HTTP_HOST`` with the API enabled and no token refuses to start.
* Missing or wrong tokens share ``API_AUTH_FAILURES_PER_MIN``; beyond it they get 429.
* Acting endpoints are POST only and share one sliding-window limit
  (``API_ACTION_RATE_PER_MIN``); a refused call answers 429 with ``Retry-After``.
* CORS is closed unless ``API_CORS_ORIGINS`` lists the origin (exact match).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import deque
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from utils.settings import Settings

API_PREFIX = "/api/v1"
WS_PROTOCOL = "dort5bot.v1"
BEARER_PROTOCOL_PREFIX = "bearer."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DashboardConfigError(ValueError):
    """The dashboard cannot start as configured; one-line message naming the variable."""


def api_token(settings: Settings) -> str | None:
    """The configured token, or None when unset or empty."""
    token = settings.api_token
    value = token.get_secret_value() if token is not None else ""
    return value or None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def check_bind(settings: Settings) -> None:
    """Refuse an exposed API without a token.

    Raises:
        DashboardConfigError: HTTP_HOST is not a loopback address, API_ENABLED is true and
            API_TOKEN is unset.
    """
    if settings.api_enabled and api_token(settings) is None and not is_loopback(
            settings.http_host):
        raise DashboardConfigError(
            f"HTTP_HOST={settings.http_host} is not a loopback address and API_TOKEN is unset: "
            "set API_TOKEN, or API_ENABLED=false to serve only /healthz and /metrics")


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """``{"error": {"code", "message"}}`` with ``status``."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(body=body, status=status, content_type="application/json",
                        headers=headers)


def token_matches(expected: str, offered: str | None) -> bool:
    """Constant-time comparison (``hmac.compare_digest`` on UTF-8 bytes)."""
    if offered is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), offered.encode("utf-8"))


def offered_token(request: web.Request) -> str | None:
    """The bearer token from the Authorization header, or from a ``bearer.<token>``
    WebSocket subprotocol."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(BEARER_PROTOCOL_PREFIX):
            return proto[len(BEARER_PROTOCOL_PREFIX):]
    return None


def auth_middleware(settings: Settings, failures: RateLimiter | None = None) -> Callable:
    """Guards every path under ``/api/v1``; other paths (the page, /healthz) pass. Requests
    with a missing or wrong token count against ``failures`` (API_AUTH_FAILURES_PER_MIN);
    once it is spent they get 429 instead of 401, so a token cannot be guessed quickly. The
    right token always passes."""
    token = api_token(settings)
    if failures is None:
        failures = RateLimiter(settings.api_auth_failures_per_min)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        if request.method == "OPTIONS":  # CORS preflight carries no credentials
            return await handler(request)
        if token is None:
            return error_response(503, "api_off", "The API is off: set API_TOKEN to use it.")
        if not token_matches(token, offered_token(request)):
            wait = failures.take()
            if wait:
                return error_response(429, "rate_limited", "Too many wrong tokens; wait.",
                                      headers={"Retry-After": str(max(1, round(wait)))})
            return error_response(401, "unauthorized", "Missing or wrong bearer token.",
                                  headers={"WWW-Authenticate": 'Bearer realm="dort5bot"'})
        return await handler(request)

    return middleware


def cors_middleware(origins: tuple[str, ...]) -> Callable:
    """Adds CORS headers for allowed origins only; preflights from others get 403."""
    allowed = frozenset(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and request.path.startswith(API_PREFIX):
            if origin is None or origin not in allowed:
                return error_response(403, "cors", "Cross-origin requests are not allowed.")
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600", "Vary": "Origin"})
        response = await handler(request)
        if origin is not None and origin in allowed and request.path.startswith(API_PREFIX):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return middleware


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No caching of API answers; the page may load only its own scripts."""
    response = await handler(request)
    if request.path.startswith(API_PREFIX):
        response.headers.setdefault("Cache-Control", "no-store")
    else:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
            "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


class RateLimiter:
    """At most ``limit`` calls per ``window_s`` seconds (sliding window, all clients).

    ``clock`` is monotonic seconds (inject a fake in tests).
    """

    def __init__(self, limit: int, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._calls: deque[float] = deque()

    def take(self) -> float:
        """0.0 when the call may go (and it is counted), else seconds until one may."""
        now = self._clock()
        while self._calls and now - self._calls[0] >= self.window_s:
            self._calls.popleft()
        if len(self._calls) >= self.limit:
            return max(0.001, self.window_s - (now - self._calls[0]))
        self._calls.append(now)
        return 0.0
