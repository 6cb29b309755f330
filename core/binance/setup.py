"""Account setup and the symbols' trading rules for the live adapter.

``setup()`` (at start): clock sync, exchangeInfo (filters, rate limits), the one-way position
mode check, the leverage brackets (``GET /fapi/v1/leverageBracket``, core/brackets.py), then
leverage and margin type per symbol. A LEVERAGE above a symbol's maximum (its first bracket's
``initialLeverage``) stops startup with one line naming the setting, never a raw -4028.

The largest position notional at the configured leverage is the smaller of the brackets' cap
(``SymbolBrackets.max_notional``) and the ``maxNotionalValue`` ``POST /fapi/v1/leverage``
answers; ``max_notional(symbol)`` gives it to the order sender, which refuses a larger entry
before sending it (Binance would answer -2027).

exchangeInfo changes while the bot runs (filters, status; PROTOCOL.md §10): it is read again
every ``refresh_s`` and at once after an order is refused with -1111, -4014, -4023 or -4164
(``request_refresh``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from core.binance.errors import ExchangeError, Rejected
from core.binance.parse import parse_rate_limits
from core.binance.rate_limit import RateLimiter
from core.binance.rest import RestClient
from core.brackets import BracketError, SymbolBrackets, parse_leverage_brackets
from core.filters import SymbolFilters, parse_exchange_info

logger = logging.getLogger(__name__)

EXCHANGE_INFO_REFRESH_S = 3600.0
REFRESH_MIN_GAP_S = 10.0


class SetupError(RuntimeError):
    """The account or configuration cannot be traded as is (hedge mode, unknown symbol, bad
    key, leverage above the maximum). The message says what to change."""


class SymbolRules:
    """Filters, leverage brackets and notional caps of the traded symbols.

    Args:
        rest: the REST client (exchangeInfo, leverageBracket, leverage, margin type).
        limiter: configured from exchangeInfo ``rateLimits``.
        symbols / leverage / margin_type: from settings.
        spawn: runs a coroutine as an owned task (refreshes).
        refresh_s: seconds between exchangeInfo refreshes (0: only on demand).
    """

    def __init__(self, rest: RestClient, limiter: RateLimiter, *, symbols: tuple[str, ...],
                 leverage: int, margin_type: str | None,
                 spawn: Callable[[Coroutine[Any, Any, Any], str], Any],
                 refresh_s: float = EXCHANGE_INFO_REFRESH_S) -> None:
        self._rest = rest
        self._limiter = limiter
        self.symbols = symbols
        self.leverage = leverage
        self.margin_type = margin_type
        self._spawn = spawn
        self.refresh_s = refresh_s
        self.filters: dict[str, SymbolFilters] = {}
        self.brackets: dict[str, SymbolBrackets] = {}
        self.caps: dict[str, Decimal] = {}
        self.refreshes = 0
        self._refreshing = False
        self._last_refresh = 0.0

    def max_notional(self, symbol: str) -> Decimal | None:
        """Largest position notional (USDT) at the configured leverage; None if unknown."""
        return self.caps.get(symbol)

    async def setup(self) -> None:
        """Read and check everything before trading.

        Raises:
            SetupError: hedge mode, a symbol Binance does not list, LEVERAGE above a symbol's
                maximum. ExchangeError: a request failed (the caller retries or stops).
        """
        rest = self._rest
        await rest.start()
        await rest.sync_time()
        await self._load_exchange_info()
        missing = [s for s in self.symbols if s not in self.filters]
        if missing:
            raise SetupError(f"Binance does not list {', '.join(missing)}; fix SYMBOLS")
        if await rest.hedge_mode():
            raise SetupError("the Binance Futures account is in hedge mode (dualSidePosition); "
                             "this bot trades in one-way mode: switch Position Mode to One-way "
                             "in the Binance Futures settings (with no open position or order), "
                             "then restart")
        try:
            self.brackets = parse_leverage_brackets(await rest.leverage_brackets())
        except BracketError as exc:
            logger.warning("leverage brackets unreadable (%s); relying on Binance's checks", exc)
        for symbol in self.symbols:
            await self._set_leverage(symbol)
            if self.margin_type:
                try:
                    await rest.set_margin_type(symbol, self.margin_type)
                except ExchangeError as exc:  # -4047/-4048: open orders or position
                    logger.warning("%s: margin type not changed: %s", symbol, exc)

    async def _set_leverage(self, symbol: str) -> None:
        sb = self.brackets.get(symbol)
        top = max((b.initial_leverage for b in sb.brackets), default=0) if sb else 0
        if top and self.leverage > top:
            raise SetupError(f"LEVERAGE={self.leverage} is above {symbol}'s maximum of {top}x "
                             f"(Binance leverage brackets): set LEVERAGE to {top} or less")
        try:
            body = await self._rest.set_leverage(symbol, self.leverage)
        except Rejected as exc:
            if exc.code in (-4028, -2027, -2028):
                raise SetupError(f"LEVERAGE={self.leverage} is not accepted for {symbol} "
                                 f"(Binance {exc.code}: {exc.msg}): lower LEVERAGE") from None
            raise
        caps = []
        if sb is not None and sb.max_notional(self.leverage) > 0:
            caps.append(sb.max_notional(self.leverage))
        try:
            caps.append(Decimal(str(body["maxNotionalValue"])))
        except (KeyError, TypeError, ArithmeticError):
            pass
        if caps and min(caps) > 0:
            self.caps[symbol] = min(caps)
        self.filters[symbol] = dataclasses.replace(
            self.filters[symbol], max_leverage=top or max(self.leverage,
                                                         int(body.get("leverage", 0))))
        logger.info("%s: leverage %dx (max %sx), max position notional %s", symbol,
                    self.leverage, top or "?", self.caps.get(symbol, "unknown"))

    async def _load_exchange_info(self) -> None:
        info = await self._rest.exchange_info()
        fresh = parse_exchange_info(info)
        for symbol, f in fresh.items():  # keep the leverage learnt from the brackets
            old = self.filters.get(symbol)
            if old is not None:
                fresh[symbol] = dataclasses.replace(f, max_leverage=old.max_leverage)
        self.filters = fresh
        self._limiter.configure(parse_rate_limits(info.get("rateLimits", [])))

    # ------------------------------------------------------------------ refresh

    def request_refresh(self, reason: str) -> None:
        """Read exchangeInfo again soon (at most once per ``REFRESH_MIN_GAP_S``)."""
        loop = asyncio.get_running_loop()
        if self._refreshing or loop.time() - self._last_refresh < REFRESH_MIN_GAP_S and (
                self.refreshes):
            return
        self._refreshing = True
        self._spawn(self._refresh(reason), "exchange-info")

    async def _refresh(self, reason: str) -> None:
        try:
            await self._load_exchange_info()
            self.refreshes += 1
            logger.info("exchangeInfo refreshed (%s)", reason)
        except Exception as exc:  # the old filters stay; the next refresh tries again
            logger.warning("exchangeInfo refresh failed (%s): %s", reason, exc)
        finally:
            self._refreshing = False
            self._last_refresh = asyncio.get_running_loop().time()

    async def periodic(self) -> None:
        """Refresh exchangeInfo every ``refresh_s`` (an owned task)."""
        while self.refresh_s > 0:
            await asyncio.sleep(self.refresh_s)
            self.request_refresh("periodic")
