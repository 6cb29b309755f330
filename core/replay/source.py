"""Replay recorded Binance USDⓈ-M market data as engine market events, in exchange-time order.

Inputs, detected from content (gzip and single-member zip by magic bytes, never by file name):

* ``capture``: raw websocket recordings, one message per line, ``<local_ts> <json>`` where the
  local receive time (ns or µs) is ignored and the JSON is the combined-stream envelope
  ``{"stream": ..., "data": {...}}``. A bare payload, with or without the ``<local_ts>`` prefix, is
  accepted too. ``trade`` (only ``X == "MARKET"``; insurance-fund and ADL prints are dropped) and
  ``aggTrade`` -> ``MarketTick``; ``bookTicker`` -> ``BookTicker``; ``markPriceUpdate`` (also
  ``!markPrice@arr``) -> ``MarkPrice``; ``kline`` -> ``Candle``. Depth updates, REST snapshots and
  other messages are skipped (depth lines before any JSON parsing).
* the CSV files of data.binance.vision and freqtrade, see core/replay/csv_files.py.
* mark-price klines (``markprice_klines_csv`` -> ``MarkKline``, turned into ``MarkPrice`` events
  by core/replay/bar_ticks.py): a klines CSV stored in a folder named ``markPriceKlines``, as
  data.binance.vision and ``main.py download`` lay them out. The folder decides, because the
  archive names both kinds alike (``BTCUSDT-1m-2024-01-01.zip``) and the content only tells a
  traded kline from a price kline (mark, index and premium index klines all have volume 0).
  The content must agree: a traded row (volume > 0) in that folder, or a price row (volume 0,
  the price moving) outside it, is a bad row, so a misplaced file fails instead of replaying
  trades as marks or marks as trades.

Ordering: captures are written in receive order, which is not exchange order (up to ~300 ms
apart in btcusdt_20230405.dat.gz). Each file goes through a bounded reorder buffer of
``reorder_ms``: an event is held until an event ``reorder_ms`` newer has been read. Output is
nondecreasing in ``ts_ms`` and stable (file order) for equal timestamps. An event older than one
already emitted is still emitted, at once, and counted in ``ReplayStats.late``. Several files are
merged on ``ts_ms`` (mark-price klines first among equal timestamps).

Bad lines: a line that does not parse (invalid JSON, a known event with a missing or malformed
field, a CSV row with bad values) is skipped and counted in ``ReplayStats.bad_lines`` as long as
bad lines stay at most 1 % of the lines read so far. So a bad line among the first 100 lines, or
more than 1 % bad lines anywhere, raises ``ReplayError``: that file is not what it claims to be.
Unreadable input (empty, binary, unknown CSV header, truncated or corrupt gzip) raises
``ReplayError`` too. Every ``ReplayError`` message is one line that starts with the file's path.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path

import orjson

from core.replay.capture import LOCAL_TS, batched, capture_chunks, read_capture_lines
from core.replay.csv_files import (
    CsvLayout,
    as_mark_klines,
    csv_chunks,
    sniff_csv,
    symbol_from_filename,
)
from core.replay.lines import (
    BadLines,
    E,
    MarketEvent,
    ReplayError,
    ReplayStats,
    logger,
    read_line_chunks,
)

__all__ = ["MarketEvent", "ReplayError", "ReplaySource", "ReplayStats", "detect_format",
           "read_capture_chunks", "read_capture_lines", "reorder"]

_TS = itemgetter(1)  # ts_ms is field 1 of every market NamedTuple
MARK_FOLDER = "markPriceKlines"  # data.binance.vision's folder, kept by download


def read_capture_chunks(lines: Iterable[bytes], *, reorder_ms: int = 2000,
                        source: str = "<memory>",
                        stats: ReplayStats | None = None) -> Iterator[list[MarketEvent]]:
    """Capture lines already in memory through the same parser and reorder buffer as a file
    (``ReplaySource.chunks`` without the file reading): lists of events in exchange-time order."""
    return reorder(capture_chunks(batched(lines), bad=BadLines(source, stats), stats=stats),
                   window_ms=reorder_ms, stats=stats)


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
    with closing(read_line_chunks(path)) as chunks:
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
    body = first[m.end():] if (m := LOCAL_TS.match(first)) else first
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
    if MARK_FOLDER in path.parts:
        if layout.fmt != "klines_csv":
            raise ReplayError(f"{path}: a {layout.fmt} file in a {MARK_FOLDER} folder; "
                              f"mark-price klines have the klines columns")
        layout = as_mark_klines(layout)
    symbol = symbol.upper() if symbol else symbol_from_filename(path.name)
    return _File(path, layout.fmt, layout, symbol)


def detect_format(path: str | Path) -> str:
    """The format of a market-data file from its content: ``capture``, ``aggtrades_csv``,
    ``trades_csv``, ``bookticker_csv``, ``klines_csv``, ``markprice_klines_csv`` (klines
    columns in a folder named ``markPriceKlines``) or ``funding_csv``.

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
        # mark-price files first: at an equal ts_ms a bar's MarkKline precedes its Candle
        files = sorted(self._files, key=lambda f: f.fmt != "markprice_klines_csv")
        streams = [self._chunks(f, stats) for f in files
                   if f.symbol is None or wanted is None or f.symbol in wanted]
        if len(streams) == 1:
            yield from streams[0]
            return
        merged = heapq.merge(*(_flatten(s) for s in streams), key=_TS)
        while batch := list(islice(merged, size)):
            yield batch

    def _chunks(self, f: _File, stats: ReplayStats) -> Iterator[list[MarketEvent]]:
        lines = read_line_chunks(f.path)
        if f.layout is None:
            chunks = capture_chunks(lines, bad=BadLines(str(f.path), stats), stats=stats)
        else:
            chunks = csv_chunks(lines, f.layout, f.symbol or "", bad=BadLines(str(f.path), stats))
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
