"""The replay market feed of ``main.py run --replay``: recorded events onto the engine's bus,
resumed after a restart where the previous run stopped.

Resume: the store of record keeps ``replay_cursor`` (``{"version", "ts_ms", "events",
"source"}``: the exchange time and the number of the last event published, and which files),
written with every commit and at the end. A restart with the same files skips exactly the
events already published; with other files it skips every event at or before the saved
exchange time, and (with a position open) before the position's opening time, so older prices
never reach an open position. When nothing is newer, nothing is replayed (and it says so).

Every event passes the edge sanity checks (``core/sanity.py``, the bus's gate) on its way in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from core.persisted import Fields
from core.replay.bar_ticks import position_side, with_bar_ticks
from core.replay.source import ReplaySource

logger = logging.getLogger(__name__)

YIELD_EVERY = 2_000  # events between yields to the loop at full speed
CURSOR_KEY = "replay_cursor"

#: ``feed(engine, stop) -> events published``; returns when the data ends or ``stop`` is set.
FeedFn = Callable[[Any, asyncio.Event], Awaitable[int]]


class ReplayCursor:
    """Where a replay is: the last event published (``events`` counted from the first)."""

    __slots__ = ("ts_ms", "events", "source")

    def __init__(self, source: list[str]) -> None:
        self.ts_ms = 0
        self.events = 0
        self.source = source

    def doc(self) -> dict[str, Any]:
        return {"version": 1, "ts_ms": self.ts_ms, "events": self.events,
                "source": self.source}


def _identity(paths: Sequence[str | Path]) -> list[str]:
    out = []
    for p in paths:
        path = Path(p)
        try:
            out.append(f"{path.resolve()}:{path.stat().st_size}")
        except OSError:
            out.append(str(path))
    return out


def resume_point(engine: Any, source: list[str]) -> tuple[int, int]:
    """``(events to skip, skip events at or before this ms)`` for a restart; (0, -1) fresh.

    Raises:
        PersistError: the stored cursor is invalid.
    """
    saved = read_cursor(engine.store)
    after_ms = -1
    st = engine.state
    if st.symbol and st.opened_ms:
        after_ms = st.opened_ms  # never older prices into the open position
    if saved is None:
        return 0, after_ms
    if saved.source == source:
        return saved.events, -1
    return 0, max(after_ms, saved.ts_ms)


def read_cursor(store: Any) -> ReplayCursor | None:
    """The saved cursor of ``store`` (None: no store, or no replay ran), validated. Called when
    the services are built, so a bad one stops the start before anything runs.

    Raises:
        PersistError: ``version``, ``ts_ms``, ``events`` or ``source`` (a list of data file
            names) is invalid.
    """
    doc = store.get(CURSOR_KEY) if store is not None else None
    if doc is None:
        return None
    f = Fields(doc, f"{store.path} [{CURSOR_KEY}]")
    f.version(1)
    ts_ms, events = f.ts("ts_ms"), f.int_("events")
    source = doc.get("source", [])
    if not isinstance(source, list) or not all(isinstance(s, str) for s in source):
        f.fail("source", "must be a list of data file names")
    cursor = ReplayCursor(source)
    cursor.ts_ms, cursor.events = ts_ms, events
    return cursor


async def feed_replay(engine: Any, source: ReplaySource, speed: float,
                      stop: asyncio.Event, *, identity: list[str] | None = None) -> int:
    """Publish the source's events, paced at ``speed`` x exchange time (0 = no pacing),
    resuming after a previous run (see the module docstring). Returns events published."""
    bus = engine.bus
    publish = bus.publish
    cursor = ReplayCursor(identity or [])
    skip, after_ms = resume_point(engine, cursor.source) if engine.store is not None else (0, -1)
    if engine.store is not None:
        engine.store.stage_every_commit(CURSOR_KEY, cursor.doc)
    count = 0
    t0 = time.monotonic()
    first_ts: int | None = None
    n = 0
    for ev in with_bar_ticks(source, position_side(engine.state)):
        n += 1
        if n <= skip or ev.ts_ms <= after_ms:
            continue
        if stop.is_set():
            break
        if first_ts is None:
            first_ts = ev.ts_ms
            if skip or after_ms >= 0:
                logger.warning("replay resumes after the saved state: event %d, exchange time"
                               " %d ms", n, ev.ts_ms)
        if speed > 0:
            due = t0 + (ev.ts_ms - first_ts) / 1000 / speed
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
        cursor.ts_ms, cursor.events = ev.ts_ms, n  # before publish: its commit includes it
        publish(ev)  # through the bus's edge sanity gate
        count += 1
        if not count % YIELD_EVERY:
            await asyncio.sleep(0)
    if first_ts is None and (skip or after_ms >= 0):
        logger.warning("replay: nothing newer than the saved state (event %d, %d ms); nothing"
                       " replayed", skip, after_ms)
    if engine.store is not None and cursor.events:
        engine.store.put(CURSOR_KEY, cursor.doc())
    return count


def replay_feed(paths: Sequence[str | Path], *, speed: float, reorder_ms: int) -> FeedFn:
    """A feed publishing recorded market data, paced at ``speed`` x exchange time (0 = as fast
    as possible).

    Raises:
        core.replay.ReplayError: unknown or corrupt data file (now, not when the feed starts).
    """
    source = ReplaySource(paths, reorder_ms=reorder_ms)
    identity = _identity(paths)

    async def feed(engine: Any, stop: asyncio.Event) -> int:
        return await feed_replay(engine, source, speed, stop, identity=identity)

    return feed

