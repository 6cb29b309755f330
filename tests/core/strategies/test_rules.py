"""Every catalog rule on crafted candles: the entry it must take (side, bar, SL/TP distances),
the SHORT mirror of it, and its exit conditions (stops, voiding, the opposite signal)."""

from __future__ import annotations

import pytest

from core.events import Side
from core.strategies.bands import Bollinger, Supertrend
from core.strategies.bollinger_squeeze import BollingerSqueezeRule
from core.strategies.donchian_breakout import DonchianBreakoutRule
from core.strategies.ict_fvg import IctFvgRule
from core.strategies.indicators import Atr
from core.strategies.macd_cross import MacdRule
from core.strategies.oscillators import Rsi
from core.strategies.rsi_reversion import RsiReversionRule
from core.strategies.supertrend import SupertrendRule
from tests.core.strategies.crafted import bar, closes, mirror, run

DOWN_THEN_UP = [200.0 - 3 * i for i in range(25)] + [128.0 + 4 * (i + 1) for i in range(10)]


def atr_at(candles, index, period):
    atr = Atr(period)
    for c in candles[: index + 1]:
        atr.update(c.high, c.low, c.close)
    return atr.value


def sides(decisions):
    return [d.side for _, d in decisions]


# --------------------------------------------------------------------------- macd


def test_macd_cross_up_without_filter_goes_long_with_atr_stops():
    candles = closes(DOWN_THEN_UP)
    decisions = run(MacdRule(fast=3, slow=6, signal=3, trend_ema=0, atr_period=5), candles)
    assert sides(decisions) == [Side.LONG]
    i, d = decisions[0]
    assert i >= 25  # after the turn
    atr = atr_at(candles, i, 5)
    assert d.sl_distance == pytest.approx(2.0 * atr) and d.tp_distance == pytest.approx(4 * atr)
    assert sides(run(MacdRule(fast=3, slow=6, signal=3, trend_ema=0, atr_period=5),
                     mirror(candles))) == [Side.SHORT]


def test_macd_trend_filter_blocks_a_cross_against_the_trend():
    candles = closes(DOWN_THEN_UP)
    rule = MacdRule(fast=3, slow=6, signal=3, trend_ema=30, atr_period=5)
    assert run(rule, candles) == []  # the close is still below EMA30 when MACD turns up


def test_macd_opposite_cross_is_the_exit_signal():
    up_then_down = DOWN_THEN_UP + [168.0 - 5 * (i + 1) for i in range(10)]
    decisions = run(MacdRule(fast=3, slow=6, signal=3, trend_ema=0, atr_period=5),
                    closes(up_then_down))
    assert sides(decisions) == [Side.LONG, Side.SHORT]


# --------------------------------------------------------------------------- rsi_reversion

CALM = [100.0 + 0.5 * (i % 2) for i in range(30)]
DROP = CALM + [99.0, 97.5, 96.0, 94.5, 99.0, 99.5]


def test_rsi_reversion_buys_the_close_back_inside_the_band_and_targets_the_middle():
    candles = closes(DROP, spread=0.2)
    rule = RsiReversionRule(rsi_period=5, bb_period=20, atr_period=5)
    decisions = run(rule, candles)
    assert [(i, d.side) for i, d in decisions] == [(34, Side.LONG)]
    rsi, bb = Rsi(5), Bollinger(20, 2.0)
    for c in candles[:34]:
        rsi.update(c.close)
        bb.update(c.close)
    assert rsi.value <= 30 and candles[33].close < bb.lower  # armed on bar 33
    bb.update(candles[34].close)
    assert candles[34].close > bb.lower
    d = decisions[0][1]
    atr = atr_at(candles, 34, 5)
    assert d.sl_distance == pytest.approx(1.5 * atr)
    assert d.tp_distance == pytest.approx(max(bb.middle - candles[34].close, 0.5 * atr))
    assert sides(run(RsiReversionRule(rsi_period=5, bb_period=20, atr_period=5),
                     mirror(candles))) == [Side.SHORT]


