"""The fake Binance plus the public market-data endpoints and streams the market worker uses.

``FakeBinanceMarket`` adds, with payloads shaped like Binance's (USDⓈ-M market-data pages):

* ``GET /fapi/v1/klines`` (weight by ``limit``, as core/binance/market_rest.py), ``/ticker/24hr``,
  ``/openInterest``, ``/premiumIndex``; exchangeInfo also lists ``extra_symbols``;
* kline, markPrice and 24hrTicker pushes on ``/market`` (``push_kline`` ...).

History: a real 1m klines CSV (``BTCUSDT-1m-2023-04-15.csv``) for BTCUSDT, aggregated to every
interval; other symbols get the same bars scaled to their price. ``clock_ms`` replaces the
server clock (rate windows, event times) so a bench can simulate an hour. Fault switches:
``fail_next`` (the next market-data requests answer an HTTP error). ``market_calls(path)``
lists what the fake served.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.binance.market_rest import INTERVAL_MS, klines_weight
from core.events import Candle
from tests.fakes.binance import FakeBinance, RestRoute
from tests.fakes.binance_auth import NONE
from tests.fakes.binance_data import SYMBOLS, ApiError, exchange_info

FUNDING_PERIOD_MS = 8 * 3_600_000
PRICE_SCALE = {"BTCUSDT": 1.0, "ETHUSDT": 2500 / 30_000}


def read_klines_csv(path: Path, symbol: str = "BTCUSDT") -> list[Candle]:
    """A Binance klines CSV (with header) as closed 1m candles."""
    with path.open(newline="") as f:
        return [Candle(symbol, int(r["close_time"]), 60_000, int(r["open_time"]),
                       float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]),
                       float(r["volume"]), True) for r in csv.DictReader(f)]


def aggregate(bars: list[Candle], interval_ms: int) -> list[Candle]:
    """Closed 1m candles -> closed candles of ``interval_ms`` (bucketed on open time)."""
    out: list[Candle] = []
    for b in bars:
        start = b.open_ms - b.open_ms % interval_ms
        if out and out[-1].open_ms == start:
            p = out[-1]
            out[-1] = p._replace(high=max(p.high, b.high), low=min(p.low, b.low), close=b.close,
                                 volume=p.volume + b.volume, ts_ms=start + interval_ms - 1)
        else:
            out.append(b._replace(open_ms=start, interval_ms=interval_ms,
                                  ts_ms=start + interval_ms - 1))
    return out


def _scaled(bars: list[Candle], symbol: str, k: float) -> list[Candle]:
    return [c._replace(symbol=symbol, open=round(c.open * k, 2), high=round(c.high * k, 2),
                       low=round(c.low * k, 2), close=round(c.close * k, 2)) for c in bars]


def kline_row(c: Candle) -> list[Any]:
    """A REST kline array: ``[openTime, o, h, l, c, v, closeTime, quoteVolume, trades,
    takerBuyBase, takerBuyQuote, "0"]``."""
    close_ms = c.open_ms + c.interval_ms - 1
    return [c.open_ms, f"{c.open:.2f}", f"{c.high:.2f}", f"{c.low:.2f}", f"{c.close:.2f}",
            f"{c.volume:.3f}", close_ms, f"{c.volume * c.close:.5f}", 1000,
            f"{c.volume / 2:.3f}", f"{c.volume * c.close / 2:.5f}", "0"]


class FakeBinanceMarket(FakeBinance):
    """``FakeBinance`` with public market data. Use as ``async with FakeBinanceMarket(csv)``."""

    def __init__(self, klines_csv: Path, *, extra_symbols: Iterable[str] = (),
                 clock_ms: Callable[[], int] | None = None, **kw: Any) -> None:
        self._clock_ms = clock_ms
        super().__init__(**kw)
        self.extra_symbols = tuple(extra_symbols)
        btc = read_klines_csv(klines_csv)
        self.history: dict[str, dict[str, list[Candle]]] = {}
        for i, symbol in enumerate(("BTCUSDT", "ETHUSDT", *self.extra_symbols)):
            bars = _scaled(btc, symbol, PRICE_SCALE.get(symbol, 1.0 / (i + 1)))
            self.history[symbol] = {tf: aggregate(bars, ms) if ms > 60_000 else bars
                                    for tf, ms in INTERVAL_MS.items()}
        self.open_interest = {s: 80_000.0 / (i + 1) for i, s in enumerate(self.history)}
        self.funding_rate = {s: 0.0001 for s in self.history}
        self._failures: list[ApiError] = []
        self.market_weight = 0  # weight of the market-data requests served

    def now_ms(self) -> int:
        return self._clock_ms() if self._clock_ms is not None else super().now_ms()

    # ------------------------------------------------------------------ test API

    def fail_next(self, n: int = 1, *, status: int = 503, code: int = -1001,
                  msg: str = "Service Unavailable.") -> None:
        """Answer the next ``n`` market-data requests with this error (503 "Service
        Unavailable." is a certain failure: the client retries later)."""
        self._failures += [ApiError(code, msg, status)] * n

    def clear_failures(self) -> None:
        self._failures.clear()

    def market_calls(self, path: str) -> list[dict[str, Any]]:
        """Params of every request to ``path`` (e.g. "/fapi/v1/klines")."""
        return self.calls(f"GET {path}")

    def last_bar(self, symbol: str, interval: str) -> Candle:
        return self.history[symbol][interval][-1]

    def next_bar(self, symbol: str, interval: str, *, close: float | None = None) -> Candle:
        """A plausible bar right after the last one (not stored; see ``add_bar``)."""
        last = self.last_bar(symbol, interval)
        price = close if close is not None else last.close
        step = INTERVAL_MS[interval]
        return last._replace(open_ms=last.open_ms + step, ts_ms=last.open_ms + 2 * step - 1,
                             open=last.close, high=max(last.close, price) + 1,
                             low=min(last.close, price) - 1, close=price, volume=10.0)

    def add_bar(self, bar: Candle, interval: str) -> None:
        """Append a closed bar to the REST history (what a reload will see)."""
        self.history[bar.symbol][interval].append(bar)

    async def push_kline(self, bar: Candle, interval: str, *, closed: bool) -> int:
        """A ``<symbol>@kline_<interval>`` update (PROTOCOL.md §4 payload)."""
        close_ms = bar.open_ms + INTERVAL_MS[interval] - 1
        k = {"t": bar.open_ms, "T": close_ms, "s": bar.symbol, "i": interval, "f": 1, "L": 2,
             "o": f"{bar.open:.2f}", "c": f"{bar.close:.2f}", "h": f"{bar.high:.2f}",
             "l": f"{bar.low:.2f}", "v": f"{bar.volume:.3f}", "n": 10, "x": closed,
             "q": f"{bar.volume * bar.close:.2f}", "V": "0", "Q": "0", "B": "0"}
        data = {"e": "kline", "E": self.now_ms(), "s": bar.symbol, "k": k}
        return await self.push_market(f"{bar.symbol.lower()}@kline_{interval}", data)

    async def push_mark(self, symbol: str, mark: float, *, rate: float = 0.0001) -> int:
        data = {"e": "markPriceUpdate", "E": self.now_ms(), "s": symbol, "p": f"{mark:.2f}",
                "ap": f"{mark:.2f}", "P": f"{mark:.2f}", "i": f"{mark:.2f}", "r": f"{rate:.8f}",
                "T": self._next_funding()}
        return await self.push_market(f"{symbol.lower()}@markPrice@1s", data)

    async def push_ticker(self, symbol: str) -> int:
        t = self._ticker(symbol)
        data = {"e": "24hrTicker", "E": self.now_ms(), "s": symbol,
                "p": t["priceChange"], "P": t["priceChangePercent"],
                "w": t["weightedAvgPrice"], "c": t["lastPrice"], "Q": t["lastQty"],
                "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"],
                "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
                "C": t["closeTime"], "F": 1, "L": 2, "n": 3}
        return await self.push_market(f"{symbol.lower()}@ticker", data)

    # ------------------------------------------------------------------ REST

    def _rest_routes(self) -> list[RestRoute]:
        mine = [
            RestRoute("GET", "/fapi/v1/exchangeInfo", NONE, 1, self._exchange_info),
            RestRoute("GET", "/fapi/v1/klines", NONE, 1, self._klines),
            RestRoute("GET", "/fapi/v1/ticker/24hr", NONE, 1,
                      lambda p: self._serve(p, 1, self._ticker)),
            RestRoute("GET", "/fapi/v1/openInterest", NONE, 1,
                      lambda p: self._serve(p, 1, self._oi)),
            RestRoute("GET", "/fapi/v1/premiumIndex", NONE, 1,
                      lambda p: self._serve(p, 1, self._premium)),
        ]
        paths = {r.path for r in mine}
        return [r for r in super()._rest_routes() if r.path not in paths] + mine

    def _exchange_info(self, _params: dict[str, str]) -> dict[str, Any]:
        self._fault()
        info = exchange_info(self.now_ms())
        template = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        known = {s["symbol"] for s in info["symbols"]}
        info["symbols"] += [{**template, "symbol": s, "pair": s, "baseAsset": s[:-4]}
                            for s in self.extra_symbols if s not in known]
        self.market_weight += 1
        return info

    def _fault(self) -> None:
        if self._failures:
            raise self._failures.pop(0)

    def _symbol(self, params: dict[str, str]) -> str:
        symbol = params.get("symbol", "")
        if symbol not in self.history or (symbol not in SYMBOLS
                                          and symbol not in self.extra_symbols):
            raise ApiError(-1121, "Invalid symbol.")
        return symbol

    def _serve(self, params: dict[str, str], weight: int,
               answer: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        self._fault()
        symbol = self._symbol(params)
        self.market_weight += weight
        return answer(symbol)

    def _klines(self, params: dict[str, str]) -> list[list[Any]]:
        self._fault()
        symbol = self._symbol(params)
        interval = params.get("interval", "")
        if interval not in INTERVAL_MS:
            raise ApiError(-1120, "Invalid interval.")
        limit = int(params.get("limit", "500"))
        if not 1 <= limit <= 1500:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        weight = klines_weight(limit)
        self.rates.weight.add(weight - 1, self.now_ms())  # the route counted 1 already
        self.market_weight += weight
        return [kline_row(c) for c in self.history[symbol][interval][-limit:]]

    def _ticker(self, symbol: str) -> dict[str, Any]:
        day = self.history[symbol]["1m"][-1440:]
        first, last = day[0], day[-1]
        volume = sum(c.volume for c in day)
        quote = sum(c.volume * c.close for c in day)
        return {"symbol": symbol, "priceChange": f"{last.close - first.open:.2f}",
                "priceChangePercent": f"{(last.close / first.open - 1) * 100:.3f}",
                "weightedAvgPrice": f"{quote / volume:.2f}", "lastPrice": f"{last.close:.2f}",
                "lastQty": "0.010", "openPrice": f"{first.open:.2f}",
                "highPrice": f"{max(c.high for c in day):.2f}",
                "lowPrice": f"{min(c.low for c in day):.2f}", "volume": f"{volume:.3f}",
                "quoteVolume": f"{quote:.2f}", "openTime": first.open_ms,
                "closeTime": self.now_ms(), "firstId": 1, "lastId": 2, "count": 3}

    def _oi(self, symbol: str) -> dict[str, Any]:
        return {"openInterest": f"{self.open_interest[symbol]:.3f}", "symbol": symbol,
                "time": self.now_ms()}

    def _next_funding(self) -> int:
        now = self.now_ms()
        return now - now % FUNDING_PERIOD_MS + FUNDING_PERIOD_MS

    def _premium(self, symbol: str) -> dict[str, Any]:
        mark = self.history[symbol]["1m"][-1].close
        return {"symbol": symbol, "markPrice": f"{mark:.8f}", "indexPrice": f"{mark:.8f}",
                "estimatedSettlePrice": f"{mark:.8f}",
                "lastFundingRate": f"{self.funding_rate[symbol]:.8f}",
                "interestRate": "0.00010000", "nextFundingTime": self._next_funding(),
                "time": self.now_ms()}
