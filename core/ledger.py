"""Round-trip accounting: fills, fees and funding -> ``ClosedTrade`` (``TradeClosed`` event).

A trade opens with the first fill that takes a symbol's position away from zero and closes with
the fill that brings it back. For every trade, exactly:

    gross_pnl = Σ realized PnL of its fills      (Binance ``rp``; paper computes the same)
    fees      = Σ commissions of its fills       (entry and exit; liquidation clearance fee)
    funding   = Σ FUNDING_FEE balance changes on that symbol while it was open
    net_pnl   = gross_pnl - fees + funding

so the wallet moves by exactly Σ net_pnl over closed trades. Prices are quantity-weighted
averages of the entry and exit fills. The exit reason is the intent of the closing order
(ORDERING tags it), LIQUIDATION for a liquidation fill, SL/TP for an exchange-side stop.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from decimal import Decimal

from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    ClosedTrade,
    ExitReason,
    OrderRequest,
    OrderSide,
    OrderType,
    OrderUpdate,
    Side,
    TradeClosed,
)

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
SEEN_FILLS_MAX = 10_000  # fill ids remembered for de-duplication
_STOP_REASONS = {OrderType.STOP_MARKET: ExitReason.SL,
                 OrderType.TAKE_PROFIT_MARKET: ExitReason.TP,
                 OrderType.LIQUIDATION: ExitReason.LIQUIDATION}


class _Open:
    __slots__ = ("symbol", "side", "qty", "entry_ts", "entry_cost", "entry_qty", "exit_value",
                 "exit_qty", "gross", "fees", "funding")

    def __init__(self, symbol: str, side: Side, ts: int) -> None:
        self.symbol, self.side, self.entry_ts = symbol, side, ts
        self.qty = self.entry_cost = self.entry_qty = self.exit_value = self.exit_qty = ZERO
        self.gross = self.fees = self.funding = ZERO


class Ledger:
    """Builds round trips per symbol from OrderUpdate fills and funding BalanceUpdates."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._open: dict[str, _Open] = {}
        self._intent: dict[str, str] = {}
        self._seen: OrderedDict[tuple[str, int, str], None] = OrderedDict()
        self.trades: list[ClosedTrade] = []
        bus.subscribe(OrderRequest, self._on_request)
        bus.subscribe(OrderUpdate, self._on_update)
        bus.subscribe(BalanceUpdate, self._on_balance)

    def open_trade(self, symbol: str) -> dict | None:
        """The running trade on ``symbol`` (fees and funding so far), or None."""
        t = self._open.get(symbol)
        if t is None:
            return None
        return {"symbol": t.symbol, "side": t.side, "quantity": t.qty, "fees": t.fees,
                "funding": t.funding, "entry_ts_ms": t.entry_ts,
                "entry_price": t.entry_cost / t.entry_qty if t.entry_qty else ZERO}

    def _on_request(self, req: OrderRequest) -> None:
        self._intent[req.client_order_id] = req.intent

    def _on_balance(self, ev: BalanceUpdate) -> None:
        if ev.reason == "FUNDING_FEE" and ev.symbol in self._open:
            self._open[ev.symbol].funding += ev.change

    def _on_update(self, up: OrderUpdate) -> None:
        if up.last_fill_qty <= 0:
            if up.status.is_final:
                self._intent.pop(up.client_order_id, None)
            return
        key = (up.symbol, up.trade_id, up.client_order_id)
        if up.trade_id and key in self._seen:
            return  # the same fill delivered twice (reconnect replay)
        self._seen[key] = None
        if len(self._seen) > SEEN_FILLS_MAX:
            self._seen.popitem(last=False)
        qty, price = up.last_fill_qty, up.last_fill_price
        signed = qty if up.side is OrderSide.BUY else -qty
        t = self._open.get(up.symbol)
        if t is None:
            t = self._open[up.symbol] = _Open(
                up.symbol, Side.LONG if signed > 0 else Side.SHORT, up.ts_ms)
        opening = (signed > 0) == (t.side is Side.LONG)
        if opening:
            t.entry_cost += price * qty
            t.entry_qty += qty
            t.qty += qty
        else:
            t.exit_value += price * qty
            t.exit_qty += qty
            t.qty -= qty
        t.gross += up.realized_pnl
        t.fees += up.commission
        if t.qty <= 0:
            self._close(t, up)
        if up.status.is_final:
            self._intent.pop(up.client_order_id, None)

    def _close(self, t: _Open, up: OrderUpdate) -> None:
        del self._open[t.symbol]
        reason = _STOP_REASONS.get(up.order_type)
        if reason is None:
            intent = self._intent.get(up.client_order_id, "")
            try:
                reason = ExitReason(intent)
            except ValueError:
                reason = ExitReason.MANUAL  # closed by an order we did not send
        if t.qty < 0:
            logger.error("%s: exit fills exceed the position by %s", t.symbol, -t.qty)
        trade = ClosedTrade(
            symbol=t.symbol, side=t.side, entry_ts_ms=t.entry_ts, exit_ts_ms=up.ts_ms,
            entry_price=t.entry_cost / t.entry_qty, exit_price=t.exit_value / t.exit_qty,
            quantity=t.entry_qty, gross_pnl=t.gross, fees=t.fees, funding=t.funding,
            net_pnl=t.gross - t.fees + t.funding, exit_reason=reason,
        )
        self.trades.append(trade)
        logger.info("trade closed %s %s net %s (%s)", trade.symbol, trade.side.value,
                    trade.net_pnl, reason.value)
        self._bus.publish(TradeClosed(trade=trade, ts_ms=up.ts_ms))
