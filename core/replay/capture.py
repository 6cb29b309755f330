"""The raw capture parser: ``<local_ts> <json>`` lines -> market events, in file order.

Used by core/replay/source.py for files and by benchmarks for lines already in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import islice, repeat
from operator import itemgetter
from typing import Any

import orjson

from core.binance.parse_market import KLINE_INTERVAL_MS
from core.events import BookTicker, Candle, MarketTick, MarkPrice
from core.replay.lines import CHUNK_LINES, BadLine, BadLines, MarketEvent, ReplayStats

LOCAL_TS = re.compile(rb"^\s*\d[\d.]*\s+")


# --------------------------------------------------------------------------- capture parser
#
# Two passes per chunk of <= 512 lines. Pass 1 parses each JSON line with orjson and keeps the
# raw fields of bookTicker and trade/aggTrade payloads (one itemgetter call each). Pass 2 turns
# all price/quantity strings of the chunk into floats with ONE orjson call ("e0" makes every
# number a float) and builds the NamedTuples in C (map/zip), then restores file order. float()
# on each string would cost as much as the JSON parse itself. Small chunks let the events die
# young, which keeps the cyclic GC cheap. Anything unusual (markPrice, kline, arrays, missing
# fields, bad values) goes through the slow path, which also gives the reason for a bad line.

_BOOK = itemgetter("s", "E", "b", "B", "a", "A")
_TRADE = itemgetter("s", "E", "T", "p", "q", "m")


class _Batch(Exception):
    """Pass 2 met a value the batch conversion cannot take: redo the chunk line by line."""


def _payload_event(d: dict) -> MarketEvent | None:
    """One stream payload to an event; None to skip it; BadLine with a reason if malformed."""
    e = d.get("e")
    try:
        if e == "trade" or e == "aggTrade":
            if d.get("X", "MARKET") != "MARKET":  # insurance fund / ADL print
                return None
            return MarketTick(d["s"], int(d["E"]), int(d["T"]), float(d["p"]), float(d["q"]),
                              _flag(d["m"]))
        if e == "bookTicker":
            return BookTicker(d["s"], int(d.get("E") or d["T"]), float(d["b"]), float(d["B"]),
                              float(d["a"]), float(d["A"]))
        if e == "markPriceUpdate":  # delivery contracts send r="" and T=0
            return MarkPrice(d["s"], int(d["E"]), float(d["p"]), float(d["i"] or 0),
                             float(d["r"] or 0), int(d["T"] or 0))
        if e == "kline":
            k = d["k"]
            # the one interval table; 1M (and anything else): the bar's own length
            interval = KLINE_INTERVAL_MS.get(k["i"]) or k["T"] + 1 - k["t"]
            return Candle(d["s"], int(d["E"]), interval, int(k["t"]), float(k["o"]), float(k["h"]),
                          float(k["l"]), float(k["c"]), float(k["v"]), _flag(k["x"]))
    except KeyError as exc:
        raise BadLine(f"{e} event without field {exc}") from None
    except (TypeError, ValueError) as exc:
        raise BadLine(f"{e} event with a bad value ({exc})") from None
    return None


def _slow_line(line: bytes) -> list[MarketEvent]:
    """Any capture line, slowly: its events (maybe none), or BadLine with the reason it is bad."""
    body = line.strip()
    if not body:
        return []
    if m := LOCAL_TS.match(body):
        body = body[m.end():]
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadLine(f"invalid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BadLine("not a JSON object")
    data = obj["data"] if "stream" in obj and "data" in obj else obj
    out = []
    for d in data if isinstance(data, list) else [data]:  # !markPrice@arr sends a list
        if not isinstance(d, dict):
            raise BadLine("stream data is not a JSON object")
        if (ev := _payload_event(d)) is not None:
            out.append(ev)
    return out


def _floats(values: tuple) -> list:
    try:
        inner = "e0,".join(values)
    except TypeError:  # a number where Binance sends a string
        raise _Batch from None
    if "[" in inner:
        raise _Batch
    try:
        out = orjson.loads("[" + inner + "e0]")
    except orjson.JSONDecodeError:
        raise _Batch from None
    if len(out) != len(values):
        raise _Batch
    return out


def _checked(values: tuple, kind: type) -> tuple:
    if not all(map(isinstance, values, repeat(kind))):
        raise _Batch
    return values


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not a boolean")
    return value


def _assemble(books: list, ticks: list, other: list, kinds: list) -> list[MarketEvent]:
    """Pass 2: raw fields to events, back in file order (``kinds``: 0 book, 1 tick, 2 other)."""
    new = tuple.__new__
    its: list[Iterator[MarketEvent]] = []
    if books:
        s, ts, b, bq, a, aq = zip(*books, strict=False)
        f, k = _floats(b + bq + a + aq), len(books)
        its.append(map(new, repeat(BookTicker), zip(s, _checked(ts, int), f[:k], f[k:2 * k],
                                                    f[2 * k:3 * k], f[3 * k:], strict=False)))
    else:
        its.append(iter(()))
    if ticks:
        s, ts, tt, p, q, m = zip(*ticks, strict=False)
        f, k = _floats(p + q), len(ticks)
        its.append(map(new, repeat(MarketTick), zip(s, _checked(ts, int), _checked(tt, int),
                                                    f[:k], f[k:], _checked(m, bool), strict=False)))
    else:
        its.append(iter(()))
    its.append(iter(other))
    if len(books) == len(kinds):
        return list(its[0])
    if len(ticks) == len(kinds):
        return list(its[1])
    return list(map(next, map(its.__getitem__, kinds)))


def capture_chunks(line_chunks: Iterable[list[bytes]], source: str,
                    stats: ReplayStats | None) -> Iterator[list[MarketEvent]]:
    """The hot parser: chunks of capture lines to lists of events, in file order."""
    loads = orjson.loads
    report = BadLines(source, stats)
    base = skipped = j = 0
    try:
        for lines in line_chunks:
            books: list = []
            ticks: list = []
            other: list = []
            kinds: list = []
            bad: list = []
            add_book, add_tick, add_kind = books.append, ticks.append, kinds.append
            skip = 0
            for line in lines:
                try:
                    if line[j - 1] != 32:  # "<local_ts> " changed length (or none: bare JSON)
                        j = line.find(b" ", 0, 24) + 1
                    if line[-3] == 93 and line.find(b"depth", j, j + 48) >= 0:
                        skip += 1  # a depth update: skipped without parsing it
                        continue
                    d = loads(line[j:])
                    if line[j + 2] == 115:  # {"s...: the combined-stream envelope
                        d = d["data"]
                    e = d["e"]
                    if e == "bookTicker":
                        add_book(_BOOK(d))
                        add_kind(0)
                    elif e == "trade":
                        if d["X"] == "MARKET":
                            add_tick(_TRADE(d))
                            add_kind(1)
                        else:
                            skip += 1
                    elif e == "aggTrade":
                        add_tick(_TRADE(d))
                        add_kind(1)
                    elif (ev := _payload_event(d)) is not None:
                        other.append(ev)
                        add_kind(2)
                    else:
                        skip += 1
                except Exception:  # anything unusual: the slow path decides, with a reason
                    try:
                        events = _slow_line(line)
                    except BadLine as exc:
                        bad.append((line, str(exc)))
                        continue
                    if events:
                        other += events
                        kinds += [2] * len(events)
                    elif line.strip():
                        skip += 1
            try:
                out = _assemble(books, ticks, other, kinds)
            except _Batch:
                out, skip, bad = _slow_chunk(lines)
            for line, reason in bad:
                report(base + next(i for i, x in enumerate(lines, 1) if x is line), reason)
            skipped += skip
            base += len(lines)
            yield out
    finally:
        if stats is not None:
            stats.skipped += skipped


def _slow_chunk(lines: list[bytes]) -> tuple[list[MarketEvent], int, list[tuple[bytes, str]]]:
    out: list[MarketEvent] = []
    skip, bad = 0, []
    for line in lines:
        try:
            events = _slow_line(line)
        except BadLine as exc:
            bad.append((line, str(exc)))
            continue
        out += events
        skip += not events and bool(line.strip())
    return out, skip, bad


def batched(lines: Iterable[bytes], size: int = CHUNK_LINES) -> Iterator[list[bytes]]:
    if isinstance(lines, list):
        for i in range(0, len(lines), size):
            yield lines[i:i + size]
        return
    it = iter(lines)
    while batch := list(islice(it, size)):
        yield batch


def read_capture_lines(lines: Iterable[bytes], *, source: str = "<memory>",
                       stats: ReplayStats | None = None) -> Iterator[MarketEvent]:
    """Parse websocket capture lines (``<local_ts> <json>`` or bare JSON) into events.

    File order, no reordering. Lines may keep their ``\\n``. ``source`` names the input in
    errors; ``stats`` (optional) receives the skipped and bad-line counts. Raises ReplayError
    under the bad-line policy of the module docstring.
    """
    for chunk in capture_chunks(batched(lines), source, stats):
        yield from chunk
