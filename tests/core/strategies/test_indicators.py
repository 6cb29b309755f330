import csv
import math

import numpy as np
import pytest
import talib

from core.events import Candle
from core.market.indicators_ta import candles_to_arrays, compute_indicators
from core.strategies.indicators import Adx, Atr, Ema, WilderRma
from tests.conftest import shared_file

KLINES = "BTCUSDT-1m-2023-04-15.csv"
REL = 1e-9


def read_klines(name: str) -> list[Candle]:
    """A Binance futures klines CSV (with header) as closed 1m candles."""
    with shared_file(name).open(newline="") as f:
        return [
            Candle(
                symbol=name.split("-")[0],
                ts_ms=int(row["close_time"]),
                interval_ms=60_000,
                open_ms=int(row["open_time"]),
                open=float(row["open"]),
                high=float(row["high"]),
                low=float(row["low"]),
                close=float(row["close"]),
                volume=float(row["volume"]),
                closed=True,
            )
            for row in csv.DictReader(f)
        ]


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    return read_klines(KLINES)


@pytest.fixture(scope="module")
def ohlcv(candles):
    return candles_to_arrays(candles)


def feed(indicator, *columns) -> np.ndarray:
    """Run an incremental indicator over whole columns; None becomes NaN."""
    out = [indicator.update(*map(float, bar)) for bar in zip(*columns, strict=False)]
    return np.array([math.nan if v is None else v for v in out])


def assert_matches_talib(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))  # same warm-up
    assert (~np.isnan(expected)).any()
    np.testing.assert_allclose(got, expected, rtol=REL, atol=0, equal_nan=True)


# --------------------------------------------------------------------------- arrays


@pytest.mark.realdata
def test_candles_to_arrays(candles, ohlcv):
    assert len(ohlcv) == len(candles) == 1440
    for name in ("open", "high", "low", "close", "volume"):
        column = getattr(ohlcv, name)
        assert column.dtype == np.float64 and column.flags.c_contiguous
    assert ohlcv.open_ms.dtype == np.int64
    # first row of the file: 1681516800000,30453.00,30455.00,30446.40,30452.40,174.120
    assert ohlcv.open_ms[0] == 1_681_516_800_000
    assert (ohlcv.open[0], ohlcv.high[0], ohlcv.low[0], ohlcv.close[0], ohlcv.volume[0]) == (
        30453.0, 30455.0, 30446.4, 30452.4, 174.12,
    )
    assert np.all(np.diff(ohlcv.open_ms) == 60_000)


def test_candles_must_be_in_time_order():
    a = Candle("BTCUSDT", 2, 60_000, 0, 1.0, 1.0, 1.0, 1.0, 1.0, True)
    b = a._replace(open_ms=60_000)
    candles_to_arrays([a, b])
    with pytest.raises(ValueError, match="sorted"):
        candles_to_arrays([b, a])
    with pytest.raises(ValueError, match="sorted"):
        candles_to_arrays([a, a])


# --------------------------------------------------------------------------- batch


