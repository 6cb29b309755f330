"""/ta SYMBOL [tf]: the trend reading of a symbol.

Answered from the market-intelligence worker's cache when one is running (an object in
``bot_data["ta_cache"]`` with ``get(symbol, timeframe)`` returning something with ``bias`` and
``detail``, or None). Until then, the trading engine's own trend rule answers for the symbols it
trades, on its own timeframe, and the reply says the analysis is still warming up. The lookup is
``lookup_ta``; the handler only parses and formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from core.services import Services
from handlers.common import TA_CACHE_KEY, deps, reply
from handlers.registry import Command, UsageError

_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_TIMEFRAME = re.compile(r"^[1-9][0-9]{0,2}[smhdw]$")


@dataclass(frozen=True, slots=True)
class TaAnswer:
    symbol: str
    timeframe: str
    bias: str      # LONG | SHORT | NEUTRAL | WARMING_UP
    detail: str
    from_cache: bool


def lookup_ta(bot_data: Any, services: Services, symbol: str,
              timeframe: str | None) -> TaAnswer | None:
    """The best reading available for ``symbol``: the worker cache, else the engine's rule.
    None when neither knows the symbol."""
    cache = bot_data.get(TA_CACHE_KEY) if hasattr(bot_data, "get") else None
    tf = timeframe or services.settings.timeframe
    if cache is not None:
        got = cache.get(symbol, tf)
        if got is not None:
            return TaAnswer(symbol, tf, str(got.bias), str(got.detail), True)
    verdict = services.engine.trending.verdict(symbol)
    if verdict is None:
        return None
    return TaAnswer(symbol, services.settings.timeframe, verdict.bias, verdict.detail, False)


async def ta(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    args = context.args or []
    if not 1 <= len(args) <= 2:
        raise UsageError(" ".join(args))
    symbol = args[0].upper()
    timeframe = args[1].lower() if len(args) == 2 else None
    if not _SYMBOL.match(symbol) or (timeframe is not None and not _TIMEFRAME.match(timeframe)):
        raise UsageError(" ".join(args))
    d = deps(context)
    t = d.texts
    answer = lookup_ta(context.bot_data, d.services, symbol, timeframe)
    if answer is None:
        reply(update, context, t("No analysis for {symbol} yet; the engine watches {symbols}.",
                                 symbol=symbol, symbols=", ".join(d.settings.symbols)))
        return
    lines = [t("<b>{symbol} {timeframe}</b>: {bias} ({detail})", symbol=answer.symbol,
               timeframe=answer.timeframe, bias=answer.bias, detail=answer.detail)]
    if not answer.from_cache:
        lines.append(t("From the trading engine's own candles; the market analysis worker is "
                       "still warming up."))
        if timeframe is not None and timeframe != answer.timeframe:
            lines.append(t("Only {timeframe} is analysed for now.", timeframe=answer.timeframe))
    reply(update, context, "\n".join(lines))


COMMANDS = (
    Command(name="ta", help="Trend analysis of a symbol", usage="/ta SYMBOL [tf]",
            admin_only=False, callback=ta),
)
