"""Our orders as the adapter publishes them: every fill exactly once, in cumulative order.

Fills reach the adapter three ways: ORDER_TRADE_UPDATE on the user stream (the normal path,
with fee and realized PnL), TRADE_LITE (a faster notice without fee, which may arrive first; it
is only remembered), and reconciliation after an UNKNOWN outcome or a reconnect, which reads
``order.status`` and ``GET /fapi/v1/userTrades`` for the order. A trade is identified by
(symbol, trade id) (shared/binance/PROTOCOL.md §3.2: "``t`` is the dedup key"); whichever path
delivers it first publishes it, the others drop it. ``filled_qty`` of what we publish is the sum
of the fills published so far for that order, so ORDERING (which takes the cumulative delta) and
the ledger (which adds each fill) stay consistent whatever the path.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from core.binance.parse import parse_order_result
from core.binance.wire import Fields
from core.events import OrderRequest, OrderSide, OrderStatus, OrderType, OrderUpdate

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
SEEN_TRADES_MAX = 20_000
TRACKED_MAX = 2_000


@dataclass(slots=True)
class Tracked:
    """One order we placed (or a protective stop's triggered order)."""

    symbol: str
    client_order_id: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    reduce_only: bool
    filled: Decimal = ZERO  # cumulative quantity of the fills published
    order_id: int = 0
    final: bool = False
    status: OrderStatus = OrderStatus.NEW
    sent_ms: int = 0        # when it was sent (ms): an UNKNOWN outcome is settled within a horizon
    unknown: bool = False   # its placement outcome is UNKNOWN (no answer, 503 "Unknown error")


class OrderTracker:
    """Remembers our orders and the trades already published."""

    def __init__(self) -> None:
        self.orders: OrderedDict[str, Tracked] = OrderedDict()
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._by_order_id: dict[int, str] = {}
        self.duplicates = 0

    # ------------------------------------------------------------------ registration

    def track(self, req: OrderRequest) -> Tracked:
        t = Tracked(req.symbol, req.client_order_id, req.side, req.order_type, req.quantity,
                    req.reduce_only, sent_ms=req.ts_ms)
        self._add(t)
        return t

    def track_stop(self, symbol: str, client_id: str, side: OrderSide,
                   order_type: OrderType) -> Tracked:
        """A protective algo order: once triggered, its matching-engine order carries the
        algo's client id; its fills are published with the stop's order type."""
        t = self.orders.get(client_id)
        if t is None:
            t = Tracked(symbol, client_id, side, order_type, ZERO, True)
            self._add(t)
        return t

    def link_order_id(self, order_id: int, client_id: str) -> None:
        """A triggered algo order's matching-engine id (ALGO_UPDATE ``ai``): its
        ORDER_TRADE_UPDATEs are matched to the stop whatever client id they carry."""
        t = self.orders.get(client_id)
        if t is not None:
            t.order_id = order_id
            self._by_order_id[order_id] = client_id

    def get(self, client_id: str) -> Tracked | None:
        return self.orders.get(client_id)

    def _add(self, t: Tracked) -> None:
        self.orders[t.client_order_id] = t
        while len(self.orders) > TRACKED_MAX:
            _, old = self.orders.popitem(last=False)
            self._by_order_id.pop(old.order_id, None)

    def open_orders(self) -> list[Tracked]:
        """Orders whose final state has not been published (to resolve after a reconnect)."""
        return [t for t in self.orders.values() if not t.final and t.quantity > 0]

    def unsettled(self) -> list[Tracked]:
        """Orders whose placement outcome is still UNKNOWN (entries wait for them)."""
        return [t for t in self.orders.values() if t.unknown and not t.final]

    def seen(self, symbol: str, trade_id: int) -> bool:
        return (symbol, trade_id) in self._seen

    def _mark_seen(self, symbol: str, trade_id: int) -> bool:
        """Record a trade; False if it was already published."""
        key = (symbol, trade_id)
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > SEEN_TRADES_MAX:
            self._seen.popitem(last=False)
        return True

    # ------------------------------------------------------------------ user stream

    def on_stream_update(self, up: OrderUpdate, orig_type: str = "") -> OrderUpdate | None:
        """An ORDER_TRADE_UPDATE -> what to publish (None: already published).

        ``orig_type`` is the raw ``ot``: a triggered algo order is a MARKET order whose ``ot``
        is STOP_MARKET / TAKE_PROFIT_MARKET; it is published with that type, so the ledger
        books the exit as SL / TP.
        """
        if up.is_fill and up.trade_id and not self._mark_seen(up.symbol, up.trade_id):
            return None
        t = self.orders.get(up.client_order_id)
        if t is None and up.order_id in self._by_order_id:
            t = self.orders.get(self._by_order_id[up.order_id])
        if orig_type in ("STOP_MARKET", "TAKE_PROFIT_MARKET") and up.order_type is OrderType.MARKET:
            up = replace(up, order_type=OrderType(orig_type))
        if t is None:
            return up
        if t.final and not up.status.is_final and not up.is_fill:
            return None  # a stale update after the final one was published
        if t.order_type is not up.order_type and t.order_type in (
                OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
            up = replace(up, order_type=t.order_type)
        if up.is_fill:
            t.filled += up.last_fill_qty
            if t.filled != up.filled_qty:
                up = replace(up, filled_qty=t.filled)
        t.order_id = up.order_id or t.order_id
        t.status = up.status
        t.unknown = False
        t.final = t.final or up.status.is_final
        return up

    # ------------------------------------------------------------------ reconciliation

    def resolve(self, t: Tracked, status_result: dict[str, Any],
                trades: list[dict[str, Any]] | None, now_ms: int) -> list[OrderUpdate]:
        """What to publish for ``t`` given ``order.status`` and the order's ``userTrades``
        (None when they could not be read: one fill at the average price, fee unknown).

        Fills not yet published come first (ascending trade id), then the final status if it
        is final and was not published yet.
        """
        snap = parse_order_result(status_result)
        t.order_id = snap.order_id or t.order_id
        out: list[OrderUpdate] = []
        base: dict[str, Any] = dict(
            symbol=t.symbol, client_order_id=t.client_order_id, order_id=snap.order_id,
            side=t.side, order_type=t.order_type, quantity=snap.quantity,
            reduce_only=t.reduce_only)
        if trades is not None:
            for tr in sorted(trades, key=lambda d: int(d.get("id", 0))):
                f = Fields(tr, "userTrades")
                if f.integer("orderId") != snap.order_id or not self._mark_seen(
                        t.symbol, f.integer("id")):
                    continue
                qty = f.decimal("qty")
                t.filled += qty
                status = (snap.status if t.filled >= snap.filled_qty
                          else OrderStatus.PARTIALLY_FILLED)
                out.append(OrderUpdate(
                    **base, status=status, filled_qty=t.filled, last_fill_qty=qty,
                    last_fill_price=f.decimal("price"), avg_price=snap.avg_price,
                    commission=abs(f.decimal("commission", "0")),
                    commission_asset=f.text("commissionAsset", "USDT"),
                    realized_pnl=f.decimal("realizedPnl", "0"), trade_id=f.integer("id"),
                    reason="recovered by reconciliation", ts_ms=f.integer("time", now_ms)))
        elif snap.filled_qty > t.filled:
            qty = snap.filled_qty - t.filled
            t.filled = snap.filled_qty
            out.append(OrderUpdate(
                **base, status=snap.status, filled_qty=t.filled, last_fill_qty=qty,
                last_fill_price=snap.avg_price, avg_price=snap.avg_price,
                reason="recovered from order.status; fee and PnL unknown", ts_ms=now_ms))
        if snap.status.is_final and not t.final:
            if not out or out[-1].status is not snap.status:
                out.append(OrderUpdate(**base, status=snap.status, filled_qty=t.filled,
                                       avg_price=snap.avg_price, reason=snap.reason
                                       or "recovered by reconciliation", ts_ms=now_ms))
        t.status = snap.status
        t.final = t.final or snap.status.is_final
        t.unknown = False
        return out

    def rejected(self, t: Tracked, reason: str, now_ms: int) -> OrderUpdate:
        """The final update of an order the exchange refused or never received."""
        t.final, t.status, t.unknown = True, OrderStatus.REJECTED, False
        return OrderUpdate(symbol=t.symbol, client_order_id=t.client_order_id, order_id=0,
                           side=t.side, order_type=t.order_type, status=OrderStatus.REJECTED,
                           quantity=t.quantity, filled_qty=t.filled,
                           reduce_only=t.reduce_only, reason=reason, ts_ms=now_ms)
