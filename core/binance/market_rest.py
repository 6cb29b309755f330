"""Public market data over REST for the market-data worker: endpoints, weights, parsers, budget.

Binance USDⓈ-M endpoints used (weights from the official "Market Data" REST pages at
developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api, read via the
docs mirror ``rosssaunders/coincise`` ``docs/binance/usdm/endpoints/public/*.md``; exchangeInfo
weight: shared/binance/PROTOCOL.md §6):

=============================  ==========================================================
``GET /fapi/v1/klines``        weight by ``limit``: [1,100) 1, [100,500) 2, [500,1000] 5,
                               > 1000 10 (so 499 bars cost 2, 500 cost 5)
``GET /fapi/v1/ticker/24hr``   1 with ``symbol`` (40 without)
``GET /fapi/v1/openInterest``  1
``GET /fapi/v1/premiumIndex``  1 with ``symbol`` (10 without): mark price, funding rate,
                               next funding time (the markPrice stream's REST twin)
``GET /fapi/v1/exchangeInfo``  1
=============================  ==========================================================

Every request goes through the connection's ``RestClient`` (and so its ``RateLimiter``), after
``WorkerBudget.take`` has agreed: the worker may use ``fraction`` of the REQUEST_WEIGHT limit per
minute and never waits for room. Payloads become the frozen types below at this edge
(``ParseError`` on a malformed one); prices are floats (analytics, never orders).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.binance.parse_market import KLINE_INTERVAL_MS, is_coin_m
from core.binance.wire import Fields, ParseError, unwrap
from core.events import Candle, MarkPrice
from utils.cache import BudgetExhausted

logger = logging.getLogger(__name__)

#: The kline intervals of USDⓈ-M futures' REST and streams (PROTOCOL.md §4) in ms: the one
#: table (parse_market.KLINE_INTERVAL_MS) without 1s, which only spot offers; 1M left out.
INTERVAL_MS: dict[str, int] = {k: v for k, v in KLINE_INTERVAL_MS.items() if k != "1s"}
WEIGHT_WINDOW_MS = 60_000


def interval_label(interval_ms: int) -> str:
    """``60_000 -> "1m"``; other lengths (a replay's 5 s candles) as ``"5s"``, ``"90s"``."""
    for label, ms in INTERVAL_MS.items():
        if ms == interval_ms:
            return label
    return f"{interval_ms // 1000}s" if interval_ms % 1000 == 0 else f"{interval_ms}ms"


def klines_weight(limit: int) -> int:
    """Request weight of ``GET /fapi/v1/klines`` for ``limit`` bars (see the module table)."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class MarkInfo:
    """Mark price and funding: ``funding_rate`` is a fraction (0.0001 = 0.01 % per period),
    ``next_funding_ms`` the next settlement (ms since the epoch)."""

    symbol: str
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_ms: int
    ts_ms: int


def mark_info(ev: MarkPrice) -> MarkInfo:
    """The engine's MarkPrice (from ``parse_market.parse_mark_price``, the one parser of the
    ``markPriceUpdate`` stream payload, or from a replay) as the cache's MarkInfo."""
    return MarkInfo(ev.symbol, ev.mark_price, ev.index_price, ev.funding_rate,
                    ev.next_funding_ms, ev.ts_ms)


@dataclass(frozen=True, slots=True)
class Ticker24h:
    """24 h rolling statistics; ``change_pct`` in percent, volumes in base / quote asset."""

    symbol: str
    last_price: float
    change_pct: float
    high: float
    low: float
    volume: float
    quote_volume: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OpenInterest:
    """Open interest in contracts (base asset for USDⓈ-M linear contracts)."""

    symbol: str
    open_interest: float
    ts_ms: int


def parse_rest_klines(symbol: str, interval: str, rows: Any, now_ms: int) -> list[Candle]:
    """``GET /fapi/v1/klines`` rows ``[openTime, o, h, l, c, v, closeTime, ...]`` -> Candles,
    oldest first. A bar whose close time is not yet past ``now_ms`` (server time) is the bar in
    progress (``closed=False``); ``ts_ms`` is the close time."""
    if not isinstance(rows, list):
        raise ParseError(f"klines: expected a list, got {type(rows).__name__}")
    step = INTERVAL_MS[interval]
    out: list[Candle] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 7:
            raise ParseError(f"klines: row {i} is not a kline array")
        f = Fields(dict(zip("tohlcvT", row, strict=False)), "klines", f"[{i}].")
        close_ms = f.integer("T")
        out.append(Candle(symbol, close_ms, step, f.integer("t"), f.number("o"), f.number("h"),
                          f.number("l"), f.number("c"), f.number("v"), close_ms < now_ms))
    return out


def parse_premium_index(body: Any) -> MarkInfo:
    """``GET /fapi/v1/premiumIndex?symbol=`` -> MarkInfo."""
    f = Fields(body, "premiumIndex")
    return MarkInfo(f.text("symbol"), f.number("markPrice"), f.number("indexPrice", ""),
                    f.number("lastFundingRate", ""), f.integer("nextFundingTime", 0),
                    f.integer("time"))


def parse_ticker_rest(body: Any) -> Ticker24h:
    """``GET /fapi/v1/ticker/24hr?symbol=`` -> Ticker24h."""
    f = Fields(body, "ticker/24hr")
    return Ticker24h(f.text("symbol"), f.number("lastPrice"), f.number("priceChangePercent"),
                     f.number("highPrice"), f.number("lowPrice"), f.number("volume"),
                     f.number("quoteVolume"), f.integer("closeTime"))


