"""Price paths for klines: traded klines become ``BarTick``s, mark-price klines ``MarkPrice``s.

A backtest on klines has no trades: without help the paper exchange would have no price to fill
at and FOLLOW_ORDERS none to watch. ``with_bar_ticks`` puts four ``BarTick``s before each closed
kline: open, then low and high, then close. Which extreme comes first is unknown, so the path
is the pessimistic one for the position held when the bar starts (``side_of``): the adverse
extreme first (low for a long, high for a short), so that when a bar holds both the stop loss
and the take profit the stop loss is taken. Flat, the usual assumption applies (low first on an
up bar, high first on a down bar). Between two ticks of one bar the path is continuous, so a
stop or take profit crossed inside it fills at its level (core/paper_prices.py); a bar that
opens beyond it fills at the open. Streams that carry trades pass through unchanged.

Mark-price klines (``MarkKline``, from a stored ``markPriceKlines`` file) become ``MarkPrice``
events, which drive what Binance drives with the mark price: unrealized PnL, liquidation,
funding payments, FOLLOW_ORDERS' mark-price stops and the RISK guardian's mark checks. Their
high and low are replayed, adverse extreme first like the traded path, so a liquidation or a
mark-triggered stop inside the bar is never missed; and never before the trade stream could
have shown them:

* traded klines of the same bar and interval drive the symbol: the mark path is interleaved
  with the traded one, step by step at the same synthetic times (open, extreme, extreme,
  close), each mark just after the traded price of its step. Both paths are the same guess
  about the bar, so neither is ahead of the other: a mark-price trigger crossed at a step
  fills with the traded price of that step (core/paper_prices.py), and mark klines equal to
  the traded ones give the same trades as none.
* otherwise (trades drive the symbol, or the traded klines have another interval): the high,
  low and close are replayed at the mark bar's close time, the first moment all three are
  known. A mark crossing inside the bar is seen up to one interval late, never early. The open
  lies between the low and the high, so no trigger depends on it; it is not replayed.

Fields of those ``MarkPrice`` events that a mark kline does not carry: ``index_price`` 0.0
(unknown); ``funding_rate`` the rate of the latest settlement of a replayed funding-rate file
at or before the mark (a past fact, not the exchange's running estimate), else 0.0 (unknown);
``next_funding_ms`` 0 (unknown). So the paper exchange never charges funding from these marks
(the funding file's ``FundingRate`` events do, at the mark price), and the RISK guardian's
funding-window check, which needs the next funding time, stays off as without marks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from core.events import BarTick, Candle, FundingRate, MarketTick, MarkPrice
from core.replay.lines import MarkKline

if TYPE_CHECKING:
    from core.state import EngineState

_new = tuple.__new__
_NEVER = float("inf")


def _low_first(held: int, open_: float, close: float) -> bool:
    return held > 0 if held else close >= open_


def _mark_at_close(m: MarkKline, held: int, rate: float) -> Iterator[MarkPrice]:
    sym, ts = m.symbol, m.ts_ms
    path = (m.low, m.high, m.close) if _low_first(held, m.open, m.close) else \
        (m.high, m.low, m.close)
    for price in path:
        yield _new(MarkPrice, (sym, ts, price, 0.0, rate, 0))


def with_bar_ticks(events: Iterable, side_of: Callable[[str], int] | None = None) -> Iterator:
    """Yield ``events`` with a BarTick path before each closed Candle of a symbol that had no
    trade (MarketTick) in the stream during the candle's span, and each ``MarkKline`` replaced
    by its ``MarkPrice`` path (see the module docstring).

    ``events`` must be in exchange-time order with a bar's MarkKline before its Candle at equal
    ``ts_ms`` (as ``ReplaySource`` yields them). ``side_of(symbol)`` is +1 while a long is open
    on the symbol, -1 for a short, 0 flat; it is asked when the bar's path is generated, so
    consume the iterator lazily for it to matter.
    """
    traded: dict[str, int] = {}  # symbol -> time of its latest trade
    pending: dict[str, MarkKline] = {}  # symbol -> mark kline waiting for its traded kline
    due = _NEVER  # close time of the oldest pending mark kline
    rates: dict[str, float] = {}  # symbol -> rate of its latest funding settlement

    def side(symbol: str) -> int:
        return side_of(symbol) if side_of is not None else 0

    def at_close(m: MarkKline) -> Iterator[MarkPrice]:
        return _mark_at_close(m, side(m.symbol), rates.get(m.symbol, 0.0))

    def next_due() -> float:
        return min((m.ts_ms for m in pending.values()), default=_NEVER)

    for ev in events:
        if ev[1] > due:  # no traded kline came for these mark klines: their path at the close
            for sym in sorted((s for s, m in pending.items() if m.ts_ms < ev[1]),
                              key=lambda s: pending[s].ts_ms):
                yield from at_close(pending.pop(sym))
            due = next_due()
        kind = type(ev)
        if kind is Candle and ev.closed and traded.get(ev.symbol, -1) < ev.open_ms:
            sym = ev.symbol
            o, h, lo, c = ev.open, ev.high, ev.low, ev.close
            low_first = _low_first(side(sym), o, c)
            path = (o, lo, h, c) if low_first else (o, h, lo, c)
            m = pending.get(sym)
            if m is not None and m.open_ms == ev.open_ms and m.interval_ms == ev.interval_ms:
                del pending[sym]
                due = next_due()
                marks: tuple[float, ...] | None = (m.open, m.low, m.high, m.close) if low_first \
                    else (m.open, m.high, m.low, m.close)
            else:
                marks = None
            rate = rates.get(sym, 0.0)
            t0 = ev.open_ms
            step = max((ev.ts_ms - t0) // 3, 0)
            share = ev.volume / 4
            for i, price in enumerate(path):
                ts = min(t0 + i * step, ev.ts_ms)
                yield _new(BarTick, (sym, ts, ts, price, share, False))
                if marks is not None:
                    yield _new(MarkPrice, (sym, ts, marks[i], 0.0, rate, 0))
        elif kind is MarketTick:
            traded[ev.symbol] = ev.ts_ms
        elif kind is MarkKline:
            sym = ev.symbol
            if traded.get(sym, -1) >= ev.open_ms:  # trades drive the symbol
                yield from at_close(ev)
            else:
                old = pending.get(sym)
                if old is not None:
                    yield from at_close(old)
                pending[sym] = ev
                due = next_due()
            continue  # the record itself is never published
        elif kind is FundingRate:
            rates[ev.symbol] = ev.funding_rate
        yield ev
    for m in sorted(pending.values(), key=lambda m: m.ts_ms):
        yield from at_close(m)


def position_side(state: EngineState) -> Callable[[str], int]:
    """``side_of`` for ``with_bar_ticks``: the side of the engine's open position."""

    def side_of(symbol: str) -> int:
        if state.symbol != symbol or state.side is None or not state.quantity:
            return 0
        return state.side.sign

    return side_of
