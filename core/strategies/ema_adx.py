"""``ema_adx``: EMA fast/slow cross filtered by ADX (the bot's original demonstration rule).

Sources: the moving-average crossover (e.g. J. Murphy, *Technical Analysis of the Financial
Markets*, 1999, ch. 9) with J. Welles Wilder's ADX as the trend-strength filter (*New Concepts in
Technical Trading Systems*, 1978).

* trend: EMA(``ema_fast`` [9]) of closes crosses EMA(``ema_slow`` [21]): up-cross -> LONG,
  down-cross -> SHORT. EMAs are seeded with the SMA of their first values (TA-Lib convention).
* filter: only when ADX(``adx_period`` [14]) >= ``adx_min`` [20] (a trending market).
* exits: SL at ``sl_atr`` [1.5] x ATR(``atr_period`` [14]) from the entry and TP at
  ``tp_atr`` [3.0] x ATR; or, when ``sl_pct`` / ``tp_pct`` are > 0, at those percents of the
  entry price instead. An opposite cross is an opposite signal (EXIT_ON_REVERSE closes on it).
"""

from __future__ import annotations

from core.events import Candle, Side
from core.strategies.indicators import Adx, Atr, Ema
from core.strategies.rules import RuleDecision, Verdict, atr_stops, warming_up
from core.strategies.spec import ParamSpec, StrategySpec


class EmaAdxRule:
    """EMA fast/slow cross filtered by ADX; SL/TP from ATR multiples or percents."""

    name = "ema_adx"

    def __init__(
        self,
        *,
        ema_fast: int = 9,
        ema_slow: int = 21,
        adx_period: int = 14,
        adx_min: float = 20.0,
        atr_period: int = 14,
        sl_atr: float = 1.5,
        tp_atr: float = 3.0,
        sl_pct: float = 0.0,
        tp_pct: float = 0.0,
    ) -> None:
        if ema_fast >= ema_slow:
            raise ValueError("ema_fast must be smaller than ema_slow")
        self._fast, self._slow = Ema(ema_fast), Ema(ema_slow)
        self._atr, self._adx = Atr(atr_period), Adx(adx_period)
        self.adx_min = adx_min
        self.sl_atr, self.tp_atr = sl_atr, tp_atr
        self.sl_pct, self.tp_pct = sl_pct, tp_pct
        self.params = dict(ema_fast=ema_fast, ema_slow=ema_slow, adx_period=adx_period,
                           adx_min=adx_min, atr_period=atr_period, sl_atr=sl_atr, tp_atr=tp_atr,
                           sl_pct=sl_pct, tp_pct=tp_pct)
        self.warmup = max(ema_slow, 2 * adx_period, atr_period + 1)
        self._prev_diff: float | None = None
        self.last: dict[str, float | None] = {}

    def on_candle(self, c: Candle) -> RuleDecision | None:
        fast = self._fast.update(c.close)
        slow = self._slow.update(c.close)
        atr = self._atr.update(c.high, c.low, c.close)
        adx = self._adx.update(c.high, c.low, c.close)
        self.last = {"ema_fast": fast, "ema_slow": slow, "atr": atr, "adx": adx,
                     "close": c.close}
        if fast is None or slow is None:
            return None
        diff = fast - slow
        prev, self._prev_diff = self._prev_diff, diff
        if prev is None or adx is None or adx < self.adx_min:
            return None
        if prev <= 0 < diff:
            side = Side.LONG
        elif prev >= 0 > diff:
            side = Side.SHORT
        else:
            return None
        stops = atr_stops(c.close, atr, self.sl_atr, self.tp_atr, self.sl_pct, self.tp_pct)
        if stops is None:
            return None
        reason = f"ema_cross {self._fast.period}/{self._slow.period}, adx {adx:.1f}"
        return RuleDecision(side, stops[0], stops[1], reason, strength=min(1.0, adx / 50))

    def vote(self) -> tuple[str, float]:
        """``verdict()``'s bias and strength without its text (the ensemble's fast path)."""
        last = self.last
        fast, slow, adx = last.get("ema_fast"), last.get("ema_slow"), last.get("adx")
        if fast is None or slow is None or adx is None:
            return "WARMING_UP", 1.0
        if adx < self.adx_min:
            return "NEUTRAL", 1.0
        return ("LONG" if fast > slow else "SHORT"), min(1.0, adx / 50)

    def verdict(self) -> Verdict:
        fast, slow, adx = (self.last.get(k) for k in ("ema_fast", "ema_slow", "adx"))
        if fast is None or slow is None or adx is None:
            return warming_up(self.warmup)
        if adx < self.adx_min:
            return Verdict("NEUTRAL", f"ADX {adx:.1f} < {self.adx_min:g}: no trend")
        bias = "LONG" if fast > slow else "SHORT"
        return Verdict(bias, f"EMA{self._fast.period} {'>' if fast > slow else '<'} "
                             f"EMA{self._slow.period}, ADX {adx:.1f}",
                       strength=min(1.0, adx / 50))


SPEC = StrategySpec(
    id="ema_adx",
    description="EMA fast/slow cross, only when ADX shows a trend; ATR or percent stops",
    source="MA crossover (Murphy 1999, ch. 9) + Wilder's ADX (1978)",
    params={
        "ema_fast": ParamSpec(9, 3, 30, 1, "int", "fast EMA period, candles"),
        "ema_slow": ParamSpec(21, 10, 100, 1, "int", "slow EMA period, candles"),
        "adx_period": ParamSpec(14, 5, 30, 1, "int", "ADX period, candles"),
        "adx_min": ParamSpec(20.0, 10.0, 40.0, 1.0, "float", "minimum ADX to trade"),
        "atr_period": ParamSpec(14, 5, 30, 1, "int", "ATR period for the stops"),
        "sl_atr": ParamSpec(1.5, 0.5, 4.0, 0.25, "float", "stop loss, ATRs from entry"),
        "tp_atr": ParamSpec(3.0, 1.0, 8.0, 0.25, "float", "take profit, ATRs from entry"),
        "sl_pct": ParamSpec(0.0, 0.0, 3.0, 0.1, "float", "stop loss, % of entry (>0: not ATR)"),
        "tp_pct": ParamSpec(0.0, 0.0, 6.0, 0.1, "float", "take profit, % of entry (>0: not ATR)"),
    },
    factory=EmaAdxRule,
)
