"""Rate-limit pools: count before sending, queue briefly or refuse, back off after 429/418.

Binance USDⓈ-M limits (shared/binance/PROTOCOL.md §5): REQUEST_WEIGHT 2400/min per IP, shared by
REST and the WS API; ORDERS 300/10 s and 1200/min per account. The actual values come from
``exchangeInfo.rateLimits`` (``configure``). Binance counts per calendar interval, so a pool is a
fixed window aligned on server time. Our own count is kept locally and raised to what Binance
reports (WS API ``rateLimits[].count``, REST ``X-MBX-USED-WEIGHT-1M`` /
``X-MBX-ORDER-COUNT-10S`` / ``X-MBX-ORDER-COUNT-1M``), so requests made by other programs on the
same IP or account are respected too.

``acquire`` waits up to ``max_wait_s`` for a window to roll, else raises ``RetryLater`` without
sending anything. Normal requests use ``fraction`` of each limit; ``urgent`` ones (closing
orders, protective stops) may use all of it. A 429 blocks every request for ``Retry-After``
(2 s if absent); a 418 is an IP ban (2 min to 3 days): nothing is sent until it lifts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from core.binance.clock import ServerClock
from core.binance.errors import ExchangeError, IpBanned, RetryLater
from core.binance.models import RateLimit
from core.events import RateLimitBackoff

logger = logging.getLogger(__name__)

DEFAULT_429_S = 2.0
DEFAULT_418_S = 120.0
_HEADERS = {
    "x-mbx-used-weight-1m": ("REQUEST_WEIGHT", 60_000),
    "x-mbx-order-count-10s": ("ORDERS", 10_000),
    "x-mbx-order-count-1m": ("ORDERS", 60_000),
}


@dataclass(slots=True)
class Pool:
    """One limit: ``limit`` units of ``kind`` per ``interval_ms`` window (aligned on epoch)."""

    kind: str  # REQUEST_WEIGHT | ORDERS
    interval_ms: int
    limit: int
    used: int = 0
    window_start_ms: int = 0
    notified_window_ms: int = -1

    @property
    def name(self) -> str:
        s = self.interval_ms // 1000
        span = f"{s // 60}m" if s % 60 == 0 else f"{s}s"
        return f"{self.kind} {span}"

    def roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % self.interval_ms
        if start != self.window_start_ms:
            self.window_start_ms, self.used = start, 0

    def wait_ms(self, now_ms: int) -> int:
        return max(1, self.window_start_ms + self.interval_ms - now_ms)


def default_pools() -> list[Pool]:
    return [Pool("REQUEST_WEIGHT", 60_000, 2400), Pool("ORDERS", 10_000, 300),
            Pool("ORDERS", 60_000, 1200)]


class RateLimiter:
    """Shared by the REST client and the WS API client of one account and IP.

    Args:
        clock: server time (windows are aligned on it).
        fraction: share of each limit normal requests may use (0..1].
        max_wait_s: longest ``acquire`` waits for a window before refusing.
        on_backoff: called with a ``RateLimitBackoff`` when requests are held back or refused
            (at most once per pool window) and on every 429/418.
        sleep: injectable for tests.
    """

    def __init__(self, clock: ServerClock, *, fraction: float = 0.8, max_wait_s: float = 2.0,
                 on_backoff: Callable[[RateLimitBackoff], None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.clock = clock
        self.fraction = fraction
        self.max_wait_s = max_wait_s
        self.pools: dict[tuple[str, int], Pool] = {(p.kind, p.interval_ms): p
                                                   for p in default_pools()}
        self.blocked_until_ms = 0
        self.banned = False
        self._block_reason = ""
        self._on_backoff = on_backoff
        self._sleep = sleep

    # ------------------------------------------------------------------ limits and counts

    def configure(self, limits: Iterable[RateLimit]) -> None:
        """Take the limits of ``exchangeInfo.rateLimits`` (replaces the defaults)."""
        pools: dict[tuple[str, int], Pool] = {}
        for rl in limits:
            if rl.rate_limit_type in ("REQUEST_WEIGHT", "ORDERS") and rl.interval_s > 0:
                key = (rl.rate_limit_type, rl.interval_s * 1000)
                old = self.pools.get(key)
                pools[key] = Pool(rl.rate_limit_type, key[1], rl.limit,
                                  old.used if old else 0, old.window_start_ms if old else 0)
        if pools:
            self.pools = pools

    def observe(self, limits: Iterable[RateLimit]) -> None:
        """Raise local counts to the server's (a WS API response's ``rateLimits``)."""
        now = self.clock.now_ms()
        for rl in limits:
            if rl.count is None:
                continue
            pool = self.pools.get((rl.rate_limit_type, rl.interval_s * 1000))
            if pool is not None:
                pool.roll(now)
                pool.used = max(pool.used, rl.count)
                if rl.limit:
                    pool.limit = rl.limit

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Raise local counts to a REST response's ``X-MBX-*`` headers."""
        now = self.clock.now_ms()
        for name, value in headers.items():
            key = _HEADERS.get(name.lower())
            pool = self.pools.get(key) if key else None
            if pool is not None and value.isdigit():
                pool.roll(now)
                pool.used = max(pool.used, int(value))

    # ------------------------------------------------------------------ decisions

    def check(self, weight: int, orders: int = 0, *, urgent: bool = False
              ) -> tuple[float, Pool | None]:
        """Seconds to wait before a request costing ``weight`` and ``orders`` may be sent
        (0 = now), and the pool that is full (None when blocked by a 429/418 or free)."""
        now = self.clock.now_ms()
        if now < self.blocked_until_ms:
            return (self.blocked_until_ms - now) / 1000, None
        wait_ms = 0
        full = None
        for pool in self.pools.values():
            cost = weight if pool.kind == "REQUEST_WEIGHT" else orders
            if cost <= 0:
                continue
            pool.roll(now)
            cap = pool.limit if urgent else int(pool.limit * self.fraction)
            if pool.used + cost > cap and pool.wait_ms(now) > wait_ms:
                wait_ms, full = pool.wait_ms(now), pool
        return wait_ms / 1000, full

    async def acquire(self, weight: int, orders: int = 0, *, urgent: bool = False,
                      max_wait_s: float | None = None) -> None:
        """Count a request, waiting up to ``max_wait_s`` for room.

        Raises:
            IpBanned: an HTTP 418 ban is running (nothing may be sent).
            RetryLater: no room within ``max_wait_s`` (the request was not sent).
        """
        limit_s = self.max_wait_s if max_wait_s is None else max_wait_s
        while True:
            wait_s, pool = self.check(weight, orders, urgent=urgent)
            if wait_s <= 0:
                break
            if pool is None:  # blocked after a 429 / 418
                if self.banned or wait_s > limit_s:
                    cls = IpBanned if self.banned else RetryLater
                    raise cls(f"requests held for {wait_s:.1f}s more: {self._block_reason}",
                              http_status=418 if self.banned else 429, retry_after_s=wait_s)
            else:
                self._notify(pool, wait_s, refused=wait_s > limit_s)
                if wait_s > limit_s:
                    raise RetryLater(f"{pool.name} limit reached ({pool.used}/{pool.limit}); "
                                     "request refused before sending", retry_after_s=wait_s)
            await self._sleep(wait_s)
        now = self.clock.now_ms()
        for pool in self.pools.values():
            cost = weight if pool.kind == "REQUEST_WEIGHT" else orders
            if cost > 0:
                pool.roll(now)
                pool.used += cost

    def backoff(self, err: ExchangeError) -> None:
        """Block all requests after a 429 (``Retry-After``, default 2 s) or 418 (IP ban,
        default 2 min) answer; other errors are ignored."""
        if err.http_status not in (418, 429) and not isinstance(err, IpBanned):
            return
        banned = isinstance(err, IpBanned)
        default = DEFAULT_418_S if banned else DEFAULT_429_S
        wait_s = err.retry_after_s if err.retry_after_s is not None else default
        now = self.clock.now_ms()
        until = now + int(wait_s * 1000)
        if until > self.blocked_until_ms:
            self.blocked_until_ms = until
            self.banned = banned
        self._block_reason = f"HTTP {err.http_status} {err.code}"
        logger.warning("rate limit: HTTP %s (%s); holding all requests for %.1fs",
                       err.http_status, err.code, wait_s)
        self._emit(RateLimitBackoff(pool="IP", used=0, limit=0, retry_after_s=wait_s,
                                    banned=banned, detail=str(err), ts_ms=now))

    @property
    def blocked(self) -> bool:
        return self.clock.now_ms() < self.blocked_until_ms

    def status(self) -> dict[str, tuple[int, int]]:
        """``{pool name: (used, limit)}`` in the current windows."""
        now = self.clock.now_ms()
        out = {}
        for pool in self.pools.values():
            pool.roll(now)
            out[pool.name] = (pool.used, pool.limit)
        return out

    def _notify(self, pool: Pool, wait_s: float, *, refused: bool) -> None:
        if pool.notified_window_ms == pool.window_start_ms:
            return
        pool.notified_window_ms = pool.window_start_ms
        what = "refusing" if refused else "queueing"
        logger.warning("rate limit: %s at %d/%d; %s requests for %.1fs", pool.name, pool.used,
                       pool.limit, what, wait_s)
        self._emit(RateLimitBackoff(pool=pool.name, used=pool.used, limit=pool.limit,
                                    retry_after_s=wait_s, detail=what,
                                    ts_ms=self.clock.now_ms()))

    def _emit(self, ev: RateLimitBackoff) -> None:
        if self._on_backoff is not None:
            try:
                self._on_backoff(ev)
            except Exception:
                logger.exception("rate-limit listener failed")
