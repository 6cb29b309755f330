"""Replay plumbing shared by the capture and CSV readers: errors, counters, the bad-line
policy, and file bytes -> lines (plain, gzip with any number of members, one-file zip)."""

from __future__ import annotations

import logging
import zipfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from core.events import BookTicker, Candle, FundingRate, MarketTick, MarkPrice

logger = logging.getLogger("core.replay.source")


class MarkKline(NamedTuple):
    """One mark-price kline of a stored ``markPriceKlines`` file (data.binance.vision
    ``futures/um/.../markPriceKlines/<SYMBOL>/<interval>/``, or the REST copy of
    ``GET /fapi/v1/markPriceKlines``): the replay's record of it, never published. The bar path
    (core/replay/bar_ticks.py) turns it into ``MarkPrice`` events. ``ts_ms`` is the close time
    (when the bar's high, low and close are all known); prices in quote asset."""

    symbol: str
    ts_ms: int
    interval_ms: int
    open_ms: int
    open: float
    high: float
    low: float
    close: float


MarketEvent = MarketTick | BookTicker | MarkPrice | Candle | FundingRate | MarkKline
E = TypeVar("E", bound=tuple)

_BLOCK = 1 << 20
CHUNK_LINES = 512  # lines parsed per step: small enough for the events to die young (cheap GC)
_MAX_LINE = 64 << 20


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


class BadLines:
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


class BadLine(Exception):
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


def read_line_chunks(path: Path) -> Generator[list[bytes], None, None]:
    """The file's lines (without ``\\n``) in chunks of at most CHUNK_LINES."""
    rest = b""
    for block in _blocks(path):
        lines = (rest + block if rest else block).split(b"\n")
        rest = lines.pop()
        if len(rest) > _MAX_LINE:
            raise ReplayError(f"{path}: a line longer than {_MAX_LINE >> 20} MiB; "
                              f"not a capture or CSV")
        for i in range(0, len(lines), CHUNK_LINES):
            yield lines[i:i + CHUNK_LINES]
    if rest:
        yield [rest]
