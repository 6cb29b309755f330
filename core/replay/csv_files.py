"""Binance market-data CSV files -> market events (the CSV half of core/replay/source.py).

Layouts (data.binance.vision ``futures/um`` daily files, with or without their header line, plus
the two non-official files in ``../shared/data/binance-usdm``):

==================  ==============================================================================
``aggtrades_csv``   ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,
                    is_buyer_maker[,is_best_match]``, or the 4-column ``timestamp,price,quantity,
                    is_buyer_maker`` -> ``MarketTick`` (ts_ms = trade_ms = transact time)
``trades_csv``      ``id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]`` -> ``MarketTick``
``bookticker_csv``  ``update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,
                    transaction_time,event_time`` -> ``BookTicker`` (ts_ms = event time)
``klines_csv``      ``open_time,open,high,low,close,volume,close_time,...,ignore`` (12 columns, any
                    interval) -> closed ``Candle``, ts_ms = close time,
                    interval_ms = close_time + 1 - open_time
``markprice_klines_csv``  the klines columns with every volume column 0 (data.binance.vision
                    ``markPriceKlines``; recognised by where the file is stored, see
                    core/replay/source.py) -> ``MarkKline``, ts_ms = close time
``funding_csv``     ``calc_time,funding_interval_hours,last_funding_rate`` (official) or freqtrade's
                    ``date,timestamp_ms,funding_rate`` -> ``FundingRate``
==================  ==============================================================================

A klines row with volume 0 whose high and low differ is a bad row: no trade cannot move a traded
price, so it is a mark or index price kline read as traded; a ``markprice_klines_csv`` row with a
non-zero volume is a bad row too. Either way a wrong file fails (core/replay/lines.py's bad-line
policy) instead of replaying mark prices as trades or trades as mark prices.

Timestamps above 1e14 are microseconds (data.binance.vision moved spot files to µs in 2025) and
are floored to ms. CSV rows carry no symbol: ``symbol_from_filename`` reads it from the official
file name (``BTCUSDT-aggTrades-2024-01-01.csv``) or freqtrade's (``XRP_USDT_USDT-8h-funding_rate``).

This module knows nothing of files or errors policy: ``sniff_csv`` raises ``ValueError`` with a
reason, and ``csv_chunks`` reports a bad row through the ``bad(line_number, reason)`` callback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.events import BookTicker, Candle, FundingRate, MarketTick
from core.replay.lines import MarkKline

_US = 100_000_000_000_000  # a ms timestamp stays below 1e14 until the year 5138
_TRUE = frozenset((b"t", b"T", b"1"))
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, as spreadsheet exports write
_new = tuple.__new__


def _ms(raw: bytes) -> int:
    t = int(raw)
    return t // 1000 if t > _US else t


def _aggtrades7(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> MarketTick:
        t = _ms(f[5])
        return _new(MarketTick, (sym, t, t, float(f[1]), float(f[2]), f[6][:1] in _TRUE))
    return row


def _aggtrades4(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> MarketTick:
        t = _ms(f[0])
        return _new(MarketTick, (sym, t, t, float(f[1]), float(f[2]), f[3][:1] in _TRUE))
    return row


def _trades(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> MarketTick:
        t = _ms(f[4])
        return _new(MarketTick, (sym, t, t, float(f[1]), float(f[2]), f[5][:1] in _TRUE))
    return row


def _bookticker(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> BookTicker:
        # event_time, or the transaction time where an old file left it empty
        t = _ms(f[6] if f[6].strip() else f[5])
        return _new(BookTicker, (sym, t, float(f[1]), float(f[2]), float(f[3]), float(f[4])))
    return row


_NOT_TRADED = ("volume 0 while the price moved: a mark or index price kline, not a traded one "
               "(mark-price klines are read from a folder named markPriceKlines, as download "
               "stores them)")


def _klines(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> Candle:
        start, close_ms = _ms(f[0]), _ms(f[6])
        volume, high, low = float(f[5]), float(f[2]), float(f[3])
        if not volume and high != low:  # no trade cannot move a traded price
            raise ValueError(_NOT_TRADED)
        return _new(Candle, (sym, close_ms, close_ms + 1 - start, start, float(f[1]), high, low,
                             float(f[4]), volume, True))
    return row


def _mark_klines(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> MarkKline:
        if float(f[5]):  # Binance writes 0 in every volume column of a mark-price kline
            raise ValueError(f"traded volume {f[5].decode(errors='replace')}: a traded kline, "
                             f"not a mark-price kline")
        start, close_ms = _ms(f[0]), _ms(f[6])
        return _new(MarkKline, (sym, close_ms, close_ms + 1 - start, start, float(f[1]),
                                float(f[2]), float(f[3]), float(f[4])))
    return row


def _funding_official(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> FundingRate:
        return _new(FundingRate, (sym, _ms(f[0]), float(f[2])))
    return row


def _funding_freqtrade(sym: str) -> Callable[[list[bytes]], Any]:
    def row(f: list[bytes]) -> FundingRate:
        return _new(FundingRate, (sym, _ms(f[1]), float(f[2])))
    return row


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """A detected CSV layout: ``fmt`` is the public format name, ``has_header`` whether line 1 is
    a header, ``builder`` makes the row parser for a symbol."""

    fmt: str
    has_header: bool
    builder: Callable[[str], Callable[[list[bytes]], Any]]


_HEADERS: dict[tuple[str, ...], tuple[str, Callable[[str], Callable[[list[bytes]], Any]]]] = {
    ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
     "is_buyer_maker"): ("aggtrades_csv", _aggtrades7),
    ("timestamp", "price", "quantity", "is_buyer_maker"): ("aggtrades_csv", _aggtrades4),
    ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"): ("trades_csv", _trades),
    ("update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty",
     "transaction_time", "event_time"): ("bookticker_csv", _bookticker),
    ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
     "taker_buy_volume", "taker_buy_quote_volume", "ignore"): ("klines_csv", _klines),
    ("calc_time", "funding_interval_hours", "last_funding_rate"):
        ("funding_csv", _funding_official),
    ("date", "timestamp_ms", "funding_rate"): ("funding_csv", _funding_freqtrade),
}
_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\d[T ]")


def as_mark_klines(layout: CsvLayout) -> CsvLayout:
    """The ``markprice_klines_csv`` layout of a file sniffed as ``klines_csv`` (same columns;
    the caller knows from where the file is stored that it holds mark prices)."""
    return CsvLayout("markprice_klines_csv", layout.has_header, _mark_klines)


def _is_bool(field: str) -> bool:
    return field.lower() in ("true", "false")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def sniff_csv(first_line: bytes) -> CsvLayout:
    """The layout of a CSV file from its first non-empty line (a header or a data row).

    Raises ValueError with a one-line reason for an unknown header or row shape.
    """
    fields = [f.strip().strip('"').lower() for f in first_line.decode("utf-8-sig").split(",")]
    if not _is_number(fields[0]) and not _ISO_DATE.match(fields[0]):
        names = tuple(fields[:-1]) if fields[-1] == "is_best_match" else tuple(fields)
        if names not in _HEADERS:
            raise ValueError(f"unknown CSV header {','.join(fields)[:200]!r}")
        fmt, builder = _HEADERS[names]
        return CsvLayout(fmt, True, builder)
    n = len(fields)
    numeric = [_is_number(f) for f in fields]
    bools = [_is_bool(f) for f in fields]
    if n == 3 and numeric[1] and numeric[2]:
        if _ISO_DATE.match(fields[0]):
            return CsvLayout("funding_csv", False, _funding_freqtrade)
        if numeric[0]:
            return CsvLayout("funding_csv", False, _funding_official)
    elif n == 4 and all(numeric[:3]) and bools[3]:
        return CsvLayout("aggtrades_csv", False, _aggtrades4)
    elif n in (6, 7) and all(numeric[:5]) and bools[5]:
        return CsvLayout("trades_csv", False, _trades)
    elif n in (7, 8) and all(numeric[:6]) and bools[6]:
        return CsvLayout("aggtrades_csv", False, _aggtrades7)
    elif n == 7 and all(numeric):
        return CsvLayout("bookticker_csv", False, _bookticker)
    elif n == 12 and all(numeric):
        return CsvLayout("klines_csv", False, _klines)
    raise ValueError(f"unrecognised CSV row with {n} columns "
                     f"{first_line[:120].decode(errors='replace')!r}")


_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB")
_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")


def symbol_from_filename(name: str) -> str | None:
    """The Binance symbol a CSV file name starts with, or None.

    ``BTCUSDT-1m-2023-04-15.csv`` -> ``BTCUSDT``; ``BTCUSDT_240628-aggTrades-...`` (a delivery
    contract) -> ``BTCUSDT_240628``; freqtrade's ``XRP_USDT_USDT-8h-funding_rate.csv`` ->
    ``XRPUSDT``. The name must end in a known quote asset (USDT, USDC, ...), so ``data.csv`` gives
    None.
    """
    parts = name.split("-", 1)[0].split(".", 1)[0].upper().split("_")
    if len(parts) >= 2 and parts[1] in _QUOTES and all(p == parts[1] for p in parts[2:]):
        parts = [parts[0] + parts[1]]  # freqtrade / ccxt BASE_QUOTE[_SETTLE]
    head = parts[0]
    if not _SYMBOL.match(head) or not any(head.endswith(q) and head != q for q in _QUOTES):
        return None
    if len(parts) >= 2 and len(parts[1]) == 6 and parts[1].isdigit():
        return f"{head}_{parts[1]}"
    return head


def csv_chunks(line_chunks: Iterable[list[bytes]], layout: CsvLayout, symbol: str, *,
               bad: Callable[[int, str], None]) -> Iterator[list[Any]]:
    """Parse chunks of CSV lines into lists of events, in file order.

    The header and blank lines are ignored; a repeated header (concatenated files) too. A row
    that does not parse calls ``bad(line_number, reason)``, which decides whether to go on.
    """
    row = layout.builder(symbol)
    header: bytes | None = None
    lineno = 0
    for lines in line_chunks:
        if lineno == 0 and lines and lines[0].startswith(_BOM):
            lines = [lines[0][len(_BOM):], *lines[1:]]
        out: list[Any] = []
        append = out.append
        for line in lines:
            lineno += 1
            try:
                append(row(line.split(b",")))
            except (ValueError, IndexError, TypeError) as exc:
                text = line.strip()
                if not text or text == header:
                    continue
                if layout.has_header and header is None:
                    header = text
                    continue
                bad(lineno, f"bad {layout.fmt} row ({exc})")
        yield out
