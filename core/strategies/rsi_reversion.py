"""``rsi_reversion``: RSI extreme outside a Bollinger band, entered when price closes back
inside; target the middle band.

Sources: J. Bollinger, *Bollinger on Bollinger Bands* (2001), ch. 18-19 (bands with an
oscillator for reversals: a close outside the band confirmed by the indicator, then a close
back inside); RSI from J. W. Wilder, *New Concepts in Technical Trading Systems* (1978).

* arm LONG when a close is below the lower band with RSI(``rsi_period``) <= ``oversold`` [30];
  enter LONG on the first later close back above the lower band. SHORT mirrors it with the
  upper band and ``overbought`` [70]. A close across the middle band disarms.
* SL ``sl_atr`` [1.5] x ATR; TP at the middle band when ``tp_to_middle`` (at least
  ``min_tp_atr`` x ATR), else ``tp_atr`` x ATR.
"""

from __future__ import annotations

from core.events import Candle, Side
from core.strategies.bands import Bollinger
from core.strategies.indicators import Atr
from core.strategies.oscillators import Rsi
from core.strategies.rules import RuleDecision, Verdict, warming_up
from core.strategies.spec import ParamSpec, StrategySpec


class RsiReversionRule:
    """Oversold/overbought RSI outside the Bollinger band, entry back inside."""

    name = "rsi_reversion"

    def __init__(self, *, rsi_period: int = 14, oversold: float = 30.0,
                 overbought: float = 70.0, bb_period: int = 20, bb_k: float = 2.0,
                 atr_period: int = 14, sl_atr: float = 1.5, tp_atr: float = 2.0,
                 tp_to_middle: bool = True, min_tp_atr: float = 0.5) -> None:
        if not 0 < oversold < overbought < 100:
            raise ValueError("need 0 < oversold < overbought < 100")
        self._rsi, self._atr = Rsi(rsi_period), Atr(atr_period)
        self._bb = Bollinger(bb_period, bb_k)
        self.oversold, self.overbought = oversold, overbought
        self.sl_atr, self.tp_atr = sl_atr, tp_atr
        self.tp_to_middle, self.min_tp_atr = tp_to_middle, min_tp_atr
        self.params = dict(rsi_period=rsi_period, oversold=oversold, overbought=overbought,
                           bb_period=bb_period, bb_k=bb_k, atr_period=atr_period, sl_atr=sl_atr,
                           tp_atr=tp_atr, tp_to_middle=tp_to_middle, min_tp_atr=min_tp_atr)
        self.warmup = max(rsi_period + 1, bb_period, atr_period + 1)
        self._armed = 0  # +1 waiting for a LONG re-entry, -1 for a SHORT one
        self._close = 0.0

    def on_candle(self, c: Candle) -> RuleDecision | None:
        rsi = self._rsi.update(c.close)
        bands = self._bb.update(c.close)
        atr = self._atr.update(c.high, c.low, c.close)
        self._close = c.close
        if rsi is None or bands is None or not atr:
            return None
        upper, middle, lower = bands
        armed = self._armed
        side = None
        if armed > 0 and c.close > lower:
            side, self._armed = Side.LONG, 0
        elif armed < 0 and c.close < upper:
            side, self._armed = Side.SHORT, 0
        if c.close < lower and rsi <= self.oversold:
            self._armed = 1
        elif c.close > upper and rsi >= self.overbought:
            self._armed = -1
        elif (armed > 0 and c.close > middle) or (armed < 0 and c.close < middle):
            self._armed = 0
        if side is None:
            return None
        sl = self.sl_atr * atr
        tp = self.tp_atr * atr
        if self.tp_to_middle:
            tp = max(abs(middle - c.close), self.min_tp_atr * atr)
        return RuleDecision(side, sl, tp, f"rsi {rsi:.1f} back inside the Bollinger band")

    def vote(self) -> tuple[str, float]:
        """``verdict()``'s bias and strength without its text (the ensemble's fast path)."""
        rsi, bb = self._rsi.value, self._bb
        if rsi is None or bb.middle is None:
            return "WARMING_UP", 1.0
        if self._armed > 0 or (rsi <= self.oversold and self._close < bb.middle):
            return "LONG", 1.0
        if self._armed < 0 or (rsi >= self.overbought and self._close > bb.middle):
            return "SHORT", 1.0
        return "NEUTRAL", 1.0

    def verdict(self) -> Verdict:
        rsi, bb = self._rsi.value, self._bb
        if rsi is None or bb.middle is None or bb.lower is None or bb.upper is None:
            return warming_up(self.warmup)
        detail = f"RSI {rsi:.1f}, close {self._close:.6g} in BB {bb.lower:.6g}..{bb.upper:.6g}"
        if self._armed > 0 or (rsi <= self.oversold and self._close < bb.middle):
            return Verdict("LONG", detail + ": oversold, reversion up expected")
        if self._armed < 0 or (rsi >= self.overbought and self._close > bb.middle):
            return Verdict("SHORT", detail + ": overbought, reversion down expected")
        return Verdict("NEUTRAL", detail)


SPEC = StrategySpec(
    id="rsi_reversion",
    description="RSI extreme outside a Bollinger band, enter when back inside; target the middle",
    source="J. Bollinger, Bollinger on Bollinger Bands (2001) ch. 18-19; Wilder's RSI (1978)",
    params={
        "rsi_period": ParamSpec(14, 5, 30, 1, "int", "RSI period, candles"),
        "oversold": ParamSpec(30.0, 10.0, 40.0, 1.0, "float", "RSI at or below: oversold"),
        "overbought": ParamSpec(70.0, 60.0, 90.0, 1.0, "float", "RSI at or above: overbought"),
        "bb_period": ParamSpec(20, 10, 50, 1, "int", "Bollinger SMA period, candles"),
        "bb_k": ParamSpec(2.0, 1.5, 3.0, 0.25, "float", "Bollinger width, standard deviations"),
        "atr_period": ParamSpec(14, 5, 30, 1, "int", "ATR period for the stops"),
        "sl_atr": ParamSpec(1.5, 0.5, 4.0, 0.25, "float", "stop loss, ATRs from entry"),
        "tp_atr": ParamSpec(2.0, 0.5, 6.0, 0.25, "float", "take profit, ATRs (tp_to_middle off)"),
        "tp_to_middle": ParamSpec(True, 0, 1, 1, "bool", "take profit at the middle band"),
        "min_tp_atr": ParamSpec(0.5, 0.25, 2.0, 0.25, "float", "smallest TP, ATRs"),
    },
    factory=RsiReversionRule,
)
