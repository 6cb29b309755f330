"""Price paths for kline-only data.

A backtest on klines has no trades: without help the paper exchange would have no price to fill
at and FOLLOW_ORDERS none to watch. ``with_bar_ticks`` puts four ``BarTick``s before each closed
kline: open, then low and high, then close. Which extreme comes first is unknown, so the path
is the pessimistic one for the position held when the bar starts (``side_of``): the adverse
extreme first (low for a long, high for a short), so that when a bar holds both the stop loss
and the take profit the stop loss is taken. Flat, the usual assumption applies (low first on an
up bar, high first on a down bar). Between two ticks of one bar the path is continuous, so a
stop or take profit crossed inside it fills at its level (core/paper_prices.py); a bar that
opens beyond it fills at the open. Streams that carry trades pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from core.events import BarTick, Candle, MarketTick

if TYPE_CHECKING:
    from core.state import EngineState

_new = tuple.__new__


def with_bar_ticks(events: Iterable, side_of: Callable[[str], int] | None = None) -> Iterator:
    """Yield ``events`` with a BarTick path before each closed Candle of a symbol that had no
    trade (MarketTick) in the stream during the candle's span.

    ``side_of(symbol)`` is +1 while a long is open on the symbol, -1 for a short, 0 flat; it is
    asked when the bar's path is generated, so consume the iterator lazily for it to matter.
    """
    traded: dict[str, int] = {}  # symbol -> time of its latest trade
    for ev in events:
        if type(ev) is Candle and ev.closed and traded.get(ev.symbol, -1) < ev.open_ms:
            o, h, lo, c = ev.open, ev.high, ev.low, ev.close
            held = side_of(ev.symbol) if side_of is not None else 0
            low_first = held > 0 if held else c >= o
            path = (o, lo, h, c) if low_first else (o, h, lo, c)
            t0 = ev.open_ms
            step = max((ev.ts_ms - t0) // 3, 0)
            share = ev.volume / 4
            for i, price in enumerate(path):
                ts = min(t0 + i * step, ev.ts_ms)
                yield _new(BarTick, (ev.symbol, ts, ts, price, share, False))
        elif type(ev) is MarketTick:
            traded[ev.symbol] = ev.ts_ms
        yield ev


def position_side(state: EngineState) -> Callable[[str], int]:
    """``side_of`` for ``with_bar_ticks``: the side of the engine's open position."""

    def side_of(symbol: str) -> int:
        if state.symbol != symbol or state.side is None or not state.quantity:
            return 0
        return state.side.sign

    return side_of
