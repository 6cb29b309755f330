"""Incremental oscillators: RSI and MACD, O(1) per update, plain floats, TA-Lib seeding.

Both reproduce TA-Lib's output exactly after its warm-up (tests/core/strategies/
test_indicators_more.py runs them against ``talib.RSI``/``talib.MACD`` on the shared data).
No NumPy or TA-Lib here.
"""

from __future__ import annotations

from core.strategies.indicators import Ema, check_period


class Rsi:
    """Relative strength index, 0..100 (J. W. Wilder, *New Concepts in Technical Trading
    Systems*, 1978; TA-Lib ``RSI``).

    The first ``period`` close-to-close changes seed the average gain and loss with their
    simple mean, so the first RSI appears on the ``period + 1``-th close; then each average is
    Wilder-smoothed, ``(prev * (period - 1) + x) / period``. RSI = 100 x gain / (gain + loss),
    0 when both are 0 (TA-Lib's convention).
    """

    __slots__ = ("period", "_prev", "_count", "_gain", "_loss", "_value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period, 2)
        self._prev: float | None = None
        self._count = 0
        self._gain = self._loss = 0.0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        return self._value

    def update(self, close: float) -> float | None:
        prev, self._prev = self._prev, close
        if prev is None:
            return None
        change = close - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        period = self.period
        if self._count < period:
            self._count += 1
            self._gain += gain
            self._loss += loss
            if self._count < period:
                return None
            self._gain /= period
            self._loss /= period
        else:
            self._gain = (self._gain * (period - 1) + gain) / period
            self._loss = (self._loss * (period - 1) + loss) / period
        total = self._gain + self._loss
        self._value = 100.0 * (self._gain / total) if total != 0.0 else 0.0
        return self._value


class Macd:
    """MACD line, signal line and histogram (G. Appel, 1979; TA-Lib ``MACD``).

    MACD = EMA(fast) - EMA(slow) of closes; signal = EMA(signal) of MACD; histogram = MACD -
    signal. TA-Lib seeds *both* EMAs on the same bar, ``slow - 1``: the slow one with the mean
    of the first ``slow`` closes, the fast one with the mean of the ``fast`` closes ending
    there. Those ``slow`` closes are buffered during warm-up only. The signal EMA is seeded
    with the mean of its first ``signal`` MACD values, so the first output is on close number
    ``slow + signal - 1``. ``update`` returns ``(macd, signal, hist)`` or None before that.
    """

    __slots__ = ("fast", "slow", "signal", "_seed", "_fast", "_slow", "_signal", "macd",
                 "signal_value", "hist")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast = check_period(fast, 2)
        self.slow = check_period(slow, 2)
        self.signal = check_period(signal, 1)
        if fast >= slow:
            raise ValueError("the fast period must be smaller than the slow period")
        self._seed: list[float] | None = []
        self._fast, self._slow = Ema(fast), Ema(slow)
        self._signal = Ema(signal)
        self.macd: float | None = None
        self.signal_value: float | None = None
        self.hist: float | None = None

    def update(self, close: float) -> tuple[float, float, float] | None:
        seed = self._seed
        if seed is not None:
            seed.append(close)
            if len(seed) < self.slow:
                return None
            for x in seed:
                self._slow.update(x)
            for x in seed[-self.fast:]:
                self._fast.update(x)
            self._seed = None
            fast, slow = self._fast.value, self._slow.value
        else:
            fast = self._fast.update(close)
            slow = self._slow.update(close)
        assert fast is not None and slow is not None
        self.macd = macd = fast - slow
        sig = self._signal.update(macd)
        if sig is None:
            return None
        self.signal_value, self.hist = sig, macd - sig
        return macd, sig, macd - sig
