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

import json
import logging
from collections import OrderedDict
from decimal import Decimal
from pathlib import Path

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
from utils.files import write_json_atomic

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
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


class LedgerError(ValueError):
    """The ledger file exists but cannot be read; the message names the file."""


class Ledger:
    """Builds round trips per symbol from OrderUpdate fills and funding BalanceUpdates.

    With a ``path`` the running trades (entry fills, fees and funding so far) and the intents of
    orders in flight are saved after every change and loaded at start, so a trade that spans a
    restart is still booked whole.

    Raises:
        LedgerError: ``path`` exists but is not a ledger file.
    """

    def __init__(self, bus: EventBus, path: Path | None = None) -> None:
        self._bus = bus
        self._path = path
        self._open: dict[str, _Open] = {}
        self._intent: dict[str, str] = {}
        self._seen: OrderedDict[tuple[str, int, str], None] = OrderedDict()
        self.trades: list[ClosedTrade] = []
        self._load()
        bus.subscribe(OrderRequest, self._on_request)
        bus.subscribe(OrderUpdate, self._on_update)
        bus.subscribe(BalanceUpdate, self._on_balance)

    # ------------------------------------------------------------------ persistence

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            raw = json.loads(self._path.read_text("utf-8"))
            for sym, d in raw.get("open", {}).items():
                t = _Open(sym, Side(d["side"]), int(d["entry_ts"]))
                for name in _DECIMAL_FIELDS:
                    setattr(t, name, Decimal(d[name]))
                self._open[sym] = t
            self._intent = {str(k): str(v) for k, v in raw.get("intents", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError, OSError) as exc:
            raise LedgerError(f"ledger file {self._path} is unreadable ({type(exc).__name__}); "
                              "fix or move it away, then restart") from None

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {
            "open": {s: {"side": t.side.value, "entry_ts": t.entry_ts,
                         **{n: str(getattr(t, n)) for n in _DECIMAL_FIELDS}}
                     for s, t in self._open.items()},
            "intents": self._intent,
        }
        try:
            write_json_atomic(self._path, doc)
        except OSError as exc:
            logger.error("could not save the ledger to %s: %s", self._path, exc)

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
