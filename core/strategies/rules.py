"""Trend rules: the small protocol TRENDING uses to decide, and the default rule.

A rule sees closed candles of one symbol, one at a time, and may answer with a ``RuleDecision``
(direction plus stop-loss and take-profit *distances* in quote asset). It keeps its own
indicator state, O(1) per candle, floats only. ``STRATEGY`` picks a rule by name from ``RULES``.

Default rule ``ema_adx`` (parameters are settings; defaults in brackets):

* trend: EMA(``EMA_FAST`` [9]) of closes crosses EMA(``EMA_SLOW`` [21]): up-cross -> LONG,
  down-cross -> SHORT. EMAs are seeded with the SMA of their first values (TA-Lib convention).
* filter: only when ADX(``ADX_PERIOD`` [14]) >= ``ADX_MIN`` [20] (a trending market).
* exits: SL at ``SL_ATR`` [1.5] x ATR(``ATR_PERIOD`` [14]) from the entry and TP at
  ``TP_ATR`` [3.0] x ATR; or, when ``SL_PCT`` / ``TP_PCT`` are > 0, at those percents of the
  entry price instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.events import Candle, Side
from core.strategies.indicators import Adx, Atr, Ema


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """Open ``side``; distances are absolute price differences in quote asset."""

    side: Side
    sl_distance: float
    tp_distance: float
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rule's current reading of the trend, for /ta and /status."""

    bias: str  # "LONG" | "SHORT" | "NEUTRAL" | "WARMING_UP"
    detail: str


class TrendRule(Protocol):
    """One symbol's trend logic. ``warmup`` is the number of candles before it can decide."""

    name: str
    warmup: int

    def on_candle(self, candle: Candle) -> RuleDecision | None: ...

    def verdict(self) -> Verdict: ...


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
        if self.sl_pct > 0:
            sl = c.close * self.sl_pct / 100
        elif atr:
            sl = atr * self.sl_atr
        else:
            return None
        if self.tp_pct > 0:
            tp = c.close * self.tp_pct / 100
        elif atr:
            tp = atr * self.tp_atr
        else:
            return None
        reason = f"ema_cross {self._fast.period}/{self._slow.period}, adx {adx:.1f}"
        return RuleDecision(side=side, sl_distance=sl, tp_distance=tp, reason=reason)

    def verdict(self) -> Verdict:
        fast, slow, adx = (self.last.get(k) for k in ("ema_fast", "ema_slow", "adx"))
        if fast is None or slow is None or adx is None:
            return Verdict("WARMING_UP", f"needs {self.warmup} candles")
        if adx < self.adx_min:
            return Verdict("NEUTRAL", f"ADX {adx:.1f} < {self.adx_min:g}: no trend")
        bias = "LONG" if fast > slow else "SHORT"
        return Verdict(bias, f"EMA{self._fast.period} {'>' if fast > slow else '<'} "
                             f"EMA{self._slow.period}, ADX {adx:.1f}")


RuleFactory = Callable[[], TrendRule]

RULES: dict[str, Callable[..., TrendRule]] = {"ema_adx": EmaAdxRule}


def rule_factory(name: str, params: Mapping[str, Any]) -> RuleFactory:
    """A factory of fresh rule instances (one per symbol) for ``STRATEGY=name``.

    Raises:
        ValueError: unknown rule name, or parameters the rule rejects.
    """
    try:
        cls = RULES[name]
    except KeyError:
        raise ValueError(f"unknown STRATEGY {name!r}; choose from {', '.join(RULES)}") from None
    cls(**params)  # validate once, now
    return lambda: cls(**params)
