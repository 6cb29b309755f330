"""Replay recorded Binance USDⓈ-M market data as engine market events, in exchange-time order.

Inputs, detected from content (gzip and single-member zip by magic bytes, never by file name):

* ``capture``: raw websocket recordings, one message per line, ``<local_ts> <json>`` where the
  local receive time (ns or µs) is ignored and the JSON is the combined-stream envelope
  ``{"stream": ..., "data": {...}}``. A bare payload, with or without the ``<local_ts>`` prefix, is
  accepted too. ``trade`` (only ``X == "MARKET"``; insurance-fund and ADL prints are dropped) and
  ``aggTrade`` -> ``MarketTick``; ``bookTicker`` -> ``BookTicker``; ``markPriceUpdate`` (also
  ``!markPrice@arr``) -> ``MarkPrice``; ``kline`` -> ``Candle``. Depth updates, REST snapshots and
  other messages are skipped (depth lines before any JSON parsing).
* the CSV files of data.binance.vision and freqtrade, see core/replay_csv.py.

Ordering: captures are written in receive order, which is not exchange order (up to ~300 ms
apart in btcusdt_20230405.dat.gz). Each file goes through a bounded reorder buffer of
``reorder_ms``: an event is held until an event ``reorder_ms`` newer has been read. Output is
nondecreasing in ``ts_ms`` and stable (file order) for equal timestamps. An event older than one
already emitted is still emitted, at once, and counted in ``ReplayStats.late``. Several files are
merged on ``ts_ms``.

Bad lines: a line that does not parse (invalid JSON, a known event with a missing or malformed
field, a CSV row with bad values) is skipped and counted in ``ReplayStats.bad_lines`` as long as
bad lines stay at most 1 % of the lines read so far. So a bad line among the first 100 lines, or
more than 1 % bad lines anywhere, raises ``ReplayError``: that file is not what it claims to be.
Unreadable input (empty, binary, unknown CSV header, truncated or corrupt gzip) raises
``ReplayError`` too. Every ``ReplayError`` message is one line that starts with the file's path.
"""

from __future__ import annotations

import heapq
import logging
import re
import zipfile
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar, Union

import orjson

from core.events import BookTicker, Candle, FundingRate, MarketTick, MarkPrice
from core.replay_csv import CsvLayout, csv_chunks, sniff_csv, symbol_from_filename

logger = logging.getLogger(__name__)

MarketEvent = Union[MarketTick, BookTicker, MarkPrice, Candle, FundingRate]
E = TypeVar("E", bound=tuple)

_TS = itemgetter(1)  # ts_ms is field 1 of every market NamedTuple
_BLOCK = 1 << 20
_CHUNK_LINES = 512  # lines parsed per step: small enough for the events to die young (cheap GC)
_MAX_LINE = 64 << 20
_LOCAL_TS = re.compile(rb"^\s*\d[\d.]*\s+")
_INTERVAL_MS = {f"{n}{u}": n * ms for u, ms in (("s", 1000), ("m", 60_000), ("h", 3_600_000),
                                                ("d", 86_400_000), ("w", 604_800_000))
                for n in (1, 2, 3, 4, 5, 6, 8, 12, 15, 30)}


class ReplayError(ValueError):
    """A replay input cannot be used; the message is one line naming the file (and line)."""


@dataclass
class ReplayStats:
    """Counters of one iteration over a ``ReplaySource``, final once iteration ends.

    ``skipped`` counts lines and rows deliberately dropped (depth, snapshots, non-MARKET trades,
    other symbols); ``bad_lines`` those that did not parse; ``late`` events emitted after a newer
    one (out of order beyond ``reorder_ms``). Timestamps are exchange ms.
    """

    files: list[str] = field(default_factory=list)
    events: int = 0
    skipped: int = 0
    bad_lines: int = 0
    late: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None


class _BadLines:
    """The bad-line policy of one file (see the module docstring)."""

    __slots__ = ("source", "stats", "count")

    def __init__(self, source: str, stats: ReplayStats | None) -> None:
        self.source, self.stats, self.count = source, stats, 0

    def __call__(self, lineno: int, reason: str) -> None:
        self.count += 1
        reason = " ".join(reason.split())[:300]
        if self.count * 100 > lineno:
            raise ReplayError(f"{self.source}: line {lineno}: {reason} ({self.count} bad of the "
                              f"first {lineno} lines; more than 1% means a corrupt file)") from None
        if self.stats is not None:
            self.stats.bad_lines += 1
        if self.count == 1:
            logger.warning("%s: line %d skipped: %s", self.source, lineno, reason)


