"""The market-data worker: keeps ``core.market.data.MarketData`` hot for the traded symbols and
the watchlist.

Two tasks it owns (they must run headless too, where there is no JobQueue, and the pass loop
carries its backoff state from one pass to the next):

* streams: one ``core.binance.streams.MarketStreams`` (``/market`` route, combined stream) with
  ``kline_<tf>`` for every MARKET_TIMEFRAMES, ``markPrice@1s`` and ``ticker`` of every watched
  symbol; frames go straight to ``MarketData.on_stream_frame`` (not the engine bus: TRENDING
  must not see other timeframes' candles). The stream client reconnects by itself; when the
  watchlist changes a new connection opens before the old one closes.
* passes: every MARKET_REFRESH_S, ``MarketData.refresh_due()`` loads what is missing (the
  first pass is the warm-up) or stale (open interest every TTL; klines, marks and tickers only
  when their stream is down), on the worker's REST budget. When Binance fails or throttles,
  the next pass waits longer (exponential, honouring Retry-After, up to 5 minutes); the cache
  keeps serving meanwhile.

``live_market(settings, market_data)`` is the factory ``core.services.Services(market=...)``
takes for live market data (paper without --replay, testnet, live); ``market_data`` gives the
``core.ports.MarketDataRest`` port the composition root chose (the connection's REST client and
rate limiter in testnet/live, a public client of its own in paper mode).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from core.binance.clock import Backoff
from core.binance.streams import MarketStreams
from core.events import ConnectionStatus
from core.market.data import MarketData, market_from_settings
from core.ports import MarketDataRest
from utils.aio import cancel_and_wait
from utils.settings import Settings

logger = logging.getLogger(__name__)

BACKOFF_CAP_S = 300.0
CONNECT_WAIT_S = 5.0


class MarketWorker:
    """Streams and periodic passes for one ``MarketData``.

    Args:
        market: the cache to keep hot.
        stream_url: stream base URL (the client appends ``/market/stream?streams=``).
        refresh_s: seconds between passes when all is well.
        silence_s: stream watchdog (reconnect after this long without a frame).
        rest_port: the market-data REST port the cache's fetchers came from; ``stop()`` closes
            it (which closes only a client the port owns: paper mode's).
        streams_factory: builds the stream client (tests inject options).
    """

    def __init__(self, market: MarketData, stream_url: str, *, refresh_s: float = 5.0,
                 silence_s: float = 10.0, backoff_cap_s: float = BACKOFF_CAP_S,
                 rest_port: MarketDataRest | None = None,
                 streams_factory: Callable[..., Any] = MarketStreams) -> None:
        self.market = market
        self.stream_url = stream_url
        self.refresh_s = refresh_s
        self.silence_s = silence_s
        self.backoff = Backoff(refresh_s, backoff_cap_s)
        self.rest_port = rest_port
        self._streams_factory = streams_factory
        self._tasks: list[asyncio.Task] = []
        self.streams: Any = None
        self.passes = 0
        self.failures = 0
        self.last_error = ""
        self.stream_up: dict[str, bool] = {}

    async def start(self) -> None:
        if self._tasks:
            return
        self.market.analyser.prewarm()
        self._tasks = [asyncio.create_task(self._run_passes(), name="market-data-passes"),
                       asyncio.create_task(self._run_streams(), name="market-data-streams")]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for exc in await cancel_and_wait(*tasks):
            logger.error("market-data worker task failed: %s: %s", type(exc).__name__, exc)
        if self.streams is not None:
            await self.streams.stop()
            self.streams = None
        if self.rest_port is not None:
            await self.rest_port.close()

    def health(self) -> dict[str, Any]:
        """Passes, failed passes, the last error, stream connections up/down, and the REST
        budget ``(used, cap)`` of the current minute (for /health)."""
        rest = self.market.rest
        return {"passes": self.passes, "failures": self.failures, "last_error": self.last_error,
                "streams": dict(self.stream_up),
                "budget": rest.budget.status() if rest is not None else (0, 0)}

    # ------------------------------------------------------------------ passes

    async def run_pass(self) -> float:
        """One pass; returns the seconds to wait before the next one."""
        try:
            done = await self.market.refresh_due()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            delay = getattr(exc, "retry_after_s", None) or self.backoff.next()
            logger.warning("market-data pass failed (%s); next pass in %.1fs", self.last_error,
                           delay)
            return delay
        self.passes += 1
        self.last_error = ""
        self.backoff.reset()
        if done.loaded and self.passes == 1:
            logger.info("market data warmed up: %d loads", done.loaded)
        return self.refresh_s

    async def _run_passes(self) -> None:
        while True:
            seen = self.market.version
            delay = await self.run_pass()
            await self.market.wait_change(seen, delay)

    # ------------------------------------------------------------------ streams

    def _status(self, ev: ConnectionStatus) -> None:
        self.stream_up[ev.stream] = ev.up

    async def _run_streams(self) -> None:
        while True:
            seen = self.market.version
            streams = self._streams_factory(
                self.stream_url, self.market.stream_names(), publish=None,
                on_raw=self.market.on_stream_frame, bus_status=self._status,
                silence_s=self.silence_s)
            await streams.start()
            old, self.streams = self.streams, streams
            if old is not None:  # make before break: the old one stops once the new is up
                try:
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + CONNECT_WAIT_S
                    while not streams.connected() and loop.time() < deadline:  # noqa: ASYNC110  (bounded poll)
                        await asyncio.sleep(0.05)
                finally:
                    await old.stop()
            await self.market.wait_change(seen)


def live_market(settings: Settings, market_data: Callable[[], MarketDataRest], *,
                executor_factory: Callable[[], Executor] | None = None,
                clock: Callable[[], float] | None = None,
                **worker_options: Any) -> Callable[[Settings, Any], tuple[MarketData,
                                                                           MarketWorker]]:
    """The ``Services(market=...)`` factory for live market data.

    Args:
        settings: validated settings (MARKET_* and the stream URL).
        market_data: called once the engine (and so the connection) is built; the REST port
            the worker's requests go through (``core.binance.live.LiveSetup.market_data``:
            the connection's client and limiter in testnet/live, its own in paper mode).
        executor_factory, clock: passed to ``market_from_settings``.
        worker_options: passed to ``MarketWorker``.
    """
    def build(settings: Settings, engine: Any) -> tuple[MarketData, MarketWorker]:
        port = market_data()
        kw: dict[str, Any] = {"executor_factory": executor_factory}
        if clock is not None:
            kw["clock"] = clock
        rest = port.market_rest(settings.market_worker_budget_fraction)
        market = market_from_settings(settings, rest=rest, **kw)
        options = {"refresh_s": settings.market_refresh_s,
                   "silence_s": settings.binance_stream_silence_s, **worker_options}
        worker = MarketWorker(market, settings.binance_url("stream"), rest_port=port, **options)
        return market, worker

    return build
