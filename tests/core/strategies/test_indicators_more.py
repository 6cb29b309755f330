"""RSI, MACD, Bollinger, Donchian and Supertrend, incremental, against TA-Lib (or, for
Supertrend, its definition) on the shared real data: BTC 1m and XRP 5m klines."""

import math

import numpy as np
import pytest
import talib

from core.market.indicators_ta import candles_to_arrays
from core.strategies.bands import Bollinger, Donchian, RollingMax, Supertrend
from core.strategies.oscillators import Macd, Rsi
from tests.core.strategies.test_indicators import assert_matches_talib, read_klines

FILES = ("BTCUSDT-1m-2023-04-15.csv", "XRPUSDT-5m-2021-11-15.csv")


@pytest.fixture(scope="module", params=FILES)
def ohlcv(request):
    return candles_to_arrays(read_klines(request.param))


def column(values) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


@pytest.mark.parametrize("period", [2, 7, 14, 30])
def test_rsi_matches_talib(ohlcv, period):
    rsi = Rsi(period)
    got = column(rsi.update(float(c)) for c in ohlcv.close)
    assert_matches_talib(got, talib.RSI(ohlcv.close, period))


@pytest.mark.parametrize("fast,slow,signal", [(12, 26, 9), (5, 35, 5), (3, 10, 1)])
def test_macd_matches_talib(ohlcv, fast, slow, signal):
    m = Macd(fast, slow, signal)
    out = [m.update(float(c)) for c in ohlcv.close]
    e_macd, e_sig, e_hist = talib.MACD(ohlcv.close, fast, slow, signal)
    for i, expected in enumerate((e_macd, e_sig, e_hist)):
        got = column(None if o is None else o[i] for o in out)
        # MACD values cross zero: compare absolutely, at a scale of the price's precision
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * ohlcv.close.max(),
                                   equal_nan=True)


@pytest.mark.parametrize("period,k", [(20, 2.0), (5, 1.5), (50, 2.5)])
def test_bollinger_matches_talib(ohlcv, period, k):
    bb = Bollinger(period, k)
    out = [bb.update(float(c)) for c in ohlcv.close]
    expected = talib.BBANDS(ohlcv.close, period, k, k, 0)
    for i in range(3):
        got = column(None if o is None else o[i] for o in out)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected[i]))
        np.testing.assert_allclose(got, expected[i], rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("period", [2, 10, 20, 55])
def test_donchian_matches_talib_max_min(ohlcv, period):
    d = Donchian(period)
    out = [d.update(float(h), float(lo)) for h, lo in zip(ohlcv.high, ohlcv.low, strict=True)]
    assert_matches_talib(column(None if o is None else o[0] for o in out),
                         talib.MAX(ohlcv.high, period))
    assert_matches_talib(column(None if o is None else o[1] for o in out),
                         talib.MIN(ohlcv.low, period))


def test_rolling_min_keeps_the_oldest_of_equal_values():
    m = RollingMax(3, lowest=True)
    assert [m.update(x) for x in (5, 3, 3, 4, 6, 7)] == [None, None, 3, 3, 3, 4]


def supertrend_by_definition(high, low, close, period, mult):
    """TradingView's ``ta.supertrend`` as published (Pine v5 reference), on TA-Lib's ATR."""
    atr = talib.ATR(high, low, close, period)
    line = np.full(len(close), np.nan)
    direction = np.zeros(len(close))
    up = lo = np.nan
    d = 0
    for i in range(len(close)):
        if np.isnan(atr[i]):
            continue
        hl2 = (high[i] + low[i]) / 2
        bu, bl = hl2 + mult * atr[i], hl2 - mult * atr[i]
        if d == 0:
            up, lo, d = bu, bl, -1
        else:
            up = bu if bu < up or close[i - 1] > up else up
            lo = bl if bl > lo or close[i - 1] < lo else lo
            if d < 0 and close[i] > up:
                d = 1
            elif d > 0 and close[i] < lo:
                d = -1
        line[i], direction[i] = (lo if d > 0 else up), d
    return line, direction


@pytest.mark.parametrize("period,mult", [(10, 3.0), (7, 2.0), (14, 1.0)])
def test_supertrend_matches_its_definition(ohlcv, period, mult):
    st = Supertrend(period, mult)
    out = [st.update(float(h), float(lo), float(c))
           for h, lo, c in zip(ohlcv.high, ohlcv.low, ohlcv.close, strict=True)]
    e_line, e_dir = supertrend_by_definition(ohlcv.high, ohlcv.low, ohlcv.close, period, mult)
    assert_matches_talib(column(None if o is None else o[0] for o in out), e_line)
    np.testing.assert_array_equal(column(0 if o is None else o[1] for o in out), e_dir)
    assert {1, -1} <= set(e_dir)  # the data really flips both ways