def test_rsi_reversion_needs_the_rsi_extreme():
    candles = closes(DROP, spread=0.2)
    assert run(RsiReversionRule(rsi_period=5, oversold=1.0, bb_period=20, atr_period=5),
               candles) == []


def test_rsi_reversion_fixed_target_when_not_to_middle():
    candles = closes(DROP, spread=0.2)
    ((i, d),) = run(RsiReversionRule(rsi_period=5, bb_period=20, atr_period=5,
                                     tp_to_middle=False, tp_atr=2.5), candles)
    assert d.tp_distance == pytest.approx(2.5 * atr_at(candles, i, 5))


# --------------------------------------------------------------------------- donchian


def _range_then(breaks):
    flat = [bar(i, 100, 101, 99, 100) for i in range(25)]
    return flat + [bar(25 + j, *ohlc) for j, ohlc in enumerate(breaks)]


def test_donchian_first_close_above_the_channel_goes_long_once():
    candles = _range_then([(100, 103.5, 100, 103), (103, 105, 102.5, 104)])
    rule = DonchianBreakoutRule(entry_period=20, exit_period=10, atr_period=5)
    decisions = run(rule, candles)
    assert [(i, d.side) for i, d in decisions] == [(25, Side.LONG)]
    atr = atr_at(candles, 25, 5)
    assert decisions[0][1].sl_distance == pytest.approx(2 * atr)
    assert decisions[0][1].tp_distance == pytest.approx(4 * atr)
    assert rule.verdict().bias == "LONG"
    assert sides(run(DonchianBreakoutRule(entry_period=20, exit_period=10, atr_period=5),
                     mirror(candles))) == [Side.SHORT]


def test_donchian_close_below_the_low_is_the_opposite_signal_and_ends_the_long():
    candles = _range_then([(100, 103.5, 100, 103), (103, 103, 98, 98.5)])
    rule = DonchianBreakoutRule(entry_period=20, exit_period=10, atr_period=5)
    assert [(i, d.side) for i, d in run(rule, candles)] == [(25, Side.LONG), (26, Side.SHORT)]
    assert rule.verdict().bias == "SHORT"


def test_donchian_inside_the_channel_does_nothing():
    rule = DonchianBreakoutRule(entry_period=20, exit_period=10, atr_period=5)
    assert run(rule, _range_then([(100, 100.9, 99.1, 100.5)])) == []
    assert rule.verdict().bias == "NEUTRAL"


# --------------------------------------------------------------------------- supertrend


def test_supertrend_flip_up_goes_long_with_the_line_as_stop():
    candles = closes(DOWN_THEN_UP)
    rule = SupertrendRule(period=5, multiplier=2.0)
    decisions = run(rule, candles)
    assert sides(decisions) == [Side.LONG]
    i, d = decisions[0]
    st = Supertrend(5, 2.0)
    for c in candles[: i + 1]:
        st.update(c.high, c.low, c.close)
    assert st.flipped and st.direction == 1
    assert d.sl_distance == pytest.approx(max(candles[i].close - st.line, 0.5 * st.atr))
    assert d.tp_distance == pytest.approx(2.0 * d.sl_distance)
    assert rule.verdict().bias == "LONG"
    # the mirror falls after rising; Supertrend starts down (TradingView), so it flips up first
    ((_, up), (j, down)) = run(SupertrendRule(period=5, multiplier=2.0), mirror(candles))
    assert (up.side, down.side, j) == (Side.LONG, Side.SHORT, i)
    assert down.sl_distance == pytest.approx(d.sl_distance)


def test_supertrend_flip_back_is_the_opposite_signal():
    candles = closes(DOWN_THEN_UP + [168.0 - 6 * (i + 1) for i in range(10)])
    assert sides(run(SupertrendRule(period=5, multiplier=2.0), candles)) == [Side.LONG,
                                                                              Side.SHORT]


# --------------------------------------------------------------------------- squeeze

