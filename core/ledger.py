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
from typing import TYPE_CHECKING, Any

from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    ClosedTrade,
    ExitReason,
    OrderRequest,
    OrderSide,
    OrderType,
    OrderUpdate,
    PositionUpdate,
    Side,
    TradeClosed,
)
from core.persisted import SYMBOL_RE, Fields, PersistError

if TYPE_CHECKING:
    from core.store import Store

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
LEDGER_KEY = "ledger"
LEDGER_VERSION = 1
SEEN_FILLS_MAX = 10_000  # fill ids remembered for de-duplication
_STOP_REASONS = {OrderType.STOP_MARKET: ExitReason.SL,
                 OrderType.TAKE_PROFIT_MARKET: ExitReason.TP,
                 OrderType.LIQUIDATION: ExitReason.LIQUIDATION}


_DECIMAL_FIELDS = ("qty", "entry_cost", "entry_qty", "exit_value", "exit_qty", "gross", "fees",
                   "funding")


class _Open:
    __slots__ = ("symbol", "side", "qty", "entry_ts", "entry_cost", "entry_qty", "exit_value",
                 "exit_qty", "gross", "fees", "funding")

    def __init__(self, symbol: str, side: Side, ts: int) -> None:
        self.symbol, self.side, self.entry_ts = symbol, side, ts
        self.qty = self.entry_cost = self.entry_qty = self.exit_value = self.exit_qty = ZERO
        self.gross = self.fees = self.funding = ZERO


class LedgerError(PersistError):
    """The persisted ledger is invalid; the message names the file and the field."""


class Ledger:
    """Builds round trips per symbol from OrderUpdate fills and funding BalanceUpdates.

    With a ``store`` the running trades (entry fills, fees and funding so far) and the intents
    of orders in flight are staged in the store of record with every change (same transaction
    as the engine state) and loaded at start, so a trade that spans a restart is booked whole.

    Raises:
        LedgerError: the stored ledger document is invalid.
    """

    def __init__(self, bus: EventBus, store: Store | None = None) -> None:
        self._bus = bus
        self._store = store
        self._open: dict[str, _Open] = {}
        self._intent: dict[str, str] = {}
        self._seen: OrderedDict[tuple[str, int, str], None] = OrderedDict()
        self.trades: list[ClosedTrade] = []
        if store is not None and (doc := store.get(LEDGER_KEY)) is not None:
            self.restore(doc, f"{store.path} [{LEDGER_KEY}]")
        bus.subscribe(OrderRequest, self._on_request)
        bus.subscribe(OrderUpdate, self._on_update)
        bus.subscribe(BalanceUpdate, self._on_balance)
        bus.subscribe(PositionUpdate, self._on_position)

    # ------------------------------------------------------------------ persistence

    def restore(self, doc: Any, where: str) -> None:
        """Load a ``snapshot()`` document, validated.

        Raises:
            LedgerError: a field has the wrong type, is not finite or out of range, or the
                version is unknown (``where`` and the field are named).
        """
        try:
            f = Fields(doc, where)
            f.version(LEDGER_VERSION)
            opened: dict[str, _Open] = {}
            for sym in f.obj("open"):
                d = f.sub("open", sym)
                if not SYMBOL_RE.match(sym):
                    d.fail("", "is not a symbol")
                t = _Open(sym, d.enum("side", Side), d.ts("entry_ts"))
                for name in _DECIMAL_FIELDS:
                    signed = name in ("gross", "funding")
                    setattr(t, name, d.dec(name, minimum=None if signed else ZERO))
                opened[sym] = t
            intents = f.obj("intents")
            for cid, intent in intents.items():
                if not isinstance(intent, str):
                    f.fail(f"intents.{cid}", f"must be a string, got {type(intent).__name__}")
        except PersistError as exc:
            raise LedgerError(str(exc)) from None
        self._open, self._intent = opened, dict(intents)

    def snapshot(self) -> dict[str, Any]:
        """Running trades and order intents, JSON-ready (money as decimal strings)."""
        return {
            "version": LEDGER_VERSION,
            "open": {s: {"side": t.side.value, "entry_ts": t.entry_ts,
                         **{n: str(getattr(t, n)) for n in _DECIMAL_FIELDS}}
                     for s, t in self._open.items()},
            "intents": dict(self._intent),
        }

    def _save(self) -> None:
        if self._store is not None:
            self._store.stage(LEDGER_KEY, self.snapshot)

    def reconcile(self, symbol: str, quantity: Decimal, entry_price: Decimal,
                  ts_ms: int) -> str:
        """Check the running trade on ``symbol`` against the position the exchange (or paper
        account) reports: signed ``quantity`` (base asset), ``entry_price`` (USDT).

        A running trade without a position is dropped (its exit was never seen: no fill, no
        PnL can be booked); a position without a running trade starts one at the position's
        entry price; a differing size is corrected. Returns what was done ("" = agreed).
        """
        t = self._open.get(symbol)
        qty = abs(quantity)
        if t is None and not qty:
            return ""
        if t is None:
            t = self._open[symbol] = _Open(symbol, Side.LONG if quantity > 0 else Side.SHORT,
                                           ts_ms)
            t.qty = t.entry_qty = qty
            t.entry_cost = qty * entry_price
            note = f"{symbol}: running trade started from the position ({quantity})"
        elif not qty:
            del self._open[symbol]
            note = f"{symbol}: running trade of {t.qty} dropped: no position"
        elif t.qty != qty or (quantity > 0) != (t.side is Side.LONG):
            if (quantity > 0) != (t.side is Side.LONG):
                del self._open[symbol]
                return self.reconcile(symbol, quantity, entry_price, ts_ms)
            note = f"{symbol}: running trade size {t.qty} corrected to {qty}"
            avg = t.entry_cost / t.entry_qty if t.entry_qty else entry_price
            t.entry_qty = max(t.entry_qty + qty - t.qty, qty)
            t.entry_cost = avg * t.entry_qty
            t.qty = qty
        else:
            return ""
        logger.warning("ledger recovery: %s", note)
        self._save()
        return note

    @property
    def open_symbols(self) -> list[str]:
        return list(self._open)

    def open_trade(self, symbol: str) -> dict | None:
        """The running trade on ``symbol`` (fees and funding so far), or None."""
        t = self._open.get(symbol)
        if t is None:
            return None
        return {"symbol": t.symbol, "side": t.side, "quantity": t.qty, "fees": t.fees,
                "funding": t.funding, "entry_ts_ms": t.entry_ts,
                "entry_price": t.entry_cost / t.entry_qty if t.entry_qty else ZERO}

    def _on_position(self, up: PositionUpdate) -> None:
        if up.reason == "SNAPSHOT":  # the exchange's full view (start, reconnect): check it
            self.reconcile(up.symbol, up.quantity, up.entry_price, up.ts_ms)

    def _on_request(self, req: OrderRequest) -> None:
        self._intent[req.client_order_id] = req.intent
        self._save()

    def _on_balance(self, ev: BalanceUpdate) -> None:
        if ev.reason == "FUNDING_FEE" and ev.symbol in self._open:
            self._open[ev.symbol].funding += ev.change
            self._save()

    def _on_update(self, up: OrderUpdate) -> None:
        if up.last_fill_qty <= 0:
            if up.status.is_final and self._intent.pop(up.client_order_id, None) is not None:
                self._save()
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
        self._save()

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
