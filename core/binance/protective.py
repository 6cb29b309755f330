"""Protective orders on the exchange: the SL and TP of the open position as algo orders.

As soon as ORDERING reports ``PositionOpened``, the stop loss and take profit are placed with
``algoOrder.place`` (``algoType=CONDITIONAL``, ``STOP_MARKET`` / ``TAKE_PROFIT_MARKET``,
``closePosition=true``, ``triggerPrice`` on the tick grid, ``workingType`` from settings), so
the position stays protected if the bot dies (shared/binance/PROTOCOL.md §3.5, §8.2).

Each order is a ``Stop`` moving through the table of core/binance/stops.py. What the exchange
says is read as §10 documents it:

* ``TRIGGERING``/``TRIGGERED`` are not outcomes: nothing is cancelled on them;
* the sibling order is cancelled only once the position is seen flat, or on ``FINISHED`` with
  the whole position quantity executed (``aq``);
* ``REJECTED``, ``EXPIRED`` or ``FINISHED`` with ``aq`` = 0 (or a cancel we did not send) while
  the position is still open (asked to the exchange, the stream may lag): the stop is placed
  again (``on_failure="replace"``; a trigger already crossed gives -2021, which closes at
  market) or the position is closed at market (``"close"``), and an alert says so;
* every stop is cancelled at most once (PENDING_CANCEL); a stop whose placement outcome is
  unknown is kept until a query or the user stream settles it, and cancelled then if its
  position is gone, so no ``closePosition`` stop outlives its position;
* any failure to place or cancel asks for a reconciliation pass at once.

Client ids are ``d5SL<ms>-<n>`` / ``d5TP<ms>-<n>``; reconciliation recognises our stops by that
prefix (core/binance/protective_sync.py adopts or cancels them).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.binance.models import AlgoUpdate
from core.binance.orders import OrderTracker
from core.binance.protective_io import StopSender
from core.binance.stops import (  # noqa: F401  (re-exported)
    ALGO_TYPE,
    EXIT_REASON,
    ORDER_TYPE,
    SL,
    TP,
    Stop,
    StopStatus,
    is_ours,
    other,
    status_of,
)
from core.event_bus import EventBus
from core.events import (
    CloseRequest,
    EngineError,
    PositionOpened,
    PositionUpdate,
    ProtectiveOrderUpdate,
    Side,
    StateChanged,
)
from core.filters import SymbolFilters

logger = logging.getLogger(__name__)

KEEP_STOPS = 256
ZERO = Decimal(0)
FAILURE_ACTIONS = ("replace", "close")


@dataclass(slots=True)
class Protection:
    """The stops of one position; ``gen`` tells this position from an earlier one on the same
    symbol."""

    symbol: str
    side: Side
    gen: int = 0
    quantity: Decimal = ZERO
    stops: dict[str, Stop] = field(default_factory=dict)
    closed: bool = False
    confirmed: bool = False  # opened by a fill this run, or adopted by reconciliation


class ProtectiveOrders:
    """Places, tracks and cancels the exchange-side SL/TP of the position.

    Args:
        bus: subscribes to PositionOpened, PositionUpdate, StateChanged; publishes
            ProtectiveOrderUpdate, CloseRequest (-2021, failed stops) and EngineError.
        call: the WS API ``call`` coroutine function.
        query_algo: REST ``GET /fapi/v1/algoOrder`` by client id (settles unknown outcomes).
        position_qty: coroutine ``symbol -> signed position amount`` read from the exchange.
        tracker: learns the stops' client ids so their fills are typed STOP/TAKE_PROFIT.
        filters: symbol -> filters (tick size).
        working_type: MARK_PRICE or CONTRACT_PRICE.
        spawn: runs a coroutine as an owned task.
        now_ms: server time.
        on_failure: "replace" (place the failed stop again) or "close" (close at market).
    """

    def __init__(self, bus: EventBus, *, call: Callable[..., Coroutine[Any, Any, Any]],
                 query_algo: Callable[[str], Coroutine[Any, Any, Any]], tracker: OrderTracker,
                 filters: Callable[[str], SymbolFilters], working_type: str,
                 spawn: Callable[[Coroutine[Any, Any, Any], str], Any],
                 now_ms: Callable[[], int], retry_s: float = 0.5,
                 position_qty: Callable[[str], Coroutine[Any, Any, Decimal]] | None = None,
                 on_failure: str = "replace") -> None:
        if on_failure not in FAILURE_ACTIONS:
            raise ValueError(f"on_failure must be one of {FAILURE_ACTIONS}, not {on_failure!r}")
        self._bus = bus
        self._tracker = tracker
        self._spawn = spawn
        self._now = now_ms
        self._position_qty = position_qty
        self.on_failure = on_failure
        self.positions: dict[str, Protection] = {}
        self.levels: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (sl, tp) last known
        self._by_id: dict[str, Stop] = {}
        self._gens = itertools.count(1)
        self.accepting = False  # a reconciliation has succeeded: place stops on PositionOpened
        self.reconciling = False
        self.opened_during_pass: set[str] = set()
        #: asks the adapter for a reconciliation pass (set by the adapter)
        self.request_reconcile: Callable[[str], None] = lambda why: None
        self.io = StopSender(self, call=call, query_algo=query_algo, filters=filters,
                             working_type=working_type, retry_s=retry_s)
        bus.subscribe(PositionOpened, self._on_opened)
        bus.subscribe(PositionUpdate, self._on_position)
        bus.subscribe(StateChanged, self._on_state)

    # ------------------------------------------------------------------ bus (sync, fast)

    def protection(self, symbol: str, side: Side, quantity: Decimal = ZERO) -> Protection:
        """The live protection of ``symbol``'s position on ``side`` (a new one if needed)."""
        prot = self.positions.get(symbol)
        if prot is None or prot.closed or prot.side is not side:
            if prot is not None:
                self.close(symbol, "position side changed")
            prot = self.positions[symbol] = Protection(symbol, side, next(self._gens))
        if quantity:
            prot.quantity = abs(quantity)
        return prot

    def _on_opened(self, ev: PositionOpened) -> None:
        """An entry filled: place its stops. Before the first reconciliation (the engine
        re-announcing a position of an earlier run) only remember the levels: reconciliation
        adopts the stops on the exchange or places them. During a later pass the fill is
        protected at once, and the pass leaves the symbol alone and runs again."""
        self.levels[ev.symbol] = (ev.stop_loss, ev.take_profit)
        prot = self.protection(ev.symbol, ev.side, ev.quantity)
        if self.reconciling or self.accepting:
            prot.confirmed = True  # a fill of this run: ORDERING's own position
        if self.reconciling:
            self.opened_during_pass.add(ev.symbol)
        if self.accepting:
            self._spawn(self.ensure(prot, ev.stop_loss, ev.take_profit), f"protect-{ev.symbol}")

    def _on_position(self, up: PositionUpdate) -> None:
        prot = self.positions.get(up.symbol)
        if up.quantity == 0:
            if prot is not None:
                self.close(up.symbol, f"position closed ({up.reason or 'exchange'})")
        elif prot is not None:
            prot.quantity = abs(up.quantity)
        elif self.accepting and up.reason != "SNAPSHOT" and not self._entry_pending(up.symbol):
            # a position we hold no stops for (a late execution, a manual order): adopt it now
            self.request_reconcile(f"unprotected {up.symbol} position {up.quantity}")

    def _entry_pending(self, symbol: str) -> bool:
        """An entry of ours on ``symbol`` is not final yet: its PositionOpened will follow
        (Binance may send ACCOUNT_UPDATE before the fill's ORDER_TRADE_UPDATE)."""
        return any(t.symbol == symbol and not t.final and not t.reduce_only and t.quantity > 0
                   for t in self._tracker.orders.values())

    def _on_state(self, ev: StateChanged) -> None:
        if ev.what == "phase" and ev.new == "FLAT" and ev.symbol in self.positions:
            self.close(ev.symbol, f"position closed ({ev.reason})")

    def close(self, symbol: str, why: str) -> None:
        """The position is gone: cancel its stops (each once; those whose placement is still
        unanswered or unknown as soon as it is known)."""
        prot = self.positions.pop(symbol, None)
        if prot is None:
            return
        prot.closed = True
        for stop in prot.stops.values():
            self.cancel(stop, why)

    def cancel(self, stop: Stop, why: str) -> None:
        """Cancel ``stop`` once: NEW -> PENDING_CANCEL and one ``algoOrder.cancel``; PLACING /
        UNKNOWN -> cancelled when the outcome is known; anything else needs nothing."""
        if stop.status in (StopStatus.PLACING, StopStatus.UNKNOWN):
            stop.cancel_wanted = True
        elif stop.move(StopStatus.PENDING_CANCEL):
            self._spawn(self.io.cancel(stop, why), f"cancel-{stop.client_algo_id}")

    def on_algo_update(self, au: AlgoUpdate, *, from_stream: bool = True) -> None:
        """ALGO_UPDATE from the user stream (or an algo order read back by a REST query)."""
        stop = self._by_id.get(au.client_algo_id)
        if stop is None:
            return
        stop.algo_id = au.algo_id or stop.algo_id
        if au.me_order_id is not None and stop.me_order_id is None:
            stop.me_order_id = au.me_order_id
            self._tracker.link_order_id(au.me_order_id, stop.client_algo_id)
        old = stop.status
        if not stop.move(status_of(au.status, au.executed_qty, qty_known=from_stream)):
            return
        detail = au.reason or au.status.value
        if stop.status is StopStatus.FAILED and au.status.value != "FAILED":
            detail = f"{au.status.value}, executed {au.executed_qty}: {au.reason or 'no reason'}"
        logger.info("%s %s %s: %s -> %s (%s)", stop.symbol, stop.kind, stop.client_algo_id,
                    old.value, stop.status.value, detail)
        self.publish(stop, detail)
        prot = self.positions.get(stop.symbol)
        if prot is not None and (prot.gen != stop.owner or prot.closed):
            prot = None
        if stop.status is StopStatus.NEW:
            if stop.cancel_wanted or prot is None:
                self.cancel(stop, "its position is gone")
        elif stop.status is StopStatus.FILLED and prot is not None:
            if prot.quantity > 0 and au.executed_qty >= prot.quantity:
                sibling = prot.stops.get(other(stop.kind))
                if sibling is not None:
                    self.cancel(sibling, f"{stop.kind} filled {au.executed_qty}")
        elif prot is not None and from_stream and (
                stop.status is StopStatus.FAILED
                or (stop.status is StopStatus.CANCELED and old is not StopStatus.PENDING_CANCEL)):
            action = ("placing it again" if self.on_failure == "replace"
                      else "closing at market")
            self.alert(f"{stop.kind} of {stop.symbol} at {stop.trigger} ended unfilled "
                       f"({detail}); {action} if the position is still open")
            self._spawn(self._recover(prot, stop), f"recover-{stop.client_algo_id}")

    async def _recover(self, prot: Protection, stop: Stop) -> None:
        """A stop ended unfilled: if the exchange still shows the position, re-place it or
        close at market (``on_failure``)."""
        if self._position_qty is not None:
            try:
                qty = await self._position_qty(prot.symbol)
            except Exception as exc:  # the pass will look again
                logger.warning("%s: position read failed (%s)", prot.symbol, exc)
                self.request_reconcile(f"{stop.kind} of {prot.symbol} failed")
                qty = prot.quantity
            if qty == 0 or prot.closed:
                logger.info("%s %s failed but the position is flat: nothing to do", prot.symbol,
                            stop.kind)
                return
        if prot.closed:
            return
        if self.on_failure == "close":
            self._bus.publish(CloseRequest(
                symbol=prot.symbol, reason=EXIT_REASON[stop.kind],
                detail=f"{stop.kind} {stop.trigger} failed on the exchange", ts_ms=self._now()))
            return
        if not (stop.kind in prot.stops and prot.stops[stop.kind].open):
            await self.io.place(prot, stop.kind, stop.trigger)

    # ------------------------------------------------------------------ placing

    async def ensure(self, prot: Protection, sl: Decimal, tp: Decimal) -> list[str]:
        """Place the stops ``prot`` lacks (SL and TP concurrently); returns the kinds placed."""
        todo = [(k, p) for k, p in ((SL, sl), (TP, tp))
                if p > 0 and not (k in prot.stops and prot.stops[k].open)]
        results = await asyncio.gather(*(self.io.place(prot, k, p) for k, p in todo))
        return [k for (k, _), ok in zip(todo, results, strict=True) if ok]

    def new_stop(self, prot: Protection, kind: str, client_id: str, trigger: Decimal) -> Stop:
        """A stop about to be placed for ``prot`` (PLACING)."""
        return self.attach(prot, Stop(kind, prot.symbol, client_id, trigger))

    def attach(self, prot: Protection, stop: Stop) -> Stop:
        """Make ``stop`` the ``prot``'s stop of its kind (placed or adopted)."""
        stop.owner = prot.gen
        prot.stops[stop.kind] = stop
        self.remember(stop)
        self._tracker.track_stop(prot.symbol, stop.client_algo_id, prot.side.exit_order_side,
                                 ORDER_TYPE[stop.kind])
        return stop

    def remember(self, stop: Stop) -> None:
        self._by_id[stop.client_algo_id] = stop
        if len(self._by_id) > KEEP_STOPS:  # forget finished stops of past positions only
            for cid in [c for c, s in self._by_id.items() if s.status.final][:KEEP_STOPS // 2]:
                del self._by_id[cid]

    def known(self, client_algo_id: str) -> Stop | None:
        return self._by_id.get(client_algo_id)

    def tracked_open_stops(self) -> list[Stop]:
        """Stops that may stand on the exchange or whose outcome is unknown."""
        return [s for s in self._by_id.values()
                if not s.status.final and s.status is not StopStatus.PLACING]

    # ------------------------------------------------------------------ events

    def publish(self, stop: Stop, detail: str) -> None:
        self._bus.publish(ProtectiveOrderUpdate(
            symbol=stop.symbol, kind=stop.kind, client_algo_id=stop.client_algo_id,
            status=stop.status.value, trigger_price=stop.trigger, detail=detail,
            ts_ms=self._now()))

    def close_at_market(self, prot: Protection, kind: str, detail: str) -> None:
        if not prot.closed:
            self._bus.publish(CloseRequest(symbol=prot.symbol, reason=EXIT_REASON[kind],
                                           detail=detail, ts_ms=self._now()))

    def alert(self, message: str) -> None:
        logger.error("%s", message)
        self._bus.publish(EngineError(source="protective", message=message, ts_ms=self._now()))
