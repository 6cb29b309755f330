"""``main.py run``: the engine hosted in one asyncio process, paper mode.

Market data comes from ``--replay`` files (paced at N x real time, or as fast as possible with
speed 0) or, in a later build, from Binance's streams. State (engine mode, phase, position) and
the paper account persist under DATA_DIR, so a restart resumes where it stopped; the journal
(SQLite) records everything. SIGTERM/SIGINT stop cleanly: the feed stops, the journal is flushed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from core.alerts import ConsoleNotifier
from core.bar_ticks import with_bar_ticks
from core.engine import Engine, build_engine
from core.events import BalanceUpdate, PositionUpdate
from core.journal import Journal
from core.paper import PaperExchange
from core.replay import ReplaySource
from utils.log_setup import add_secret
from utils.settings import Settings

logger = logging.getLogger(__name__)

YIELD_EVERY = 2_000  # events between yields to the loop at full speed


class RunError(ValueError):
    """The bot cannot start as configured; one-line message."""


def _account_path(settings: Settings) -> Path:
    return settings.data_dir / "paper_account.json"


def _restore_paper(engine: Engine, settings: Settings) -> None:
    paper = engine.connection
    assert isinstance(paper, PaperExchange)
    path = _account_path(settings)
    if path.exists():
        try:
            paper.restore(json.loads(path.read_text("utf-8")))
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise RunError(f"paper account file {path} is unreadable ({type(exc).__name__}); "
                           "move it away to start a fresh account") from None
        logger.info("paper account restored from %s: wallet %s", path, paper.wallet)

    def save(_ev: object) -> None:
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(paper.snapshot()), "utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            logger.error("could not save the paper account to %s: %s", path, exc)

    engine.bus.subscribe(BalanceUpdate, save)
    engine.bus.subscribe(PositionUpdate, save)


async def feed_replay(engine: Engine, source: ReplaySource, speed: float,
                      stop: asyncio.Event) -> int:
    """Publish the source's events, paced at ``speed`` x exchange time (0 = no pacing)."""
    publish = engine.bus.publish
    count = 0
    t0 = time.monotonic()
    first_ts: int | None = None
    for ev in with_bar_ticks(source):
        if stop.is_set():
            break
        if first_ts is None:
            first_ts = ev.ts_ms
        if speed > 0:
            due = t0 + (ev.ts_ms - first_ts) / 1000 / speed
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
        publish(ev)
        count += 1
        if not count % YIELD_EVERY:
            await asyncio.sleep(0)
    return count


async def run_bot(settings: Settings, *, replay: Sequence[str] | None, speed: float) -> int:
    """Run until the replay ends or a signal arrives. Returns the process exit status."""
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
    source = ReplaySource(replay, reorder_ms=settings.replay_reorder_ms)
    engine = build_engine(settings, persist=True)
    _restore_paper(engine, settings)
    ConsoleNotifier(engine.bus)
    journal = Journal(engine.bus, settings.db_path)
    await journal.start()
    paper = engine.connection
    assert isinstance(paper, PaperExchange)
    paper.publish_balance(0, "SNAPSHOT")
    paper.publish_positions(0)
    print(f"dort5bot paper mode, {engine.state.mode.value}, symbols {','.join(settings.symbols)}, "
          f"wallet {paper.wallet} {settings.quote_asset}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        count = await feed_replay(engine, source, speed, stop)
    finally:
        await journal.stop()
    trades = engine.ledger.trades
    net = sum((t.net_pnl for t in trades), paper.wallet * 0)
    print(f"replay done: {count} events, {len(trades)} trades closed, net {net} "
          f"{settings.quote_asset}, wallet {paper.wallet}, phase {engine.state.phase.value}",
          flush=True)
    return 0
