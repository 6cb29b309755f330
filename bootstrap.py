"""The composition root: builds every concrete object of ``main.py run`` (engine, exchange
connection, journal, market feed and worker, HTTP status server, Telegram host) and runs them
in one asyncio process. Nothing under ``core/`` builds a front-end or a job; they are made here.

Market data comes from ``--replay`` files (paper mode; paced at N x real time, or as fast as
possible with speed 0) or from Binance's market streams (TRADING_MODE paper, testnet, live; the
latter two trade through the Binance connection). State (engine mode, phase, position) and
the paper account persist under DATA_DIR, so a restart resumes where it stopped; the journal
(SQLite) records everything. SIGTERM/SIGINT stop cleanly: the feed stops, the journal is flushed.

With TELEGRAM_BOT_TOKEN set, python-telegram-bot hosts the same ``Services`` (handlers/host.py):
the bot keeps answering commands after a replay ends, until a signal. Without it the bot runs
headless and prints alerts to the console.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from decimal import Decimal

from core.alerts import ConsoleNotifier
from core.services import RunError, Services, replay_feed
from utils.log_setup import add_secret
from utils.settings import Settings

__all__ = ["RunError", "build_services", "run_bot"]

logger = logging.getLogger(__name__)


def build_services(settings: Settings, *, replay: Sequence[str] | None, speed: float) -> Services:
    """The engine, journal and market feed for ``main.py run``: recorded files with
    ``--replay`` (paper only), else Binance's market streams with the paper exchange (paper) or
    the Binance connection (testnet, live), plus the market-data worker; with HTTP_PORT set,
    the status server (/healthz, /metrics) starts and stops with the services.

    Raises:
        RunError: a mode or data source this build cannot run.
        core.replay.ReplayError: a bad data file.
        web.security.DashboardConfigError: a non-loopback HTTP_HOST without API_TOKEN.
    """
    for secret in (settings.binance_api_key, settings.binance_api_secret,
                   settings.telegram_bot_token, settings.api_token, settings.journal_url):
        if secret is not None:
            add_secret(secret)
    if replay:
        if settings.trading_mode != "paper":
            raise RunError(f"--replay runs in paper mode only (TRADING_MODE is "
                           f"{settings.trading_mode})")
        feed = replay_feed(replay, speed=speed, reorder_ms=settings.replay_reorder_ms)
        services = Services(settings, feed=feed, persist=True)
    else:
        from core.binance.adapter import SetupError
        from core.binance.live import live_connection_factory
        from jobs.market_worker import live_market

        try:
            live = live_connection_factory(settings)  # paper: market streams only, no keys
        except SetupError as exc:
            raise RunError(str(exc)) from None
        services = Services(settings, feed=live.feed, persist=True,
                            market=live_market(settings, live.market_data),
                            connection_factory=live.connection_factory)
    if settings.http_port is not None:
        from web.dashboard import status_server  # /healthz, /metrics and the dashboard

        services.attach(status_server(services))
    return services


async def run_bot(settings: Settings, *, replay: Sequence[str] | None, speed: float) -> int:
    """Run until the replay ends or a signal arrives (headless), or until a signal arrives
    (hosted by Telegram when TELEGRAM_BOT_TOKEN is set). Returns the process exit status."""
    services = build_services(settings, replay=replay, speed=speed)
    if settings.telegram_bot_token is not None:
        # The Telegram adapter hosts the engine; core itself never imports telegram.
        from handlers.host import run_hosted

        return await run_hosted(settings, services)
    return await _run_headless(settings, services)


async def _run_headless(settings: Settings, services: Services) -> int:
    engine = services.engine
    ConsoleNotifier(engine.bus)
    # Signals first: a Ctrl-C or SIGTERM during start-up also stops cleanly (no
    # KeyboardInterrupt traceback between "started" and the handlers being in place).
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, services.request_stop)
        except (NotImplementedError, RuntimeError):
            pass
    await services.start(start_feed=False)
    paper = services.paper
    wallet = f", wallet {paper.wallet} {settings.quote_asset}" if paper is not None else ""
    print(f"dort5bot {settings.trading_mode} mode, {engine.state.mode.value}, symbols "
          f"{','.join(settings.symbols)}{wallet}", flush=True)
    try:
        services.start_feed()
        count = await services.wait_feed()
    finally:
        await services.stop()
    if services.feed_task is not None and not services.feed_task.cancelled():
        exc = services.feed_task.exception()
        if exc is not None:
            raise exc
    trades = engine.ledger.trades
    net = sum((t.net_pnl for t in trades), Decimal(0))
    wallet = f", wallet {paper.wallet}" if paper is not None else ""
    print(f"feed ended: {count} events, {len(trades)} trades closed, net {net} "
          f"{settings.quote_asset}{wallet}, phase {engine.state.phase.value}", flush=True)
    return 0
