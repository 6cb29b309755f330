"""User data stream messages -> engine events (shared/binance/PROTOCOL.md §3).

* ORDER_TRADE_UPDATE -> ``OrderUpdate``: the only source of fills, each published once
  (core/binance/orders.py); a triggered SL/TP keeps its STOP_MARKET / TAKE_PROFIT_MARKET type.
* ACCOUNT_UPDATE -> ``BalanceUpdate`` per ``B`` entry, ``PositionUpdate`` per ``P`` entry.
* ALGO_UPDATE -> the protective-order manager (which publishes ``ProtectiveOrderUpdate``).
* TRADE_LITE -> counted only: it has no fee and no realized PnL, and the ORDER_TRADE_UPDATE of
  the same trade follows; publishing both would count the fill twice.
* MARGIN_CALL -> ``MarginCall``; ACCOUNT_CONFIG_UPDATE -> ``AccountConfigChanged``.
* listenKeyExpired -> ``on_expired`` (new key, reconnect, reconcile).

Per symbol / asset counters of stream updates let reconciliation tell a stale snapshot.

Symbols outside ``symbols`` (the account may not be dedicated): their positions and the orders
the bot did not place are not published, so ORDERING never adopts or counts them; each symbol
is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal

import orjson

from core.binance import models
from core.binance.orders import OrderTracker
from core.binance.parse import ParseError, parse_user_event
from core.binance.protective import ProtectiveOrders
from core.binance.wire import unwrap
from core.event_bus import EventBus
from core.events import AccountConfigChanged, MarginCall, OrderUpdate

logger = logging.getLogger(__name__)


class UserEventRouter:
    """Callable on each raw user-stream frame (sync, on the reader's stack)."""

    def __init__(self, bus: EventBus, *, tracker: OrderTracker, protective: ProtectiveOrders,
                 on_expired: Callable[[], None], symbols: Iterable[str] | None = None) -> None:
        self._publish = bus.publish
        self.symbols = frozenset(symbols) if symbols is not None else None
        self.foreign: set[str] = set()
        #: last known liquidation price per symbol (from position reads): ACCOUNT_UPDATE has
        #: none (PROTOCOL.md §10), and must not overwrite it with 0
        self.liquidation: dict[str, Decimal] = {}
        self._tracker = tracker
        self._protective = protective
        self._on_expired = on_expired
        self.position_seq: dict[str, int] = {}
        self.balance_seq: dict[str, int] = {}
        self.trade_lites = 0
        self.bad_messages = 0

    def __call__(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
            ev = parse_user_event(msg)
        except (orjson.JSONDecodeError, ParseError) as exc:
            self.bad_messages += 1
            logger.warning("user stream: bad message skipped (%s)", exc)
            return
        publish = self._publish
        if isinstance(ev, OrderUpdate):
            if self._foreign(ev.symbol) and self._tracker.get(ev.client_order_id) is None:
                return
            orig_type = str(unwrap(msg)["o"].get("ot", ""))
            out = self._tracker.on_stream_update(ev, orig_type)
            if out is not None:
                publish(out)
        elif isinstance(ev, tuple):
            balances, positions = ev
            for b in balances:
                self.balance_seq[b.asset] = self.balance_seq.get(b.asset, 0) + 1
                publish(b)
            for p in positions:
                if self._foreign(p.symbol):
                    continue
                known = self.liquidation.get(p.symbol)
                if p.quantity == 0:
                    self.liquidation.pop(p.symbol, None)
                elif known and not p.liquidation_price:
                    p = replace(p, liquidation_price=known)
                self.position_seq[p.symbol] = self.position_seq.get(p.symbol, 0) + 1
                publish(p)
        elif isinstance(ev, models.AlgoUpdate):
            self._protective.on_algo_update(ev)
        elif isinstance(ev, models.TradeLite):
            self.trade_lites += 1
        elif isinstance(ev, models.MarginCall):
            symbols = tuple(p.symbol for p in ev.positions)
            logger.warning("MARGIN CALL on %s", ", ".join(symbols))
            publish(MarginCall(symbols=symbols,
                               maintenance_margin=sum((p.maintenance_margin
                                                       for p in ev.positions), Decimal(0)),
                               cross_wallet_balance=ev.cross_wallet_balance, ts_ms=ev.ts_ms))
        elif isinstance(ev, models.AccountConfigUpdate):
            publish(AccountConfigChanged(symbol=ev.symbol, leverage=ev.leverage,
                                         multi_assets=ev.multi_assets, ts_ms=ev.ts_ms))
        elif isinstance(ev, models.ListenKeyExpired):
            self._on_expired()

    def _foreign(self, symbol: str) -> bool:
        if self.symbols is None or symbol in self.symbols:
            return False
        if symbol not in self.foreign:
            self.foreign.add(symbol)
            logger.warning("user stream: %s is not in SYMBOLS; its positions and orders are "
                           "left alone", symbol)
        return True
