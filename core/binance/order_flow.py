"""Sending our orders: ``order.place`` / ``order.cancel`` over the WS API, in owned tasks.

* Refused for certain (429 with Retry-After, a full rate pool, no connection): sent again after
  the wait while that is within ``rate_wait_s`` (an entry: the signal is still fresh) or
  ``exit_retry_s`` (a closing order); a 418 IP ban refuses at once. Otherwise, and for every
  exchange rejection (-2019, -4164, -2022 ...), ORDERING gets an ``OrderUpdate`` REJECTED.
* UNKNOWN outcome (timeout, connection lost in flight, -1006/-1007, 503 "Unknown error"): never
  resent. The order stays pending (ORDERING stays ENTERING/EXITING and the trading gate says
  UNSETTLED, so no entry starts beside it) while ``order.status`` by client order id is asked
  with backoff; missed fills are read from ``userTrades`` and published once
  (core/binance/orders.py). Order queries lag (PROTOCOL.md §10): "not found" answers are not
  proof, and only after ``unknown_timeout_s`` of them is it published as REJECTED. The user
  stream may settle it first (a late execution carries our client order id, so it is booked as
  ours); then nothing more is asked (shared/binance/PROTOCOL.md §5, §8.9; STYLE.md §6).
* Before sending, an entry whose notional exceeds the symbol's leverage-bracket cap at the
  configured leverage is refused (``max_notional``; Binance would answer -2027).
* A rejection that says the symbol's rules changed (-1111, -4014, -4023, -4164) calls
  ``on_filter_error`` (the adapter refreshes exchangeInfo).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from core.binance.clock import Backoff, ServerClock
from core.binance.errors import (
    ExchangeError,
    IpBanned,
    OrderNotFound,
    RetryLater,
    UnknownOutcome,
)
from core.binance.orders import OrderTracker, Tracked
from core.binance.reconcile import Reconciler
from core.event_bus import EventBus
from core.events import EngineError, OrderRequest, OrderType

logger = logging.getLogger(__name__)

FILTER_ERRORS = (-1111, -4014, -4023, -4164)


class OrderSender:
    """Places and cancels ORDERING's orders (see the module docstring).

    Args:
        call: the WS API ``call`` coroutine function.
        spawn: runs a coroutine as an owned task.
        in_flight: client ids whose placement is running (reconciliation leaves them alone).
    """

    def __init__(self, bus: EventBus, *, call: Callable[..., Coroutine[Any, Any, Any]],
                 tracker: OrderTracker, reconciler: Reconciler, clock: ServerClock,
                 spawn: Callable[[Coroutine[Any, Any, Any], str], Any], in_flight: set[str],
                 exit_retry_s: float, rate_wait_s: float, backoff: Callable[[], Backoff],
                 max_notional: Callable[[str], Decimal | None] | None = None,
                 reference_price: Callable[[str], Decimal | None] | None = None,
                 on_filter_error: Callable[[str], None] | None = None) -> None:
        self._bus = bus
        self._call = call
        self._tracker = tracker
        self._reconciler = reconciler
        self._clock = clock
        self._spawn = spawn
        self._in_flight = in_flight
        self.exit_retry_s = exit_retry_s
        self.rate_wait_s = rate_wait_s
        self._backoff = backoff
        self._max_notional = max_notional
        self._reference_price = reference_price
        self._on_filter_error = on_filter_error

    def submit(self, req: OrderRequest) -> None:
        t = self._tracker.track(req)
        refusal = self._refusal(req)
        if refusal:
            self._reject(t, refusal)
            return
        self._in_flight.add(req.client_order_id)
        self._spawn(self._place(req, t), f"place-{req.client_order_id}")

    def _refusal(self, req: OrderRequest) -> str:
        """Why ``req`` must not be sent (empty: send it)."""
        if req.reduce_only or self._max_notional is None or self._reference_price is None:
            return ""
        cap, price = self._max_notional(req.symbol), self._reference_price(req.symbol)
        if cap is None or price is None:
            return ""
        notional = req.quantity * price
        if notional > cap:
            return (f"notional {notional:.2f} exceeds the leverage bracket's maximum {cap} at "
                    "this leverage (Binance -2027): lower LEVERAGE or the position size")
        return ""

    def cancel(self, symbol: str, client_order_id: str) -> None:
        self._spawn(self._cancel(symbol, client_order_id), f"cancel-{client_order_id}")

    async def _place(self, req: OrderRequest, t: Tracked) -> None:
        params: dict[str, Any] = {
            "symbol": req.symbol, "side": req.side.value, "type": req.order_type.value,
            "quantity": req.quantity, "newClientOrderId": req.client_order_id,
        }
        if req.reduce_only:
            params["reduceOnly"] = True
        if req.order_type is OrderType.LIMIT and req.price is not None:
            params |= {"price": req.price, "timeInForce": "GTC"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.exit_retry_s if req.reduce_only else self.rate_wait_s)
        try:
            while True:
                try:
                    result = await self._call("order.place", params, weight=0, orders=1,
                                              urgent=req.reduce_only)
                    t.order_id = int(result.get("orderId", 0)) if isinstance(result, dict) else 0
                    logger.info("order %s %s %s %s placed (%s)", req.client_order_id,
                                req.side.value, req.quantity, req.symbol, req.intent)
                    return
                except RetryLater as exc:  # certainly not executed
                    wait = exc.retry_after_s or self._backoff().base_s
                    if isinstance(exc, IpBanned) or loop.time() + wait > deadline:
                        self._reject(t, str(exc))
                        return
                    logger.warning("order %s refused (%s); retrying in %.1fs",
                                   req.client_order_id, exc, wait)
                    await asyncio.sleep(wait)
                except UnknownOutcome as exc:
                    logger.warning("order %s: outcome unknown (%s); asking order.status",
                                   req.client_order_id, exc)
                    await self._resolve_unknown(t)
                    return
                except ExchangeError as exc:
                    if exc.code in FILTER_ERRORS and self._on_filter_error is not None:
                        self._on_filter_error(f"{req.symbol}: {exc}")
                    self._reject(t, str(exc))
                    return
        finally:
            self._in_flight.discard(req.client_order_id)

    def _reject(self, t: Tracked, reason: str) -> None:
        logger.warning("order %s %s rejected: %s", t.client_order_id, t.symbol, reason)
        self._bus.publish(self._tracker.rejected(t, reason, self._clock.now_ms()))

    async def _resolve_unknown(self, t: Tracked) -> None:
        """Ask ``order.status`` with backoff until the order is known (or final, or rejected
        after ``unknown_timeout_s`` of "not found"); the user stream may settle it first."""
        t.unknown = True
        backoff = self._backoff()
        while t.unknown and not t.final:
            try:
                n = await self._reconciler.resolve_order(t)
                if not t.unknown or t.final:
                    logger.info("order %s resolved: %s (%d update(s))", t.client_order_id,
                                t.status.value, n)
                    return  # final, or resting (the user stream reports the rest)
            except (RetryLater, UnknownOutcome) as exc:
                await asyncio.sleep(exc.retry_after_s or backoff.next())
                continue
            await asyncio.sleep(backoff.next())

    async def _cancel(self, symbol: str, client_order_id: str) -> None:
        try:
            await self._call("order.cancel", {"symbol": symbol,
                                              "origClientOrderId": client_order_id},
                             urgent=True)
        except OrderNotFound:
            logger.info("cancel %s %s: not open (already final)", symbol, client_order_id)
        except ExchangeError as exc:
            logger.warning("cancel %s %s failed: %s", symbol, client_order_id, exc)
            self._bus.publish(EngineError(source="binance", ts_ms=self._clock.now_ms(),
                                          message=f"cancel of {client_order_id} failed: {exc}"))
