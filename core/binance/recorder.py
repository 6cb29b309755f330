"""Record raw market-stream frames for exact replay.

Every frame of the combined streams is written as received, one per line, prefixed with the
local receive time in nanoseconds: ``<local_ts_ns> {"stream":"btcusdt@aggTrade","data":{...}}``,
gzip-compressed. That is the capture format ``core.replay.ReplaySource`` reads, so a recorded
live session replays through the same parser into the same engine events.

The file is complete once the recorder is stopped (Ctrl-C, SIGTERM, ``--duration``); a killed
process leaves a truncated gzip that the replay reader refuses.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.binance.streams import MarketStreams, stream_names

logger = logging.getLogger(__name__)

DEFAULT_KINDS = ("aggTrade", "bookTicker", "markPrice@1s")
FLUSH_S = 5.0


@dataclass
class RecordStats:
    path: Path
    frames: int = 0
    bytes: int = 0
    started_ns: int = 0
    ended_ns: int = 0

    @property
    def seconds(self) -> float:
        return max(0, self.ended_ns - self.started_ns) / 1e9


class CaptureWriter:
    """Appends ``<ts_ns> <frame>`` lines to a gzip file; ``close()`` completes it."""

    def __init__(self, path: Path, *, flush_s: float = FLUSH_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stats = RecordStats(path=path, started_ns=time.time_ns())
        self._f: gzip.GzipFile | None = gzip.GzipFile(path, "wb", compresslevel=6)
        self._flush_s = flush_s
        self._last_flush = time.monotonic()

    def write(self, raw: str | bytes, recv_ns: int) -> None:
        if self._f is None:
            return
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        if b"\n" in data:  # only insignificant whitespace can hold a raw newline in JSON
            data = data.replace(b"\r", b"").replace(b"\n", b"")
        line = b"%d %s\n" % (recv_ns, data)
        self._f.write(line)
        self.stats.frames += 1
        self.stats.bytes += len(line)
        now = time.monotonic()
        if now - self._last_flush >= self._flush_s:
            self._f.flush()
            self._last_flush = now

    def close(self) -> RecordStats:
        if self._f is not None:
            self._f.close()
            self._f = None
            self.stats.ended_ns = time.time_ns()
        return self.stats


class Recorder:
    """Market streams of ``symbols`` -> a capture file; ``stats`` is live while it runs."""

    def __init__(self, stream_url: str, symbols: list[str] | tuple[str, ...], out: Path, *,
                 kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS, silence_s: float = 10.0,
                 bus_status: Any = None) -> None:
        self.out = out
        self.streams = MarketStreams(stream_url, stream_names(symbols, kinds), publish=None,
                                     on_raw=self._write, bus_status=bus_status,
                                     silence_s=silence_s)
        self._writer: CaptureWriter | None = None
        self.stats = RecordStats(path=out)

    def _write(self, raw: str | bytes, recv_ns: int) -> None:
        if self._writer is not None:
            self._writer.write(raw, recv_ns)

    async def run(self, stop: asyncio.Event | None = None,
                  duration_s: float | None = None) -> RecordStats:
        """Record until ``stop`` is set or ``duration_s`` has passed."""
        self._writer = CaptureWriter(self.out)
        self.stats = self._writer.stats
        stop = stop or asyncio.Event()
        logger.info("recording %s to %s", ", ".join(self.streams.streams), self.out)
        await self.streams.start()
        try:
            await asyncio.wait_for(stop.wait(), duration_s)
        except TimeoutError:
            pass
        finally:
            await self.streams.stop()
            self._writer.close()
        logger.info("recorded %d frames (%d bytes) in %.0fs to %s", self.stats.frames,
                    self.stats.bytes, self.stats.seconds, self.out)
        return self.stats


async def record(stream_url: str, symbols: list[str] | tuple[str, ...], out: Path, *,
                 kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS,
                 stop: asyncio.Event | None = None, duration_s: float | None = None,
                 silence_s: float = 10.0, bus_status: Any = None) -> RecordStats:
    """Record the market streams of ``symbols`` into ``out`` until ``stop`` is set or
    ``duration_s`` has passed; returns what was written."""
    rec = Recorder(stream_url, symbols, out, kinds=kinds, silence_s=silence_s,
                   bus_status=bus_status)
    return await rec.run(stop, duration_s)
