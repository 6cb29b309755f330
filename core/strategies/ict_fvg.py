"""``ict_fvg``: a fair-value-gap retrace in the direction of the last market-structure break.

Source: M. J. Huddleston, "Inner Circle Trader" (ICT) mentorship material: the fair value gap
(FVG, a three-candle imbalance) and the break of market structure (BOS/MSS); the definitions
below are the common published ones.

* Swings: a bar whose high (low) is strictly above (below) the ``swing`` [2] bars on each side
  is a swing high (low), known ``swing`` bars later.
* Structure: a close above the last swing high is a bullish break (bias LONG), a close below
  the last swing low a bearish one (bias SHORT).
* FVG: bullish when a bar's low is above the high two bars earlier (the gap between them),
  bearish when its high is below the low two bars earlier; at least ``min_gap_atr`` [0.1] x
  ATR tall, formed by the breaking leg or after it, valid ``max_age`` [30] bars, void once a
  close goes through it.
* Entry LONG with a bullish bias when a later bar trades down into the bullish gap (low <= gap
  top) and closes above its bottom; SL beyond the gap (its bottom minus ``sl_buffer_atr``
  [0.2] x ATR), TP ``tp_rr`` [2.0] x the SL distance. One trade per gap. SHORT mirrors it.
"""

from __future__ import annotations

from collections import deque

from core.events import Candle, Side
from core.strategies.indicators import Atr
from core.strategies.rules import RuleDecision, Verdict, warming_up
from core.strategies.spec import ParamSpec, StrategySpec


class IctFvgRule:
    """Market-structure break, then a retrace into the fair value gap it left."""

    name = "ict_fvg"

    def __init__(self, *, swing: int = 2, max_age: int = 30, min_gap_atr: float = 0.1,
                 sl_buffer_atr: float = 0.2, tp_rr: float = 2.0, atr_period: int = 14) -> None:
        if swing < 1 or max_age < 1 or not tp_rr > 0 or min_gap_atr < 0 or sl_buffer_atr < 0:
            raise ValueError("need swing >= 1, max_age >= 1, tp_rr > 0, gaps/buffers >= 0")
        self.swing, self.max_age = swing, max_age
        self.min_gap_atr, self.sl_buffer_atr, self.tp_rr = min_gap_atr, sl_buffer_atr, tp_rr
        self._atr = Atr(atr_period)
        self.params = dict(swing=swing, max_age=max_age, min_gap_atr=min_gap_atr,
                           sl_buffer_atr=sl_buffer_atr, tp_rr=tp_rr, atr_period=atr_period)
        self.warmup = max(atr_period + 1, 2 * swing + 1)
        self._bars: deque[tuple[float, float]] = deque(maxlen=2 * swing + 1)  # (high, low)
        self._i = -1
        self._swing_high: float | None = None
        self._swing_low: float | None = None
        self.bias = 0  # +1 after a bullish break, -1 after a bearish one
        self._break_i = 0
        self._gap: tuple[int, float, float, int] | None = None  # (dir, bottom, top, born)
        self._close = 0.0

    def on_candle(self, c: Candle) -> RuleDecision | None:
        self._i = i = self._i + 1
        atr = self._atr.update(c.high, c.low, c.close)
        bars = self._bars
        prev2 = bars[-2] if len(bars) >= 2 else None
        bars.append((c.high, c.low))
        self._close = c.close
        self._find_swing()
        # structure break on the close
        if self._swing_high is not None and c.close > self._swing_high:
            self.bias, self._break_i, self._swing_high = 1, i, None
        elif self._swing_low is not None and c.close < self._swing_low:
            self.bias, self._break_i, self._swing_low = -1, i, None
        if not atr:
            return None
        decision = self._entry(c, atr)
        # a new gap (this bar and the one two before)
        if prev2 is not None and decision is None:
            if c.low > prev2[0] and c.low - prev2[0] >= self.min_gap_atr * atr:
                self._gap = (1, prev2[0], c.low, i)
            elif c.high < prev2[1] and prev2[1] - c.high >= self.min_gap_atr * atr:
                self._gap = (-1, c.high, prev2[1], i)
        return decision

    def _find_swing(self) -> None:
        bars = self._bars
        if len(bars) < bars.maxlen:  # type: ignore[operator]
            return
        mid = self.swing
        high, low = bars[mid]
        highs = [b[0] for b in bars]
        lows = [b[1] for b in bars]
        if high > max(highs[:mid]) and high > max(highs[mid + 1:]):
            self._swing_high = high
        if low < min(lows[:mid]) and low < min(lows[mid + 1:]):
            self._swing_low = low

    def _entry(self, c: Candle, atr: float) -> RuleDecision | None:
        gap = self._gap
        if gap is None:
            return None
        direction, bottom, top, born = gap
        if (self._i - born > self.max_age or (direction > 0 and c.close < bottom)
                or (direction < 0 and c.close > top)):
            self._gap = None
            return None
        if (direction != self.bias or born < self._break_i - 2 or born >= self._i):
            return None
        buffer = self.sl_buffer_atr * atr
        if direction > 0 and c.low <= top and c.close >= bottom:
            sl = c.close - (bottom - buffer)
            side = Side.LONG
        elif direction < 0 and c.high >= bottom and c.close <= top:
            sl = (top + buffer) - c.close
            side = Side.SHORT
        else:
            return None
        if sl <= 0:
            return None
        self._gap = None
        return RuleDecision(side, sl, sl * self.tp_rr,
                            f"fvg {bottom:.6g}..{top:.6g} retrace after a "
                            f"{'bullish' if direction > 0 else 'bearish'} structure break")

    def vote(self) -> tuple[str, float]:
        """``verdict()``'s bias and strength without its text (the ensemble's fast path)."""
        if self._atr.value is None:
            return "WARMING_UP", 1.0
        return ("LONG" if self.bias > 0 else "SHORT" if self.bias < 0 else "NEUTRAL"), 1.0

    def verdict(self) -> Verdict:
        if self._atr.value is None:
            return warming_up(self.warmup)
        gap = self._gap
        waiting = ""
        if gap is not None and gap[0] == self.bias:
            waiting = f", FVG {gap[1]:.6g}..{gap[2]:.6g} open"
        if self.bias > 0:
            return Verdict("LONG", f"bullish structure break{waiting}")
        if self.bias < 0:
            return Verdict("SHORT", f"bearish structure break{waiting}")
        return Verdict("NEUTRAL", "no structure break yet")


SPEC = StrategySpec(
    id="ict_fvg",
    description="ICT fair-value-gap retrace after a market-structure break; stop beyond the gap",
    source="M. J. Huddleston, Inner Circle Trader: fair value gap, break of structure",
    params={
        "swing": ParamSpec(2, 1, 5, 1, "int", "swing = bars on each side"),
        "max_age": ParamSpec(30, 5, 100, 5, "int", "bars a gap stays valid"),
        "min_gap_atr": ParamSpec(0.1, 0.0, 1.0, 0.05, "float", "smallest gap, ATRs"),
        "sl_buffer_atr": ParamSpec(0.2, 0.0, 1.0, 0.05, "float", "SL beyond the gap, ATRs"),
        "tp_rr": ParamSpec(2.0, 1.0, 5.0, 0.25, "float", "take profit, multiples of the SL"),
        "atr_period": ParamSpec(14, 5, 30, 1, "int", "ATR period"),
    },
    factory=IctFvgRule,
)