def parse_ticker_stream(msg: Any) -> Ticker24h | None:
    """``24hrTicker`` (``<symbol>@ticker`` stream) -> Ticker24h, or None for a COIN-M
    (``st == 2``) payload like every market-stream parser (core.binance.parse_market)."""
    f = Fields(unwrap(msg), "24hrTicker")
    if is_coin_m(f):
        return None
    return Ticker24h(f.text("s"), f.number("c"), f.number("P"), f.number("h"), f.number("l"),
                     f.number("v"), f.number("q"), f.integer("E"))


def parse_open_interest(body: Any) -> OpenInterest:
    """``GET /fapi/v1/openInterest?symbol=`` -> OpenInterest."""
    f = Fields(body, "openInterest")
    return OpenInterest(f.text("symbol"), f.number("openInterest"), f.integer("time"))


def parse_symbols(info: Any) -> frozenset[str]:
    """The symbols exchangeInfo lists with ``status == TRADING``."""
    f = Fields(info, "exchangeInfo")
    return frozenset(s.text("symbol") for s in f.items("symbols")
                     if s.text("status", "") == "TRADING")


# --------------------------------------------------------------------------- budget


class WeightPools(Protocol):
    """What ``WorkerBudget`` reads from ``core.binance.rate_limit.RateLimiter``."""

    clock: Any

    @property
    def pools(self) -> Mapping[tuple[str, int], Any]: ...

    def check(self, weight: int, orders: int = 0, *, urgent: bool = False
              ) -> tuple[float, Any]: ...


class WorkerBudget:
    """The worker's slice of the connection's REQUEST_WEIGHT per minute pool.

    ``take(weight)`` either counts the weight for the worker or raises ``BudgetExhausted``
    without sending anything, when (a) the worker has already spent ``fraction`` of the limit in
    the current minute (windows aligned like the limiter's, on its clock), or (b) the shared
    pool has no room now or is blocked after a 429/418: the worker never queues behind trading
    requests. ``spent_total`` counts every unit taken since construction (the bench's figure).
    """

    def __init__(self, limiter: WeightPools, fraction: float = 0.2) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        self.limiter = limiter
        self.fraction = fraction
        self.window_start_ms = -1
        self.used = 0
        self.spent_total = 0
        self.refusals = 0

    @property
    def limit(self) -> int:
        pool = self.limiter.pools.get(("REQUEST_WEIGHT", WEIGHT_WINDOW_MS))
        return pool.limit if pool is not None else 2400

    @property
    def cap(self) -> int:
        """Weight the worker may spend per minute."""
        return max(1, int(self.limit * self.fraction))

    def _roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % WEIGHT_WINDOW_MS
        if start != self.window_start_ms:
            self.window_start_ms, self.used = start, 0

    def status(self) -> tuple[int, int]:
        """``(used, cap)`` in the current minute."""
        self._roll(self.limiter.clock.now_ms())
        return self.used, self.cap

    def take(self, weight: int) -> None:
        """Count ``weight`` for the worker.

        Raises:
            BudgetExhausted: no room for it now (the message says when the next window opens).
        """
        now = self.limiter.clock.now_ms()
        self._roll(now)
        cap = self.cap
        if self.used + weight > cap:
            self.refusals += 1
            wait_s = (self.window_start_ms + WEIGHT_WINDOW_MS - now) / 1000
            raise BudgetExhausted(f"market-data budget spent: {self.used}/{cap} request weight "
                                  f"this minute; next window in {wait_s:.0f}s")
        wait_s, pool = self.limiter.check(weight)
        if wait_s > 0:
            self.refusals += 1
            why = f"{pool.name} pool full" if pool is not None else "requests held after a 429/418"
            raise BudgetExhausted(f"market-data request refused: {why}, {wait_s:.1f}s to wait")
        self.used += weight
        self.spent_total += weight


# --------------------------------------------------------------------------- fetchers


class RestRequester(Protocol):
    """``core.binance.rest.RestClient.request``'s shape."""

    async def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                      *, weight: int = 1) -> Any: ...


class MarketRest:
    """The worker's REST fetchers: budget first, then the connection's REST client.

    Args:
        rest: the connection's ``RestClient`` (or any object with its ``request``).
        budget: the worker's ``WorkerBudget`` on the same limiter.
        now_ms: server time, ms (to tell the bar in progress from closed ones).

    Every method raises ``BudgetExhausted`` (nothing sent), ``core.binance.errors``
    exceptions (the request failed) or ``ParseError`` (the answer is malformed).
    """

    def __init__(self, rest: RestRequester, budget: WorkerBudget,
                 now_ms: Callable[[], int]) -> None:
        self.rest = rest
        self.budget = budget
        self.now_ms = now_ms
        self.requests = 0

    async def _get(self, path: str, params: Mapping[str, Any] | None, weight: int) -> Any:
        self.budget.take(weight)
        self.requests += 1
        return await self.rest.request("GET", path, params, weight=weight)

    async def symbols(self) -> frozenset[str]:
        return parse_symbols(await self._get("/fapi/v1/exchangeInfo", None, 1))

    async def klines(self, symbol: str, interval: str, limit: int) -> list[Candle]:
        rows = await self._get("/fapi/v1/klines",
                               {"symbol": symbol, "interval": interval, "limit": limit},
                               klines_weight(limit))
        return parse_rest_klines(symbol, interval, rows, self.now_ms())

    async def ticker(self, symbol: str) -> Ticker24h:
        return parse_ticker_rest(await self._get("/fapi/v1/ticker/24hr", {"symbol": symbol}, 1))

    async def open_interest(self, symbol: str) -> OpenInterest:
        return parse_open_interest(await self._get("/fapi/v1/openInterest",
                                                   {"symbol": symbol}, 1))

    async def mark(self, symbol: str) -> MarkInfo:
        return parse_premium_index(await self._get("/fapi/v1/premiumIndex",
                                                   {"symbol": symbol}, 1))
