"""``macd``: MACD signal-line cross in the direction of a long EMA trend filter.

Source: Gerald Appel's MACD (*Technical Analysis: Power Tools for Active Investors*, 2005;
indicator from 1979), signal-line crossover as the trigger; trend filter as in A. Elder,
*Trading for a Living* (1993): trade a cross only with the longer trend.

* LONG when the MACD line crosses above its signal line (histogram <= 0 -> > 0) while the close
  is above EMA(``trend_ema``) [200]; SHORT mirrors it. ``trend_ema=0`` disables the filter.
* SL ``sl_atr`` [2.0] x ATR(``atr_period``), TP ``tp_atr`` [4.0] x ATR. An opposite cross
  is an opposite signal.
"""

from __future__ import annotations

from core.events import Candle, Side
from core.strategies.indicators import Atr, Ema
from core.strategies.oscillators import Macd
from core.strategies.rules import RuleDecision, Verdict, atr_stops, warming_up
from core.strategies.spec import ParamSpec, StrategySpec


class MacdRule:
    """MACD(fast, slow, signal) histogram sign change, filtered by EMA(trend_ema)."""

    name = "macd"

    def __init__(self, *, fast: int = 12, slow: int = 26, signal: int = 9,
                 trend_ema: int = 200, atr_period: int = 14, sl_atr: float = 2.0,
                 tp_atr: float = 4.0) -> None:
        self._macd = Macd(fast, slow, signal)
        self._trend = Ema(trend_ema) if trend_ema > 0 else None
        if trend_ema < 0:
            raise ValueError("trend_ema must be >= 0 (0 = no trend filter)")
        self._atr = Atr(atr_period)
        self.sl_atr, self.tp_atr = sl_atr, tp_atr
        self.params = dict(fast=fast, slow=slow, signal=signal, trend_ema=trend_ema,
                           atr_period=atr_period, sl_atr=sl_atr, tp_atr=tp_atr)
        self.warmup = max(slow + signal - 1, trend_ema, atr_period + 1)
        self._prev_hist: float | None = None
        self._close = 0.0
        self._trend_value: float | None = None

    def on_candle(self, c: Candle) -> RuleDecision | None:
        out = self._macd.update(c.close)
        trend = self._trend.update(c.close) if self._trend else None
        atr = self._atr.update(c.high, c.low, c.close)
        self._close, self._trend_value = c.close, trend
        if out is None:
            return None
        hist = out[2]
        prev, self._prev_hist = self._prev_hist, hist
        if prev is None or (self._trend is not None and trend is None):
            return None
        if prev <= 0 < hist and (trend is None or c.close > trend):
            side = Side.LONG
        elif prev >= 0 > hist and (trend is None or c.close < trend):
            side = Side.SHORT
        else:
            return None
        stops = atr_stops(c.close, atr, self.sl_atr, self.tp_atr)
        if stops is None:
            return None
        where = "" if trend is None else f", close {'>' if side is Side.LONG else '<'} EMA"
        return RuleDecision(side, stops[0], stops[1],
                            f"macd cross {out[0]:.4g}/{out[1]:.4g}{where}")

    def vote(self) -> tuple[str, float]:
        """``verdict()``'s bias and strength without its text (the ensemble's fast path)."""
        hist, trend = self._macd.hist, self._trend_value
        if hist is None or (self._trend is not None and trend is None):
            return "WARMING_UP", 1.0
        up = hist > 0
        if trend is not None and (self._close > trend) != up:
            return "NEUTRAL", 1.0
        return ("LONG" if up else "SHORT"), 1.0

    def verdict(self) -> Verdict:
        m = self._macd
        if m.hist is None or (self._trend is not None and self._trend_value is None):
            return warming_up(self.warmup)
        up = m.hist > 0
        trend = self._trend_value
        detail = f"MACD {'>' if up else '<'} signal (hist {m.hist:.4g})"
        if trend is not None:
            above = self._close > trend
            period = self._trend.period if self._trend else 0
            detail += f", close {'>' if above else '<'} EMA{period}"
            if above != up:
                return Verdict("NEUTRAL", detail + ": against the trend")
        return Verdict("LONG" if up else "SHORT", detail)


SPEC = StrategySpec(
    id="macd",
    description="MACD signal-line cross, only in the direction of a long EMA trend",
    source="G. Appel, MACD (1979; Power Tools, 2005); trend filter after A. Elder (1993)",
    params={
        "fast": ParamSpec(12, 5, 20, 1, "int", "fast EMA, candles"),
        "slow": ParamSpec(26, 15, 60, 1, "int", "slow EMA, candles"),
        "signal": ParamSpec(9, 3, 20, 1, "int", "signal EMA of MACD, candles"),
        "trend_ema": ParamSpec(200, 0, 400, 10, "int", "trend filter EMA (0 = off)"),
        "atr_period": ParamSpec(14, 5, 30, 1, "int", "ATR period for the stops"),
        "sl_atr": ParamSpec(2.0, 0.5, 5.0, 0.25, "float", "stop loss, ATRs from entry"),
        "tp_atr": ParamSpec(4.0, 1.0, 10.0, 0.25, "float", "take profit, ATRs from entry"),
    },
    factory=MacdRule,
)
