"""Stop levels for a position the bot did not open (adopted at startup, after a reconnect, or
after an UNKNOWN order outcome that executed late) and whose SL/TP it does not know.

Distance from the position's mark price (the entry price when the mark is unknown):

* ``ADOPT_SL_ATR`` > 0 and recent klines available: ``ADOPT_SL_ATR`` × ATR(``period``) of the
  last ``period`` + 1 closed ``ADOPT_ATR_INTERVAL`` klines (``GET /fapi/v1/klines``, Wilder's
  average of the true range);
* otherwise ``ADOPT_SL_PCT`` percent. The take profit is ``ADOPT_TP_PCT`` percent (0: none).

Prices are rounded to the symbol's tick size by the protective-order sender.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.binance.market_rest import parse_rest_klines
from core.events import Candle, Side

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
HUNDRED = Decimal(100)

KlineReader = Callable[[str, str, int], Awaitable[Any]]  # (symbol, interval, limit) -> rows


@dataclass(frozen=True, slots=True)
class AdoptPolicy:
    """``sl_pct``/``tp_pct`` in percent of the reference price; ``sl_atr`` a multiple of the
    ATR (0: off); ``atr_interval`` a kline interval; ``atr_period`` bars."""

    sl_pct: Decimal = Decimal(3)
    tp_pct: Decimal = ZERO
    sl_atr: Decimal = ZERO
    atr_interval: str = "15m"
    atr_period: int = 14


def true_range_atr(candles: list[Candle], period: int) -> Decimal | None:
    """Wilder's ATR over ``candles`` (oldest first); None with fewer than ``period`` + 1."""
    if period < 1 or len(candles) < period + 1:
        return None
    trs = [max(c.high - c.low, abs(c.high - prev.close), abs(c.low - prev.close))
           for prev, c in zip(candles, candles[1:], strict=False)]
    atr = sum(trs[:period]) / period
    for tr in trs[period:]:
        atr = (atr * (period - 1) + tr) / period
    return Decimal(repr(atr))


async def adoption_levels(symbol: str, side: Side, reference: Decimal, policy: AdoptPolicy,
                          klines: KlineReader | None = None, now_ms: int = 0
                          ) -> tuple[Decimal, Decimal, str]:
    """(stop loss, take profit or 0, how the distance was chosen) for an adopted position of
    ``side`` around ``reference`` (USDT). Never raises: a failed kline read falls back to
    ``sl_pct``."""
    sign = Decimal(1) if side is Side.LONG else Decimal(-1)
    distance, how = reference * policy.sl_pct / HUNDRED, f"{policy.sl_pct}%"
    if policy.sl_atr > 0 and klines is not None:
        try:
            rows = await klines(symbol, policy.atr_interval, policy.atr_period + 2)
            candles = [c for c in parse_rest_klines(symbol, policy.atr_interval, rows, now_ms)
                       if c.closed]
            atr = true_range_atr(candles[-(policy.atr_period + 1):], policy.atr_period)
            if atr is not None and atr > 0:
                distance = atr * policy.sl_atr
                how = (f"{policy.sl_atr} x ATR({policy.atr_period}, {policy.atr_interval}) "
                       f"{atr:.8g}")
        except Exception as exc:  # no klines: the percentage applies
            logger.warning("%s: klines for the adoption stop failed (%s); using %s%%", symbol,
                           exc, policy.sl_pct)
    sl = reference - sign * distance
    tp = reference + sign * reference * policy.tp_pct / HUNDRED if policy.tp_pct > 0 else ZERO
    return sl, tp, how
