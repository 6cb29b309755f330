"""FOLLOW_ORDERS: watches the open position and asks ORDERING to close it.

Exit rules, checked on every price of the position's symbol:

* SL / TP: the absolute levels of ``PositionOpened``.
* Trailing stop (``trailing_pct`` > 0, percent): once the best price since entry has moved
  ``activation_pct`` percent in the position's favour, the stop trails ``trailing_pct`` percent
  behind that best price; it only fires when it is tighter than the SL.
* Every level exit carries its level as ``CloseRequest.trigger_price`` (the paper exchange never
  fills it better).
* Reverse signal (``exit_on_reverse``): a TradeSignal in the opposite direction on the same
  symbol closes the position with reason SIGNAL.

Price source: mark price (``MarkPrice``) by default, or last trade price (``price_source="last"``).
With the mark source, a symbol whose data has no mark price yet, or none for ``stale_ms`` (a gap
in the data), is watched on last trade price until a mark arrives. At most one ``CloseRequest``
is emitted per position; it is re-armed only when ORDERING reports that the exit failed (phase
EXITING -> OPEN).

On the exchange, the same SL/TP stand as algo orders (live adapter); this is the second line.
"""

from __future__ import annotations

from decimal import Decimal

from core.event_bus import EventBus
from core.events import (
    BarTick,
    CloseRequest,
    ExitReason,
    MarketTick,
    MarkPrice,
    PositionOpened,
    PositionUpdate,
    Side,
    StateChanged,
    TradeSignal,
)


class _Watch:
    __slots__ = ("symbol", "long", "sl", "tp", "sl_d", "tp_d", "best", "trail_gap",
                 "activate_at", "fired")

    def __init__(self, ev: PositionOpened, trailing_pct: float, activation_pct: float) -> None:
        self.symbol = ev.symbol
        self.long = ev.side is Side.LONG
        self.sl = float(ev.stop_loss) if ev.stop_loss > 0 else 0.0
        self.tp = float(ev.take_profit) if ev.take_profit > 0 else 0.0
        self.sl_d, self.tp_d = ev.stop_loss, ev.take_profit
        entry = float(ev.entry_price)
        self.best = entry
        self.trail_gap = trailing_pct / 100.0
        move = activation_pct / 100.0
        self.activate_at = entry * (1 + move) if self.long else entry * (1 - move)
        self.fired = False


