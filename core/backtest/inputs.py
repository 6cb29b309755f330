"""A backtest's inputs: time range, data-file identity, code version, and event-stream shaping.

* ``parse_timerange``: Freqtrade's ``--timerange`` syntax, ``YYYYMMDD-YYYYMMDD``, either side
  optional (``20211116-``, ``-20211118``), dates in UTC, start inclusive, end exclusive; a side
  may also be a Unix time in seconds (10 digits) or ms (13 digits).
* ``file_info``: path, size in bytes and SHA-256 of each data file, so a report names exactly
  the data it was computed from.
* ``code_version`` (``utils.version``): ``GIT_COMMIT`` or ``git describe --always --dirty``.
* ``resample``: closed klines merged into coarser closed candles (1m -> 5m), aligned on the
  Unix epoch like Binance's; the last, incomplete bucket is dropped.
* ``hold_funding``: funding-rate rows are delivered only when a later price event follows, so
  rows beyond the end of the price data neither charge anything nor stretch the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.events import Candle, FundingRate


class TimerangeError(ValueError):
    """A --timerange that does not parse; the message shows the expected form."""


def _bound(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise TimerangeError(f"--timerange part {text!r} is not YYYYMMDD or a Unix time")
    if len(text) == 8:
        try:
            day = datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            raise TimerangeError(f"--timerange date {text!r} does not exist") from None
        return int(day.timestamp() * 1000)
    if len(text) == 10:
        return int(text) * 1000
    if len(text) == 13:
        return int(text)
    raise TimerangeError(f"--timerange part {text!r} is not YYYYMMDD or a Unix time")


def parse_timerange(text: str | None) -> tuple[int | None, int | None]:
    """``"20211116-20211118"`` -> ``(start_ms, end_ms)`` (UTC; end exclusive; None = open).

    Raises:
        TimerangeError: not ``START-END`` with at least one side, or start >= end.
    """
    if not text:
        return None, None
    start_s, sep, end_s = text.strip().partition("-")
    if not sep or not (start_s or end_s):
        raise TimerangeError(f"--timerange {text!r} is not YYYYMMDD-YYYYMMDD (either side "
                             f"may be empty)")
    start, end = _bound(start_s), _bound(end_s)
    if start is not None and end is not None and start >= end:
        raise TimerangeError(f"--timerange {text!r}: the start is not before the end")
    return start, end


def in_range(chunks: Iterable[list[Any]], start: int | None,
             end: int | None) -> Iterator[list[Any]]:
    """Chunks of events cut to ``start <= ts_ms < end`` (stops reading past ``end``)."""
    if start is None and end is None:
        yield from chunks
        return
    lo = start if start is not None else -1
    hi = end if end is not None else 1 << 62
    for chunk in chunks:
        kept = [ev for ev in chunk if lo <= ev[1] < hi]
        if kept:
            yield kept
        if chunk and chunk[-1][1] >= hi:
            return


def file_info(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """``[{"path", "bytes", "sha256"}]`` of the data files (read in 1 MiB blocks)."""
    out = []
    for p in paths:
        path = Path(p)
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        out.append({"path": str(path), "bytes": path.stat().st_size,
                    "sha256": digest.hexdigest()})
    return out


def resample(events: Iterable[Any], interval_ms: int) -> Iterator[Any]:
    """Closed Candles merged into closed ``interval_ms`` candles; other events pass through."""
    bars: dict[str, list] = {}  # symbol -> [open_ms, o, h, l, c, v, close_ts]
    for ev in events:
        if type(ev) is not Candle or not ev.closed:
            yield ev
            continue
        start = ev.open_ms - ev.open_ms % interval_ms
        bar = bars.get(ev.symbol)
        if bar is not None and bar[0] != start:
            del bars[ev.symbol]
            bar = None
        if bar is None:
            bar = bars[ev.symbol] = [start, ev.open, ev.high, ev.low, ev.close, 0.0, 0]
        bar[2], bar[3] = max(bar[2], ev.high), min(bar[3], ev.low)
        bar[4], bar[5], bar[6] = ev.close, bar[5] + ev.volume, ev.ts_ms
        if ev.open_ms + ev.interval_ms >= start + interval_ms:  # the bucket's last kline
            del bars[ev.symbol]
            yield Candle(ev.symbol, ev.ts_ms, interval_ms, start, bar[1], bar[2], bar[3],
                         bar[4], bar[5], True)
        else:
            yield ev._replace(closed=False)  # still a price path for the paper exchange


def hold_funding(chunks: Iterable[list[Any]]) -> Iterator[list[Any]]:
    """Chunks whose trailing funding rows wait for the next price event (module docstring)."""
    held: list[Any] = []
    for chunk in chunks:
        k = len(chunk)
        while k and type(chunk[k - 1]) is FundingRate:
            k -= 1
        if k:
            yield held + chunk[:k] if held else chunk[:k] if k < len(chunk) else chunk
            held = chunk[k:]
        else:
            held = held + chunk
