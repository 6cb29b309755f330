"""Technical indicators: TA-Lib batches on NumPy arrays, and O(1) incremental twins.

Two ways in, one set of definitions (TA-Lib's, default compatibility, unstable period 0):

* Batch: ``candles_to_arrays`` then ``compute_indicators``. Pure functions on float64 arrays with
  no shared state, so callers may run them in an executor. Every output array has the input's
  length; positions without enough history are ``NaN``. First defined index (0-based) for the
  fixed parameters used here:

  ========================  =====  ==========================================
  RSI(14)                   14     needs 14 price changes
  MACD(12, 26, 9)           33     slow EMA (25) + signal EMA (8)
  EMA 20 / 50 / 200         19 / 49 / 199
  ADX(14)                   27     2 * period - 1
  ATR(14)                   14     first true range is at index 1
  Bollinger(20, 2.0)        19     population standard deviation
  volume / SMA(volume, 20)  19     ``NaN`` too where the 20-bar average is 0
  ========================  =====  ==========================================

  EMA, RSI, ATR and ADX are recursive: a value depends (decaying) on every bar since the start of
  the array, so give them several times their period of history before trusting a reading.

* Incremental: ``Ema``, ``WilderRma``, ``Atr``, ``Adx`` take one value (or one bar) per
  ``update`` in plain Python floats, for the engine's per-candle path where a NumPy call per tick
  would cost more than the arithmetic. They reproduce TA-Lib's seeding exactly (see each class),
  so after warm-up they agree with ``talib.EMA``/``ATR``/``ADX`` run over the same bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import talib

from core.events import Candle

NAN = math.nan


class OHLCV(NamedTuple):
    """Candles as parallel arrays: prices and base-asset volume float64, ``open_ms`` int64."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    open_ms: np.ndarray

    def __len__(self) -> int:  # the number of bars, not of fields
        return len(self.close)


def candles_to_arrays(candles: Sequence[Candle]) -> OHLCV:
    """Turn candles (oldest first) into contiguous arrays TA-Lib accepts.

    Raises:
        ValueError: ``open_ms`` is not strictly increasing (unsorted or duplicated bars would
            silently corrupt every recursive indicator).
    """
    n = len(candles)

    def column(attr: str, dtype: type) -> np.ndarray:
        return np.fromiter((getattr(c, attr) for c in candles), dtype=dtype, count=n)

    open_ms = column("open_ms", np.int64)
    if n > 1 and not bool(np.all(np.diff(open_ms) > 0)):
        raise ValueError("candles must be sorted by open_ms, oldest first, without duplicates")
    return OHLCV(
        open=column("open", np.float64),
        high=column("high", np.float64),
        low=column("low", np.float64),
        close=column("close", np.float64),
        volume=column("volume", np.float64),
        open_ms=open_ms,
    )


class IndicatorValues(NamedTuple):
    """The last bar's readings; ``NaN`` where the history is too short (``open_ms`` None when
    there are no bars at all)."""

    open_ms: int | None
    close: float
    rsi: float
    macd: float
    macd_signal: float
    macd_hist: float
    ema20: float
    ema50: float
    ema200: float
    adx: float
    atr: float
    bb_upper: float
    bb_middle: float
    bb_lower: float
    volume_ratio: float


@dataclass(frozen=True, slots=True)
class IndicatorSet:
    """Full indicator arrays, each as long as the input (``NaN`` warm-up, see module docs).

    Units: RSI and ADX 0..100; MACD, EMA, ATR and the bands in quote asset (price units);
    ``volume_ratio`` is the bar's volume over its 20-bar simple average, current bar included
    (1.0 = average, 2.0 = twice the average).
    """

    ohlcv: OHLCV
    rsi: np.ndarray
    macd: np.ndarray
    macd_signal: np.ndarray
    macd_hist: np.ndarray
    ema20: np.ndarray
    ema50: np.ndarray
    ema200: np.ndarray
    adx: np.ndarray
    atr: np.ndarray
    bb_upper: np.ndarray
    bb_middle: np.ndarray
    bb_lower: np.ndarray
    volume_sma20: np.ndarray
    volume_ratio: np.ndarray

    @property
    def latest(self) -> IndicatorValues:
        """The readings at the last bar."""
        if len(self.ohlcv) == 0:
            return IndicatorValues(None, *([NAN] * (len(IndicatorValues._fields) - 1)))
        fields = IndicatorValues._fields[2:]
        return IndicatorValues(
            int(self.ohlcv.open_ms[-1]),
            float(self.ohlcv.close[-1]),
            *(float(getattr(self, name)[-1]) for name in fields),
        )


def compute_indicators(ohlcv: OHLCV) -> IndicatorSet:
    """Compute the standard set with TA-Lib: RSI(14), MACD(12, 26, 9), EMA 20/50/200, ADX(14),
    ATR(14), Bollinger bands (20, 2.0 population standard deviations, SMA middle) and volume over
    its 20-bar average.

    Pure and thread-safe (TA-Lib's C functions keep no state between calls at default settings).
    Short input gives ``NaN`` where a value is undefined; empty input gives empty arrays.
    """
    high, low, close, volume = ohlcv.high, ohlcv.low, ohlcv.close, ohlcv.volume
    macd, macd_signal, macd_hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    bb_upper, bb_middle, bb_lower = talib.BBANDS(
        close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=talib.MA_Type.SMA
    )
    volume_sma20 = talib.SMA(volume, timeperiod=20)
    volume_ratio = np.full_like(volume, NAN)
    np.divide(volume, volume_sma20, out=volume_ratio, where=volume_sma20 > 0)
    return IndicatorSet(
        ohlcv=ohlcv,
        rsi=talib.RSI(close, timeperiod=14),
        macd=macd,
        macd_signal=macd_signal,
        macd_hist=macd_hist,
        ema20=talib.EMA(close, timeperiod=20),
        ema50=talib.EMA(close, timeperiod=50),
        ema200=talib.EMA(close, timeperiod=200),
        adx=talib.ADX(high, low, close, timeperiod=14),
        atr=talib.ATR(high, low, close, timeperiod=14),
        bb_upper=bb_upper,
        bb_middle=bb_middle,
        bb_lower=bb_lower,
        volume_sma20=volume_sma20,
        volume_ratio=volume_ratio,
    )


# --------------------------------------------------------------------------- incremental


def _check_period(period: int, minimum: int) -> int:
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
        self.period = _check_period(period, 1)
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
        self.period = _check_period(period, 1)
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
        self.period = _check_period(period, 1)
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
        self.period = _check_period(period, 2)
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
        elif dx is not None:
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
