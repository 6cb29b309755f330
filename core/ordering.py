"""ORDERING: the only module that opens or closes a position.

One position at a time across every configured symbol, held by an explicit state machine::

    FLAT --signal accepted--> ENTERING --entry done, qty>0--> OPEN --close--> EXITING
         --qty 0--> FLAT
                              ENTERING --entry failed, qty 0--> FLAT
                                                             OPEN <--exit failed, qty>0-- EXITING
    OPEN/ENTERING/EXITING --exchange reports position 0--> FLAT   (stop, liquidation, manual)
    FLAT --exchange reports a position--> OPEN                     (adopted)
    ENTERING/EXITING, no order in flight --exchange reports a position--> OPEN  (recovery)

Every transition goes through ``_transition`` (the table ``TRANSITIONS`` is the only door) and is
persisted with the state. The bus is synchronous, so handlers run one at a time: the phase is
set to ENTERING/EXITING *before* the order is handed to the connection, so a second signal or
close cannot slip in between (the single "lock" of the design).

Sizes come from fills: ``OrderUpdate.filled_qty`` (cumulative, so a duplicate update is
harmless) moves the position; ``PositionUpdate`` from the exchange overrides it when they differ.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from core.balance import BalanceStore
from core.crashpoints import crash_point
from core.event_bus import EventBus
from core.events import (
    CloseRequest,
    EngineError,
    EngineMode,
    ExitReason,
    HaltRequest,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionOpened,
    PositionPhase,
    PositionUpdate,
    RiskApproved,
    Side,
    SignalRejected,
    StateChanged,
    TradeSignal,
)
from core.filters import FilterError, check_min_notional, round_price, round_quantity
from core.ports import Connection
from core.state import EngineState, TrackedOrder

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
MAX_EXIT_ATTEMPTS = 3

F, EN, OP, EX = (PositionPhase.FLAT, PositionPhase.ENTERING, PositionPhase.OPEN,
                 PositionPhase.EXITING)

#: (phase, trigger) -> next phase. Anything not listed is refused.
TRANSITIONS: dict[tuple[PositionPhase, str], PositionPhase] = {
    (F, "signal_accepted"): EN,
    (EN, "entry_filled"): OP,
    (EN, "entry_failed"): F,
    (OP, "close_requested"): EX,
    (EX, "exit_done"): F,
    (EX, "exit_failed"): OP,
    (EN, "position_gone"): F,
    (OP, "position_gone"): F,
    (EX, "position_gone"): F,
    (F, "position_adopted"): OP,
    (EN, "position_confirmed"): OP,
    (EX, "position_confirmed"): OP,
}


class TransitionError(RuntimeError):
    """A trigger that the state table does not allow in the current phase (a bug)."""


class Ordering:
    """Turns signals and close requests into orders, one position at a time.

    Signals arrive as ``RiskApproved`` (RISK, core/risk/, checked them first); a bare
    ``TradeSignal`` never opens anything. ``HaltRequest`` trips the kill switch.

    Args:
        bus: engine bus; subscribes to RiskApproved, CloseRequest, OrderUpdate, PositionUpdate,
            HaltRequest.
        connection: where orders go (paper or live).
        state: the persisted engine state (mode, phase, position, orders).
        balance: balance store for the available-balance check.
        max_notional: largest allowed entry notional, USDT.
        asset: margin asset whose available balance backs positions.
        taker_fee: fraction, used to reserve the entry fee in the balance check.
    """

    def __init__(
        self,
        bus: EventBus,
        connection: Connection,
        state: EngineState,
        balance: BalanceStore,
        *,
        max_notional: Decimal,
        asset: str = "USDT",
        taker_fee: Decimal = Decimal("0.0005"),
    ) -> None:
        self._bus = bus
        self._conn = connection
        self.state = state
        self._balance = balance
        self.max_notional = max_notional
        self.asset = asset
        self.taker_fee = taker_fee
        self._pending_levels: tuple[Decimal, Decimal, Decimal] | None = None  # sl, tp, ref price
        self._entry_reason = ""  # the accepted signal's reason, for PositionOpened
        bus.subscribe(RiskApproved, self._on_approved)
        bus.subscribe(CloseRequest, self.on_close_request)
        bus.subscribe(HaltRequest, self.on_halt_request)
        bus.subscribe(OrderUpdate, self.on_order_update)
        bus.subscribe(PositionUpdate, self.on_position_update)

    @property
    def phase(self) -> PositionPhase:
        return self.state.phase

    # ------------------------------------------------------------------ transitions

    def _transition(self, trigger: str, ts_ms: int, reason: str = "") -> None:
        old = self.state.phase
        new = TRANSITIONS.get((old, trigger))
        if new is None:
            raise TransitionError(f"{trigger} is not allowed in phase {old.value}")
        self.state.phase = new
        if new is F:
            self.state.clear_position()
        self.state.save()
        logger.info("phase %s -> %s (%s) %s", old.value, new.value, trigger, reason)
        self._bus.publish(StateChanged(what="phase", old=old.value, new=new.value,
                                       reason=reason or trigger, symbol=self.state.symbol,
                                       ts_ms=ts_ms))

    # ------------------------------------------------------------------ signals

    def _on_approved(self, ev: RiskApproved) -> None:
        self.on_signal(ev.signal)

    def on_signal(self, sig: TradeSignal) -> None:
        reason, qty = self._check_signal(sig)
        if reason:
            logger.info("signal %s %s rejected: %s", sig.symbol, sig.side.value, reason)
            self._bus.publish(SignalRejected(signal=sig, reason=reason, ts_ms=sig.ts_ms))
            return
        st = self.state
        st.symbol, st.side, st.quantity = sig.symbol, sig.side, ZERO
        self._pending_levels = (sig.stop_loss, sig.take_profit, sig.entry_price)
        self._entry_reason = sig.reason
        st.stop_loss, st.take_profit = sig.stop_loss, sig.take_profit
        self._transition("signal_accepted", sig.ts_ms, sig.reason)
        self._submit(sig.symbol, sig.side.entry_order_side, qty, "ENTRY", sig.ts_ms,
                     reduce_only=False)

    def _check_signal(self, sig: TradeSignal) -> tuple[str, Decimal]:
        """Pre-trade checks: ``(why sig cannot be traded now, "")`` or ``("", quantity)`` with
        the quantity floored to the market step size."""
        st = self.state
        if st.mode is not EngineMode.ARMED:
            return f"engine is {st.mode.value}", ZERO
        if st.phase is not F:
            return f"a position is already {st.phase.value} on {st.symbol}", ZERO
        if st.store is not None and st.store.failing:
            return f"state cannot be saved ({st.store.last_error}): no new entries", ZERO
        try:
            f = self._conn.filters(sig.symbol)
        except KeyError as exc:
            return str(exc.args[0]), ZERO
        if f.status != "TRADING":
            return f"{sig.symbol} is not trading ({f.status})", ZERO
        if sig.leverage > f.max_leverage:
            return f"leverage {sig.leverage}x exceeds the maximum {f.max_leverage}x", ZERO
        price = self._conn.reference_price(sig.symbol) or sig.entry_price
        try:
            qty = round_quantity(sig.quantity, f, market=True)
            check_min_notional(qty, price, f)
        except FilterError as exc:
            return str(exc), ZERO
        notional = qty * price
        if notional > self.max_notional:
            return f"notional {notional:.2f} exceeds MAX_NOTIONAL {self.max_notional}", ZERO
        need = notional / sig.leverage + notional * self.taker_fee
        available = self._balance.available(self.asset)
        if need > available:
            return f"margin {need:.2f} {self.asset} exceeds the available {available:.2f}", ZERO
        return "", qty

    # ------------------------------------------------------------------ closes

    def on_close_request(self, req: CloseRequest) -> None:
        st = self.state
        if st.phase is F or (st.symbol and req.symbol != st.symbol):
            logger.info("close %s ignored: no position on it", req.symbol)
            return
        if st.phase is EN:
            st.close_pending = req.reason.value  # close as soon as the entry completes
            st.save()
            return
        if st.phase is EX:
            return  # already closing
        self._start_exit(req.reason, req.ts_ms, req.detail, req.trigger_price)

    def _start_exit(self, reason: ExitReason, ts_ms: int, detail: str = "",
                    trigger_price: Decimal | None = None) -> None:
        st = self.state
        st.exit_attempts += 1
        self._transition("close_requested", ts_ms, f"{reason.value} {detail}".strip())
        assert st.side is not None, "a position being closed has a side"
        self._submit(st.symbol, st.side.exit_order_side, st.quantity, reason.value, ts_ms,
                     reduce_only=True, trigger_price=trigger_price)

    def _submit(self, symbol, side, qty: Decimal, intent: str, ts_ms: int, *,
                reduce_only: bool, trigger_price: Decimal | None = None) -> None:
        st = self.state
        cid = st.next_client_order_id("E" if intent == "ENTRY" else "X", ts_ms)
        st.orders[cid] = TrackedOrder(
            client_order_id=cid, symbol=symbol, side=side.value, quantity=qty, intent=intent,
            reduce_only=reduce_only, submitted_ms=ts_ms,
        )
        st.save()  # recorded as submitted before sending: the fill may arrive first
        request = OrderRequest(
            symbol=symbol, side=side, order_type=OrderType.MARKET, quantity=qty,
            client_order_id=cid, reduce_only=reduce_only, intent=intent,
            trigger_price=trigger_price, ts_ms=ts_ms,
        )
        self._bus.publish(request)  # journal and ledger see it before any answer
        crash_point("ordering:submit")
        self._conn.submit_order(request)

    # ------------------------------------------------------------------ exchange feedback

    def on_order_update(self, up: OrderUpdate) -> None:
        st = self.state
        order = st.orders.get(up.client_order_id)
        if order is None:
            return  # not ours (liquidation, exchange-side stop, another client)
        if up.filled_qty > order.filled_qty:
            delta = up.filled_qty - order.filled_qty
            order.filled_qty = up.filled_qty
            self._apply_fill(order, delta, up)
        order.status = up.status.value
        if not up.status.is_final:
            st.save()
            return
        del st.orders[up.client_order_id]
        if order.intent == "ENTRY" and st.phase is EN:
            self._finish_entry(order, up)
        elif order.intent != "ENTRY" and st.phase is EX:
            self._finish_exit(order, up)
        else:
            st.save()

    def _apply_fill(self, order: TrackedOrder, delta: Decimal, up: OrderUpdate) -> None:
        st = self.state
        if order.intent == "ENTRY":
            price = up.last_fill_price or up.avg_price
            total = st.quantity + delta
            st.entry_price = (st.entry_price * st.quantity + price * delta) / total
            st.quantity = total
            if not st.opened_ms:
                st.opened_ms = up.ts_ms
        else:
            st.quantity = max(st.quantity - delta, ZERO)

    def _finish_entry(self, order: TrackedOrder, up: OrderUpdate) -> None:
        st = self.state
        if st.quantity <= 0:
            reason = up.reason or up.status.value
            self._transition("entry_failed", up.ts_ms, f"entry {up.status.value}: {reason}")
            if up.status is OrderStatus.REJECTED:
                self._bus.publish(EngineError(source="ordering", ts_ms=up.ts_ms,
                                              message=f"entry order rejected: {reason}"))
            return
        self._anchor_levels()
        self._transition("entry_filled", up.ts_ms)
        assert st.side is not None, "an entry that filled has a side"
        self._bus.publish(PositionOpened(
            symbol=st.symbol, side=st.side, quantity=st.quantity, entry_price=st.entry_price,
            stop_loss=st.stop_loss, take_profit=st.take_profit, ts_ms=up.ts_ms,
            reason=self._entry_reason,
        ))
        if st.close_pending:
            self._start_exit(ExitReason(st.close_pending), up.ts_ms, "requested while entering")

    def _anchor_levels(self) -> None:
        """Keep the signal's SL/TP distances, measured from the actual average entry price."""
        st = self.state
        if self._pending_levels is None:
            return
        sl, tp, ref = self._pending_levels
        self._pending_levels = None
        shift = st.entry_price - ref
        try:
            f = self._conn.filters(st.symbol)
            st.stop_loss = round_price(sl + shift, f)
            st.take_profit = round_price(tp + shift, f)
        except KeyError:
            st.stop_loss, st.take_profit = sl + shift, tp + shift

    def _finish_exit(self, order: TrackedOrder, up: OrderUpdate) -> None:
        st = self.state
        if st.quantity <= 0:
            self._transition("exit_done", up.ts_ms, order.intent)
            return
        msg = f"exit {up.status.value} with {st.quantity} {st.symbol} still open: {up.reason}"
        self._transition("exit_failed", up.ts_ms, msg)
        self._bus.publish(EngineError(source="ordering", message=msg, ts_ms=up.ts_ms))
        if st.exit_attempts >= MAX_EXIT_ATTEMPTS:
            self.halt(up.ts_ms, f"{MAX_EXIT_ATTEMPTS} exit attempts failed")

    def on_position_update(self, up: PositionUpdate) -> None:
        """Reconcile with the exchange's view of the position (authoritative)."""
        st = self.state
        if st.phase is F:
            if up.quantity != 0:
                st.symbol = up.symbol
                st.side = Side.LONG if up.quantity > 0 else Side.SHORT
                st.quantity, st.entry_price = abs(up.quantity), up.entry_price
                st.opened_ms = up.ts_ms
                self._transition("position_adopted", up.ts_ms, "position found on the exchange")
            return
        if up.symbol != st.symbol:
            return
        if st.phase is not OP and not st.orders:
            # ENTERING/EXITING with no order in flight (none recorded, or all resolved): nothing
            # will move it, so it goes to where the exchange says.
            if up.quantity == 0:
                self._transition("position_gone", up.ts_ms, "no order in flight, no position")
            else:
                self._confirm_position(up)
            return
        if up.quantity == 0:
            if st.phase is EN:
                if st.quantity == 0:
                    return  # the entry has not filled yet: nothing to reconcile
                # What filled is gone (liquidated or closed on the exchange) but the entry order
                # may still be live: cancel it and let its final update decide OPEN or FLAT,
                # so no second entry can start beside it.
                st.quantity = ZERO
                live = [o for o in st.orders.values() if o.intent == "ENTRY"]
                if live:
                    st.save()
                    for o in live:
                        self._conn.cancel_order(o.symbol, o.client_order_id)
                    return
            self._transition("position_gone", up.ts_ms, up.reason or "position closed")
        elif abs(up.quantity) != st.quantity and st.phase is OP:
            logger.warning("position size %s differs from the exchange's %s; adopting",
                           st.quantity, abs(up.quantity))
            st.quantity, st.entry_price = abs(up.quantity), up.entry_price
            st.save()

    def _confirm_position(self, up: PositionUpdate) -> None:
        st = self.state
        side = Side.LONG if up.quantity > 0 else Side.SHORT
        if side is not st.side:
            st.stop_loss = st.take_profit = ZERO  # levels of the other direction mean nothing
        st.side, st.quantity, st.entry_price = side, abs(up.quantity), up.entry_price
        st.opened_ms = st.opened_ms or up.ts_ms
        st.close_pending, st.exit_attempts = "", 0
        self._pending_levels = None
        self._transition("position_confirmed", up.ts_ms, "no order in flight; position found")
        self._bus.publish(PositionOpened(
            symbol=st.symbol, side=st.side, quantity=st.quantity, entry_price=st.entry_price,
            stop_loss=st.stop_loss, take_profit=st.take_profit, ts_ms=up.ts_ms,
        ))

    # ------------------------------------------------------------------ mode

    def set_mode(self, mode: EngineMode, ts_ms: int, reason: str = "") -> None:
        """Change the engine mode. HALTED keeps ``reason`` and the time in the state until
        the mode changes again."""
        old = self.state.mode
        if old is mode:
            return
        self.state.mode = mode
        if mode is EngineMode.HALTED:
            self.state.halt_reason, self.state.halted_ms = reason or "halted", ts_ms
        else:
            self.state.halt_reason, self.state.halted_ms = "", 0
        self.state.save()
        logger.info("mode %s -> %s %s", old.value, mode.value, reason)
        self._bus.publish(StateChanged(what="mode", old=old.value, new=mode.value,
                                       reason=reason, ts_ms=ts_ms))

    def halt(self, ts_ms: int, reason: str) -> None:
        self.set_mode(EngineMode.HALTED, ts_ms, reason)

    def on_halt_request(self, req: HaltRequest) -> None:
        """The kill switch: HALTED (no entry can start), entry orders in flight cancelled, the
        position closed at market (exit reason HALT; an entry still filling closes as soon as
        it completes). Exchange-side stops go with the position (the live adapter cancels
        them once it is closed)."""
        st = self.state
        self.halt(req.ts_ms, req.reason)
        for order in [o for o in st.orders.values() if o.intent == "ENTRY"]:
            self._conn.cancel_order(order.symbol, order.client_order_id)
        if st.phase is not F and st.symbol:
            self.on_close_request(CloseRequest(symbol=st.symbol, reason=ExitReason.HALT,
                                               detail=req.limit, ts_ms=req.ts_ms))
