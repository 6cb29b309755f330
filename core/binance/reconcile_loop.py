"""When reconciliation runs: one pass at a time, again at once when asked during a pass.

Passes are asked for at every user-stream (re)connect (the adapter pauses entries until it
succeeds), every ``interval_s`` (default 5 minutes: every open position has its stop, no orphan
order is left), at once after any protective-order error, when a position appears that has no
stops, and again right after a pass that saw a position change while it was reading (a fill
during the pass). A failed pass is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from core.binance.clock import Backoff
from core.binance.errors import scrub
from core.binance.reconcile import Reconciler

logger = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 300.0


class ReconcileLoop:
    """Runs ``reconciler`` passes in an owned task (see the module docstring).

    Args:
        spawn: runs a coroutine as an owned task.
        backoff: a fresh ``Backoff`` for failed passes.
        on_done: ``(ok, detail)`` after every pass (the adapter's trading gate).
        interval_s: seconds between periodic passes (0: none).
    """

    def __init__(self, reconciler: Reconciler, *,
                 spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task],
                 backoff: Callable[[], Backoff], on_done: Callable[[bool, str], None],
                 interval_s: float = RECONCILE_INTERVAL_S) -> None:
        self.reconciler = reconciler
        self._spawn = spawn
        self._backoff = backoff
        self._on_done = on_done
        self.interval_s = interval_s
        self._task: asyncio.Task | None = None
        self._again = False
        self.requests: list[str] = []  # reasons of the passes asked for (latest last)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def request(self, reason: str) -> None:
        """Run a pass now, or once more right after the one running."""
        self.requests.append(reason)
        del self.requests[:-50]
        if self.running:
            self._again = True
            return
        logger.info("reconciliation pass: %s", reason)
        self._task = self._spawn(self._loop(), "reconcile")

    async def periodic(self) -> None:
        """Ask for a pass every ``interval_s`` (an owned task)."""
        while self.interval_s > 0:
            await asyncio.sleep(self.interval_s)
            self.request("periodic")

    async def _loop(self) -> None:
        backoff = self._backoff()
        while True:
            self._again = False
            try:
                summary = await self.reconciler.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = scrub(f"{type(exc).__name__}: {exc}")
                logger.warning("reconciliation failed (%s)", detail)
                self._on_done(False, f"reconciliation failed: {detail}")
                await asyncio.sleep(backoff.next())
                continue
            if self._again or self.reconciler.stale:
                continue
            self._on_done(True, f"reconciled: {summary}")
            return
