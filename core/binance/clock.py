"""Server time estimate and reconnect backoff: the two small clocks of the live adapter.

Signed requests carry ``timestamp`` in Binance server time; a request is accepted when
``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``, else -1021
(shared/binance/PROTOCOL.md §2.3). ``ServerClock`` keeps ``server - local`` from
``GET /fapi/v1/time`` (midpoint of the round trip) so a drifting local clock does not cause
-1021; the adapter resyncs on -1021 and retries once.
"""

from __future__ import annotations

import random
import time


def local_ms() -> int:
    """The local wall clock, ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


class ServerClock:
    """Binance server time = local wall clock + ``offset_ms``."""

    __slots__ = ("offset_ms", "synced")

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms
        self.synced = False

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def update(self, server_ms: int, sent_local_ms: int, received_local_ms: int) -> None:
        """Take ``server_ms`` as the server time at the midpoint of the request's round trip."""
        self.offset_ms = server_ms - (sent_local_ms + received_local_ms) // 2
        self.synced = True


class Backoff:
    """Exponential reconnect delays with full jitter: ``uniform(0.5, 1) * min(cap, base * 2^n)``.

    ``next()`` returns the delay before the next attempt (seconds) and grows it; ``reset()``
    after a connection that worked. ``rng`` is injectable for tests.
    """

    __slots__ = ("base_s", "cap_s", "attempt", "_rng")

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s, self.attempt = base_s, cap_s, 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap_s, self.base_s * (2 ** self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return delay * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0
