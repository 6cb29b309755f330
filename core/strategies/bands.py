"""Incremental channels and bands: rolling max/min, Donchian, Bollinger, Supertrend.

O(1) per update (amortised for the rolling max/min), plain floats, no NumPy or TA-Lib.
Checked against ``talib.MAX``/``MIN``/``BBANDS`` and, for Supertrend (TA-Lib has none),
against its published definition (tests/core/strategies/test_indicators_more.py).
"""

from __future__ import annotations

import math
from collections import deque

from core.strategies.indicators import Atr, check_period


class RollingMax:
    """Largest of the last ``period`` values (TA-Lib ``MAX``), a monotonic deque: amortised
    O(1). ``update`` returns None until ``period`` values were seen. ``RollingMax(n, lowest=
    True)`` is the rolling minimum (``MIN``)."""

    __slots__ = ("period", "_sign", "_window", "_i")

    def __init__(self, period: int, *, lowest: bool = False) -> None:
        self.period = check_period(period, 1)
        self._sign = -1.0 if lowest else 1.0
        self._window: deque[tuple[int, float]] = deque()
        self._i = 0

    @property
    def value(self) -> float | None:
        if self._i < self.period:
            return None
        return self._window[0][1] * self._sign

    def update(self, x: float) -> float | None:
        v = x * self._sign
        w = self._window
        while w and w[-1][1] <= v:
            w.pop()
        w.append((self._i, v))
        self._i += 1
        if w[0][0] <= self._i - 1 - self.period:
            w.popleft()
        return self.value


class Donchian:
    """Donchian channel (R. Donchian; the Turtles' breakout, C. Faith, *Way of the Turtle*,
    2007): the highest high and lowest low of the last ``period`` bars, *including* the bar
    just given (as TA-Lib ``MAX(high)``/``MIN(low)``). A breakout rule compares a close with the
    channel of the bars *before* it: read ``upper``/``lower`` before calling ``update``."""

    __slots__ = ("period", "_hi", "_lo")

    def __init__(self, period: int = 20) -> None:
        self.period = check_period(period, 1)
        self._hi, self._lo = RollingMax(period), RollingMax(period, lowest=True)

    @property
    def upper(self) -> float | None:
        return self._hi.value

    @property
    def lower(self) -> float | None:
        return self._lo.value

    def update(self, high: float, low: float) -> tuple[float, float] | None:
        up, lo = self._hi.update(high), self._lo.update(low)
        return None if up is None or lo is None else (up, lo)


class Bollinger:
    """Bollinger Bands (J. Bollinger, *Bollinger on Bollinger Bands*, 2001; TA-Lib ``BBANDS``
    with an SMA): middle = SMA(period) of closes; upper/lower = middle +/- ``k`` x the
    *population* standard deviation of the same closes. Running sums, O(1); the variance is
    clamped at 0 against rounding. ``update`` returns ``(upper, middle, lower)`` or None for the
    first ``period - 1`` closes. ``bandwidth`` = (upper - lower) / middle (a fraction)."""

    __slots__ = ("period", "k", "_window", "_sum", "_sumsq", "upper", "middle", "lower")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = check_period(period, 2)
        if not k > 0:
            raise ValueError(f"the band width k must be > 0, got {k!r}")
        self.k = k
        self._window: deque[float] = deque()
        self._sum = self._sumsq = 0.0
        self.upper: float | None = None
        self.middle: float | None = None
        self.lower: float | None = None

    @property
    def bandwidth(self) -> float | None:
        if self.middle is None or self.upper is None or self.lower is None or not self.middle:
            return None
        return (self.upper - self.lower) / self.middle

    def update(self, close: float) -> tuple[float, float, float] | None:
        w = self._window
        w.append(close)
        self._sum += close
        self._sumsq += close * close
        if len(w) > self.period:
            old = w.popleft()
            self._sum -= old
            self._sumsq -= old * old
        if len(w) < self.period:
            return None
        mean = self._sum / self.period
        var = self._sumsq / self.period - mean * mean
        dev = self.k * math.sqrt(var) if var > 0 else 0.0
        self.upper, self.middle, self.lower = mean + dev, mean, mean - dev
        return self.upper, mean, self.lower


class Supertrend:
    """Supertrend (O. Seban; the definition TradingView's ``ta.supertrend`` implements).

    With ATR(``period``) Wilder-smoothed (``Atr``) and hl2 = (high + low) / 2:
    basic upper = hl2 + ``multiplier`` x ATR, basic lower = hl2 - ``multiplier`` x ATR.
    Final upper = basic upper if it is below the previous final upper or the previous close
    was above it, else the previous final upper; final lower mirrors it. The trend turns up
    (+1) when the close rises above the final upper, down (-1) when it falls below the final
    lower; the line is the final lower in an uptrend, the final upper in a downtrend (the
    trailing stop). The first bar with an ATR starts in a downtrend (-1), as
    TradingView does. ``update`` returns ``(line, direction)`` or None during warm-up.
    """

    __slots__ = ("multiplier", "_atr", "_upper", "_lower", "_prev_close", "direction", "line",
                 "flipped")

    def __init__(self, period: int = 10, multiplier: float = 3.0) -> None:
        if not multiplier > 0:
            raise ValueError(f"multiplier must be > 0, got {multiplier!r}")
        self.multiplier = multiplier
        self._atr = Atr(period)
        self._upper = self._lower = 0.0
        self._prev_close: float | None = None
        self.direction = 0
        self.line: float | None = None
        self.flipped = False

    def update(self, high: float, low: float, close: float) -> tuple[float, int] | None:
        atr = self._atr.update(high, low, close)
        prev_close, self._prev_close = self._prev_close, close
        self.flipped = False
        if atr is None:
            return None
        hl2 = (high + low) / 2
        basic_up = hl2 + self.multiplier * atr
        basic_lo = hl2 - self.multiplier * atr
        if self.direction == 0:
            self._upper, self._lower, self.direction = basic_up, basic_lo, -1
            self.line = basic_up
            return self.line, self.direction
        assert prev_close is not None
        prev_up, prev_lo = self._upper, self._lower
        upper = basic_up if basic_up < prev_up or prev_close > prev_up else prev_up
        lower = basic_lo if basic_lo > prev_lo or prev_close < prev_lo else prev_lo
        if self.direction < 0 and close > upper:
            self.direction, self.flipped = 1, True
        elif self.direction > 0 and close < lower:
            self.direction, self.flipped = -1, True
        self._upper, self._lower = upper, lower
        self.line = lower if self.direction > 0 else upper
        return self.line, self.direction

    @property
    def atr(self) -> float | None:
        return self._atr.value
