"""Price paths for kline-only data.

A backtest on klines has no trades: without help the paper exchange would have no price to fill
at and FOLLOW_ORDERS none to watch. ``with_bar_ticks`` puts four ``BarTick``s before each closed
kline: open, then low and high (low first on an up bar, high first on a down bar: the usual
assumption that the close is reached last from the far side), then close. Stops and
liquidations therefore fire at the bar's extreme: pessimistic by at most the bar's range.
Streams that carry trades pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from core.events import BarTick, Candle, MarketTick

_new = tuple.__new__


def with_bar_ticks(events: Iterable) -> Iterator:
    """Yield ``events`` with a BarTick path before each closed Candle of a symbol that has no
    trades in the stream (a symbol that shows a MarketTick is left alone from then on)."""
    traded: set[str] = set()
    for ev in events:
        if type(ev) is Candle and ev.closed and ev.symbol not in traded:
            o, h, lo, c = ev.open, ev.high, ev.low, ev.close
            path = (o, lo, h, c) if c >= o else (o, h, lo, c)
            t0 = ev.open_ms
            step = max((ev.ts_ms - t0) // 3, 0)
            share = ev.volume / 4
            for i, price in enumerate(path):
                ts = min(t0 + i * step, ev.ts_ms)
                yield _new(BarTick, (ev.symbol, ts, ts, price, share, False))
        elif type(ev) is MarketTick:
            traded.add(ev.symbol)
        yield ev
