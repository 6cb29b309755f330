"""``bollinger_squeeze``: volatility contraction, then a close outside the bands.

Source: J. Bollinger, *Bollinger on Bollinger Bands* (2001), ch. 15-16, "The Squeeze": a
BandWidth at its lowest of the last ``squeeze_lookback`` [120] bars marks a contraction; the
expansion that follows is traded in the direction of the first close outside the bands.

* squeeze: BandWidth = (upper - lower) / middle at its lowest of the lookback (this bar
  included).
* LONG on the first close above the upper band within ``squeeze_window`` [10] bars after a
  squeeze; SHORT below the lower band. One trade per squeeze.
* SL ``sl_atr`` [1.5] x ATR, TP ``tp_atr`` [3.0] x ATR.
"""

from __future__ import annotations

from core.events import Candle, Side
from core.strategies.bands import Bollinger, RollingMax
from core.strategies.indicators import Atr
from core.strategies.rules import RuleDecision, Verdict, atr_stops, warming_up
from core.strategies.spec import ParamSpec, StrategySpec

_NEVER = 1 << 30


class BollingerSqueezeRule:
    """BandWidth at a ``squeeze_lookback`` low, then a close outside the bands."""

    name = "bollinger_squeeze"

    def __init__(self, *, bb_period: int = 20, bb_k: float = 2.0, squeeze_lookback: int = 120,
                 squeeze_window: int = 10, atr_period: int = 14, sl_atr: float = 1.5,
                 tp_atr: float = 3.0) -> None:
        if squeeze_window < 1:
            raise ValueError("squeeze_window must be >= 1")
        self._bb, self._atr = Bollinger(bb_period, bb_k), Atr(atr_period)
        self._min_bw = RollingMax(squeeze_lookback, lowest=True)
        self.window = squeeze_window
        self.sl_atr, self.tp_atr = sl_atr, tp_atr
        self.params = dict(bb_period=bb_period, bb_k=bb_k, squeeze_lookback=squeeze_lookback,
                           squeeze_window=squeeze_window, atr_period=atr_period, sl_atr=sl_atr,
                           tp_atr=tp_atr)
        self.warmup = max(bb_period + squeeze_lookback - 1, atr_period + 1)
        self._since = _NEVER  # bars since the last squeeze
        self._last_break = 0
        self._close = 0.0
        self._bw: float | None = None

    def on_candle(self, c: Candle) -> RuleDecision | None:
        bands = self._bb.update(c.close)
        atr = self._atr.update(c.high, c.low, c.close)
        self._close = c.close
        if bands is None:
            return None
        bw = self._bw = self._bb.bandwidth
        lowest = self._min_bw.update(bw if bw is not None else 0.0)
        if lowest is None or bw is None:
            return None
        self._since = 0 if bw <= lowest else min(self._since + 1, _NEVER)
        upper, middle, lower = bands
        if (self._last_break > 0 and c.close < middle) or (self._last_break < 0
                                                           and c.close > middle):
            self._last_break = 0
        if self._since > self.window:
            return None
        if c.close > upper:
            side = Side.LONG
        elif c.close < lower:
            side = Side.SHORT
        else:
            return None
        stops = atr_stops(c.close, atr, self.sl_atr, self.tp_atr)
        if stops is None:
            return None
        self._since = _NEVER  # one trade per squeeze
        self._last_break = 1 if side is Side.LONG else -1
        return RuleDecision(side, stops[0], stops[1],
                            f"squeeze breakout {side.value.lower()}, bandwidth {bw:.4%}")

    def vote(self) -> tuple[str, float]:
        """``verdict()``'s bias and strength without its text (the ensemble's fast path)."""
        if self._min_bw.value is None or self._bw is None:
            return "WARMING_UP", 1.0
        if self._last_break:
            return ("LONG" if self._last_break > 0 else "SHORT"), 1.0
        return "NEUTRAL", 1.0

    def verdict(self) -> Verdict:
        if self._min_bw.value is None or self._bw is None:
            return warming_up(self.warmup)
        detail = f"bandwidth {self._bw:.4%} (low {self._min_bw.value:.4%})"
        if self._last_break:
            bias = "LONG" if self._last_break > 0 else "SHORT"
            return Verdict(bias, f"expansion after a squeeze; {detail}")
        if self._since <= self.window:
            return Verdict("NEUTRAL", f"squeeze on, waiting for a breakout; {detail}")
        return Verdict("NEUTRAL", detail)


SPEC = StrategySpec(
    id="bollinger_squeeze",
    description="Bollinger BandWidth at a multi-bar low, then trade the close outside the bands",
    source="J. Bollinger, Bollinger on Bollinger Bands (2001), ch. 15-16 (The Squeeze)",
    params={
        "bb_period": ParamSpec(20, 10, 50, 1, "int", "Bollinger SMA period, candles"),
        "bb_k": ParamSpec(2.0, 1.5, 3.0, 0.25, "float", "band width, standard deviations"),
        "squeeze_lookback": ParamSpec(120, 30, 300, 10, "int", "BandWidth low over, candles"),
        "squeeze_window": ParamSpec(10, 2, 40, 1, "int", "bars a squeeze stays tradable"),
        "atr_period": ParamSpec(14, 5, 30, 1, "int", "ATR period for the stops"),
        "sl_atr": ParamSpec(1.5, 0.5, 4.0, 0.25, "float", "stop loss, ATRs from entry"),
        "tp_atr": ParamSpec(3.0, 1.0, 8.0, 0.25, "float", "take profit, ATRs from entry"),
    },
    factory=BollingerSqueezeRule,
)
