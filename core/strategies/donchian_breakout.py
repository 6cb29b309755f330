"""``donchian_breakout``: the Turtles' channel breakout with ATR ("N") stops.

Source: C. Faith, *Way of the Turtle* (2007), System 1/2: enter when the price exceeds the
high (low) of the last ``entry_period`` [20] bars; stop at ``sl_atr`` [2] N, N = ATR(20);
exit on a break of the opposite ``exit_period`` [10]-bar channel. Channel: R. Donchian.

* LONG on the first close above the highest high of the ``entry_period`` bars *before* it;
  SHORT on the first close below their lowest low.
* SL ``sl_atr`` x ATR, TP ``tp_atr`` [4] x ATR (the exchange-side TP stands in for the
  Turtles' open-ended exit; set ``TRAILING_PCT`` to trail). The verdict follows the Turtle
  position: LONG after an up-breakout until a close below the ``exit_period`` low.
"""

from __future__ import annotations

from core.events import Candle, Side
from core.strategies.bands import Donchian
from core.strategies.indicators import Atr
from core.strategies.rules import RuleDecision, Verdict, atr_stops, warming_up
from core.strategies.spec import ParamSpec, StrategySpec


class DonchianBreakoutRule:
    """Close outside the previous ``entry_period``-bar Donchian channel."""

    name = "donchian_breakout"

    def __init__(self, *, entry_period: int = 20, exit_period: int = 10, atr_period: int = 20,
                 sl_atr: float = 2.0, tp_atr: float = 4.0) -> None:
        self._entry, self._exit = Donchian(entry_period), Donchian(exit_period)
        self._atr = Atr(atr_period)
        self.sl_atr, self.tp_atr = sl_atr, tp_atr
        self.params = dict(entry_period=entry_period, exit_period=exit_period,
                           atr_period=atr_period, sl_atr=sl_atr, tp_atr=tp_atr)
        self.warmup = max(entry_period + 1, atr_period + 1)
        self._state = 0  # +1 after an up-breakout, -1 after a down one, 0 out
        self._outside = 0  # the previous close was above (+1) / below (-1) its channel
        self._ready = False
        self._last = (0.0, 0.0, 0.0)  # channel low, high, close of the last candle

    def on_candle(self, c: Candle) -> RuleDecision | None:
        upper, lower = self._entry.upper, self._entry.lower
        ex_up, ex_lo = self._exit.upper, self._exit.lower
        self._entry.update(c.high, c.low)
        self._exit.update(c.high, c.low)
        atr = self._atr.update(c.high, c.low, c.close)
        if upper is None or lower is None or ex_up is None or ex_lo is None:
            return None
        self._ready = True
        if (self._state > 0 and c.close < ex_lo) or (self._state < 0 and c.close > ex_up):
            self._state = 0
        outside = 1 if c.close > upper else -1 if c.close < lower else 0
        fresh, self._outside = outside != self._outside, outside
        self._last = (lower, upper, c.close)
        if not outside or not fresh:
            return None
        self._state = outside
        stops = atr_stops(c.close, atr, self.sl_atr, self.tp_atr)
        if stops is None:
            return None
        side = Side.LONG if outside > 0 else Side.SHORT
        edge = upper if outside > 0 else lower
        return RuleDecision(side, stops[0], stops[1],
                            f"donchian {self._entry.period} breakout {edge:.6g}")

    def vote(self) -> tuple[str, float]:
        """``verdict()``'s bias and strength without its text (the ensemble's fast path)."""
        if not self._ready:
            return "WARMING_UP", 1.0
        return ("LONG" if self._state > 0 else "SHORT" if self._state < 0 else "NEUTRAL"), 1.0

    def verdict(self) -> Verdict:
        if not self._ready:
            return warming_up(self.warmup)
        lower, upper, close = self._last
        detail = f"channel {lower:.6g}..{upper:.6g}, close {close:.6g}"
        if self._state > 0:
            return Verdict("LONG", f"up-breakout holds; {detail}")
        if self._state < 0:
            return Verdict("SHORT", f"down-breakout holds; {detail}")
        return Verdict("NEUTRAL", f"inside; {detail}")


SPEC = StrategySpec(
    id="donchian_breakout",
    description="Turtle channel breakout: close beyond the N-bar high/low, ATR stops",
    source="C. Faith, Way of the Turtle (2007); R. Donchian's channel",
    params={
        "entry_period": ParamSpec(20, 10, 100, 5, "int", "breakout channel, candles"),
        "exit_period": ParamSpec(10, 5, 50, 5, "int", "exit channel (verdict), candles"),
        "atr_period": ParamSpec(20, 5, 40, 1, "int", "ATR (N) period"),
        "sl_atr": ParamSpec(2.0, 0.5, 4.0, 0.25, "float", "stop loss, N from entry"),
        "tp_atr": ParamSpec(4.0, 1.0, 10.0, 0.5, "float", "take profit, N from entry"),
    },
    factory=DonchianBreakoutRule,
)
