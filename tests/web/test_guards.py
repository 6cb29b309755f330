"""The HTTP server's limits: concurrency, per-client rate, request deadline, body size, idle
keep-alive, and /metrics behind a token beyond loopback."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tests.conftest import eventually
from web.guards import Limits
from web.status_server import Metric, StatusServer

TOKEN = "m3tr1cs-token-for-tests-0123456789"


class SlowRoutes:
    """A test extension: /slow waits until released; /echo reads its body."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0

    @property
    def middlewares(self) -> list:
        return []

    def install(self, app: web.Application) -> None:
        app.router.add_get("/slow", self._slow)
        app.router.add_post("/echo", self._echo)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.release.set()

    async def _slow(self, request: web.Request) -> web.Response:
        self.waiting += 1
        await self.release.wait()
        return web.Response(text="done")

    async def _echo(self, request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))


def server(**kw) -> tuple[StatusServer, SlowRoutes]:
    routes = SlowRoutes()
    limits = kw.pop("limits", Limits())
    srv = StatusServer(lambda: (True, {}), lambda: [Metric("equity_usdt", "e", 1.0, "gauge")],
                       port=0, extensions=[routes], limits=limits, **kw)
    return srv, routes


async def fetch(port: int, path: str, **kw) -> tuple[int, str, dict]:
    method = kw.pop("method", "GET")
    async with aiohttp.ClientSession() as s, s.request(
            method, f"http://127.0.0.1:{port}{path}", **kw) as r:
        return r.status, await r.text(), dict(r.headers)


async def test_metrics_need_the_token_when_the_server_listens_beyond_loopback():
    for token, auth, expected in ((None, None, 403), (TOKEN, None, 401),
                                  (TOKEN, "Bearer wrong-token", 401), (TOKEN, f"Bearer {TOKEN}",
                                                                      200)):
        srv, _ = server(host="0.0.0.0", metrics_token=token)
        await srv.start()
        try:
            headers = {"Authorization": auth} if auth else {}
            status, body, _ = await fetch(srv.port, "/metrics", headers=headers)
            assert status == expected, (token, auth)
            assert ("equity_usdt" in body) is (expected == 200)
            status, _, _ = await fetch(srv.port, "/healthz")  # the platform's check stays open
            assert status == 200
        finally:
            await srv.stop()
    srv, _ = server()  # loopback: Prometheus on the same machine needs no token
    await srv.start()
    try:
        assert (await fetch(srv.port, "/metrics"))[0] == 200
    finally:
        await srv.stop()


async def test_a_client_over_its_rate_gets_429_and_health_checks_are_never_refused():
    srv, _ = server(limits=Limits(rate_per_min=5))
    await srv.start()
    try:
        statuses = [(await fetch(srv.port, "/metrics"))[0] for _ in range(5)]
        status, _, headers = await fetch(srv.port, "/metrics")
        assert statuses == [200] * 5 and status == 429 and int(headers["Retry-After"]) >= 1
        health = [(await fetch(srv.port, "/healthz"))[0] for _ in range(10)]
        assert health == [200] * 10
    finally:
        await srv.stop()


async def test_requests_beyond_the_concurrency_cap_are_refused_at_once():
    srv, routes = server(limits=Limits(max_in_flight=1))
    await srv.start()
    try:
        first = asyncio.create_task(fetch(srv.port, "/slow"))
        await eventually(lambda: routes.waiting == 1)
        status, _, headers = await fetch(srv.port, "/metrics")
        assert status == 503 and headers["Retry-After"] == "1"
        routes.release.set()
        assert (await first)[0] == 200
        assert (await fetch(srv.port, "/metrics"))[0] == 200
    finally:
        await srv.stop()


async def test_a_request_past_its_deadline_answers_504_and_big_bodies_413():
    srv, routes = server(limits=Limits(request_timeout_s=0.2, max_body_bytes=1000))
    await srv.start()
    try:
        status, _, _ = await fetch(srv.port, "/slow")
        assert status == 504 and not routes.release.is_set()
        assert (await fetch(srv.port, "/echo", method="POST", data=b"x" * 500))[:2] == (200,
                                                                                       "500")
        assert (await fetch(srv.port, "/echo", method="POST", data=b"x" * 5000))[0] == 413
    finally:
        await srv.stop()
