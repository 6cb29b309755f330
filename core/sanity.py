"""Edge sanity checks: exchange and market input is checked before the engine sees it.

A gate on the bus (``EventBus.gates``) checks every event published from outside the engine
(a top-level ``publish``: live streams, the user data stream, reconciliation, a replay); what
the engine's own modules publish while reacting (the paper exchange's fills) is not checked.
Rejected, with a reason:

* a price (trade, bar, book bid/ask, mark price, candle) that is not finite or is <= 0, or is
  more than ``max_jump`` (fraction) away from the symbol's last accepted price — unless
  ``CONFIRM_TICKS`` prices in a row agree on the new level (a real gap is accepted on the third);
* a timestamp more than ``max_future_ms`` ahead of the wall clock (a trade stamped 2100);
* a ``PositionUpdate`` from the stream (not a ``SNAPSHOT``) older than the newest one applied
  for its symbol (an ACCOUNT_UPDATE delivered late must not undo a newer one);
* a fill (``OrderUpdate`` with ``last_fill_qty > 0``) with trade id <= 0 or price <= 0: it
  cannot be de-duplicated; the reconciliation reads the real fill by client order id.

Each rejection is logged, counted (``counts`` by reason, ``total``; /health and /metrics),
published as ``InputRejected`` (journaled: nothing lost) and, on the ``ALERT_AFTER``-th of the
same reason within ``ALERT_WINDOW_MS``, alerted as an ``EngineError``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from core.event_bus import EventBus
from core.events import (
    BarTick,
    BookTicker,
    Candle,
    EngineError,
    FundingRate,
    InputRejected,
    MarketTick,
    MarkPrice,
    OrderUpdate,
    PositionUpdate,
)

logger = logging.getLogger(__name__)

CONFIRM_TICKS = 3
ALERT_AFTER = 3
ALERT_WINDOW_MS = 600_000
INF = math.inf


def _wall_ms() -> int:
    return int(time.time() * 1000)


class EdgeSanity:
    """The gate; ``admit(event) -> bool``. Install with ``install(bus)``.

    Args:
        max_jump: largest accepted move from the last accepted price, fraction (0.1 = 10 %).
        max_future_ms: how far ahead of ``clock()`` a timestamp may be, ms.
        clock: wall clock, ms since the epoch.
    """

    def __init__(self, bus: EventBus, *, max_jump: float = 0.1, max_future_ms: int = 60_000,
                 clock: Callable[[], int] = _wall_ms) -> None:
        self._bus = bus
        self._lo, self._hi = 1 - max_jump, 1 + max_jump
        self._max_future_ms = max_future_ms
        self._clock = clock
        self._horizon = 0
        # symbol -> (low, high, last accepted price): the accepted range around that price
        self._band: dict[str, tuple[float, float, float]] = {}
        self._pending: dict[str, tuple[float, int]] = {}
        self._position_ms: dict[str, int] = {}
        self._recent: dict[str, list[int]] = {}
        self.counts: dict[str, int] = {}
        self.total = 0
        self._checks: dict[type, Callable[[Any], bool]] = {
            MarketTick: self._tick, BarTick: self._tick, BookTicker: self._book,
            MarkPrice: self._mark, Candle: self._candle, FundingRate: self._funding,
            OrderUpdate: self._order, PositionUpdate: self._position,
        }

    def install(self, bus: EventBus) -> None:
        """Make this the bus's gate: ``bus.gates[type](event) -> bool`` per checked type."""
        bus.gates = dict(self._checks)

    def admit(self, ev: Any) -> bool:
        """True when ``ev`` may reach the engine; else it is reported and dropped."""
        check = self._checks.get(type(ev))
        return True if check is None else check(ev)

    def _verdict(self, ev: Any, reason: str) -> bool:
        if not reason:
            return True
        self._reject(ev, reason)
        return False

    # ------------------------------------------------------------------ checks (reason or "")
    # Hot path: one comparison chain against the symbol's band (last accepted price +/- the
    # allowed jump) and the cached time horizon; anything outside goes the slow, complete way.

    def _future(self, ts: int) -> bool:
        if ts <= self._horizon:
            return False
        self._horizon = self._clock() + self._max_future_ms
        return ts > self._horizon

    def _accept(self, symbol: str, p: float) -> None:
        self._band[symbol] = (p * self._lo, p * self._hi, p)

    def _price(self, symbol: str, p: float, ts: int) -> str:
        if self._future(ts):
            return "timestamp in the future"
        if not 0 < p < INF:
            return "price not positive and finite"
        band = self._band.get(symbol)
        if band is None or band[0] <= p <= band[1]:
            self._accept(symbol, p)
            self._pending.pop(symbol, None)
            return ""
        level, n = self._pending.get(symbol, (p, 0))
        n = n + 1 if level * self._lo <= p <= level * self._hi else 1
        if n >= CONFIRM_TICKS:
            logger.warning("%s: new price level %s accepted after %d agreeing prices (band %s)",
                           symbol, p, n, band)
            self._accept(symbol, p)
            del self._pending[symbol]
            return ""
        self._pending[symbol] = (level if n > 1 else p, n)
        return "price jump"

    def _tick(self, ev: MarketTick) -> bool:
        symbol, ts, _, p, _, _ = ev  # unpacking the tuple beats four attribute reads
        band = self._band.get(symbol)
        if band is not None and ts <= self._horizon:
            if p == band[2]:  # most trades print at the last price: nothing to update
                return True
            if band[0] <= p <= band[1]:
                self._band[symbol] = (p * self._lo, p * self._hi, p)
                return True
        return self._verdict(ev, self._price(symbol, p, ts))

    def _book(self, ev: BookTicker) -> bool:
        symbol, ts, bid, _, ask, _ = ev
        band = self._band.get(symbol)
        if band is not None and band[0] <= bid <= ask <= band[1] and ts <= self._horizon:
            return True  # inside the band of the last trade or mark price: not moved by quotes
        if not (0 < ev.bid < INF and 0 < ev.ask < INF) or ev.bid > ev.ask:
            return self._verdict(ev, "timestamp in the future" if self._future(ev.ts_ms) else
                                 "price not positive and finite")
        return self._verdict(ev, self._price(ev.symbol, (ev.bid + ev.ask) / 2, ev.ts_ms))

    def _mark(self, ev: MarkPrice) -> bool:
        p, rate = ev.mark_price, ev.funding_rate
        band = self._band.get(ev.symbol)
        if (band is not None and band[0] <= p <= band[1] and ev.ts_ms <= self._horizon
                and -INF < rate < INF):
            self._band[ev.symbol] = (p * self._lo, p * self._hi, p)
            return True
        if not math.isfinite(rate):
            return self._verdict(ev, "funding rate not finite")
        return self._verdict(ev, self._price(ev.symbol, p, ev.ts_ms))

    def _candle(self, ev: Candle) -> bool:
        band = self._band.get(ev.symbol)
        if (band is not None and band[0] <= ev.low <= ev.high <= band[1]
                and ev.ts_ms <= self._horizon and ev.low <= ev.open <= ev.high
                and ev.low <= ev.close <= ev.high):
            self._band[ev.symbol] = (ev.close * self._lo, ev.close * self._hi, ev.close)
            return True
        if not (0 < ev.low <= ev.high < INF and 0 < ev.open < INF):
            return self._verdict(ev, "timestamp in the future" if self._future(ev.ts_ms) else
                                 "price not positive and finite")
        return self._verdict(ev, self._price(ev.symbol, ev.close, ev.ts_ms))

    def _funding(self, ev: FundingRate) -> bool:
        return self._verdict(ev, self._funding_reason(ev))

    def _funding_reason(self, ev: Any) -> str:
        if self._future(ev.ts_ms):
            return "timestamp in the future"
        return "" if math.isfinite(ev.funding_rate) else "funding rate not finite"

    def _order(self, ev: OrderUpdate) -> bool:
        return self._verdict(ev, self._order_reason(ev))

    def _order_reason(self, ev: Any) -> str:
        if self._future(ev.ts_ms):
            return "timestamp in the future"
        if ev.last_fill_qty > 0:
            if ev.trade_id <= 0:
                return "fill without a trade id"
            if not ev.last_fill_price > 0 or not ev.last_fill_price.is_finite():
                return "price not positive and finite"
        return ""

    def _position(self, ev: PositionUpdate) -> bool:
        return self._verdict(ev, self._position_reason(ev))

    def _position_reason(self, ev: Any) -> str:
        if self._future(ev.ts_ms):
            return "timestamp in the future"
        if not ev.quantity.is_finite() or not ev.entry_price.is_finite() or ev.entry_price < 0:
            return "position not finite"
        if ev.reason == "SNAPSHOT":
            return ""  # a read of the whole account, stale-checked by the reconciliation
        newest = self._position_ms.get(ev.symbol, 0)
        if ev.ts_ms < newest:
            return "account update older than the newest applied"
        self._position_ms[ev.symbol] = ev.ts_ms
        return ""

    # ------------------------------------------------------------------ reporting

    def _reject(self, ev: Any, reason: str) -> None:
        self.total += 1
        self.counts[reason] = self.counts.get(reason, 0) + 1
        kind = type(ev).__name__
        symbol = getattr(ev, "symbol", "")
        ts = getattr(ev, "ts_ms", 0)
        detail = repr(ev)[:300]
        logger.warning("input rejected (%s): %s", reason, detail)
        self._bus.publish(InputRejected(kind=kind, symbol=symbol, reason=reason, detail=detail,
                                        ts_ms=ts))
        now = self._clock()
        recent = [t for t in self._recent.get(reason, ()) if now - t < ALERT_WINDOW_MS]
        recent.append(now)
        self._recent[reason] = recent
        if len(recent) == ALERT_AFTER:
            self._bus.publish(EngineError(
                source="sanity", ts_ms=ts,
                message=f"{ALERT_AFTER} inputs rejected in {ALERT_WINDOW_MS // 60_000} min"
                        f" ({reason}), latest {kind} {symbol}; see the journal"))
