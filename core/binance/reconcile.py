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
   (``PositionOpened`` of this run, else the state file) or place stops at the adoption
   distance (core/binance/adopt.py) when they are not, cancel our stops without a position.

Only ``symbols`` are traded: positions and orders in other symbols (the account may not be
dedicated) are never adopted, closed or published; each is reported once. An order or algo
order the bot cannot read is skipped and logged, never a reason to fail the pass.

A symbol whose position changed while the pass was reading (a fill, an ACCOUNT_UPDATE) is left
alone and the pass reports itself ``stale``: the adapter runs it again at once, so a fill during
a pass never loses its stops to the stale snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable
from decimal import Decimal
from typing import Any

from core.binance.adopt import AdoptPolicy, KlineReader, adoption_levels
from core.binance.errors import OrderNotFound
from core.binance.models import AlgoStatus, AlgoUpdate
from core.binance.orders import OrderTracker, Tracked
from core.binance.parse import ParseError, parse_algo_order_result
from core.binance.protective import Protection, ProtectiveOrders
from core.binance.protective_sync import adopt, cancel_orphans
from core.binance.rest import RestClient
from core.binance.stops import SL, TP, StopStatus
from core.binance.wire import Fields
from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    EngineError,
    OrderUpdate,
    PositionAdopted,
    PositionUpdate,
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
                 now_ms: Callable[[], int], asset: str = "USDT",
                 adopt_policy: AdoptPolicy | None = None, klines: KlineReader | None = None,
                 unknown_timeout_s: float = 600.0,
                 liquidation: dict[str, Decimal] | None = None) -> None:
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
        self.adopt_policy = adopt_policy or AdoptPolicy()
        self._klines = klines
        self.unknown_timeout_s = unknown_timeout_s
        self.runs = 0
        self.stale = False
        self.reported: set[str] = set()  # foreign symbols / orders reported once
        self.marks: dict[str, Decimal] = {}  # mark prices of the last position snapshot
        #: known liquidation prices (only position reads carry them), shared with the stream
        self.liquidation = liquidation if liquidation is not None else {}

    async def run(self) -> str:
        """One pass; returns a one-line summary. Raises ExchangeError when a read fails
        (nothing half-applied matters: the next pass starts over). ``stale`` is True afterwards
        when a position changed during the pass (run it again)."""
        pos_before, bal_before = dict(self._position_seq), dict(self._balance_seq)
        prot = self._protective
        prot.reconciling = True
        prot.opened_during_pass.clear()
        self.stale = False
        try:
            positions = await self._call("v2/account.position", weight=5)
            balances = await self._call("v2/account.balance", weight=5)
            open_orders = await self._rest.open_orders()
            algos = self._read_algos(await self._rest.open_algo_orders())

            resolved = await self._resolve_orders(open_orders)
            resolved += await self._resolve_stops(algos)
            self._publish_balances(balances, bal_before)
            changed = {s for s in (*self._position_seq, *prot.opened_during_pass)
                       if self._position_seq.get(s, 0) != pos_before.get(s, 0)
                       or s in prot.opened_during_pass}
            open_positions = self._publish_positions(positions, pos_before, changed)
            stops = await self._protect(open_positions, algos, changed)
            changed |= prot.opened_during_pass
            prot.accepting = True
        finally:
            prot.reconciling = False
        self.stale = bool(changed)
        self.runs += 1
        summary = (f"{len(open_positions)} position(s){stops}, {len(algos)} open algo order(s), "
                   f"{resolved} order(s) resolved" + (
                       f"; {', '.join(sorted(changed))} changed during the pass"
                       if changed else ""))
        logger.info("reconciled: %s", summary)
        return summary

    def _report_once(self, key: str, message: str) -> None:
        if key not in self.reported:
            self.reported.add(key)
            logger.warning("%s", message)
            self._bus.publish(EngineError(source="reconcile", message=message,
                                          ts_ms=self._now()))

    def _read_algos(self, rows: list[Any]) -> list[AlgoUpdate]:
        """Open algo orders we can read; foreign or odd ones are skipped (logged once)."""
        out = []
        for row in rows if isinstance(rows, list) else []:
            try:
                au = parse_algo_order_result(row)
            except ParseError as exc:
                cid = row.get("clientAlgoId") if isinstance(row, dict) else None
                key = f"algo:{cid}"
                if key not in self.reported:
                    self.reported.add(key)
                    logger.warning("open algo order %s skipped: %s", cid, exc)
                continue
            if au.symbol not in self.symbols:
                key = f"algo:{au.client_algo_id}"
                if key not in self.reported:
                    self.reported.add(key)
                    logger.warning("open algo order %s on %s (not traded here) left alone",
                                   au.client_algo_id, au.symbol)
                continue
            out.append(au)
        return out

    # ------------------------------------------------------------------ orders

    async def _resolve_orders(self, open_orders: list[dict[str, Any]]) -> int:
        rows = [o for o in open_orders if isinstance(o, dict)] if isinstance(
            open_orders, list) else []
        open_ids = {o.get("clientOrderId") for o in rows}
        for o in rows:
            cid = str(o.get("clientOrderId", ""))
            if not cid.startswith("d5") and self._tracker.get(cid) is None:
                key = f"order:{o.get('symbol')}:{cid}"
                if key not in self.reported:
                    self.reported.add(key)
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
        """Publish what happened to ``t`` (order.status + userTrades). Returns the number of
        updates published.

        A -2013 (not found) is not proof: order queries lag behind an UNKNOWN outcome
        (PROTOCOL.md §10), so the order stays pending (entries stay refused) until it has been
        unknown for ``unknown_timeout_s``; only then is it published as REJECTED."""
        key = ({"orderId": t.order_id} if by_order_id and t.order_id
               else {"origClientOrderId": t.client_order_id})
        try:
            status = await self._call("order.status", {"symbol": t.symbol, **key})
        except OrderNotFound:
            age_s = (self._now() - t.sent_ms) / 1000 if t.sent_ms else 0.0
            if expect_open or age_s < self.unknown_timeout_s:
                return 0
            up = self._tracker.rejected(
                t, f"not found on the exchange for {age_s:.0f}s (never placed)", self._now())
            self._bus.publish(up)
            return 1
        t.unknown = False
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
                if stop.status in (StopStatus.NEW, StopStatus.PENDING_CANCEL) and stop.move(
                        StopStatus.CANCELED):  # neither listed nor found: not on the exchange
                    self._protective.publish(stop, "not on the exchange any more")
                continue
            except ParseError:
                continue
            if stop.status is StopStatus.UNKNOWN:
                stop.move(StopStatus.NEW)
            self._protective.on_algo_update(au, from_stream=False)
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

    def _publish_positions(self, rows: list[dict[str, Any]], before: dict[str, int],
                           changed: set[str]) -> dict[str, PositionUpdate]:
        ts = self._now()
        ups: dict[str, PositionUpdate] = {}
        self.marks = {}
        for row in rows:
            f = Fields(row, "account.position")
            symbol = f.text("symbol")
            if symbol not in self.symbols:
                if f.decimal("positionAmt", "0") != 0:
                    self._report_once(f"position:{symbol}",
                                      f"{symbol} position {f.text('positionAmt')} is not in "
                                      "SYMBOLS: left alone (not adopted, closed or counted)")
                continue
            if f.has("markPrice"):
                self.marks[symbol] = f.decimal("markPrice")
            upnl = f.decimal("unRealizedProfit") if f.has("unRealizedProfit") else f.decimal(
                "unrealizedProfit", "0")
            up = PositionUpdate(
                symbol=f.text("symbol"), quantity=f.decimal("positionAmt"),
                entry_price=f.decimal("entryPrice"), unrealized_pnl=upnl,
                liquidation_price=f.decimal("liquidationPrice", "0"),
                isolated_margin=f.decimal("isolatedMargin", "0"),
                leverage=f.integer("leverage", 0), reason="SNAPSHOT", ts_ms=ts)
            ups[up.symbol] = up
            if up.quantity != 0 and up.liquidation_price > 0:
                self.liquidation[up.symbol] = up.liquidation_price
            else:
                self.liquidation.pop(up.symbol, None)
        for sym in (*self.symbols, *self._protective.positions):
            ups.setdefault(sym, PositionUpdate(symbol=sym, quantity=ZERO, entry_price=ZERO,
                                               reason="SNAPSHOT", ts_ms=ts))
        for sym, up in ups.items():
            if self._position_seq.get(sym, 0) == before.get(sym, 0) and sym not in changed:
                self._bus.publish(up)
        return {s: u for s, u in ups.items() if u.quantity != 0 and s not in changed}

    # ------------------------------------------------------------------ stops

    async def _protect(self, positions: dict[str, PositionUpdate], algos: list[AlgoUpdate],
                       changed: set[str]) -> str:
        prot = self._protective
        cancelled = cancel_orphans(prot, algos, set(positions), changed)
        for sym in [s for s in prot.positions if s not in positions and s not in changed]:
            prot.close(sym, "no position on the exchange")
        notes = []
        for sym, up in positions.items():
            if sym in prot.opened_during_pass:
                continue
            known = sym in prot.positions and prot.positions[sym].confirmed
            state = adopt(prot, sym, up.quantity, algos)
            p = prot.positions[sym]
            p.confirmed = True
            levels = prot.levels.get(sym)
            how = ""
            if state != "adopted" and levels is None:
                ref = self.marks.get(sym) or up.entry_price
                sl, tp, how = await adoption_levels(
                    sym, p.side, ref, self.adopt_policy, self._klines, self._now())
                levels = prot.levels[sym] = (sl, tp)
            if state != "adopted" and levels is not None:
                placed = await prot.ensure(p, *levels)
                state = "placed" if placed else state
                if placed and how:
                    prot.alert(f"{sym} position {up.quantity} had no exchange-side "
                               f"{'/'.join(placed)}: placed at {how} from {ref} "
                               f"(SL {levels[0]}" + (f", TP {levels[1]})" if levels[1] else ")"))
            sl, tp = _stop_levels(p, levels)
            notes.append(f"{sym} stops {state}")
            if not (SL in p.stops and p.stops[SL].open):
                self._bus.publish(EngineError(
                    source="reconcile", ts_ms=self._now(),
                    message=f"{sym} position {up.quantity} has no exchange-side stop loss: "
                            "watch it or close it"))
            if not known:
                side = p.side
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
    sl = prot.stops.get(SL)
    tp = prot.stops.get(TP)
    return (sl.trigger if sl else levels[0] if levels else ZERO,
            tp.trigger if tp else levels[1] if levels else ZERO)


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return ZERO
