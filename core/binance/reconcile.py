"""Reconciliation: rebuild our view from the exchange before trading (STYLE.md §5).

Runs at startup and after every (re)connect of the user stream, because events may have been
missed while it was down. In order:

1. read positions (``v2/account.position``), balances (``v2/account.balance``), open orders and
   open algo orders (REST; the WS API has no method for them, PROTOCOL.md §2.5);
2. resolve our orders whose final state was never seen (in flight at a disconnect, UNKNOWN
   outcomes, orders of the previous run from the state file) with ``order.status`` and their
   ``userTrades``: missed fills are published, each exactly once (core/binance/orders.py);
3. resolve our stops that are no longer open (they triggered while we were away): their fills
   are published as STOP_MARKET / TAKE_PROFIT_MARKET, so the ledger books SL / TP;
4. publish the balance and position snapshots (``reason="SNAPSHOT"``). ORDERING adopts a
   position it does not know and drops one the exchange no longer has. A snapshot is skipped
   for a symbol (asset) the stream updated while the snapshot was being read: the stream's
   value is newer;
5. adopt our stops of each open position, re-place missing ones when the levels are known
   (``PositionOpened`` of this run, else the state file), cancel our stops without a position.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable
from decimal import Decimal
from typing import Any

from core.binance.errors import OrderNotFound
from core.binance.models import AlgoStatus, AlgoUpdate
from core.binance.orders import OrderTracker, Tracked
from core.binance.parse import parse_algo_order_result
from core.binance.protective import Protection, ProtectiveOrders
from core.binance.rest import RestClient
from core.binance.wire import Fields
from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    EngineError,
    OrderUpdate,
    PositionAdopted,
    PositionUpdate,
    Side,
)

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


class Reconciler:
    """One reconciliation pass per ``run()``; see the module docstring.

    Args:
        call: the WS API ``call`` coroutine function.
        position_seq / balance_seq: per symbol / asset counters the adapter increments for every
            stream update it publishes (to detect a snapshot that is already stale).
        in_flight: client ids whose placement task is still running (not resolved here).
    """

    def __init__(self, bus: EventBus, *, call: Callable[..., Coroutine[Any, Any, Any]],
                 rest: RestClient, tracker: OrderTracker, protective: ProtectiveOrders,
                 symbols: Iterable[str], position_seq: dict[str, int],
                 balance_seq: dict[str, int], in_flight: set[str],
                 now_ms: Callable[[], int], asset: str = "USDT") -> None:
        self._bus = bus
        self._call = call
        self._rest = rest
        self._tracker = tracker
        self._protective = protective
        self.symbols = tuple(symbols)
        self._position_seq = position_seq
        self._balance_seq = balance_seq
        self._in_flight = in_flight
        self._now = now_ms
        self.asset = asset
        self.runs = 0

    async def run(self) -> str:
        """One pass; returns a one-line summary. Raises ExchangeError when a read fails
        (nothing half-applied matters: the next pass starts over)."""
        pos_before, bal_before = dict(self._position_seq), dict(self._balance_seq)
        self._protective.reconciling = True
        try:
            positions = await self._call("v2/account.position", weight=5)
            balances = await self._call("v2/account.balance", weight=5)
            open_orders = await self._rest.open_orders()
            algos = [parse_algo_order_result(a) for a in await self._rest.open_algo_orders()]

            resolved = await self._resolve_orders(open_orders)
            resolved += await self._resolve_stops(algos)
            self._publish_balances(balances, bal_before)
            open_positions = self._publish_positions(positions, pos_before)
            stops = await self._protect(open_positions, algos)
            self._protective.accepting = True
        finally:
            self._protective.reconciling = False
        self.runs += 1
        summary = (f"{len(open_positions)} position(s){stops}, {len(algos)} open algo order(s), "
                   f"{resolved} order(s) resolved")
        logger.info("reconciled: %s", summary)
        return summary

    # ------------------------------------------------------------------ orders

    async def _resolve_orders(self, open_orders: list[dict[str, Any]]) -> int:
        open_ids = {o.get("clientOrderId") for o in open_orders}
        for o in open_orders:
            cid = str(o.get("clientOrderId", ""))
            if not cid.startswith("d5") and self._tracker.get(cid) is None:
                logger.warning("open order %s %s %s was not placed by this bot; leaving it",
                               o.get("symbol"), o.get("side"), o.get("type"))
        n = 0
        for t in self._tracker.open_orders():
            if t.client_order_id in self._in_flight:
                continue
            n += await self.resolve_order(t, expect_open=t.client_order_id in open_ids)
        return n

    async def resolve_order(self, t: Tracked, *, expect_open: bool = False,
                            by_order_id: bool = False) -> int:
        """Publish what happened to ``t`` (order.status + userTrades). A -2013 (not found)
        means it never reached the exchange: it is published as REJECTED. Returns the number
        of updates published."""
        key = ({"orderId": t.order_id} if by_order_id and t.order_id
               else {"origClientOrderId": t.client_order_id})
        try:
            status = await self._call("order.status", {"symbol": t.symbol, **key})
        except OrderNotFound:
            if expect_open:
                return 0
            up = self._tracker.rejected(t, "not found on the exchange (never placed)",
                                        self._now())
            self._bus.publish(up)
            return 1
        trades = None
        if _dec(status.get("executedQty")) > t.filled:
            try:
                trades = await self._rest.user_trades(t.symbol, int(status["orderId"]))
            except Exception as exc:  # fall back to one fill at the average price
                logger.warning("userTrades of %s failed (%s); using order.status", t.symbol, exc)
        updates = self._tracker.resolve(t, status, trades, self._now())
        for up in updates:
            self._publish_update(up)
        return len(updates)

    def _publish_update(self, up: OrderUpdate) -> None:
        if up.is_fill:
            logger.warning("recovered fill %s %s %s @ %s (trade %s) missed by the stream",
                           up.symbol, up.side.value, up.last_fill_qty, up.last_fill_price,
                           up.trade_id)
        self._bus.publish(up)

    async def _resolve_stops(self, algos: list[AlgoUpdate]) -> int:
        """Our stops we believe open but the exchange no longer lists: read their fate."""
        listed = {a.client_algo_id for a in algos}
        n = 0
        for stop in self._protective.tracked_open_stops():
            if stop.client_algo_id in listed:
                continue
            try:
                au = parse_algo_order_result(await self._rest.algo_order(stop.client_algo_id))
            except OrderNotFound:
                continue
            self._protective.on_algo_update(au)
            t = self._tracker.get(stop.client_algo_id)
            if au.me_order_id is not None and t is not None and au.status in (
                    AlgoStatus.TRIGGERED, AlgoStatus.FINISHED):
                t.order_id = au.me_order_id
                t.final = False
                n += await self.resolve_order(t, by_order_id=True)
        return n

    # ------------------------------------------------------------------ snapshots

    def _publish_balances(self, rows: list[dict[str, Any]], before: dict[str, int]) -> None:
        ts = self._now()
        for row in rows:
            f = Fields(row, "account.balance")
            asset = f.text("asset")
            if self._balance_seq.get(asset, 0) != before.get(asset, 0):
                continue
            wallet = f.decimal("balance")
            if wallet == 0 and asset != self.asset:
                continue  # empty wallets of other assets
            self._bus.publish(BalanceUpdate(
                asset=asset, wallet_balance=wallet, available_balance=f.decimal(
                    "availableBalance", "0"), reason="SNAPSHOT", ts_ms=ts))

    def _publish_positions(self, rows: list[dict[str, Any]],
                           before: dict[str, int]) -> dict[str, PositionUpdate]:
        ts = self._now()
        ups: dict[str, PositionUpdate] = {}
        for row in rows:
            f = Fields(row, "account.position")
            upnl = f.decimal("unRealizedProfit") if f.has("unRealizedProfit") else f.decimal(
                "unrealizedProfit", "0")
            up = PositionUpdate(
                symbol=f.text("symbol"), quantity=f.decimal("positionAmt"),
                entry_price=f.decimal("entryPrice"), unrealized_pnl=upnl,
                liquidation_price=f.decimal("liquidationPrice", "0"),
                isolated_margin=f.decimal("isolatedMargin", "0"),
                leverage=f.integer("leverage", 0), reason="SNAPSHOT", ts_ms=ts)
            ups[up.symbol] = up
        for sym in (*self.symbols, *self._protective.positions):
            ups.setdefault(sym, PositionUpdate(symbol=sym, quantity=ZERO, entry_price=ZERO,
                                               reason="SNAPSHOT", ts_ms=ts))
        for sym, up in ups.items():
            if self._position_seq.get(sym, 0) == before.get(sym, 0):
                self._bus.publish(up)
        return {s: u for s, u in ups.items() if u.quantity != 0}

    # ------------------------------------------------------------------ stops

    async def _protect(self, positions: dict[str, PositionUpdate],
                       algos: list[AlgoUpdate]) -> str:
        prot = self._protective
        cancelled = prot.cancel_orphans(algos, set(positions))
        for sym in [s for s in prot.positions if s not in positions]:
            prot.close(sym, "no position on the exchange")
        notes = []
        for sym, up in positions.items():
            known = sym in prot.positions and prot.positions[sym].confirmed
            state = prot.adopt(sym, up.quantity, algos)
            prot.positions[sym].confirmed = True
            levels = prot.levels.get(sym)
            if state != "adopted" and levels is not None:
                placed = await prot.ensure(prot.positions[sym], *levels)
                state = "placed" if placed else state
            sl, tp = _stop_levels(prot.positions[sym], levels)
            notes.append(f"{sym} stops {state}")
            if state in ("none", "partial") and levels is None:
                self._bus.publish(EngineError(
                    source="reconcile", ts_ms=self._now(),
                    message=f"{sym} position {up.quantity} has no exchange-side "
                            f"{'SL/TP' if state == 'none' else 'SL or TP'} and its levels are "
                            "unknown: watch it or close it"))
            if not known:
                side = Side.LONG if up.quantity > 0 else Side.SHORT
                logger.warning("adopted %s %s %s @ %s, stops %s", sym, side.value, up.quantity,
                               up.entry_price, state)
                self._bus.publish(PositionAdopted(
                    symbol=sym, quantity=up.quantity, entry_price=up.entry_price,
                    stop_loss=sl, take_profit=tp, stops=state, ts_ms=self._now()))
        if cancelled:
            notes.append(f"{cancelled} orphan stop(s) cancelled")
        return (" (" + "; ".join(notes) + ")") if notes else ""


def _stop_levels(prot: Protection, levels: tuple[Decimal, Decimal] | None
                 ) -> tuple[Decimal, Decimal]:
    sl = prot.stops.get("SL")
    tp = prot.stops.get("TP")
    return (sl.trigger if sl else levels[0] if levels else ZERO,
            tp.trigger if tp else levels[1] if levels else ZERO)


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return ZERO
