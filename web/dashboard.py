"""The dashboard: REST API, WebSocket channels and the page, on the bot's status server.

``status_server(services)`` is called by the composition root (``bootstrap.py``) right after
the services are built, so the dashboard's bus subscriptions see every event; the status server
calls ``middlewares``, ``install(app)``, ``start()`` and ``stop()``. Routes:

* ``/`` and ``/static/...``: the page (no CDN, no build step; lightweight-charts vendored);
* ``/i18n/{lang}.json``: the page's texts from the bot's gettext catalog (English, Turkish);
* ``/api/v1/...``: REST (``web/api.py``) and ``/api/v1/ws`` (``web/hub.py``), token required.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web

from core.services import Services
from utils.log_setup import add_secret
from web.api import Api, json_errors, json_response
from web.hub import Hub
from web.openapi import openapi_document
from web.readmodel import BotView
from web.results import ResultStore
from web.security import (
    API_PREFIX,
    RateLimiter,
    api_token,
    auth_middleware,
    check_bind,
    cors_middleware,
    headers_middleware,
)
from web.status_server import StatusServer

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_T_CALL = re.compile(r"""\b(?:t|N_)\(\s*"((?:[^"\\]|\\.)*)\"""")
_DATA_T = re.compile(r'data-t="([^"]+)"')


@lru_cache(maxsize=1)
def page_msgids() -> tuple[str, ...]:
    """Every text of the page: ``t("...")`` and ``N_("...")`` in its script, ``data-t`` in its
    HTML; their translations live in the bot's catalog (locales/)."""
    import json

    src = (STATIC_DIR / "app.js").read_text("utf-8")
    html = (STATIC_DIR / "index.html").read_text("utf-8")
    found = [json.loads(f'"{m}"') for m in _T_CALL.findall(src)]
    found += [m.replace("&#39;", "'") for m in _DATA_T.findall(html)]
    return tuple(dict.fromkeys(found))


@lru_cache(maxsize=4)
def page_texts(lang: str) -> dict[str, str]:
    """``{msgid: text}`` of the page in ``lang`` (the bot's catalog; English = the msgids).

    Raises:
        ValueError: unknown language.
    """
    from handlers.i18n import Texts  # the catalog only: handlers.i18n never imports telegram

    texts = Texts(lang)
    return {m: texts.template(m) for m in page_msgids()}


def status_server(services: Services) -> StatusServer:
    """The HTTP server of ``services`` (HTTP_HOST, HTTP_PORT): /healthz and /metrics, plus the
    dashboard unless API_ENABLED=false (``server.extensions[0]``). Attach it to ``services``.

    Raises:
        web.security.DashboardConfigError: a non-loopback bind without API_TOKEN.
    """
    settings = services.settings
    assert settings.http_port is not None
    extensions = [Dashboard(services)] if settings.api_enabled else []
    return StatusServer(services.health_check, services.metrics, host=settings.http_host,
                        port=settings.http_port, extensions=extensions,
                        metrics_token=api_token(settings))


class Dashboard:
    """The web front-end of one bot process.

    Raises:
        web.security.DashboardConfigError: an exposed bind without a token (``check_bind``).
    """

    def __init__(self, services: Services) -> None:
        settings = services.settings
        check_bind(settings)
        add_secret(settings.api_token)
        self.settings = settings
        self.enabled = settings.api_enabled
        self.view = BotView(services)
        self.hub = Hub(self.view, queue_size=settings.api_ws_queue)
        self.api = Api(self.view, ResultStore(settings.data_dir),
                       RateLimiter(settings.api_action_rate_per_min), openapi_document())

    @property
    def middlewares(self) -> list[Any]:
        if not self.enabled:
            return []
        return [headers_middleware, cors_middleware(self.settings.api_cors_origins),
                auth_middleware(self.settings), json_errors]

    def install(self, app: web.Application) -> None:
        if not self.enabled:
            return
        self.api.install(app)
        app.router.add_get(API_PREFIX + "/ws", self.hub.handle)
        app.router.add_get("/", self._index)
        app.router.add_get("/i18n/{lang}.json", self._texts)
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)

    async def start(self) -> None:
        if self.enabled:
            await self.hub.start()
            state = "on" if api_token(self.settings) else "off (API_TOKEN unset)"
            logger.info("dashboard on / (API %s)", state)

    async def stop(self) -> None:
        await self.hub.stop()

    async def _index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html",
                                headers={"Cache-Control": "no-cache"})

    async def _texts(self, request: web.Request) -> web.Response:
        try:
            return json_response(page_texts(request.match_info["lang"]))
        except ValueError:
            return json_response({"error": {"code": "not_found",
                                            "message": "Languages: en, tr."}}, 404)
