"""Market-stream payloads -> core/events.py market NamedTuples (parse at the edge).

The one parser of every market-stream payload: the live streams (core/binance/streams.py), the
market-data worker (core/market/data.py) and the capture replay (core/replay/capture.py, whose
fast path is checked against it) all go through these functions.

Payloads (shared/binance/PROTOCOL.md §4): ``aggTrade`` (``nq`` since 2025-12-31), ``trade``
(the raw ``@trade`` stream, on ``/public`` per PROTOCOL.md §10), ``markPriceUpdate`` (``ap`` since
2026-03), ``bookTicker``, ``kline``, and ``depthUpdate`` (not an engine event: the dispatcher
skips it). Since the 2026 "CM migration" payloads carry ``st`` (1 = USDⓈ-M, 2 = COIN-M);
``st == 2`` payloads of every kind are dropped (None). Unknown fields are ignored; market prices
and quantities are floats by design (core/events.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.binance.wire import Fields, ParseError, unwrap
from core.events import BookTicker, Candle, MarketTick, MarkPrice

MarketEvent = MarketTick | BookTicker | MarkPrice | Candle

COIN_M = 2
#: ``X`` of a ``trade`` payload that is an order-book trade; insurance-fund (``INSURANCE_FUND``)
#: and ADL prints are not market activity (aggTrade never contains them, PROTOCOL.md §4).
MARKET_TRADE = "MARKET"

#: The one table of Binance kline intervals (``k.i``) in ms; 1M is left out (variable length:
#: parsers take ``k.T - k.t + 1``). USDⓈ-M futures have no 1s klines (market_rest.INTERVAL_MS).
KLINE_INTERVAL_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
    "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
    "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000,
    "1w": 604_800_000,
}


def is_coin_m(d: Fields) -> bool:
    """True for a COIN-M payload (``st == 2``); a payload without ``st`` is USDⓈ-M."""
    return d.has("st") and d.integer("st") == COIN_M


def parse_agg_trade(msg: Mapping[str, Any]) -> MarketTick | None:
    """``aggTrade`` -> MarketTick (quantity ``q``: all market trades, including RPI; ``nq`` is
    ignored), or None for a COIN-M (``st == 2``) payload."""
    d = Fields(unwrap(msg), "aggTrade")
    if is_coin_m(d):
        return None
    return MarketTick(d.text("s"), d.integer("E"), d.integer("T"), d.number("p"),
                      d.number("q"), d.flag("m"))


def parse_trade(msg: Mapping[str, Any]) -> MarketTick | None:
    """``trade`` (raw ``@trade`` stream) -> MarketTick, like aggTrade: symbol ``s``, event time
    ``E`` and trade time ``T`` (ms), price ``p`` and quantity ``q`` (base asset), ``m`` buyer is
    maker.

    Returns None for a COIN-M (``st == 2``) payload and for an insurance-fund or ADL print
    (``X`` other than ``"MARKET"``; a payload without ``X`` is a market trade).

    Raises:
        ParseError: a required field is missing or malformed.
    """
    d = Fields(unwrap(msg), "trade")
    if is_coin_m(d) or d.raw("X", MARKET_TRADE) != MARKET_TRADE:
        return None
    return MarketTick(d.text("s"), d.integer("E"), d.integer("T"), d.number("p"),
                      d.number("q"), d.flag("m"))


def parse_mark_price(msg: Mapping[str, Any]) -> MarkPrice | None:
    """``markPriceUpdate`` -> MarkPrice (``ap``, the moving average, is not an engine field).
    An empty funding rate (delivery contracts) reads as 0."""
    d = Fields(unwrap(msg), "markPriceUpdate")
    if is_coin_m(d):
        return None
    return MarkPrice(d.text("s"), d.integer("E"), d.number("p"), d.number("i", ""),
                     d.number("r", ""), d.integer("T", 0))


def parse_book_ticker(msg: Mapping[str, Any]) -> BookTicker | None:
    """``bookTicker`` -> BookTicker; ``ts_ms`` is ``E`` (``T`` when a payload lacks ``E``)."""
    d = Fields(unwrap(msg), "bookTicker")
    if is_coin_m(d):
        return None
    ts = d.integer("E") if d.has("E") else d.integer("T")
    return BookTicker(d.text("s"), ts, d.number("b"), d.number("B"), d.number("a"),
                      d.number("A"))


def parse_kline(msg: Mapping[str, Any]) -> Candle | None:
    """``kline`` -> Candle (``closed`` is ``k.x``; ``interval_ms`` from ``k.i``, or
    ``k.T - k.t + 1`` for intervals of variable length such as 1M)."""
    d = Fields(unwrap(msg), "kline")
    if is_coin_m(d):
        return None
    k = d.obj("k")
    interval = k.text("i")
    open_ms = k.integer("t")
    interval_ms = KLINE_INTERVAL_MS.get(interval) or (k.integer("T") - open_ms + 1)
    symbol = d.text("s") if d.has("s") else k.text("s")
    return Candle(symbol, d.integer("E"), interval_ms, open_ms, k.number("o"), k.number("h"),
                  k.number("l"), k.number("c"), k.number("v"), k.flag("x"))


_MARKET_PARSERS: dict[str, Callable[[Mapping[str, Any]], MarketEvent | None]] = {
    "aggTrade": parse_agg_trade,
    "trade": parse_trade,
    "markPriceUpdate": parse_mark_price,
    "bookTicker": parse_book_ticker,
    "kline": parse_kline,
}


def parse_market_event(msg: Any) -> MarketEvent | None:
    """Route one market-stream message (raw or in a combined envelope) on its ``e``.

    Returns None for payloads that are not engine events: ``depthUpdate`` (order book diffs),
    control replies (``{"result": null, "id": 1}``), array streams (``!markPrice@arr``),
    unknown ``e`` and COIN-M (``st == 2``) payloads.

    Raises:
        ParseError: a known event lacks a required field or has a malformed value.
    """
    data = unwrap(msg)
    if not isinstance(data, Mapping):
        if isinstance(data, list):
            return None
        raise ParseError(f"market event: expected an object, got {type(data).__name__}")
    event = data.get("e")
    parser = _MARKET_PARSERS.get(event) if isinstance(event, str) else None
    return parser(data) if parser else None
