"""REST routes of the dashboard API, ``/api/v1`` (the OpenAPI document is ``web/openapi.py``).

Reads answer JSON from ``BotView``; acts (arm, disarm, close, flat, halt) go through the same
engine facade the Telegram commands use, POST only, behind one rate limit. Errors are
``{"error": {"code", "message"}}``: 400 bad parameter, 401 token, 404 unknown, 405 method,
429 rate limit, 503 API off or data source not running. Nothing here blocks the event loop:
journal reads are aiosqlite, result files are read in a thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from core.events import ExitReason
from core.journal import JournalError
from web.readmodel import BotView, dumps
from web.results import ResultNotFound, ResultStore
from web.security import API_PREFIX, RateLimiter, error_response

logger = logging.getLogger(__name__)

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
TIMEFRAME_RE = re.compile(r"^[0-9]{1,4}(ms|s|m|h|d|w|M)$")
MAX_TS_MS = 2**53
ACTIONS = ("arm", "disarm", "close", "flat", "halt")


class BadParam(ValueError):
    """A query parameter is wrong; the message names it."""


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(value), status=status, content_type="application/json")


def _int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise BadParam(f"{name} must be between {lo} and {hi}")
    return value


def _symbol(request: web.Request, required: bool, default: str | None = None) -> str | None:
    raw = request.query.get("symbol")
    if raw is None or raw == "":
        if required and default is None:
            raise BadParam("symbol is required")
        return default
    value = raw.upper()
    if not SYMBOL_RE.match(value):
        raise BadParam("symbol must be 2-20 letters or digits, e.g. BTCUSDT")
    return value


class Api:
    """The routes; ``install`` adds them to an aiohttp application.

    Args:
        view: the read model.
        results: stored backtest/optimization results.
        limiter: shared limit of the acting endpoints.
        openapi: the OpenAPI document (a dict).
        source: ``"api"`` label for the engine's log of who acted.
    """

    def __init__(self, view: BotView, results: ResultStore, limiter: RateLimiter,
                 openapi: dict[str, Any]) -> None:
        self.view, self.results, self.limiter, self.openapi = view, results, limiter, openapi

    def install(self, app: web.Application) -> None:
        p = API_PREFIX
        gets: dict[str, Callable] = {
            "/status": self.status, "/position": self.position, "/balance": self.balance,
            "/trades": self.trades, "/equity": self.equity, "/candles": self.candles,
            "/signals": self.signals, "/risk": self.risk, "/strategy": self.strategy,
            "/logs": self.logs, "/settings": self.settings, "/results": self.result_list,
            "/results/{result_id:.+}": self.result_get, "/openapi.json": self.spec,
        }
        for path, handler in gets.items():
            app.router.add_get(p + path, _guard(handler), allow_head=False)
        app.router.add_post(p + "/actions/{action}", _guard(self.act))

    # ------------------------------------------------------------------ reads

    async def status(self, _r: web.Request) -> web.Response:
        return json_response(self.view.status())

    async def position(self, _r: web.Request) -> web.Response:
        return json_response({"position": self.view.position()})

    async def balance(self, _r: web.Request) -> web.Response:
        return json_response(self.view.balance())

    async def trades(self, r: web.Request) -> web.Response:
        since = _int(r, "since_ms", None, 0, MAX_TS_MS)
        until = _int(r, "until_ms", None, 0, MAX_TS_MS)
        if since is not None and until is not None and until < since:
            raise BadParam("until_ms must not be before since_ms")
        return json_response(await self.view.trades(
            since_ms=since, until_ms=until, symbol=_symbol(r, required=False),
            limit=_int(r, "limit", 50, 1, 500) or 50, offset=_int(r, "offset", 0, 0, 10**9) or 0))

    async def equity(self, r: web.Request) -> web.Response:
        since = _int(r, "since_ms", None, 0, MAX_TS_MS)
        until = _int(r, "until_ms", None, 0, MAX_TS_MS)
        if since is not None and until is not None and until < since:
            raise BadParam("until_ms must not be before since_ms")
        return json_response(await self.view.equity(
            since_ms=since, until_ms=until,
            max_points=_int(r, "max_points", 1000, 2, 10_000) or 1000))

    async def candles(self, r: web.Request) -> web.Response:
        view = self.view
        symbol = _symbol(r, required=True, default=view.settings.symbols[0])
        assert symbol is not None
        timeframe = r.query.get("timeframe") or view.default_timeframe()
        if not TIMEFRAME_RE.match(timeframe):
            raise BadParam("timeframe must be an interval such as 1m, 5m, 1h")
        limit = _int(r, "limit", 500, 1, 1500) or 500
        if symbol not in view.services.market.watched():
            return error_response(404, "no_candles", f"{symbol} is neither traded nor watched.")
        if timeframe not in view.timeframes(symbol):
            return error_response(404, "no_candles", f"No {timeframe} candles of {symbol} are "
                                  f"kept; available: {', '.join(view.timeframes(symbol))}")
        return json_response(await view.candles(symbol, timeframe, limit))

    async def signals(self, r: web.Request) -> web.Response:
        return json_response(self.view.recent_signals(_int(r, "limit", 50, 1, 200) or 50))

    async def risk(self, _r: web.Request) -> web.Response:
        return json_response(self.view.risk())

    async def strategy(self, _r: web.Request) -> web.Response:
        return json_response(self.view.strategy())

    async def logs(self, r: web.Request) -> web.Response:
        return json_response(self.view.logs(_int(r, "limit", 100, 1, 500) or 100))

    async def settings(self, _r: web.Request) -> web.Response:
        return json_response(self.view.public_settings())

    async def result_list(self, _r: web.Request) -> web.Response:
        return json_response({"results": await self.results.list()})

    async def result_get(self, r: web.Request) -> web.Response:
        try:
            return json_response(await self.results.open(r.match_info["result_id"]))
        except ResultNotFound:
            return error_response(404, "not_found", "No stored result has this id.")

    async def spec(self, _r: web.Request) -> web.Response:
        return json_response(self.openapi)

    # ------------------------------------------------------------------ acts

    async def act(self, r: web.Request) -> web.Response:
        action = r.match_info["action"]
        if action not in ACTIONS:
            return error_response(404, "not_found", f"Unknown action; use one of "
                                  f"{', '.join(ACTIONS)}.")
        wait = self.limiter.take()
        if wait:
            return error_response(429, "rate_limited", "Too many actions; try again shortly.",
                                  headers={"Retry-After": str(max(1, round(wait)))})
        return json_response(perform(self.view, action))


def perform(view: BotView, action: str) -> dict[str, Any]:
    """Run ``action`` through the engine facade with the engine's clock; what happened.

    Returns:
        ``{"action", "done": bool, "message", "mode", "phase"}``.
    """
    services = view.services
    engine = services.engine
    ts = services.now_ms()
    done = True
    if action == "arm":
        engine.arm(ts, "dashboard")
        message = "Engine ARMED: new signals may open positions."
    elif action == "disarm":
        engine.disarm(ts, "dashboard")
        message = "Engine DISARMED: no new positions; an open position keeps its stops."
    elif action == "close":
        done = engine.close_position(ExitReason.MANUAL, ts)
        message = "Closing the position." if done else "No open position."
    elif action == "flat":
        done = engine.flat(ts)
        message = ("Engine DISARMED and the position is closing." if done
                   else "Engine DISARMED; there was no position to close.")
    else:  # halt: RISK's kill switch (close at market, cancel entries, HALTED)
        engine.halt("dashboard", ts)
        message = "Engine HALTED: position closed, nothing trades until it is armed again."
    logger.info("dashboard action %s: %s", action, message)
    st = engine.state
    return {"action": action, "done": done, "message": message, "mode": st.mode.value,
            "phase": st.phase.value}


@web.middleware
async def json_errors(request: web.Request, handler: Callable) -> web.StreamResponse:
    """aiohttp's own 404/405 under /api/v1 as the API's JSON error shape."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if not request.path.startswith(API_PREFIX):
            raise
        return error_response(404, "not_found", "No such endpoint.")
    except web.HTTPMethodNotAllowed as exc:
        if not request.path.startswith(API_PREFIX):
            raise
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(405, "method_not_allowed", f"Use {allowed}.",
                              headers={"Allow": allowed})


def _guard(handler: Callable) -> Callable:
    """Bad parameters -> 400, a journal that is not open -> 503, anything else -> 500 with no
    detail (logged)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadParam as exc:
            return error_response(400, "bad_request", str(exc))
        except JournalError:
            logger.warning("dashboard API: the journal is not available")
            return error_response(503, "unavailable", "The journal is not available.")
        except web.HTTPException:
            raise
        except Exception:
            logger.exception("dashboard API %s failed", request.path)
            return error_response(500, "internal", "Internal error (logged).")

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped
