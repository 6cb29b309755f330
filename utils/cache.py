"""Market-data cache: per-kind TTLs, single-flight loading, stale-on-error.

The market-data worker fills it; Telegram handlers read it first and only go to the exchange
through ``get_or_load``. Rules:

* An entry is *fresh* while its age is below its kind's TTL and *stale* afterwards. Stale
  entries are kept (only the LRU bound evicts), because a stale price with its age is better
  than an error when Binance rate-limits us or is down.
* ``get_or_load`` coalesces concurrent misses: callers asking for the same ``(kind, key)`` while
  a load is running await that one load (one owned ``asyncio.Task`` per key).
* When the load fails (any ``Exception``, including ``BudgetExhausted``) and an old entry
  exists, each caller that allows it gets that entry with ``stale=True`` and its age; otherwise
  the loader's exception is raised to every waiting caller.
* Cancellation never sticks to a key: a cancelled caller leaves the load to the others (the last
  one to leave cancels it), and a load that was cancelled is forgotten, so the next call starts a
  new one.

Single event loop only (asyncio, no threads). Ages come from the injectable monotonic ``clock``
(seconds); ``fetched_at`` from the injectable ``wall_clock`` (ms since the Unix epoch).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from cachetools import LRUCache

T = TypeVar("T")


class BudgetExhausted(Exception):
    """Raised by a loader when the worker's request-weight budget is spent.

    ``get_or_load`` treats it like any loader failure: it serves the stale entry if there is one
    (the caller sees ``entry.stale`` and ``entry.age_s``), otherwise it re-raises it.
    """


def wall_clock_ms() -> int:
    """Local wall-clock time in ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """A cached value as seen at the moment it was handed out.

    Attributes:
        value: the loaded or stored value (never copied: treat it as read-only).
        fetched_at: wall-clock time it was stored, ms since the Unix epoch.
        age_s: seconds since it was stored (monotonic clock), at hand-out time.
        stale: True when ``age_s`` is at or past the kind's TTL.
    """

    value: T
    fetched_at: int
    age_s: float
    stale: bool


@dataclass(slots=True)
class CacheStats:
    """Counters since construction.

    ``hits``: fresh entries returned by ``get`` or ``get_or_load``. ``misses``: ``get`` found
    nothing fresh, or ``get_or_load`` had to load (or join a load). ``loads``: loader calls
    started. ``stale_served``: stale entries returned by ``get_or_load`` because the load failed.
    """

    hits: int = 0
    misses: int = 0
    loads: int = 0
    stale_served: int = 0


class _Record(NamedTuple):
    value: Any
    stored_mono: float
    fetched_at: int
    expired: bool = False


@dataclass(slots=True, eq=False)
class _Flight:
    task: asyncio.Task[_Record]
    waiters: int = 0


