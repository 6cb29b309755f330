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

* Incremental twins (``core/strategies/indicators.py``): ``Ema``, ``WilderRma``, ``Atr``,
  ``Adx`` take one value (or one bar) per ``update`` in plain Python floats, for the engine's
  per-candle path where a NumPy call per tick would cost more than the arithmetic. They
  reproduce TA-Lib's seeding exactly (see each class), so after warm-up they agree with
  ``talib.EMA``/``ATR``/``ADX`` run over the same bars.
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