WIDE = [100.0 + (3.0 if i % 2 else -3.0) for i in range(40)]
QUIET = [100.0 + (0.05 if i % 2 else -0.05) for i in range(20)]


def test_squeeze_then_close_above_the_band_goes_long_once():
    candles = closes(WIDE + QUIET + [101.0, 102.0, 103.0], spread=0.1)
    rule = BollingerSqueezeRule(bb_period=10, squeeze_lookback=30, squeeze_window=5,
                                atr_period=5)
    decisions = run(rule, candles)
    assert [(i, d.side) for i, d in decisions] == [(60, Side.LONG)]
    atr = atr_at(candles, 60, 5)
    assert decisions[0][1].sl_distance == pytest.approx(1.5 * atr)
    assert rule.verdict().bias == "LONG"
    assert sides(run(BollingerSqueezeRule(bb_period=10, squeeze_lookback=30, squeeze_window=5,
                                          atr_period=5), mirror(candles))) == [Side.SHORT]


def test_breakout_without_a_recent_squeeze_is_ignored():
    # volatility keeps rising: the bandwidth is never at its lookback low
    growing = [100.0 + (0.5 * i if i % 2 else -0.5 * i) for i in range(60)]
    candles = closes(growing + [200.0], spread=0.1)
    rule = BollingerSqueezeRule(bb_period=10, squeeze_lookback=30, squeeze_window=5,
                                atr_period=5)
    assert run(rule, candles) == []


# --------------------------------------------------------------------------- ict_fvg


def _fvg_setup(last):
    flat = [bar(i, 100, 101, 99, 100) for i in range(16)]
    return flat + [
        bar(16, 100, 103, 100, 102),      # swing high 103
        bar(17, 102, 102, 99.5, 100),
        bar(18, 100, 101, 99, 100),
        bar(19, 100, 104.5, 100, 104),    # close above 103: bullish structure break
        bar(20, 104, 107, 103.5, 106.5),  # low 103.5 > high of bar 18 (101): FVG 101..103.5
        bar(21, 106.5, 107, 104, 105),    # above the gap
        bar(22, *last),
    ]


def test_ict_fvg_retrace_into_the_gap_after_a_break_goes_long_stop_beyond_the_gap():
    candles = _fvg_setup((105, 105.5, 103, 104))
    rule = IctFvgRule(swing=1, atr_period=5)
    decisions = run(rule, candles)
    assert [(i, d.side) for i, d in decisions] == [(22, Side.LONG)]
    atr = atr_at(candles, 22, 5)
    d = decisions[0][1]
    assert d.sl_distance == pytest.approx(104 - (101 - 0.2 * atr))
    assert d.tp_distance == pytest.approx(2.0 * d.sl_distance)
    assert rule.verdict().bias == "LONG"
    assert sides(run(IctFvgRule(swing=1, atr_period=5), mirror(candles))) == [Side.SHORT]


def test_ict_fvg_close_through_the_gap_voids_it():
    candles = _fvg_setup((105, 105.5, 100, 100.5))  # closes below the gap's bottom 101
    candles.append(bar(23, 100.5, 102, 100.5, 101.5))  # a later touch no longer counts
    assert run(IctFvgRule(swing=1, atr_period=5), candles) == []


def test_ict_fvg_needs_the_structure_break():
    candles = _fvg_setup((105, 105.5, 103, 104))
    candles[16] = bar(16, 100, 108, 100, 102)  # swing high 108: no close breaks it
    assert run(IctFvgRule(swing=1, atr_period=5), candles) == []


def test_ict_fvg_gap_expires():
    candles = _fvg_setup((105, 106, 104.5, 105.5))
    candles += [bar(23 + k, 105.5, 106, 104.5, 105.5) for k in range(5)]
    candles.append(bar(28, 105.5, 105.5, 103, 104))  # touches 6 bars after the gap was born
    assert run(IctFvgRule(swing=1, atr_period=5, max_age=5), candles) == []
    assert sides(run(IctFvgRule(swing=1, atr_period=5, max_age=30), candles)) == [Side.LONG]
