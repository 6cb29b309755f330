"""Sending protective orders: ``algoOrder.place`` / ``algoOrder.cancel`` for ``ProtectiveOrders``.

* Refused for certain (429, a full pool, no connection): sent again after the wait, with the
  same client id (nothing was placed).
* UNKNOWN outcome (timeout, -1006/-1007, 503 "Unknown error"): the stop is UNKNOWN and queried
  by client id (``GET /fapi/v1/algoOrder``). Order queries lag (PROTOCOL.md §10): a few "not
  found" answers do not prove it is absent, so it is then placed again with the *same* client
  id: if the first one exists after all, Binance refuses the duplicate (-4116) and the query is
  repeated; the user stream may settle it at any time.
* -2021 (the trigger is already crossed): the position is closed at market.
* Any other refusal: PLACE_FAILED, an alert, and a reconciliation pass at once.
* A cancel is sent once per stop (PENDING_CANCEL); -2011 means it is no longer open.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.binance.errors import (
    ExchangeError,
    OrderNotFound,
    RetryLater,
    UnknownOutcome,
    WouldImmediatelyTrigger,
)
from core.binance.parse import ParseError, parse_algo_order_result
from core.binance.stops import ALGO_TYPE, Stop, StopStatus
from core.filters import SymbolFilters, round_price

if TYPE_CHECKING:
    from core.binance.protective import Protection, ProtectiveOrders

logger = logging.getLogger(__name__)

PLACE_ATTEMPTS = 5
QUERY_TRIES = 4
DUPLICATE_ID = -4116


class StopSender:
    """The exchange side of ``ProtectiveOrders`` (see the module docstring)."""

    def __init__(self, owner: ProtectiveOrders, *,
                 call: Callable[..., Coroutine[Any, Any, Any]],
                 query_algo: Callable[[str], Coroutine[Any, Any, Any]],
                 filters: Callable[[str], SymbolFilters], working_type: str,
                 retry_s: float) -> None:
        self._owner = owner
        self._call = call
        self._query_algo = query_algo
        self._filters = filters
        self.working_type = working_type
        self.retry_s = retry_s
        self._seq = itertools.count(1)

    def _new_id(self, kind: str) -> str:
        return f"d5{kind}{self._owner._now()}-{next(self._seq)}"

    async def place(self, prot: Protection, kind: str, trigger: Decimal) -> bool:
        """Place ``kind`` at ``trigger`` for ``prot``; True once the exchange has it."""
        own = self._owner
        try:
            trigger = round_price(trigger, self._filters(prot.symbol))
        except KeyError:
            pass
        stop = own.new_stop(prot, kind, self._new_id(kind), trigger)
        params = {"algoType": "CONDITIONAL", "symbol": prot.symbol,
                  "side": prot.side.exit_order_side.value, "type": ALGO_TYPE[kind],
                  "triggerPrice": trigger, "closePosition": True,
                  "workingType": self.working_type, "clientAlgoId": stop.client_algo_id}
        ok = False
        for attempt in range(1, PLACE_ATTEMPTS + 1):
            if not stop.status.protecting:  # the stream settled it meanwhile
                break
            if stop.status is not StopStatus.PLACING and stop.status is not StopStatus.UNKNOWN:
                ok = True
                break
            try:
                result = await self._call("algoOrder.place", params, weight=0, orders=1,
                                          urgent=True)
                self._placed(stop, result)
                ok = True
                break
            except WouldImmediatelyTrigger as exc:
                stop.move(StopStatus.PLACE_FAILED)
                own.publish(stop, str(exc))
                logger.warning("%s %s at %s would trigger immediately (-2021): closing at market",
                               prot.symbol, kind, trigger)
                own.close_at_market(prot, kind, f"{kind} {trigger} already crossed (-2021)")
                return False
            except RetryLater as exc:
                logger.warning("%s %s: placing refused (%s), attempt %d", prot.symbol, kind, exc,
                               attempt)
                await asyncio.sleep(exc.retry_after_s or self.retry_s * attempt)
            except UnknownOutcome as exc:
                logger.warning("%s %s %s: placement outcome unknown (%s)", prot.symbol, kind,
                               stop.client_algo_id, exc)
                if stop.move(StopStatus.UNKNOWN):
                    own.publish(stop, str(exc))
                if await self.settle(stop):
                    ok = True
                    break
            except ExchangeError as exc:
                if exc.code == DUPLICATE_ID and await self.settle(stop):
                    ok = True  # the earlier attempt did arrive
                    break
                stop.move(StopStatus.PLACE_FAILED)
                own.publish(stop, str(exc))
                own.alert(f"{kind} of {prot.symbol} could not be placed: {exc}; "
                          "FOLLOW_ORDERS still watches it")
                own.request_reconcile(f"{kind} of {prot.symbol} not placed")
                return False
        if not ok and stop.status in (StopStatus.PLACING, StopStatus.UNKNOWN):
            if stop.status is StopStatus.PLACING:
                stop.move(StopStatus.PLACE_FAILED)
                own.publish(stop, "gave up")
            # UNKNOWN stays UNKNOWN: the stream or the next pass settles it, never forgotten
            own.alert(f"{kind} of {prot.symbol} could not be placed after {PLACE_ATTEMPTS} "
                      f"attempts ({stop.status.value}); FOLLOW_ORDERS still watches it")
            own.request_reconcile(f"{kind} of {prot.symbol} not placed")
        if stop.status is StopStatus.NEW and (prot.closed or stop.cancel_wanted):
            own.cancel(stop, "position closed while placing")
        return ok and stop.status.protecting

    def _placed(self, stop: Stop, result: Any) -> None:
        try:
            au = parse_algo_order_result(result)
            stop.algo_id = au.algo_id
        except ParseError as exc:
            logger.warning("algoOrder.place answer unreadable (%s); the stream confirms it", exc)
        if stop.move(StopStatus.NEW):
            logger.info("%s %s placed: %s at %s (%s)", stop.symbol, stop.kind,
                        stop.client_algo_id, stop.trigger, self.working_type)
            self._owner.publish(stop, "placed")

    async def settle(self, stop: Stop) -> bool:
        """Query an UNKNOWN stop by client id until found (True) or still absent after a few
        tries (False); returns at once when the user stream settled it."""
        for attempt in range(1, QUERY_TRIES + 1):
            if stop.status is not StopStatus.UNKNOWN and stop.status is not StopStatus.PLACING:
                return stop.status.protecting or stop.status is StopStatus.FILLED
            try:
                result = await self._query_algo(stop.client_algo_id)
            except OrderNotFound:
                await asyncio.sleep(self.retry_s * attempt)
                continue
            except ExchangeError as exc:
                logger.warning("%s: query failed (%s)", stop.client_algo_id, exc)
                await asyncio.sleep(exc.retry_after_s or self.retry_s * attempt)
                continue
            try:
                au = parse_algo_order_result(result)
            except ParseError as exc:
                logger.warning("%s: query answer unreadable (%s)", stop.client_algo_id, exc)
                continue
            self._placed(stop, result)
            self._owner.on_algo_update(au, from_stream=False)
            return True
        return False

    async def cancel(self, stop: Stop, why: str) -> None:
        """Send the one ``algoOrder.cancel`` of a PENDING_CANCEL stop."""
        own = self._owner
        stop.cancels_sent += 1
        for attempt in range(1, PLACE_ATTEMPTS + 1):
            try:
                await self._call("algoOrder.cancel", {"clientAlgoId": stop.client_algo_id},
                                 urgent=True)
                if stop.move(StopStatus.CANCELED):
                    own.publish(stop, why)
                logger.info("%s %s %s cancelled (%s)", stop.symbol, stop.kind,
                            stop.client_algo_id, why)
                return
            except OrderNotFound:  # no longer open: triggered, finished or cancelled
                if stop.move(StopStatus.CANCELED):
                    own.publish(stop, f"{why}; not open any more")
                return
            except (RetryLater, UnknownOutcome) as exc:
                await asyncio.sleep(exc.retry_after_s or self.retry_s * attempt)
            except ExchangeError as exc:
                stop.move(StopStatus.NEW)
                own.alert(f"could not cancel the {stop.kind} of {stop.symbol} "
                          f"({stop.client_algo_id}): {exc}")
                own.request_reconcile(f"cancel of {stop.client_algo_id} failed")
                return
        stop.move(StopStatus.NEW)
        own.alert(f"could not cancel the {stop.kind} of {stop.symbol} ({stop.client_algo_id})")
        own.request_reconcile(f"cancel of {stop.client_algo_id} failed")
