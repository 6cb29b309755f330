"""``supertrend``: trade the Supertrend's flips; its line is the stop.

Source: O. Seban's Supertrend (ATR bands around hl2 that only tighten; the definition
TradingView's ``ta.supertrend`` implements, see ``core.strategies.bands.Supertrend``).

* LONG when the trend flips up (close above the final upper band), SHORT when it flips down.
* SL at the new Supertrend line (the trailing band the flip just produced), at least
  ``min_sl_atr`` [0.5] x ATR away; TP at ``tp_rr`` [2.0] x the SL distance.
"""

from __future__ import annotations

from core.events import Candle, Side
from core.strategies.bands import Supertrend
from core.strategies.rules import RuleDecision, Verdict, warming_up
from core.strategies.spec import ParamSpec, StrategySpec


class SupertrendRule:
    """Supertrend(period, multiplier) direction flips."""

    name = "supertrend"

    def __init__(self, *, period: int = 10, multiplier: float = 3.0, tp_rr: float = 2.0,
                 min_sl_atr: float = 0.5) -> None:
        if not tp_rr > 0 or min_sl_atr < 0:
            raise ValueError("tp_rr must be > 0 and min_sl_atr >= 0")
        self._st = Supertrend(period, multiplier)
        self.tp_rr, self.min_sl_atr = tp_rr, min_sl_atr
        self.params = dict(period=period, multiplier=multiplier, tp_rr=tp_rr,
                           min_sl_atr=min_sl_atr)
        self.warmup = period + 2
        self._close = 0.0

    def on_candle(self, c: Candle) -> RuleDecision | None:
        st = self._st
        out = st.update(c.high, c.low, c.close)
        self._close = c.close
        if out is None or not st.flipped or not st.atr:
            return None
        line, direction = out
        sl = max(abs(c.close - line), self.min_sl_atr * st.atr)
        side = Side.LONG if direction > 0 else Side.SHORT
        return RuleDecision(side, sl, sl * self.tp_rr,
                            f"supertrend flip {side.value.lower()}, line {line:.6g}")

    def vote(self) -> tuple[str, float]:
        """``verdict()``'s bias and strength without its text (the ensemble's fast path)."""
        st = self._st
        if st.line is None or not st.direction:
            return "WARMING_UP", 1.0
        return ("LONG" if st.direction > 0 else "SHORT"), 1.0

    def verdict(self) -> Verdict:
        st = self._st
        if st.line is None or not st.direction:
            return warming_up(self.warmup)
        up = st.direction > 0
        return Verdict("LONG" if up else "SHORT",
                       f"close {self._close:.6g} {'above' if up else 'below'} supertrend "
                       f"{st.line:.6g}")


SPEC = StrategySpec(
    id="supertrend",
    description="Supertrend flip; the Supertrend line is the stop, TP a multiple of it",
    source="O. Seban's Supertrend (ATR bands on hl2; TradingView ta.supertrend definition)",
    params={
        "period": ParamSpec(10, 5, 30, 1, "int", "ATR period, candles"),
        "multiplier": ParamSpec(3.0, 1.0, 5.0, 0.25, "float", "band width, ATRs"),
        "tp_rr": ParamSpec(2.0, 0.5, 5.0, 0.25, "float", "take profit, multiples of the SL"),
        "min_sl_atr": ParamSpec(0.5, 0.0, 2.0, 0.25, "float", "smallest SL, ATRs"),
    },
    factory=SupertrendRule,
)