class _BadLine(Exception):
    """Raised inside the slow path for a line that is not usable (the message says why)."""


# --------------------------------------------------------------------------- bytes -> lines


def _gunzip(f: Any, source: str) -> Iterator[bytes]:
    """Decompressed blocks of at most _BLOCK bytes; handles several members (appended files)."""
    d, fed = zlib.decompressobj(31), False
    try:
        while raw := f.read(_BLOCK // 4):
            if not fed and not (raw := raw.lstrip(b"\x00")):  # zero padding between members
                continue
            fed = True
            while True:
                out = d.decompress(raw, _BLOCK)  # bounded output, even for a gzip bomb
                if out:
                    yield out
                if d.eof:  # end of a member; another may follow
                    raw = d.unused_data.lstrip(b"\x00")
                    d, fed = zlib.decompressobj(31), bool(raw)
                    if not raw:
                        break
                elif d.unconsumed_tail or len(out) == _BLOCK:  # more output is pending
                    raw = d.unconsumed_tail
                else:
                    break
    except zlib.error as exc:
        raise ReplayError(f"{source}: corrupt gzip data ({exc})") from None
    if fed:
        raise ReplayError(f"{source}: truncated gzip (the data ends mid-stream; was the "
                          f"recording cut off?)")


def _blocks(path: Path) -> Iterator[bytes]:
    source = str(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            f.seek(0)
            if magic[:2] == b"\x1f\x8b":
                yield from _gunzip(f, source)
            elif magic == b"PK\x03\x04":
                with zipfile.ZipFile(f) as z:
                    names = [n for n in z.namelist() if not n.endswith("/")]
                    if len(names) != 1:
                        raise ReplayError(f"{source}: zip holds {len(names)} files, expected one")
                    with z.open(names[0]) as member:
                        while block := member.read(_BLOCK):
                            yield block
            else:
                while block := f.read(_BLOCK):
                    yield block
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ReplayError(f"{source}: cannot read ({exc})") from None


def _line_chunks(path: Path) -> Iterator[list[bytes]]:
    """The file's lines (without ``\\n``) in chunks of at most _CHUNK_LINES."""
    rest = b""
    for block in _blocks(path):
        lines = (rest + block if rest else block).split(b"\n")
        rest = lines.pop()
        if len(rest) > _MAX_LINE:
            raise ReplayError(f"{path}: a line longer than {_MAX_LINE >> 20} MiB; "
                              f"not a capture or CSV")
        for i in range(0, len(lines), _CHUNK_LINES):
            yield lines[i:i + _CHUNK_LINES]
    if rest:
        yield [rest]


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
    """One stream payload to an event; None to skip it; _BadLine with a reason if malformed."""
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
            interval = _INTERVAL_MS.get(k["i"]) or k["T"] + 1 - k["t"]  # 1M: the bar's own length
            return Candle(d["s"], int(d["E"]), interval, int(k["t"]), float(k["o"]), float(k["h"]),
                          float(k["l"]), float(k["c"]), float(k["v"]), _flag(k["x"]))
    except KeyError as exc:
        raise _BadLine(f"{e} event without field {exc}") from None
    except (TypeError, ValueError) as exc:
        raise _BadLine(f"{e} event with a bad value ({exc})") from None
    return None


def _slow_line(line: bytes) -> list[MarketEvent]:
    """Any capture line, slowly: its events (maybe none), or _BadLine with the reason it is bad."""
    body = line.strip()
    if not body:
        return []
    if m := _LOCAL_TS.match(body):
        body = body[m.end():]
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _BadLine(f"invalid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise _BadLine("not a JSON object")
    data = obj["data"] if "stream" in obj and "data" in obj else obj
    out = []
    for d in data if isinstance(data, list) else [data]:  # !markPrice@arr sends a list
        if not isinstance(d, dict):
            raise _BadLine("stream data is not a JSON object")
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
        s, ts, b, bq, a, aq = zip(*books)
        f, k = _floats(b + bq + a + aq), len(books)
        its.append(map(new, repeat(BookTicker), zip(s, _checked(ts, int), f[:k], f[k:2 * k],
                                                    f[2 * k:3 * k], f[3 * k:])))
    else:
        its.append(iter(()))
    if ticks:
        s, ts, tt, p, q, m = zip(*ticks)
        f, k = _floats(p + q), len(ticks)
        its.append(map(new, repeat(MarketTick), zip(s, _checked(ts, int), _checked(tt, int),
                                                    f[:k], f[k:], _checked(m, bool))))
    else:
        its.append(iter(()))
    its.append(iter(other))
    if len(books) == len(kinds):
        return list(its[0])
    if len(ticks) == len(kinds):
        return list(its[1])
    return list(map(next, map(its.__getitem__, kinds)))


def _capture_chunks(line_chunks: Iterable[list[bytes]], source: str,
                    stats: ReplayStats | None) -> Iterator[list[MarketEvent]]:
    """The hot parser: chunks of capture lines to lists of events, in file order."""
    loads = orjson.loads
    report = _BadLines(source, stats)
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
                    except _BadLine as exc:
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
        except _BadLine as exc:
            bad.append((line, str(exc)))
            continue
        out += events
        skip += not events and bool(line.strip())
    return out, skip, bad


def _batched(lines: Iterable[bytes], size: int = _CHUNK_LINES) -> Iterator[list[bytes]]:
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
    for chunk in _capture_chunks(_batched(lines), source, stats):
        yield from chunk


def read_capture_chunks(lines: Iterable[bytes], *, reorder_ms: int = 2000,
                        source: str = "<memory>",
                        stats: ReplayStats | None = None) -> Iterator[list[MarketEvent]]:
    """Capture lines already in memory through the same parser and reorder buffer as a file
    (``ReplaySource.chunks`` without the file reading): lists of events in exchange-time order."""
    return reorder(_capture_chunks(_batched(lines), source, stats), window_ms=reorder_ms,
                   stats=stats)


# --------------------------------------------------------------------------- ordering


def reorder(chunks: Iterable[list[E]], *, window_ms: int,
            stats: ReplayStats | None = None) -> Iterator[list[E]]:
    """Sort a nearly-sorted stream of event chunks on ``ts_ms`` (field 1) with bounded memory.

    Events are held until one ``window_ms`` newer has been seen, then emitted in nondecreasing
    ``ts_ms``, stable for equal timestamps. An event older than one already emitted is emitted
    with the next chunk and counted in ``stats.late``; ``stats`` also gets ``events`` and the
    first/last timestamps. The input lists are not modified.
    """
    pending: list[E] = []
    newest = last = None  # newest ts read; newest ts emitted

    def emit(out: list[E]) -> list[E]:
        nonlocal last
        if stats is not None:
            if last is not None and out[0][1] < last:
                stats.late += bisect_left(out, last, key=_TS)
            stats.events += len(out)
            if stats.first_ts_ms is None or out[0][1] < stats.first_ts_ms:
                stats.first_ts_ms = out[0][1]
            if stats.last_ts_ms is None or out[-1][1] > stats.last_ts_ms:
                stats.last_ts_ms = out[-1][1]
        if last is None or out[-1][1] > last:
            last = out[-1][1]
        return out

    for chunk in chunks:
        if not chunk:
            continue
        fresh = sorted(chunk, key=_TS)
        # Only the tail of ``pending`` that overlaps ``fresh`` needs sorting again.
        i = bisect_right(pending, fresh[0][1], key=_TS)
        if i == len(pending):
            pending += fresh
        else:
            tail = pending[i:]
            del pending[i:]
            tail += fresh
            tail.sort(key=_TS)
            pending += tail
        if newest is None or pending[-1][1] > newest:
            newest = pending[-1][1]
        k = bisect_right(pending, newest - window_ms, key=_TS)
        if k:
            out = pending[:k]
            del pending[:k]
            yield emit(out)
    if pending:
        yield emit(pending)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    fmt: str
    layout: CsvLayout | None = None
    symbol: str | None = None


def _sniff(path: Path, symbol: str | None) -> _File:
    """Detect the format from the first non-empty line; a CSV's symbol may stay None."""
    with closing(_line_chunks(path)) as chunks:
        first, lineno = b"", 0
        for lines in chunks:
            for line in lines:
                lineno += 1
                if line.strip():
                    first = line.strip()
                    break
            if first:
                break
    if not first:
        raise ReplayError(f"{path}: empty file")
    try:
        if b"\x00" in first:
            raise UnicodeError
        first.decode("utf-8")
    except UnicodeError:
        raise ReplayError(f"{path}: binary data, not a capture or CSV") from None
    body = first[m.end():] if (m := _LOCAL_TS.match(first)) else first
    if body[:1] == b"{":
        try:
            if not isinstance(orjson.loads(body), dict):
                raise orjson.JSONDecodeError("not a JSON object", "", 0)
        except orjson.JSONDecodeError as exc:
            reason = " ".join(str(exc).split())
            raise ReplayError(f"{path}: line {lineno}: not a capture line ({reason})") from None
        return _File(path, "capture")
    if b"," not in first:
        raise ReplayError(f"{path}: unrecognised content; expected '<ts> <json>' lines or a "
                          f"Binance CSV")
    try:
        layout = sniff_csv(first)
    except ValueError as exc:
        raise ReplayError(f"{path}: {' '.join(str(exc).split())}") from None
    symbol = symbol.upper() if symbol else symbol_from_filename(path.name)
    return _File(path, layout.fmt, layout, symbol)


def detect_format(path: str | Path) -> str:
    """The format of a market-data file from its content: ``capture``, ``aggtrades_csv``,
    ``trades_csv``, ``bookticker_csv``, ``klines_csv`` or ``funding_csv``.

    Reads only the first non-empty line. Raises ReplayError for an unreadable, empty, binary or
    unknown file.
    """
    return _sniff(Path(path), None).fmt


def _flatten(chunks: Iterable[list[E]]) -> Iterator[E]:
    for chunk in chunks:
        yield from chunk


class ReplaySource:
    """Recorded market data files as one exchange-time ordered stream of market events.

    All files are opened and their format detected in the constructor, so a bad path or format
    fails before the replay starts (ReplayError). ``symbol`` names the symbol of CSV files (which
    carry none) and overrides the one in their file name; captures carry their own. ``symbols``
    keeps only those symbols. Iterating reads the files lazily (memory bounded by one chunk plus
    ``reorder_ms`` of events per file) and refills ``stats``.
    """

    def __init__(self, paths: Sequence[str | Path], *, symbol: str | None = None,
                 reorder_ms: int = 2000, symbols: set[str] | None = None) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise ReplayError("no files to replay")
        if reorder_ms < 0:
            raise ReplayError(f"reorder_ms must be >= 0, got {reorder_ms}")
        self._files = [_sniff(Path(p), symbol) for p in paths]
        for f in self._files:
            if f.layout is not None and not f.symbol:
                raise ReplayError(f"{f.path}: {f.fmt} carries no symbol and none can be read from "
                                  f"the file name; pass symbol=")
        self._symbols = None if symbols is None else frozenset(s.upper() for s in symbols)
        self._reorder_ms = reorder_ms
        self.stats = ReplayStats(files=[str(f.path) for f in self._files])
        for f in self._files:
            logger.info("replay %s: %s%s", f.path, f.fmt, f" ({f.symbol})" if f.symbol else "")

    @property
    def formats(self) -> list[str]:
        """The detected format of each file, in the order given (see ``detect_format``)."""
        return [f.fmt for f in self._files]

    def __iter__(self) -> Iterator[MarketEvent]:
        for chunk in self.chunks():
            yield from chunk

    def chunks(self, size: int = 4096) -> Iterator[list[MarketEvent]]:
        """The same ordered stream as iteration, in lists (cheaper to consume in a hot loop).

        One file yields its reorder buffer's chunks as they are; several files are merged on
        ``ts_ms`` and re-batched in lists of ``size``. Refills ``stats``.
        """
        self.stats = stats = ReplayStats(files=[str(f.path) for f in self._files])
        wanted = self._symbols
        streams = [self._chunks(f, stats) for f in self._files
                   if f.symbol is None or wanted is None or f.symbol in wanted]
        if len(streams) == 1:
            yield from streams[0]
            return
        merged = heapq.merge(*(_flatten(s) for s in streams), key=_TS)
        while batch := list(islice(merged, size)):
            yield batch

    def _chunks(self, f: _File, stats: ReplayStats) -> Iterator[list[MarketEvent]]:
        lines = _line_chunks(f.path)
        if f.layout is None:
            chunks = _capture_chunks(lines, str(f.path), stats)
        else:
            chunks = csv_chunks(lines, f.layout, f.symbol or "", bad=_BadLines(str(f.path), stats))
        if self._symbols is not None and f.layout is None:
            chunks = self._only_wanted(chunks, stats)
        for out in reorder(chunks, window_ms=self._reorder_ms, stats=stats):
            if out:
                yield out

    def _only_wanted(self, chunks: Iterable[list[MarketEvent]],
                     stats: ReplayStats) -> Iterator[list[MarketEvent]]:
        wanted = self._symbols or frozenset()
        for chunk in chunks:
            kept = [e for e in chunk if e[0] in wanted]
            stats.skipped += len(chunk) - len(kept)
            yield kept
