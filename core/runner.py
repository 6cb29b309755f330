"""``main.py run``: the engine hosted in one asyncio process, paper mode.

Market data comes from ``--replay`` files (paced at N x real time, or as fast as possible with
speed 0) or, in a later build, from Binance's streams. State (engine mode, phase, position) and
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

from core.alerts import ConsoleNotifier
from core.services import RunError, Services, feed_replay, replay_feed
from utils.log_setup import add_secret
from utils.settings import Settings

__all__ = ["RunError", "feed_replay", "run_bot"]

logger = logging.getLogger(__name__)


def build_services(settings: Settings, *, replay: Sequence[str] | None, speed: float) -> Services:
    """The engine, journal and replay feed for ``main.py run``.

    Raises:
        RunError: a mode or data source this build cannot run.
        core.replay.ReplayError: a bad data file.
    """
    for secret in (settings.binance_api_key, settings.binance_api_secret,
                   settings.telegram_bot_token):
        if secret is not None:
            add_secret(secret)
    if settings.trading_mode != "paper":
        raise RunError(f"TRADING_MODE={settings.trading_mode} needs the Binance connection, "
                       "which this build does not have yet; use TRADING_MODE=paper")
    if not replay:
        raise RunError("live market data needs the Binance connection (not in this build yet); "
                       "pass --replay DATA to paper-trade on recorded data")
    feed = replay_feed(replay, speed=speed, reorder_ms=settings.replay_reorder_ms)
    return Services(settings, feed=feed, persist=True)


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
    await services.start(start_feed=False)
    paper = services.paper
    assert paper is not None
    print(f"dort5bot paper mode, {engine.state.mode.value}, symbols {','.join(settings.symbols)}, "
          f"wallet {paper.wallet} {settings.quote_asset}", flush=True)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, services.request_stop)
        except (NotImplementedError, RuntimeError):
            pass
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
    net = sum((t.net_pnl for t in trades), paper.wallet * 0)
    print(f"replay done: {count} events, {len(trades)} trades closed, net {net} "
          f"{settings.quote_asset}, wallet {paper.wallet}, phase {engine.state.phase.value}",
          flush=True)
    return 0
