"""Health and metrics over HTTP, for the container platform (Render) and Prometheus.

``GET /healthz`` answers 200 with a JSON body while the process is healthy and 503 when it is
not (the platform restarts it); ``GET /metrics`` answers Prometheus text (prometheus-client's
exposition format). Both read a snapshot from callables given by the owner, so this module
knows nothing about trading. Nothing secret is ever in a snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from core.ports import Metric
from web.guards import Limits, guard_middleware, metrics_allowed

__all__ = ["HealthFn", "Metric", "MetricsFn", "StatusServer"]

logger = logging.getLogger(__name__)


HealthFn = Callable[[], tuple[bool, dict[str, Any]]]
MetricsFn = Callable[[], Iterable[Metric]]


class HttpExtension(Protocol):
    """More routes on the same server (the dashboard): middlewares, routes, lifecycle."""

    @property
    def middlewares(self) -> list[Any]: ...

    def install(self, app: web.Application) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class _Collector:
    def __init__(self, metrics: MetricsFn) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:  # collector protocol
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for m in self._metrics():
            fam = families.get(m.name)
            if fam is None:
                cls = CounterMetricFamily if m.kind == "counter" else GaugeMetricFamily
                fam = families[m.name] = cls(m.name, m.help, labels=sorted(m.labels))
            fam.add_metric([m.labels[k] for k in sorted(m.labels)], m.value)
        yield from families.values()


class StatusServer:
    """An aiohttp server on ``host:port`` (port 0 picks a free one; see ``port`` after start).

    Args:
        health: returns (healthy, details) for /healthz.
        metrics: returns the samples for /metrics.
        extensions: more routes served beside them (the dashboard).
        limits: connection, rate and time limits (``web.guards.Limits``).
        metrics_token: the bearer token /metrics requires when ``host`` is not loopback
            (API_TOKEN); None there means /metrics answers 403.
    """

    def __init__(self, health: HealthFn, metrics: MetricsFn, *, host: str = "127.0.0.1",
                 port: int = 8080, extensions: Sequence[HttpExtension] = (),
                 limits: Limits | None = None, metrics_token: str | None = None) -> None:
        self._health, self.host, self.port = health, host, port
        self.extensions = tuple(extensions)
        self.limits = limits or Limits()
        self._metrics_token = metrics_token or None
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(metrics))
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve. Raises OSError when the port cannot be bound."""
        app = web.Application(
            middlewares=[guard_middleware(self.limits),
                         *(m for ext in self.extensions for m in ext.middlewares)],
            client_max_size=self.limits.max_body_bytes)
        app.router.add_get("/healthz", self._on_health)
        app.router.add_get("/metrics", self._on_metrics)
        for ext in self.extensions:
            ext.install(app)
            await ext.start()
        self._runner = web.AppRunner(app, access_log=None,
                                     keepalive_timeout=self.limits.keepalive_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # the bound port (port=0)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("status server on http://%s:%d (/healthz, /metrics)", self.host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        for ext in self.extensions:
            await ext.stop()
        if runner is not None:
            await runner.cleanup()

    async def _on_health(self, _request: web.Request) -> web.Response:
        try:
            healthy, details = self._health()
        except Exception as exc:  # a broken snapshot is itself unhealthy
            logger.exception("health snapshot failed")
            healthy, details = False, {"error": type(exc).__name__}
        body = orjson.dumps({"status": "ok" if healthy else "unhealthy", **details},
                            default=str)
        return web.Response(body=body, status=200 if healthy else 503,
                            content_type="application/json")

    async def _on_metrics(self, request: web.Request) -> web.Response:
        from web.security import is_loopback, offered_token, token_matches

        refused = metrics_allowed(request, exposed=not is_loopback(self.host),
                                  token=self._metrics_token, matches=token_matches,
                                  offered=offered_token)
        if refused is not None:
            return refused
        try:
            text = generate_latest(self._registry)
        except Exception:
            logger.exception("metrics snapshot failed")
            return web.Response(status=500, text="metrics unavailable\n")
        return web.Response(body=text, headers={"Content-Type": "text/plain; version=0.0.4"})
