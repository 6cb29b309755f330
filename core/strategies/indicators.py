"""Incremental indicators for the engine's per-candle path: O(1) per update, plain floats.

``Ema``, ``WilderRma``, ``Atr``, ``Adx`` take one value (or one bar) per ``update``. They
reproduce TA-Lib's seeding exactly (see each class), so after warm-up they agree with
``talib.EMA``/``ATR``/``ADX`` run over the same bars (tests/core/strategies/test_indicators.py
checks it on the shared real data). No NumPy or TA-Lib here: the backtest path must not import them.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- incremental


def check_period(period: int, minimum: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < minimum:
        raise ValueError(f"period must be an integer >= {minimum}, got {period!r}")
    return period


def true_range(high: float, low: float, prev_close: float) -> float:
    """Wilder's true range: the largest of high-low, |high-prev_close|, |low-prev_close|
    (compared in TA-Lib's order, so ties resolve identically)."""
    out = high - low
    up = abs(high - prev_close)
    if up > out:
        out = up
    down = abs(low - prev_close)
    if down > out:
        out = down
    return out


class Ema:
    """Exponential moving average, ``k = 2 / (period + 1)``, TA-Lib seeding.

    ``update`` returns None for the first ``period - 1`` values; the ``period``-th returns the
    simple average of the first ``period`` values (TA-Lib's default-compatibility seed, output
    index ``period - 1``), and each later value ``(x - prev) * k + prev``.
    """

    __slots__ = ("period", "_k", "_count", "_sum", "_value")

    def __init__(self, period: int) -> None:
        self.period = check_period(period, 1)
        self._k = 2.0 / (period + 1)
        self._count = 0
        self._sum = 0.0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        return self._value

    def update(self, x: float) -> float | None:
        if self._value is not None:
            self._value = (x - self._value) * self._k + self._value
            return self._value
        self._sum += x
        self._count += 1
        if self._count == self.period:
            self._value = self._sum / self.period
        return self._value


class WilderRma:
    """Wilder's running moving average (RMA, "smoothed" MA), ``alpha = 1 / period``.

    Seeded like TA-Lib's ATR: the simple average of the first ``period`` values, then
    ``(prev * (period - 1) + x) / period`` (the same operation order as TA-Lib). None until
    ``period`` values were seen.
    """

    __slots__ = ("period", "_count", "_sum", "_value")

    def __init__(self, period: int) -> None:
        self.period = check_period(period, 1)
        self._count = 0
        self._sum = 0.0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        return self._value

    def update(self, x: float) -> float | None:
        if self._value is not None:
            self._value = (self._value * (self.period - 1) + x) / self.period
            return self._value
        self._sum += x
        self._count += 1
        if self._count == self.period:
            self._value = self._sum / self.period
        return self._value


class Atr:
    """Average true range (TA-Lib ``ATR``): a ``WilderRma`` of the true range.

    The first bar has no previous close and so no true range; the first ATR is therefore the
    average of the true ranges of bars 1..period and appears on bar index ``period``
    (``period + 1`` updates). Price units.
    """

    __slots__ = ("period", "_rma", "_prev_close")

    def __init__(self, period: int) -> None:
        self.period = check_period(period, 1)
        self._rma = WilderRma(period)
        self._prev_close: float | None = None

    @property
    def value(self) -> float | None:
        return self._rma.value

    def update(self, high: float, low: float, close: float) -> float | None:
        prev_close, self._prev_close = self._prev_close, close
        if prev_close is None:
            return None
        return self._rma.update(true_range(high, low, prev_close))


class Adx:
    """Average directional index (TA-Lib ``ADX``), 0..100, with +DI/-DI as by-products.

    TA-Lib's recipe, reproduced step for step:

    * Bar i >= 1 gives +DM1 = high - prev_high and -DM1 = prev_low - low; only the larger one
      counts, and only if positive (a tie counts for neither). True range as ``true_range``.
    * Bars 1..period-1: +DM, -DM and TR are plain sums (``period - 1`` values, no average).
    * From bar ``period`` on each is Wilder-smoothed: ``s = s - s / period + today``. Then
      +DI = 100 * +DM / TR, -DI = 100 * -DM / TR (both 0 while TR is 0, as ``PLUS_DI`` reports)
      and DX = 100 * |+DI - -DI| / (+DI + -DI).
    * The first ADX is the plain mean of the DX of bars period..2*period-1, so it appears on bar
      index ``2 * period - 1``; then ``adx = (adx * (period - 1) + dx) / period``.
    * Where TR or +DI + -DI is zero, DX is undefined: it is left out of the seed sum (which is
      still divided by ``period``) and later the ADX is carried unchanged.

    ``update`` returns None until the first ADX. ``plus_di``/``minus_di`` are available from
    bar ``period`` (as ``talib.PLUS_DI``/``MINUS_DI``).
    """

    __slots__ = (
        "period",
        "_bars",
        "_prev_high",
        "_prev_low",
        "_prev_close",
        "_plus_dm",
        "_minus_dm",
        "_tr",
        "_sum_dx",
        "_adx",
        "plus_di",
        "minus_di",
    )

    def __init__(self, period: int) -> None:
        self.period = check_period(period, 2)
        self._bars = 0
        self._prev_high = self._prev_low = self._prev_close = 0.0
        self._plus_dm = self._minus_dm = self._tr = 0.0
        self._sum_dx = 0.0
        self._adx: float | None = None
        self.plus_di: float | None = None
        self.minus_di: float | None = None

    @property
    def value(self) -> float | None:
        return self._adx

    def update(self, high: float, low: float, close: float) -> float | None:
        index, self._bars = self._bars, self._bars + 1
        if index == 0:
            self._prev_high, self._prev_low, self._prev_close = high, low, close
            return None
        diff_p = high - self._prev_high
        diff_m = self._prev_low - low
        tr = true_range(high, low, self._prev_close)
        self._prev_high, self._prev_low, self._prev_close = high, low, close
        plus_dm1 = minus_dm1 = 0.0
        if diff_m > 0 and diff_p < diff_m:
            minus_dm1 = diff_m
        elif diff_p > 0 and diff_p > diff_m:
            plus_dm1 = diff_p

        period = self.period
        if index < period:  # bars 1..period-1: plain sums
            self._plus_dm += plus_dm1
            self._minus_dm += minus_dm1
            self._tr += tr
            return None

        self._minus_dm = self._minus_dm - self._minus_dm / period + minus_dm1
        self._plus_dm = self._plus_dm - self._plus_dm / period + plus_dm1
        self._tr = self._tr - self._tr / period + tr
        dx = self._dx()
        if index < 2 * period - 1:  # bars period..2*period-2: collect DX for the seed
            if dx is not None:
                self._sum_dx += dx
            return None
        if index == 2 * period - 1:
            if dx is not None:
                self._sum_dx += dx
            self._adx = self._sum_dx / period
        elif dx is not None and self._adx is not None:  # _adx is seeded at 2*period-1
            self._adx = (self._adx * (period - 1) + dx) / period
        return self._adx

    def _dx(self) -> float | None:
        """Update +DI/-DI and return DX, or None where TA-Lib skips it (TR or DI sum zero)."""
        if self._tr == 0.0:
            self.plus_di = self.minus_di = 0.0
            return None
        self.minus_di = minus_di = 100.0 * (self._minus_dm / self._tr)
        self.plus_di = plus_di = 100.0 * (self._plus_dm / self._tr)
        total = minus_di + plus_di
        if total == 0.0:
            return None
        return 100.0 * (abs(minus_di - plus_di) / total)