@pytest.mark.realdata
def test_compute_indicators_equals_direct_talib_calls(ohlcv):
    h, lo, c, v = ohlcv.high, ohlcv.low, ohlcv.close, ohlcv.volume
    ind = compute_indicators(ohlcv)
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    vol_sma = talib.SMA(v, 20)
    expected = {
        "rsi": talib.RSI(c, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "ema20": talib.EMA(c, 20),
        "ema50": talib.EMA(c, 50),
        "ema200": talib.EMA(c, 200),
        "adx": talib.ADX(h, lo, c, 14),
        "atr": talib.ATR(h, lo, c, 14),
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "volume_sma20": vol_sma,
        "volume_ratio": v / vol_sma,
    }
    for name, want in expected.items():
        np.testing.assert_array_equal(getattr(ind, name), want, err_msg=name)

    latest = ind.latest
    assert latest.open_ms == int(ohlcv.open_ms[-1]) and latest.close == ohlcv.close[-1]
    for name in latest._fields[2:]:
        assert getattr(latest, name) == expected[name][-1], name
        assert not math.isnan(getattr(latest, name)), name
    assert 0 < latest.rsi < 100 and 0 < latest.adx < 100
    assert latest.bb_lower < latest.bb_middle < latest.bb_upper


@pytest.mark.realdata
def test_first_defined_index_of_each_indicator(ohlcv):
    ind = compute_indicators(ohlcv)
    first = {
        "rsi": 14, "macd": 33, "macd_signal": 33, "macd_hist": 33, "ema20": 19, "ema50": 49,
        "ema200": 199, "adx": 27, "atr": 14, "bb_upper": 19, "volume_ratio": 19,
    }  # fmt: skip
    for name, index in first.items():
        values = getattr(ind, name)
        assert len(values) == len(ohlcv)
        assert np.isnan(values[:index]).all() and not np.isnan(values[index:]).any(), name


def test_short_input_gives_nan_where_undefined():
    bars = [
        Candle("X", i, 60_000, i * 60_000, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 5.0, True)
        for i in range(20)
    ]
    ind = compute_indicators(candles_to_arrays(bars))
    assert len(ind.rsi) == 20
    latest = ind.latest
    for name in ("macd", "macd_signal", "macd_hist", "ema50", "ema200", "adx"):
        assert math.isnan(getattr(latest, name)), name
    for name in ("rsi", "ema20", "atr", "bb_upper", "bb_middle", "bb_lower", "volume_ratio"):
        assert not math.isnan(getattr(latest, name)), name
    assert latest.volume_ratio == 1.0

    empty = compute_indicators(candles_to_arrays([]))
    assert len(empty.rsi) == 0 and len(empty.adx) == 0
    assert empty.latest.open_ms is None and math.isnan(empty.latest.rsi)


def test_volume_ratio_is_nan_when_average_volume_is_zero():
    bars = [Candle("X", i, 60_000, i * 60_000, 1.0, 1.0, 1.0, 1.0, 0.0, True) for i in range(25)]
    ind = compute_indicators(candles_to_arrays(bars))
    assert np.isnan(ind.volume_ratio).all()


# --------------------------------------------------------------------------- incremental


@pytest.mark.realdata
@pytest.mark.parametrize("period", [1, 2, 3, 9, 14, 20, 50, 200])
def test_incremental_ema_equals_talib(ohlcv, period):
    assert_matches_talib(feed(Ema(period), ohlcv.close), talib.EMA(ohlcv.close, period))


@pytest.mark.realdata
@pytest.mark.parametrize("period", [1, 2, 5, 14, 50])
def test_incremental_atr_equals_talib(ohlcv, period):
    h, lo, c = ohlcv.high, ohlcv.low, ohlcv.close
    assert_matches_talib(feed(Atr(period), h, lo, c), talib.ATR(h, lo, c, period))


@pytest.mark.realdata
@pytest.mark.parametrize("period", [2, 5, 14, 30, 100])
def test_incremental_adx_and_di_equal_talib(ohlcv, period):
    h, lo, c = ohlcv.high, ohlcv.low, ohlcv.close
    adx = Adx(period)
    got, plus, minus = [], [], []
    for bar in zip(h, lo, c, strict=False):
        value = adx.update(*map(float, bar))
        got.append(math.nan if value is None else value)
        plus.append(math.nan if adx.plus_di is None else adx.plus_di)
        minus.append(math.nan if adx.minus_di is None else adx.minus_di)
    assert_matches_talib(np.array(got), talib.ADX(h, lo, c, period))
    assert_matches_talib(np.array(plus), talib.PLUS_DI(h, lo, c, period))
    assert_matches_talib(np.array(minus), talib.MINUS_DI(h, lo, c, period))
    assert adx.value == got[-1]


@pytest.mark.realdata
@pytest.mark.parametrize("period", [3, 14])
def test_wilder_rma_of_true_range_is_atr(ohlcv, period):
    h, lo, c = ohlcv.high, ohlcv.low, ohlcv.close
    true_range = talib.TRANGE(h, lo, c)[1:]  # no true range on the first bar
    got = feed(WilderRma(period), true_range)
    assert_matches_talib(got, talib.ATR(h, lo, c, period)[1:])


def test_adx_matches_talib_through_flat_bars_and_exact_ties():
    """Integer prices give exact +DM/-DM ties; flat stretches give a true range of 0."""
    rng = np.random.default_rng(7)
    close = 100.0 + np.cumsum(rng.integers(-2, 3, 400)).astype(float)
    high = close + rng.integers(0, 3, 400)
    low = close - rng.integers(0, 3, 400)
    for start, stop in ((0, 40), (200, 260)):
        close[start:stop] = high[start:stop] = low[start:stop] = close[max(start - 1, 0)]
    for period in (3, 14):
        bars = (high, low, close)
        assert_matches_talib(feed(Adx(period), *bars), talib.ADX(*bars, period))
        assert_matches_talib(feed(Atr(period), *bars), talib.ATR(*bars, period))


def test_warm_up_lengths():
    ema, atr, adx = Ema(3), Atr(3), Adx(3)
    assert [ema.update(x) for x in (1.0, 2.0, 3.0, 4.0)] == [None, None, 2.0, 3.0]
    assert [atr.update(2.0, 0.0, 1.0) for _ in range(5)] == [None, None, None, 2.0, 2.0]
    outputs = [adx.update(10.0 + i, 9.0 + i, 9.5 + i) for i in range(7)]
    assert outputs[:5] == [None] * 5 and outputs[5] == 100.0  # first ADX at 2 * period - 1
    assert adx.plus_di == pytest.approx(100 / 1.5) and adx.minus_di == 0.0  # +DM 1, TR 1.5


@pytest.mark.parametrize("cls, bad", [(Ema, 0), (Atr, 0), (WilderRma, -1), (Adx, 1), (Ema, 2.5)])
def test_bad_periods_are_rejected(cls, bad):
    with pytest.raises(ValueError, match="period"):
        cls(bad)