class FollowOrders:
    """Emits one CloseRequest per position when SL, TP, trailing stop or a reverse signal hits.

    Args:
        bus: engine bus.
        price_source: "mark" or "last".
        trailing_pct: trailing distance in percent (0 = off).
        activation_pct: favourable move in percent before the trail starts (0 = at once).
        exit_on_reverse: close on an opposite TradeSignal for the same symbol.
        stale_ms: a mark price older than this (ms) no longer hides last trade prices.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        price_source: str = "mark",
        trailing_pct: float = 0.0,
        activation_pct: float = 0.0,
        exit_on_reverse: bool = True,
        stale_ms: int = 60_000,
    ) -> None:
        self._bus = bus
        self._use_mark = price_source == "mark"
        self.trailing_pct = trailing_pct
        self.activation_pct = activation_pct
        self.exit_on_reverse = exit_on_reverse
        self._watch: _Watch | None = None
        self.stale_ms = stale_ms
        self._mark_seen: dict[str, int] = {}  # symbol -> time of its latest mark price
        bus.subscribe(PositionOpened, self._on_opened)
        bus.subscribe(PositionUpdate, self._on_position)
        bus.subscribe(StateChanged, self._on_state)
        bus.subscribe(MarketTick, self._on_tick)
        bus.subscribe(BarTick, self._on_tick)
        bus.subscribe(MarkPrice, self._on_mark)
        bus.subscribe(TradeSignal, self._on_signal)

    @property
    def watching(self) -> str:
        return self._watch.symbol if self._watch else ""

    def levels(self) -> tuple[float, float, float] | None:
        """(stop loss, take profit, current trailing stop or 0) of the watched position."""
        w = self._watch
        if w is None:
            return None
        return w.sl, w.tp, self._trail_stop(w)

    # ------------------------------------------------------------------ position lifecycle

    def _on_opened(self, ev: PositionOpened) -> None:
        self._watch = _Watch(ev, self.trailing_pct, self.activation_pct)

    def _on_position(self, ev: PositionUpdate) -> None:
        w = self._watch
        if w is not None and ev.symbol == w.symbol and ev.quantity == 0:
            self._watch = None

    def _on_state(self, ev: StateChanged) -> None:
        if ev.what != "phase":
            return
        if ev.new == "FLAT":
            self._watch = None
        elif ev.old == "EXITING" and ev.new == "OPEN" and self._watch is not None:
            self._watch.fired = False  # the exit failed: watch again

    # ------------------------------------------------------------------ prices (hot path)

    def _on_tick(self, ev: MarketTick) -> None:
        w = self._watch
        if w is None or w.fired or ev.symbol != w.symbol:
            return
        if self._use_mark:
            seen = self._mark_seen.get(ev.symbol)
            if seen is not None and (not self.stale_ms or ev.ts_ms - seen <= self.stale_ms):
                return
        self._check(w, ev.price, ev.ts_ms)

    def _on_mark(self, ev: MarkPrice) -> None:
        if not self._use_mark:
            return
        self._mark_seen[ev.symbol] = ev.ts_ms
        w = self._watch
        if w is None or w.fired or ev.symbol != w.symbol:
            return
        self._check(w, ev.mark_price, ev.ts_ms)

    def _trail_stop(self, w: _Watch) -> float:
        if not w.trail_gap:
            return 0.0
        if w.long:
            return w.best * (1 - w.trail_gap) if w.best >= w.activate_at else 0.0
        return w.best * (1 + w.trail_gap) if w.best <= w.activate_at else 0.0

    def _check(self, w: _Watch, price: float, ts_ms: int) -> None:
        if w.long:
            if w.sl and price <= w.sl:
                return self._fire(w, ExitReason.SL, price, ts_ms, trigger=w.sl_d)
            if w.tp and price >= w.tp:
                return self._fire(w, ExitReason.TP, price, ts_ms, trigger=w.tp_d)
            if w.trail_gap:
                if price > w.best:
                    w.best = price
                stop = self._trail_stop(w)
                if stop and stop > w.sl and price <= stop:
                    return self._fire(w, ExitReason.TRAILING, price, ts_ms,
                                      trigger=Decimal(repr(stop)))
        else:
            if w.sl and price >= w.sl:
                return self._fire(w, ExitReason.SL, price, ts_ms, trigger=w.sl_d)
            if w.tp and price <= w.tp:
                return self._fire(w, ExitReason.TP, price, ts_ms, trigger=w.tp_d)
            if w.trail_gap:
                if price < w.best:
                    w.best = price
                stop = self._trail_stop(w)
                if stop and (not w.sl or stop < w.sl) and price >= stop:
                    return self._fire(w, ExitReason.TRAILING, price, ts_ms,
                                      trigger=Decimal(repr(stop)))
        return None

    def _on_signal(self, sig: TradeSignal) -> None:
        w = self._watch
        if (self.exit_on_reverse and w is not None and not w.fired and sig.symbol == w.symbol
                and (sig.side is Side.LONG) != w.long):
            self._fire(w, ExitReason.SIGNAL, float(sig.entry_price), sig.ts_ms, sig.reason)

    def _fire(self, w: _Watch, reason: ExitReason, price: float, ts_ms: int,
              detail: str = "", trigger: Decimal | None = None) -> None:
        w.fired = True
        self._bus.publish(CloseRequest(symbol=w.symbol, reason=reason,
                                       detail=detail or f"at {price}", trigger_price=trigger,
                                       ts_ms=ts_ms))


def protective_levels(side: Side, entry: Decimal, sl_distance: Decimal,
                      tp_distance: Decimal) -> tuple[Decimal, Decimal]:
    """(stop loss, take profit) prices for a position entered at ``entry`` (quote asset)."""
    if side is Side.LONG:
        return entry - sl_distance, entry + tp_distance
    return entry + sl_distance, entry - tp_distance
