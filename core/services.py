"""Services: the engine plus what keeps it running, behind one start()/stop() pair.

Transport-neutral: the composition root (bootstrap.py) builds one ``Services``; the headless
runner there and the Telegram host (handlers/host.py) call ``start()`` / ``stop()``; neither
knows how the other presents it. Owned here:

* the engine (``build_engine``: store of record, startup recovery, paper account),
* the journal (SQLite, or PostgreSQL with JOURNAL_URL), started and flushed,
* the market feed: an owned task (today the replay feed; the Binance streams later), endless
  from the host's point of view and cancelled by ``stop()``,
* small read models the front-ends show: the last ``PositionUpdate`` per symbol (liquidation
  price) and the last ``ConnectionStatus`` per stream,
* the market-data cache behind /ta (``core/market/data.py``): fed by the engine's bus by
  default (a replay), or by a live worker built by the ``market`` factory
  (``jobs.market_worker.live_market``), started after the journal and stopped first,
* attached components (``attach``; e.g. the HTTP status server), started after the journal in
  order and stopped before it in reverse order.

``stop()`` leaves orders and protective stops on the exchange untouched: a restart adopts the
position from the exchange (ORDERING reconciles) instead of leaving it naked for a moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from core.engine import Engine, build_engine
from core.event_bus import EventBus
from core.events import (
    Candle,
    ConnectionStatus,
    EngineError,
    EquitySnapshot,
    PositionPhase,
    PositionUpdate,
    TradeClosed,
)
from core.filters import round_price
from core.journal import Journal, JournalError
from core.market.data import MarketData, market_from_settings
from core.paper import PaperExchange
from core.ports import Component, LiveConnection, Metric
from core.replay.feed import feed_replay, read_cursor, replay_feed  # noqa: F401  (re-exported)
from utils.settings import Settings

logger = logging.getLogger(__name__)

FEED_STOP_TIMEOUT_S = 5.0
STORM_WINDOW_MS = 600_000  # connection drops counted over the last 10 minutes

#: ``feed(engine, stop) -> events published``; returns when the data ends or ``stop`` is set.
FeedFn = Callable[[Engine, asyncio.Event], Awaitable[int]]
#: ``(settings, engine) -> (market data, its worker)``; the worker has ``start()``/``stop()``.
MarketFactory = Callable[[Settings, Engine], tuple[MarketData, Any]]

EQUITY_EVERY_MS = 60_000  # exchange time between journaled equity snapshots


class RunError(ValueError):
    """The bot cannot start as configured; one-line message."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Services:
    """Engine, journal and feed task of one bot process.

    Args:
        settings: validated settings.
        feed: the market-data coroutine factory; ``replay_feed(paths, speed)`` for recorded
            data. None: no market data (commands still work; nothing trades).
        persist: keep engine state and the paper account under DATA_DIR.
        connection_factory: the exchange connection (testnet/live,
            ``core.binance.live.live_connection_factory``), which is also the exchange account
            (server time, account reads) of ``now_ms`` and ``refresh_balance``; None = the
            paper exchange.
        market: builds the market-data cache and its worker (live market data); None: the
            cache takes the engine bus's candles and mark prices (replay), no worker.

    Raises:
        RunError: a mode this build cannot run, or an unreadable paper account file.
        core.persisted.PersistError: an invalid store of record (replay cursor included),
            ``strategy.json`` or ``watchlist.json`` (names file and field).
    """

    def __init__(self, settings: Settings, *, feed: FeedFn | None, persist: bool = True,
                 market: MarketFactory | None = None,
                 connection_factory: Callable[[EventBus], LiveConnection] | None = None
                 ) -> None:
        self.settings = settings
        self._live: LiveConnection | None = None  # the exchange account (testnet/live)
        build = None
        if connection_factory is not None:
            make_live = connection_factory

            def build(bus: EventBus) -> LiveConnection:
                self._live = make_live(bus)
                return self._live

        self.engine = build_engine(settings, persist=persist, connection_factory=build)
        self._last_equity: EquitySnapshot | None = None
        self._feed = feed
        url = settings.journal_url
        self.journal = Journal(self.engine.bus, settings.db_path, account=settings.account,
                               url=url.get_secret_value().strip() if url else "",
                               store=self.engine.store)
        self.feed_task: asyncio.Task[int] | None = None
        self.feed_done = asyncio.Event()
        self.events_fed = 0
        self.feed_error = ""
        self._stop_feed = asyncio.Event()
        self._started = False
        self.positions: dict[str, PositionUpdate] = {}
        self.connections: dict[str, ConnectionStatus] = {}
        self._drops: deque[int] = deque(maxlen=256)
        bus = self.engine.bus
        bus.subscribe(PositionUpdate, self._on_position)
        bus.subscribe(ConnectionStatus, self._on_connection)
        self.market_worker: Any = None
        try:  # the replay cursor and the watchlist file are validated here
            read_cursor(self.engine.store)
            if market is None:
                self.market = market_from_settings(settings, bus=bus)
            else:
                self.market, self.market_worker = market(settings, self.engine)
        except BaseException:
            if self.engine.store is not None:  # the bot does not start: nothing is committed
                self.engine.store.abandon()
            raise
        choice = self.engine.strategy  # a persisted /strategy set may differ from STRATEGY
        self.market.set_strategy(choice.name, choice.params)
        self._next_equity_ms = 0
        self._background: set[asyncio.Task] = set()
        self.components: list[Component] = []
        self._running: list[Component] = []
        bus.subscribe(Candle, self._on_candle)
        bus.subscribe(EquitySnapshot, self._on_equity)
        bus.subscribe(TradeClosed, self._on_trade_closed)

    # ------------------------------------------------------------------ lifecycle

    def attach(self, component: Component) -> None:
        """Own ``component``: started by ``start()`` after the journal, stopped by ``stop()``
        before it (reverse order of attachment)."""
        self.components.append(component)

    @property
    def has_feed(self) -> bool:
        return self._feed is not None

    @property
    def paper(self) -> PaperExchange | None:
        """The paper exchange (paper mode, replay), else None."""
        return self.engine.paper

    async def start(self, *, start_feed: bool = True) -> None:
        """Open the journal, publish the account snapshot, start the feed task.

        Raises:
            core.journal.JournalError: the journal cannot be opened.
            core.persisted.PersistError: a journal row RISK restores its history from is
                invalid (journal and store are closed untouched).
        """
        if self._started:
            return
        await self.journal.start()
        self._started = True
        try:
            await self._restore_risk()
        except BaseException:  # the bot does not start: journal and store stay as found
            self._started = False
            await self.journal.abandon()
            await self.market.stop()
            if self.engine.store is not None:
                self.engine.store.abandon()
            raise
        for note in self.engine.recovery_notes:  # corrections made at startup: tell the trader
            self.engine.bus.publish(EngineError(source="recovery", message=note,
                                                ts_ms=self.now_ms()))
        for component in self.components:
            await component.start()
            self._running.append(component)
        paper = self.paper
        if paper is not None:
            paper.publish_balance(0, "SNAPSHOT")
            paper.publish_positions(0)
        if self.market_worker is not None:
            await self.market_worker.start()
        if start_feed:
            self.start_feed()

    async def _restore_risk(self) -> None:
        """Top RISK's book up from the journal (trades, entries, equity peak it lacks).

        Raises:
            core.persisted.PersistError: a journal row read is invalid: the start stops (a loss
                limit must not forget today's losses), the journal is left as it is.
        """
        book = self.engine.risk.book
        try:
            trades = await self.journal.trades(since_ms=book.last_trade_ms + 1, limit=1000)
            entries = await self.journal.entry_times(book.last_entry_ms + 1)
            peak = await self.journal.peak_equity(book.peak_since_ms)
            day = book.day_start_ms or (trades[-1].exit_ts_ms // 86_400_000 * 86_400_000
                                        if trades else 0)
            day_equity = await self.journal.equity_curve(day) if day else []
        except JournalError as exc:
            logger.error("risk history not restored from the journal: %s", exc)
            return
        self.engine.risk.restore(trades, entries, peak, day_equity)

    def start_feed(self) -> None:
        """Start the market feed task (once)."""
        if self.feed_task is not None:
            return
        if self._feed is None:
            self.feed_done.set()
            return
        self.feed_task = asyncio.create_task(self._run_feed(self._feed), name="market-feed")

    async def _run_feed(self, feed: FeedFn) -> int:
        try:
            self.events_fed = await feed(self.engine, self._stop_feed)
            logger.info("market feed ended after %d events", self.events_fed)
            return self.events_fed
        except Exception as exc:
            self.feed_error = f"{type(exc).__name__}: {exc}"
            logger.exception("market feed failed")
            raise
        finally:
            self.feed_done.set()

    def request_stop(self) -> None:
        """Ask the feed to end (signal-handler safe; ``stop()`` does the rest)."""
        self._stop_feed.set()

    async def wait_feed(self) -> int:
        """Wait for the feed to end; the number of events it published."""
        await self.feed_done.wait()
        return self.events_fed

    async def stop(self) -> None:
        """Stop the feed (bounded wait, then cancel) and flush and close the journal.

        Open orders and exchange-side stops are left as they are, on purpose.
        """
        if self.market_worker is not None:
            await self.market_worker.stop()
        self._stop_feed.set()
        task = self.feed_task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=FEED_STOP_TIMEOUT_S)
            if not done:
                task.cancel()
                await asyncio.wait({task})
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # retrieved (logged by _run_feed): no "never retrieved" warning
        while self._running:
            await self._running.pop().stop()
        if self._started:
            await self.journal.stop()
            self._started = False
        await self.market.stop()
        if self.engine.store is not None:
            self.engine.store.close()

    # ------------------------------------------------------------------ views

    def now_ms(self) -> int:
        """Exchange time of the latest market event (replay time in a replay), else the wall
        clock. /pnl periods and equity snapshots use it, so a replay reads like live."""
        paper = self.paper
        if paper is not None and paper.now_ms:
            return paper.now_ms
        if self._live is not None:
            return self._live.clock.now_ms()
        return _now_ms()

    def refresh_balance(self) -> None:
        """Publish the account's balance (BalanceUpdate SNAPSHOT) and an EquitySnapshot."""
        paper = self.paper
        if paper is None:
            if self._live is not None:  # live: read the account over the WS API, off the bus
                task = asyncio.get_running_loop().create_task(self._live.refresh_account(),
                                                              name="refresh-account")
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return
        ts = self.now_ms()
        paper.publish_balance(ts, "SNAPSHOT")
        self.engine.bus.publish(paper.equity_snapshot(ts))

    def _on_candle(self, c: Candle) -> None:
        """Journal an EquitySnapshot once per minute of exchange time (also headless and in a
        replay, where exchange time runs faster than the wall clock)."""
        if c.closed and c.ts_ms >= self._next_equity_ms and self.paper is not None:
            self._next_equity_ms = (c.ts_ms // EQUITY_EVERY_MS + 1) * EQUITY_EVERY_MS
            self.engine.bus.publish(self.paper.equity_snapshot(c.ts_ms))

    def _on_trade_closed(self, ev: TradeClosed) -> None:
        """Record equity the moment a trade closes (not only once a minute), so /pnl and the
        equity curve include the trade just closed."""
        paper = self.paper
        if paper is not None:
            self.engine.bus.publish(paper.equity_snapshot(ev.trade.exit_ts_ms))
        else:
            self.refresh_balance()

    def account(self) -> EquitySnapshot | None:
        """Wallet balance, unrealized PnL and equity (USDT) of the account: computed now by
        the paper exchange, else the last snapshot the exchange account gave (live: each
        ACCOUNT_UPDATE and account refresh; None before the first)."""
        paper = self.paper
        if paper is not None:
            return paper.equity_snapshot(self.now_ms())
        return self._last_equity

    def equity(self) -> Decimal | None:
        """Wallet + unrealized PnL, USDT (see ``account``); None before the first snapshot."""
        snap = self.account()
        return snap.equity if snap is not None else None

    def _on_equity(self, ev: EquitySnapshot) -> None:
        self._last_equity = ev

    def liquidation_price(self, symbol: str) -> Decimal | None:
        """The exchange's liquidation price of the open position on ``symbol``, rounded to the
        tick size (nearest); None when flat or unknown."""
        up = self.positions.get(symbol)
        if up is None or up.quantity == 0 or up.liquidation_price <= 0:
            return None
        try:
            return round_price(up.liquidation_price, self.engine.connection.filters(symbol))
        except KeyError:
            return up.liquidation_price

    def health(self) -> dict[str, Any]:
        """Connection and persistence health for /health and /status (plain values)."""
        now = self.now_ms()
        drops = sum(1 for t in self._drops if now - t <= STORM_WINDOW_MS)
        if self._feed is None:
            feed = "none"
        elif self.feed_error:
            feed = "failed"
        elif self.feed_done.is_set():
            feed = "finished"
        elif self.feed_task is None:
            feed = "not started"
        else:
            feed = "running"
        paper = self.paper
        store, sanity = self.engine.store, self.engine.sanity
        return {
            "feed": feed,
            "feed_error": self.feed_error,
            "events_fed": self.events_fed,
            "last_event_ms": paper.now_ms if paper is not None else self.now_ms(),
            "journal_pending": self.journal.pending_count,
            "journal_write_errors": self.journal.write_errors,
            "bus_errors": self.engine.bus.errors,
            "streams": {name: (st.up, st.detail) for name, st in self.connections.items()},
            "drops_10m": drops,
            "store_failing": store.failing if store is not None else False,
            "store_write_errors": store.write_errors if store is not None else 0,
            "store_error": store.last_error if store is not None and store.failing else "",
            "inputs_rejected": sanity.total if sanity is not None else 0,
            "inputs_rejected_by_reason": dict(sanity.counts) if sanity is not None else {},
        }

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details) for GET /healthz: unhealthy when the market feed failed (a
        restart may help) or the store of record cannot save (disk full, too many open files:
        new entries are refused meanwhile); a HALTED engine is reported, not restarted (it
        waits for a human, and would resume HALTED anyway)."""
        h = self.health()
        st = self.engine.state
        details = {
            "trading_mode": self.settings.trading_mode, "mode": st.mode.value,
            "phase": st.phase.value, "symbol": st.symbol, "feed": h["feed"],
            "halt_reason": st.halt_reason,
            "last_event_age_s": max(0.0, (_now_ms() - h["last_event_ms"]) / 1000)
            if h["last_event_ms"] else None,
            "streams_down": sorted(k for k, (up, _) in h["streams"].items() if not up),
            "journal_pending": h["journal_pending"],
            "store_failing": h["store_failing"], "store_error": h["store_error"],
            "inputs_rejected": h["inputs_rejected"],
        }
        return h["feed"] != "failed" and not h["store_failing"], details

    def metrics(self) -> list[Metric]:
        """Samples for GET /metrics (Prometheus): engine state, money, plumbing."""
        h = self.health()
        st = self.engine.state
        trades = self.engine.ledger.trades
        out = [
            Metric("dort5bot_engine_mode", "1 for the engine's current mode", 1,
                   labels={"mode": st.mode.value}),
            Metric("dort5bot_position_open", "1 while a position is open or being entered",
                   0 if st.phase is PositionPhase.FLAT else 1),
            Metric("dort5bot_trades_closed_total", "round trips closed by this process",
                   len(trades), "counter"),
            Metric("dort5bot_realized_net_pnl_usdt", "sum of net PnL of those trades",
                   float(sum((t.net_pnl for t in trades), Decimal(0)))),
            Metric("dort5bot_bus_errors_total", "failed bus subscribers", h["bus_errors"],
                   "counter"),
            Metric("dort5bot_journal_pending", "journal rows not yet written",
                   h["journal_pending"]),
            Metric("dort5bot_journal_write_errors_total", "failed journal writes",
                   h["journal_write_errors"], "counter"),
            Metric("dort5bot_connection_drops_10m", "connection drops in the last 10 minutes",
                   h["drops_10m"]),
        ]
        equity = self.equity()
        if equity is not None:
            out.append(Metric("dort5bot_equity_usdt", "wallet plus unrealized PnL",
                              float(equity)))
        if h["last_event_ms"]:
            out.append(Metric("dort5bot_last_event_age_seconds",
                              "wall time since the latest market event's exchange time",
                              max(0.0, (_now_ms() - h["last_event_ms"]) / 1000)))
        out.append(Metric("dort5bot_halted", "1 while the engine is HALTED (kill switch)",
                          1 if st.halt_reason or st.mode.value == "HALTED" else 0))
        for limit, count in sorted(self.engine.risk.refusals.items()):
            out.append(Metric("dort5bot_risk_refusals_total", "signals RISK refused, by limit",
                              count, "counter", labels={"limit": limit}))
        out.append(Metric("dort5bot_store_failing", "1 while the store of record cannot save",
                          1 if h["store_failing"] else 0))
        out.append(Metric("dort5bot_store_write_errors_total", "failed store commits",
                          h["store_write_errors"], "counter"))
        for reason, count in sorted(h["inputs_rejected_by_reason"].items()):
            out.append(Metric("dort5bot_inputs_rejected_total",
                              "exchange/market input rejected by the edge sanity checks",
                              count, "counter", labels={"reason": reason}))
        for name, (up, _detail) in h["streams"].items():
            out.append(Metric("dort5bot_stream_up", "1 while the stream is connected",
                              1 if up else 0, labels={"stream": name}))
        return out

    # ------------------------------------------------------------------ bus handlers

    def _on_position(self, up: PositionUpdate) -> None:
        self.positions[up.symbol] = up

    def _on_connection(self, ev: ConnectionStatus) -> None:
        self.connections[ev.stream] = ev
        if not ev.up:
            self._drops.append(ev.ts_ms)
