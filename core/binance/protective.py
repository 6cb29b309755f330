"""Protective orders on the exchange: the SL and TP of the open position as algo orders.

As soon as ORDERING reports ``PositionOpened``, the stop loss and take profit are placed with
``algoOrder.place`` (``algoType=CONDITIONAL``, ``STOP_MARKET`` / ``TAKE_PROFIT_MARKET``,
``closePosition=true``, ``triggerPrice`` on the tick grid, ``workingType`` from settings), so
the position stays protected if the bot dies (shared/binance/PROTOCOL.md §3.5, §8.2). When one
of them triggers, the other is cancelled; when the position closes any other way, both are.
A trigger that is already crossed (-2021) becomes a ``CloseRequest``: ORDERING closes at market.
FOLLOW_ORDERS keeps its own watch of the same levels as the second line.

Client ids are ``d5SL<ms>-<n>`` / ``d5TP<ms>-<n>``; reconciliation recognises our stops by that
prefix, adopts them for an open position and cancels them when no position is left.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.binance.errors import (
    ExchangeError,
    OrderNotFound,
    RetryLater,
    UnknownOutcome,
    WouldImmediatelyTrigger,
)
from core.binance.models import AlgoStatus, AlgoUpdate
from core.binance.orders import OrderTracker
from core.binance.parse import parse_algo_order_result
from core.event_bus import EventBus
from core.events import (
    CloseRequest,
    EngineError,
    ExitReason,
    OrderType,
    PositionOpened,
    PositionUpdate,
    ProtectiveOrderUpdate,
    Side,
    StateChanged,
)
from core.filters import SymbolFilters, round_price

logger = logging.getLogger(__name__)

SL, TP = "SL", "TP"
ALGO_TYPE = {SL: "STOP_MARKET", TP: "TAKE_PROFIT_MARKET"}
KIND_OF_TYPE = {v: k for k, v in ALGO_TYPE.items()}
ORDER_TYPE = {SL: OrderType.STOP_MARKET, TP: OrderType.TAKE_PROFIT_MARKET}
EXIT_REASON = {SL: ExitReason.SL, TP: ExitReason.TP}
PLACE_ATTEMPTS = 5
OPEN_STATES = ("PLACING", "NEW", "TRIGGERING")
KEEP_STOPS = 256


def is_ours(client_algo_id: str) -> str:
    """"SL"/"TP" when ``client_algo_id`` is one of our protective orders, else ""."""
    kind = client_algo_id[2:4]
    return kind if client_algo_id.startswith("d5") and kind in (SL, TP) else ""


@dataclass(slots=True)
class Stop:
    kind: str
    symbol: str
    client_algo_id: str
    trigger: Decimal
    algo_id: int = 0
    status: str = "PLACING"
    me_order_id: int | None = None

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATES


@dataclass(slots=True)
class Protection:
    """The stops of one position."""

    symbol: str
    side: Side
    stops: dict[str, Stop] = field(default_factory=dict)
    closed: bool = False
    confirmed: bool = False  # opened by a fill this run, or adopted by reconciliation


class ProtectiveOrders:
    """Places, tracks and cancels the exchange-side SL/TP of the position.

    Args:
        bus: subscribes to PositionOpened, PositionUpdate, StateChanged; publishes
            ProtectiveOrderUpdate, CloseRequest (-2021) and EngineError.
        call: the WS API ``call`` coroutine function.
        query_algo: REST ``GET /fapi/v1/algoOrder`` by client id (resolves unknown outcomes).
        tracker: learns the stops' client ids so their fills are typed STOP/TAKE_PROFIT.
        filters: symbol -> filters (tick size).
        working_type: MARK_PRICE or CONTRACT_PRICE.
        spawn: runs a coroutine as an owned task.
        now_ms: server time.
    """

    def __init__(self, bus: EventBus, *, call: Callable[..., Coroutine[Any, Any, Any]],
                 query_algo: Callable[[str], Coroutine[Any, Any, Any]], tracker: OrderTracker,
                 filters: Callable[[str], SymbolFilters], working_type: str,
                 spawn: Callable[[Coroutine[Any, Any, Any], str], Any],
                 now_ms: Callable[[], int], retry_s: float = 0.5) -> None:
        self._bus = bus
        self._call = call
        self._query_algo = query_algo
        self._tracker = tracker
        self._filters = filters
        self.working_type = working_type
        self._spawn = spawn
        self._now = now_ms
        self.retry_s = retry_s
        self.positions: dict[str, Protection] = {}
        self.levels: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (sl, tp) last known
        self._by_id: dict[str, Stop] = {}
        self._seq = itertools.count(1)
        self.accepting = False  # a reconciliation has succeeded: place stops on PositionOpened
        self.reconciling = False
        bus.subscribe(PositionOpened, self._on_opened)
        bus.subscribe(PositionUpdate, self._on_position)
        bus.subscribe(StateChanged, self._on_state)

    # ------------------------------------------------------------------ bus (sync, fast)

    def _on_opened(self, ev: PositionOpened) -> None:
        """An entry filled: place its stops. Before the first reconciliation (the engine
        re-announcing a position of an earlier run) or during one (a fill it recovered), only
        remember the levels: reconciliation adopts the stops on the exchange or places them."""
        self.levels[ev.symbol] = (ev.stop_loss, ev.take_profit)
        prot = self.positions.get(ev.symbol)
        if prot is None or prot.closed or prot.side is not ev.side:
            prot = self.positions[ev.symbol] = Protection(ev.symbol, ev.side)
        if self.reconciling:
            prot.confirmed = True
        elif self.accepting:
            prot.confirmed = True
            self._spawn(self.ensure(prot, ev.stop_loss, ev.take_profit), f"protect-{ev.symbol}")

    def _on_position(self, up: PositionUpdate) -> None:
        if up.quantity == 0 and up.symbol in self.positions:
            self.close(up.symbol, f"position closed ({up.reason or 'exchange'})")

    def _on_state(self, ev: StateChanged) -> None:
        if ev.what == "phase" and ev.new == "FLAT" and ev.symbol in self.positions:
            self.close(ev.symbol, f"position closed ({ev.reason})")

    def close(self, symbol: str, why: str) -> None:
        """The position is gone: cancel its stops (owned task)."""
        prot = self.positions.pop(symbol, None)
        if prot is None:
            return
        prot.closed = True
        self._spawn(self._cancel_all(prot, why), f"unprotect-{symbol}")

    def on_algo_update(self, au: AlgoUpdate) -> None:
        """ALGO_UPDATE from the user stream (or an algo order read at reconciliation)."""
        stop = self._by_id.get(au.client_algo_id)
        if stop is None:
            return
        stop.algo_id = au.algo_id or stop.algo_id
        if stop.status == au.status.value:
            return
        stop.status = au.status.value
        if au.me_order_id is not None:
            stop.me_order_id = au.me_order_id
            self._tracker.link_order_id(au.me_order_id, stop.client_algo_id)
        logger.info("%s %s %s: %s %s", stop.symbol, stop.kind, stop.client_algo_id,
                    au.status.value, au.reason)
        self._publish(stop, au.reason)
        prot = self.positions.get(stop.symbol)
        if au.status in (AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED, AlgoStatus.FINISHED):
            if prot is not None:  # the other stop must not fire after this one
                other = prot.stops.get(TP if stop.kind == SL else SL)
                if other is not None and other.open:
                    self._spawn(self._cancel(other, f"{stop.kind} triggered"),
                                f"cancel-{other.client_algo_id}")
        elif au.status in (AlgoStatus.REJECTED, AlgoStatus.EXPIRED) and prot is not None:
            self._alert(f"{stop.kind} of {stop.symbol} {au.status.value.lower()}: "
                        f"{au.reason or 'no reason given'}; FOLLOW_ORDERS still watches it")

    # ------------------------------------------------------------------ placing

    async def ensure(self, prot: Protection, sl: Decimal, tp: Decimal) -> list[str]:
        """Place the stops ``prot`` lacks (SL first, then TP, concurrently); returns the kinds
        placed."""
        todo = [(k, p) for k, p in ((SL, sl), (TP, tp))
                if p > 0 and not (k in prot.stops and prot.stops[k].open)]
        results = await asyncio.gather(*(self._place(prot, k, p) for k, p in todo))
        return [k for (k, _), ok in zip(todo, results, strict=True) if ok]

    def _remember(self, stop: Stop) -> None:
        self._by_id[stop.client_algo_id] = stop
        if len(self._by_id) > KEEP_STOPS:  # forget finished stops of past positions
            for cid in [c for c, s in self._by_id.items() if not s.open][:KEEP_STOPS // 2]:
                del self._by_id[cid]

    def _new_id(self, kind: str) -> str:
        return f"d5{kind}{self._now()}-{next(self._seq)}"

    async def _place(self, prot: Protection, kind: str, trigger: Decimal) -> bool:
        try:
            trigger = round_price(trigger, self._filters(prot.symbol))
        except KeyError:
            pass
        stop = Stop(kind, prot.symbol, self._new_id(kind), trigger)
        prot.stops[kind] = stop
        self._remember(stop)
        self._tracker.track_stop(prot.symbol, stop.client_algo_id, prot.side.exit_order_side,
                                 ORDER_TYPE[kind])
        params = {"algoType": "CONDITIONAL", "symbol": prot.symbol,
                  "side": prot.side.exit_order_side.value, "type": ALGO_TYPE[kind],
                  "triggerPrice": trigger, "closePosition": True,
                  "workingType": self.working_type, "clientAlgoId": stop.client_algo_id}
        for attempt in range(1, PLACE_ATTEMPTS + 1):
            try:
                result = await self._call("algoOrder.place", params, weight=0, orders=1,
                                          urgent=True)
                self._placed(stop, parse_algo_order_result(result))
                break
            except WouldImmediatelyTrigger as exc:
                stop.status = "PLACE_FAILED"
                self._publish(stop, str(exc))
                if not prot.closed:
                    logger.warning("%s %s at %s would trigger immediately (-2021): closing at "
                                   "market", prot.symbol, kind, trigger)
                    self._bus.publish(CloseRequest(
                        symbol=prot.symbol, reason=EXIT_REASON[kind],
                        detail=f"{kind} {trigger} already crossed (-2021)", ts_ms=self._now()))
                return False
            except (RetryLater, UnknownOutcome) as exc:
                if isinstance(exc, UnknownOutcome) and await self._resolve(stop):
                    break
                logger.warning("%s %s: placing failed (%s), attempt %d", prot.symbol, kind, exc,
                               attempt)
                await asyncio.sleep(exc.retry_after_s or self.retry_s * attempt)
            except ExchangeError as exc:
                stop.status = "PLACE_FAILED"
                self._publish(stop, str(exc))
                self._alert(f"{kind} of {prot.symbol} could not be placed: {exc}; "
                            "FOLLOW_ORDERS still watches it")
                return False
        else:
            stop.status = "PLACE_FAILED"
            self._publish(stop, "gave up")
            self._alert(f"{kind} of {prot.symbol} could not be placed after {PLACE_ATTEMPTS} "
                        "attempts; FOLLOW_ORDERS still watches it")
            return False
        if prot.closed and stop.open:  # the position closed while we were placing
            await self._cancel(stop, "position closed while placing")
        return True

    def _placed(self, stop: Stop, au: AlgoUpdate) -> None:
        stop.algo_id = au.algo_id
        if stop.status == "PLACING":  # the ALGO_UPDATE may have come first
            stop.status = au.status.value
            logger.info("%s %s placed: %s at %s (%s)", stop.symbol, stop.kind,
                        stop.client_algo_id, stop.trigger, self.working_type)
            self._publish(stop, "placed")

    async def _resolve(self, stop: Stop) -> bool:
        """After an unknown outcome: True if the exchange has the stop (then it is tracked)."""
        try:
            found = parse_algo_order_result(await self._query_algo(stop.client_algo_id))
        except OrderNotFound:
            return False  # not placed: placing again with the same client id is safe
        except ExchangeError:
            return False
        self._placed(stop, found)
        return True

    def adopt(self, symbol: str, quantity: Decimal, algos: list[AlgoUpdate]) -> str:
        """Take over our open stops of an existing position (reconciliation). Duplicates and
        stops on the wrong side are cancelled. Returns "adopted" when SL and TP both stand."""
        side = Side.LONG if quantity > 0 else Side.SHORT
        prot = self.positions.get(symbol)
        if prot is None or prot.side is not side:
            prot = self.positions[symbol] = Protection(symbol, side)
        for au in algos:
            kind = is_ours(au.client_algo_id)
            if not kind or au.symbol != symbol or au.status.is_final:
                continue
            known = prot.stops.get(kind)
            if au.side is not side.exit_order_side or (
                    known is not None and known.open and known.client_algo_id != au.client_algo_id):
                stray = Stop(kind, symbol, au.client_algo_id, au.trigger_price, au.algo_id,
                             au.status.value)
                self._remember(stray)
                self._spawn(self._cancel(stray, "duplicate or wrong side"),
                            f"cancel-{stray.client_algo_id}")
                continue
            stop = self._by_id.get(au.client_algo_id) or Stop(
                kind, symbol, au.client_algo_id, au.trigger_price)
            stop.algo_id, stop.status, stop.trigger = au.algo_id, au.status.value, au.trigger_price
            prot.stops[kind] = stop
            self._remember(stop)
            self._tracker.track_stop(symbol, stop.client_algo_id, side.exit_order_side,
                                     ORDER_TYPE[kind])
        have = [k for k in (SL, TP) if k in prot.stops and prot.stops[k].open]
        return "adopted" if len(have) == 2 else "partial" if have else "none"

    def cancel_orphans(self, algos: list[AlgoUpdate], open_symbols: set[str]) -> int:
        """Cancel our open stops on symbols without a position and without a protection of
        this run (``close`` cancels those); returns how many."""
        n = 0
        for au in algos:
            if (is_ours(au.client_algo_id) and au.symbol not in open_symbols
                    and au.symbol not in self.positions and not au.status.is_final):
                stop = self._by_id.get(au.client_algo_id) or Stop(
                    is_ours(au.client_algo_id), au.symbol, au.client_algo_id, au.trigger_price,
                    au.algo_id, au.status.value)
                self._remember(stop)
                self._spawn(self._cancel(stop, "no position"), f"cancel-{stop.client_algo_id}")
                n += 1
        return n

    def tracked_open_stops(self) -> list[Stop]:
        return [s for s in self._by_id.values() if s.open and s.status != "PLACING"]

    # ------------------------------------------------------------------ cancelling

    async def _cancel_all(self, prot: Protection, why: str) -> None:
        await asyncio.gather(*(self._cancel(s, why) for s in prot.stops.values() if s.open))

    async def _cancel(self, stop: Stop, why: str) -> None:
        if stop.status == "PLACING":
            return  # _place cancels it once the exchange has answered
        for attempt in range(1, PLACE_ATTEMPTS + 1):
            try:
                await self._call("algoOrder.cancel", {"clientAlgoId": stop.client_algo_id},
                                 urgent=True)
                if stop.open:
                    stop.status = "CANCELED"
                    self._publish(stop, why)
                logger.info("%s %s %s cancelled (%s)", stop.symbol, stop.kind,
                            stop.client_algo_id, why)
                return
            except OrderNotFound:
                return  # already triggered, finished or cancelled
            except (RetryLater, UnknownOutcome) as exc:
                await asyncio.sleep(exc.retry_after_s or self.retry_s * attempt)
            except ExchangeError as exc:
                self._alert(f"could not cancel the {stop.kind} of {stop.symbol} "
                            f"({stop.client_algo_id}): {exc}; cancel it on Binance")
                return
        self._alert(f"could not cancel the {stop.kind} of {stop.symbol} "
                    f"({stop.client_algo_id}); cancel it on Binance")

    # ------------------------------------------------------------------ events

    def _publish(self, stop: Stop, detail: str) -> None:
        self._bus.publish(ProtectiveOrderUpdate(
            symbol=stop.symbol, kind=stop.kind, client_algo_id=stop.client_algo_id,
            status=stop.status, trigger_price=stop.trigger, detail=detail, ts_ms=self._now()))

    def _alert(self, message: str) -> None:
        logger.error("%s", message)
        self._bus.publish(EngineError(source="protective", message=message, ts_ms=self._now()))
