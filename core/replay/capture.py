"""The raw capture parser: ``<local_ts> <json>`` lines -> market events, in file order.

Used by core/replay/source.py for files and by benchmarks for lines already in memory. The events
are those of the shared market-stream parser (core/binance/parse_market.py), applied to each
payload of each line: a combined-stream envelope is unwrapped, a ``!markPrice@arr`` array gives
one event per element, COIN-M (``st == 2``) payloads and insurance-fund/ADL ``trade`` prints are
skipped, and a line whose payload that parser rejects (``ParseError``) is a bad line with its
reason. tests/core/replay/test_capture_parity.py checks the fast path below against it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice, repeat
from operator import itemgetter
from typing import Any

import orjson

from core.binance.parse_market import MARKET_TRADE, parse_market_event
from core.binance.wire import ParseError, unwrap
from core.events import BookTicker, MarketTick
from core.replay.lines import CHUNK_LINES, BadLine, BadLines, MarketEvent, ReplayStats

LOCAL_TS = re.compile(rb"^\s*\d[\d.]*\s+")


# --------------------------------------------------------------------------- capture parser
#
# Two passes per chunk of <= 512 lines. Pass 1 parses each JSON line with orjson and keeps the
# raw fields of plain USDⓈ-M bookTicker and trade/aggTrade payloads (one itemgetter call each).
# Pass 2 turns all price/quantity strings of the chunk into floats with ONE orjson call ("e0"
# makes every number a float) and builds the NamedTuples in C (map/zip), then restores file
# order. float() on each string would cost as much as the JSON parse itself. Small chunks let the
# events die young, which keeps the cyclic GC cheap. Everything else (markPrice, kline, arrays,
# an ``st`` other than the int 1, a trade that is not plainly ``X == "MARKET"``, missing fields,
# values of another type or spelling) goes to the shared parser, per payload or, when pass 2
# cannot take a value, for the whole chunk; it also gives the reason for a bad line.

_BOOK = itemgetter("s", "E", "b", "B", "a", "A")
_TRADE = itemgetter("s", "E", "T", "p", "q", "m")
_INT = {int}


class _Batch(Exception):
    """Pass 2 met a value the batch conversion cannot take: redo the chunk line by line."""


def _payload_events(obj: Any) -> list[MarketEvent]:
    """The events of one parsed line (``parse_market_event`` on each payload); BadLine with the
    parser's one-line reason when a payload is malformed."""
    if not isinstance(obj, dict):
        raise BadLine("not a JSON object")
    data = unwrap(obj)
    out: list[MarketEvent] = []
    try:
        for d in data if isinstance(data, list) else (data,):  # !markPrice@arr sends a list
            if (ev := parse_market_event(d)) is not None:
                out.append(ev)
    except ParseError as exc:
        raise BadLine(str(exc)) from None
    return out


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
    return _payload_events(obj)


def _floats(values: tuple) -> list:
    """The decimal strings ``values`` as floats, or _Batch (then Fields.number decides).

    Without '"' and '[' no value can hide a separator, and each value must end in a number that
    "e0" can follow, so each gives one or more elements: an equal count means exactly one float
    per value (orjson refuses infinities, like Fields.number)."""
    try:
        inner = "e0,".join(values)
    except TypeError:  # a number where Binance sends a string
        raise _Batch from None
    if "[" in inner or '"' in inner:
        raise _Batch
    try:
        out = orjson.loads("[" + inner + "e0]")
    except orjson.JSONDecodeError:
        raise _Batch from None
    if len(out) != len(values):
        raise _Batch
    return out


def _ints(values: tuple) -> tuple:
    """``values`` if each is exactly an int (a bool is not a timestamp), else _Batch."""
    if {*map(type, values)} != _INT:
        raise _Batch
    return values


def _flags(values: tuple) -> tuple:
    if not all(map(isinstance, values, repeat(bool))):
        raise _Batch
    return values


def _texts(values: tuple) -> tuple:
    """``values`` if each is a str (join refuses anything else; JSON gives no subclasses)."""
    try:
        "".join(values)
    except TypeError:
        raise _Batch from None
    return values


def _assemble(books: list, ticks: list, other: list, kinds: list) -> list[MarketEvent]:
    """Pass 2: raw fields to events, back in file order (``kinds``: 0 book, 1 tick, 2 other)."""
    new = tuple.__new__
    its: list[Iterator[MarketEvent]] = []
    if books:
        s, ts, b, bq, a, aq = zip(*books, strict=False)
        f, k = _floats(b + bq + a + aq), len(books)
        its.append(map(new, repeat(BookTicker), zip(
            _texts(s), _ints(ts), f[:k], f[k:2 * k], f[2 * k:3 * k], f[3 * k:],
            strict=False)))
    else:
        its.append(iter(()))
    if ticks:
        s, ts, tt, p, q, m = zip(*ticks, strict=False)
        f, k = _floats(p + q), len(ticks)
        its.append(map(new, repeat(MarketTick), zip(
            _texts(s), _ints(ts), _ints(tt), f[:k], f[k:], _flags(m), strict=False)))
    else:
        its.append(iter(()))
    its.append(iter(other))
    if len(books) == len(kinds):
        return list(its[0])
    if len(ticks) == len(kinds):
        return list(its[1])
    return list(map(next, map(its.__getitem__, kinds)))


def capture_chunks(line_chunks: Iterable[list[bytes]], *, bad: Callable[[int, str], None],
                   stats: ReplayStats | None = None) -> Iterator[list[MarketEvent]]:
    """The hot parser: chunks of capture lines to lists of events, in file order.

    A line that does not parse calls ``bad(line_number, reason)`` (1-based over all chunks),
    which decides whether to go on (``BadLines``: the bad-line policy). ``stats.skipped``
    (optional) receives the number of lines that gave no event: depth updates, COIN-M payloads,
    insurance-fund/ADL prints, snapshots, control replies.
    """
    loads, parse, market = orjson.loads, parse_market_event, MARKET_TRADE
    base = skipped = j = 0
    try:
        for lines in line_chunks:
            books: list = []
            ticks: list = []
            other: list = []
            kinds: list = []
            bad_lines: list = []
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
                    if line[j + 2] == 115 and "e" not in d:  # {"s...: combined-stream envelope
                        d = d["data"]
                    e = d["e"]
                    if "st" in d and (d["st"].__class__ is not int or d["st"] != 1):
                        e = None  # COIN-M (st == 2) or an unusual st: the shared parser decides
                    if e == "bookTicker":
                        add_book(_BOOK(d))
                        add_kind(0)
                    elif e == "trade" and d["X"] == market or e == "aggTrade":
                        add_tick(_TRADE(d))
                        add_kind(1)
                    elif (ev := parse(d)) is not None:
                        other.append(ev)
                        add_kind(2)
                    else:
                        skip += 1
                except Exception:  # anything unusual: the slow path decides, with a reason
                    try:
                        events = _slow_line(line)
                    except BadLine as exc:
                        bad_lines.append((line, str(exc)))
                        continue
                    if events:
                        other += events
                        kinds += [2] * len(events)
                    elif line.strip():
                        skip += 1
            try:
                out = _assemble(books, ticks, other, kinds)
            except _Batch:
                out, skip, bad_lines = _slow_chunk(lines)
            at = 0  # bad lines are in file order; equal lines may be one (interned) object
            for line, reason in bad_lines:
                at = next(i for i in range(at, len(lines)) if lines[i] is line) + 1
                bad(base + at, reason)
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
    for chunk in capture_chunks(batched(lines), bad=BadLines(source, stats), stats=stats):
        yield from chunk
