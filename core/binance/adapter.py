"""``BinanceConnection``: the live Binance USDⓈ-M adapter behind the ``Connection`` port.

It publishes what the paper exchange publishes, the way Binance delivers it: ``OrderUpdate``
from ORDER_TRADE_UPDATE (the only source of fills; order replies no longer carry avgPrice),
``BalanceUpdate`` / ``PositionUpdate`` from ACCOUNT_UPDATE, plus the adapter's own events
(core/events.py: ProtectiveOrderUpdate, PositionAdopted, MarginCall, AccountConfigChanged,
RateLimitBackoff, ConnectionStatus). The parts, one module each:

* ``submit_order`` / ``cancel_order`` return at once; core/binance/order_flow.py sends them
  over the WS API with ORDERING's client order id and resolves UNKNOWN outcomes by
  ``order.status``, never by resending;
* core/binance/user_stream.py + user_events.py: listenKey, ``/private`` connection, events;
* core/binance/protective.py: the SL/TP algo orders of the position;
* core/binance/reconcile.py: positions, orders and stops read back before trading, at startup
  and after every user-stream reconnect;
* core/binance/rest.py, ws_api.py, rate_limit.py: transports and the shared rate-limit pools.

Trading gate: until reconciliation has succeeded after the latest user-stream connect, while
the WS API or the user stream is down, and while an order's outcome is UNKNOWN, ``filters()``
reports the symbol's status as ``RECONCILING`` / ``DISCONNECTED`` / ``UNSETTLED``, so ORDERING
refuses signals ("... is not trading"). Closing orders are never gated. Every change is
published as ``ConnectionStatus(stream="trading")``. Reconciliation also runs every
``reconcile_interval_s`` and at once after a protective-order error
(core/binance/reconcile_loop.py).

Setup (``start``, core/binance/setup.py): clock sync, exchangeInfo (filters, rate limits), the
one-way position mode check (hedge mode is refused with a clear message), the leverage brackets,
leverage and margin type per symbol, then the WS API and the user stream; the first
reconciliation follows the user stream's connect. exchangeInfo is refreshed periodically and
after a filter refusal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.binance.adopt import AdoptPolicy
from core.binance.clock import Backoff, ServerClock
from core.binance.errors import ExchangeError, Fatal, RetryLater, UnknownOutcome, scrub
from core.binance.order_flow import OrderSender
from core.binance.orders import OrderTracker, Tracked
from core.binance.protective import ProtectiveOrders
from core.binance.rate_limit import RateLimiter
from core.binance.reconcile import Reconciler
from core.binance.reconcile_loop import RECONCILE_INTERVAL_S, ReconcileLoop
from core.binance.rest import RestClient
from core.binance.setup import EXCHANGE_INFO_REFRESH_S, SetupError, SymbolRules
from core.binance.signing import SecretLike, Signer
from core.binance.user_events import UserEventRouter
from core.binance.user_stream import KEEPALIVE_S, UserStream
from core.binance.wire import Fields
from core.binance.ws_api import PONG_TIMEOUT_S, ROTATE_S, USER_STREAM, WsApiClient
from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    ConnectionStatus,
    EngineError,
    EquitySnapshot,
    MarketTick,
    MarkPrice,
    OrderRequest,
    OrderSide,
    OrderType,
)
from core.filters import SymbolFilters, filters_for
from utils.aio import cancel_and_wait

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BinanceConfig:
    """Everything the adapter needs; ``binance_config`` in core/binance/live.py builds it."""

    name: str  # "testnet" | "live"
    rest_url: str
    ws_api_url: str
    stream_url: str
    api_key: SecretLike | str
    signer: Signer
    symbols: tuple[str, ...]
    leverage: int
    margin_type: str | None = None
    working_type: str = "MARK_PRICE"
    recv_window_ms: int = 5000
    rate_limit_fraction: float = 0.8
    asset: str = "USDT"
    request_timeout_s: float = 5.0
    keepalive_s: float = KEEPALIVE_S
    ping_interval_s: float | None = 60.0
    pong_timeout_s: float | None = PONG_TIMEOUT_S  # our pings' pong deadline (Binance: 10 min)
    stream_paths: str = "routed"  # routed | unrouted | auto (routed, falling back to unrouted)
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    rotate_s: float = ROTATE_S
    exit_retry_s: float = 30.0
    rate_wait_s: float = 2.0
    #: our orders of the previous run whose final state was not seen:
    #: (symbol, client order id, side BUY|SELL, quantity, reduce-only[, sent ms])
    resume_orders: tuple[tuple[Any, ...], ...] = ()
    #: SL/TP of the previous run's position: {symbol: (stop loss, take profit)}
    resume_levels: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    #: stops of adopted positions whose levels are unknown (core/binance/adopt.py)
    adopt_policy: AdoptPolicy = field(default_factory=AdoptPolicy)
    #: a stop that ends unfilled while its position is open: "replace" it or "close" at market
    stop_failure_action: str = "replace"
    reconcile_interval_s: float = RECONCILE_INTERVAL_S
    #: how long an UNKNOWN order outcome stays pending before "not found" means never placed
    unknown_timeout_s: float = 600.0
    exchange_info_refresh_s: float = EXCHANGE_INFO_REFRESH_S


class BinanceConnection:
    """CONNECTION for TRADING_MODE=testnet|live. Build it on the engine's bus, then
    ``await start()``; ``await stop()`` leaves orders and stops on the exchange as they are."""

    def __init__(self, bus: EventBus, config: BinanceConfig) -> None:
        self.name = config.name
        self.config = config
        self._bus = bus
        c = config
        self.clock = ServerClock()
        self.limiter = RateLimiter(self.clock, fraction=c.rate_limit_fraction,
                                   max_wait_s=c.rate_wait_s, on_backoff=bus.publish)
        self.rest = RestClient(c.rest_url, api_key=c.api_key, signer=c.signer, clock=self.clock,
                               limiter=self.limiter, recv_window_ms=c.recv_window_ms,
                               timeout_s=max(c.request_timeout_s, 5.0))
        self.api = WsApiClient(
            c.ws_api_url, api_key=c.api_key, signer=c.signer, clock=self.clock,
            limiter=self.limiter, resync=self.rest.sync_time,
            on_status=lambda up, d: self._link_status("ws-api", up, d),
            recv_window_ms=c.recv_window_ms, timeout_s=c.request_timeout_s,
            connect_wait_s=c.request_timeout_s, ping_interval_s=c.ping_interval_s,
            pong_timeout_s=c.pong_timeout_s,
            backoff=self._backoff(), rotate_s=c.rotate_s)
        self.tracker = OrderTracker()
        self._tasks: set[asyncio.Task] = set()
        self._in_flight: set[str] = set()
        self.rules = SymbolRules(self.rest, self.limiter, symbols=c.symbols,
                                 leverage=c.leverage, margin_type=c.margin_type,
                                 spawn=self._spawn, refresh_s=c.exchange_info_refresh_s)
        self.protective = ProtectiveOrders(
            bus, call=self.api.call, query_algo=self.rest.algo_order, tracker=self.tracker,
            filters=self.filters_raw, working_type=c.working_type, spawn=self._spawn,
            now_ms=self.clock.now_ms, retry_s=c.backoff_base_s,
            position_qty=self._position_qty, on_failure=c.stop_failure_action)
        self.protective.levels.update(c.resume_levels)
        self.events = UserEventRouter(bus, tracker=self.tracker, protective=self.protective,
                                      on_expired=self._on_listen_key_expired,
                                      symbols=c.symbols)
        self.user = UserStream(
            c.stream_url, new_key=self._new_listen_key, keepalive=self._keepalive,
            on_message=self.events, on_connected=self._on_user_connected,
            on_status=lambda up, d: self._link_status("user", up, d),
            keepalive_s=c.keepalive_s, ping_interval_s=c.ping_interval_s,
            ping_timeout_s=c.pong_timeout_s, backoff=self._backoff(), rotate_s=c.rotate_s,
            paths=c.stream_paths)
        self.reconciler = Reconciler(
            bus, call=self.api.call, rest=self.rest, tracker=self.tracker,
            protective=self.protective, symbols=c.symbols,
            position_seq=self.events.position_seq, balance_seq=self.events.balance_seq,
            in_flight=self._in_flight, now_ms=self.clock.now_ms, asset=c.asset,
            liquidation=self.events.liquidation,
            adopt_policy=c.adopt_policy, klines=self.rest.klines,
            unknown_timeout_s=c.unknown_timeout_s)
        self.reconcile = ReconcileLoop(self.reconciler, spawn=self._spawn,
                                       backoff=self._backoff, on_done=self._reconciled,
                                       interval_s=c.reconcile_interval_s)
        self.protective.request_reconcile = self.reconcile.request
        self.orders = OrderSender(
            bus, call=self.api.call, tracker=self.tracker, reconciler=self.reconciler,
            clock=self.clock, spawn=self._spawn, in_flight=self._in_flight,
            exit_retry_s=c.exit_retry_s, rate_wait_s=c.rate_wait_s, backoff=self._backoff,
            max_notional=self.rules.max_notional, reference_price=self.reference_price,
            on_filter_error=self.rules.request_refresh)
        self._started = False
        self._periodic: list[asyncio.Task] = []
        self.reconciled = False
        self._gate = "DISCONNECTED"
        self._marks: dict[str, float] = {}
        self._lasts: dict[str, float] = {}
        bus.subscribe(MarkPrice, self._on_mark)
        bus.subscribe(MarketTick, self._on_tick)
        for symbol, cid, side, qty, reduce_only, *sent in c.resume_orders:
            self.tracker.orders[cid] = Tracked(symbol, cid, OrderSide(side), OrderType.MARKET,
                                               qty, reduce_only,
                                               sent_ms=int(sent[0]) if sent and sent[0]
                                               else self.clock.now_ms())

    def _backoff(self) -> Backoff:
        return Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)

    @property
    def trade_lites(self) -> int:
        return self.events.trade_lites

    @property
    def busy(self) -> bool:
        """Owned tasks (order placement, stops, reconciliation) are running."""
        return bool(self._tasks)

    # ------------------------------------------------------------------ Connection port

    def filters_raw(self, symbol: str) -> SymbolFilters:
        """The symbol's exchangeInfo filters, whatever the trading gate says."""
        filters = self.rules.filters
        return filters[symbol] if symbol in filters else filters_for(symbol, {})

    def filters(self, symbol: str) -> SymbolFilters:
        """Trading rules of ``symbol``; ``status`` is RECONCILING or DISCONNECTED while the
        adapter may not open positions. Raises KeyError for an unknown symbol."""
        if symbol not in self.rules.filters:
            raise KeyError(f"{symbol} is not in Binance exchangeInfo (or it was not loaded yet)")
        f = self.rules.filters[symbol]
        gate = self.gate
        return f if gate == "TRADING" else dataclasses.replace(f, status=gate)

    @property
    def gate(self) -> str:
        """TRADING when entries are allowed, else why not (DISCONNECTED, RECONCILING)."""
        if not (self.api.connected and self.user.connected):
            return "DISCONNECTED"
        if not self.reconciled:
            return "RECONCILING"
        return "UNSETTLED" if self.tracker.unsettled() else "TRADING"

    @property
    def ready(self) -> bool:
        return self.gate == "TRADING"

    def reference_price(self, symbol: str) -> Decimal | None:
        p = self._marks.get(symbol) or self._lasts.get(symbol)
        return Decimal(repr(p)) if p else None

    def submit_order(self, request: OrderRequest) -> None:
        self.orders.submit(request)

    def cancel_order(self, symbol: str, client_order_id: str) -> None:
        self.orders.cancel(symbol, client_order_id)

    async def refresh_account(self) -> Decimal:
        """Read ``v2/account.status``; publish the balances (``BalanceUpdate`` SNAPSHOT with the
        available balance) and an ``EquitySnapshot``; return the equity (wallet plus unrealized
        PnL). For the balance-refresh job and /balance.

        Raises:
            ExchangeError: the read failed.
        """
        body = await self.api.call("v2/account.status", weight=5)
        f = Fields(body, "account.status")
        ts = self.clock.now_ms()
        for a in f.items("assets", []):
            wallet = a.decimal("walletBalance")
            if wallet or a.text("asset") == self.config.asset:
                self._bus.publish(BalanceUpdate(
                    asset=a.text("asset"), wallet_balance=wallet,
                    available_balance=a.decimal("availableBalance", "0"), reason="SNAPSHOT",
                    ts_ms=ts))
        equity = f.decimal("totalMarginBalance")
        self._bus.publish(EquitySnapshot(equity=equity,
                                         wallet_balance=f.decimal("totalWalletBalance"),
                                         unrealized_pnl=f.decimal("totalUnrealizedProfit"),
                                         ts_ms=ts))
        return equity

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Setup checks, then the WS API and the user stream (reconciliation follows).
        Network failures and rate limits during setup are retried with backoff.

        Idempotent: a second call returns at once (the runner may start the connection
        early to report a SetupError, then the live feed calls it again).

        Raises:
            SetupError: hedge mode, a symbol Binance does not list, or rejected credentials.
        """
        if self._started:
            return
        backoff = self._backoff()
        while True:
            try:
                await self.rules.setup()
                break
            except (RetryLater, UnknownOutcome) as exc:
                delay = exc.retry_after_s or backoff.next()
                logger.warning("Binance setup failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            except Fatal as exc:
                raise SetupError(f"Binance refused the API key ({exc}); check BINANCE_API_KEY, "
                                 "its secret or key file, its futures-trading permission and "
                                 "IP whitelist") from None
        await self.api.start()
        await self.user.start()
        loop = asyncio.get_running_loop()
        self._periodic = [loop.create_task(self.reconcile.periodic(), name="reconcile-periodic"),
                          loop.create_task(self.rules.periodic(), name="exchange-info-periodic")]
        logger.info("Binance %s set up: %s at %dx, clock offset %+d ms", self.name,
                    ",".join(self.config.symbols), self.config.leverage, self.clock.offset_ms)
        self._started = True

    async def stop(self) -> None:
        await cancel_and_wait(*self._periodic, *self._tasks)
        await self.user.stop()
        await self.api.stop()
        await self.rest.close()
        self._started = False

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("task %s failed: %s", task.get_name(), scrub(repr(exc)))
            self._bus.publish(EngineError(source=f"binance:{task.get_name()}",
                                          message=scrub(f"{type(exc).__name__}: {exc}"),
                                          ts_ms=self.clock.now_ms()))

    # ------------------------------------------------------------------ user stream

    async def _new_listen_key(self) -> str:
        try:
            result = await self.api.call("userDataStream.start", security=USER_STREAM)
            return result["listenKey"]
        except (ExchangeError, KeyError, TypeError) as exc:
            logger.warning("userDataStream.start failed (%s); using REST", scrub(str(exc)))
            return await self.rest.start_listen_key()

    async def _keepalive(self) -> None:
        try:
            await self.api.call("userDataStream.ping", security=USER_STREAM)
        except (RetryLater, UnknownOutcome):
            await self.rest.keepalive_listen_key()

    def _on_listen_key_expired(self) -> None:
        self._set_reconciled(False, "listenKey expired")
        self.user.renew("listenKeyExpired")

    def _on_user_connected(self) -> None:
        self._set_reconciled(False, "user stream connected; reconciling")
        self.reconcile.request("user stream connected")

    def _reconciled(self, ok: bool, detail: str) -> None:
        if ok and not self.reconciled:
            self._set_reconciled(True, detail)
        elif not ok:
            self._update_gate(detail, force=True)

    async def _position_qty(self, symbol: str) -> Decimal:
        """The signed position amount of ``symbol`` on the exchange (``v2/account.position``)."""
        rows = await self.api.call("v2/account.position", {"symbol": symbol}, weight=5)
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("symbol") == symbol:
                return Decimal(str(row.get("positionAmt", "0")))
        return Decimal(0)

    # ------------------------------------------------------------------ trading gate

    def _set_reconciled(self, ok: bool, detail: str) -> None:
        self.reconciled = ok
        self._update_gate(detail, force=ok)  # every successful pass is announced

    def _link_status(self, stream: str, up: bool, detail: str) -> None:
        if stream == "user" and not up:
            self.reconciled = False  # events may be missed from now on: reconcile again
        self._bus.publish(ConnectionStatus(stream=stream, up=up, detail=detail,
                                           ts_ms=self.clock.now_ms()))
        self._update_gate(f"{stream} {'up' if up else 'down'}: {detail}")

    def _update_gate(self, detail: str, *, force: bool = False) -> None:
        gate = self.gate
        if gate == self._gate and not force:
            return
        self._gate = gate
        logger.log(logging.INFO if gate == "TRADING" else logging.WARNING, "trading gate %s: %s",
                   gate, detail)
        self._bus.publish(ConnectionStatus(stream="trading", up=gate == "TRADING",
                                           detail=f"{gate}: {detail}",
                                           ts_ms=self.clock.now_ms()))

    # ------------------------------------------------------------------ market data

    def _on_mark(self, ev: MarkPrice) -> None:
        self._marks[ev.symbol] = ev.mark_price

    def _on_tick(self, ev: MarketTick) -> None:
        self._lasts[ev.symbol] = ev.price