class MarketCache:
    """TTL cache for market data keyed by ``(kind, key)``, e.g. ``("mark", "BTCUSDT")``.

    Args:
        ttls: seconds an entry of each kind stays fresh, e.g. ``{"mark": 2, "klines": 30}``.
            Using a kind not listed raises ``KeyError``.
        maxsize: total entries over all kinds; the least recently used go first.
        clock: monotonic seconds, for ages (inject a fake in tests).
        wall_clock: ms since the Unix epoch, for ``Entry.fetched_at``.

    Raises:
        ValueError: a TTL is negative or not finite, or ``maxsize`` < 1.
    """

    def __init__(
        self,
        ttls: Mapping[str, float],
        *,
        maxsize: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        for kind, ttl in ttls.items():
            if not (math.isfinite(ttl) and ttl >= 0):
                raise ValueError(f"TTL for kind {kind!r} must be finite and >= 0, got {ttl!r}")
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize!r}")
        self._ttls = dict(ttls)
        self._clock = clock
        self._wall_clock = wall_clock
        self._data: LRUCache[tuple[str, Hashable], _Record] = LRUCache(maxsize=maxsize)
        self._flights: dict[tuple[str, Hashable], _Flight] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._data)

    def ttl(self, kind: str) -> float:
        """The TTL of ``kind`` in seconds; ``KeyError`` if the kind is not configured."""
        try:
            return self._ttls[kind]
        except KeyError:
            raise KeyError(f"no TTL configured for cache kind {kind!r}") from None

    def get(self, kind: str, key: Hashable) -> Entry[Any] | None:
        """The entry for ``(kind, key)``, fresh or stale (check ``entry.stale``), or None.

        Never loads. Counts a hit only when the entry is fresh.
        """
        ttl = self.ttl(kind)
        record = self._data.get((kind, key))
        if record is None:
            self.stats.misses += 1
            return None
        entry = self._entry(record, ttl)
        if entry.stale:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return entry

    def put(self, kind: str, key: Hashable, value: T) -> Entry[T]:
        """Store ``value`` as fresh now and return its entry (age 0)."""
        ttl = self.ttl(kind)
        record = _Record(value, self._clock(), self._wall_clock())
        self._data[(kind, key)] = record
        return self._entry(record, ttl)

    def expire(self, kind: str, key: Hashable) -> bool:
        """Mark the entry stale now, whatever its age (e.g. a stream showed that a series has a
        gap): the next ``get_or_load`` loads it again, and until then it is still served, with
        ``stale=True`` and its true age. False when there is no such entry."""
        self.ttl(kind)
        record = self._data.get((kind, key))
        if record is None:
            return False
        self._data[(kind, key)] = record._replace(expired=True)
        return True

    async def get_or_load(
        self,
        kind: str,
        key: Hashable,
        loader: Callable[[], Awaitable[T]],
        *,
        allow_stale_on_error: bool = True,
    ) -> Entry[T]:
        """Return a fresh entry, loading it with ``loader()`` when missing or stale.

        Concurrent callers for the same ``(kind, key)`` share one ``loader()`` call (the first
        caller's loader runs; the others' are not called).

        Raises:
            Exception: whatever the loader raised (``BudgetExhausted`` included) when there is no
                old entry to fall back on, or ``allow_stale_on_error`` is False.
            asyncio.CancelledError: this caller was cancelled, or the shared load was cancelled
                by someone else (the key is clear again: call again to start a new load).
        """
        ttl = self.ttl(kind)
        cache_key = (kind, key)
        record = self._data.get(cache_key)
        if record is not None and not record.expired and self._clock() - record.stored_mono < ttl:
            self.stats.hits += 1
            return self._entry(record, ttl)
        self.stats.misses += 1

        flight = self._flights.get(cache_key)
        if flight is None or flight.task.done():
            flight = self._start_flight(cache_key, loader)
        flight.waiters += 1
        try:
            record = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            if not flight.task.cancelled():  # we were cancelled, not the load
                flight.waiters -= 1
                if flight.waiters == 0:
                    flight.task.cancel()
            raise
        except Exception:
            fallback = self._data.get(cache_key)
            if fallback is None or not allow_stale_on_error:
                raise
            entry = self._entry(fallback, ttl)
            if entry.stale:
                self.stats.stale_served += 1
            return entry
        return self._entry(record, ttl)

    def _start_flight(
        self, cache_key: tuple[str, Hashable], loader: Callable[[], Awaitable[Any]]
    ) -> _Flight:
        self.stats.loads += 1
        task = asyncio.create_task(self._load(cache_key, loader), name=f"cache-load {cache_key!r}")
        flight = _Flight(task)
        self._flights[cache_key] = flight
        flight.task.add_done_callback(lambda _task: self._end_flight(cache_key, flight))
        return flight

    def _end_flight(self, cache_key: tuple[str, Hashable], flight: _Flight) -> None:
        if self._flights.get(cache_key) is flight:
            del self._flights[cache_key]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: no "never retrieved" warning if nobody waits

    async def _load(
        self, cache_key: tuple[str, Hashable], loader: Callable[[], Awaitable[Any]]
    ) -> _Record:
        value = await loader()
        record = _Record(value, self._clock(), self._wall_clock())
        self._data[cache_key] = record
        return record

    def _entry(self, record: _Record, ttl: float) -> Entry[Any]:
        age = max(0.0, self._clock() - record.stored_mono)
        return Entry(record.value, record.fetched_at, age, age >= ttl or record.expired)
