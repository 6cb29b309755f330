"""A synchronous, deterministic in-memory pub/sub (STYLE.md §4).

Handlers are plain functions called in subscription order, on the publisher's stack. An event
published while another is being dispatched (a handler reacting with a new event) is queued and
dispatched after the current one has reached every subscriber, in publication order. So every
subscriber sees events in the same global order, and the same input always gives the same
decisions in live, paper and backtest.

``gates`` (type -> check; the edge sanity checks, core/sanity.py) see every top-level event of
their type first, i.e. what comes from outside the engine, and may drop it. ``on_idle`` (set by
the store of record while something is staged) is called after a top-level ``publish`` has
dispatched everything it caused, before ``publish`` returns: one engine transition, one commit.

A handler that raises is logged, counted, reported as an ``EngineError`` and skipped; the other
subscribers still get the event. ``BaseException`` (cancellation, KeyboardInterrupt) passes
through.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[Any], None]


class EventBus:
    """Type-routed synchronous dispatch.

    Subscribing to a type delivers exactly that type (no subclass matching), which keeps
    ``publish`` a dict lookup plus a loop. ``subscribe_all`` receives every event after the typed
    subscribers (the journal uses it).
    """

    __slots__ = ("_routes", "_full", "_catch_all", "_queue", "_dispatching", "errors", "on_idle",
                 "gates")

    def __init__(self) -> None:
        self._routes: dict[type, tuple[Handler, ...]] = {}
        self._catch_all: tuple[Handler, ...] = ()
        self._queue: deque = deque()
        self._dispatching = False
        self.errors = 0
        self.on_idle: Callable[[], Any] | None = None
        self.gates: dict[type, Callable[[Any], bool]] = {}
        self._full: dict[type, tuple[Handler, ...]] = {}

    def subscribe(self, event_type: type, handler: Handler) -> None:
        """Call ``handler(event)`` for every published event of exactly ``event_type``."""
        self._routes[event_type] = self._routes.get(event_type, ()) + (handler,)
        self._rebuild()

    def subscribe_all(self, handler: Handler) -> None:
        """Call ``handler(event)`` for every event, after its typed subscribers."""
        self._catch_all = self._catch_all + (handler,)
        self._rebuild()

    def unsubscribe(self, event_type: type, handler: Handler) -> None:
        self._routes[event_type] = tuple(
            h for h in self._routes.get(event_type, ()) if h is not handler)
        self._rebuild()

    def _rebuild(self) -> None:
        # Typed handlers followed by catch-all handlers, precomputed per type.
        self._full = {t: hs + self._catch_all for t, hs in self._routes.items()}

    def publish(self, event: Any) -> None:
        """Deliver ``event`` to its subscribers now, or after the event being dispatched."""
        if self._dispatching:
            self._queue.append(event)
            return
        gate = self.gates.get(type(event))
        if gate is not None and not gate(event):
            return
        self._dispatching = True
        try:
            for handler in self._full.get(type(event), self._catch_all):  # inlined: hot path
                try:
                    handler(event)
                except Exception as exc:  # isolate the failing subscriber
                    self._on_handler_error(handler, event, exc)
            queue = self._queue
            while queue:
                self._dispatch(queue.popleft())
        except BaseException:
            self._queue.clear()  # only a BaseException gets here; drop what it interrupted
            raise
        finally:
            self._dispatching = False
        if self.on_idle is not None:
            self.on_idle()

    @property
    def dispatching(self) -> bool:
        """True while an event (and what it caused) is being dispatched."""
        return self._dispatching

    def _dispatch(self, event: Any) -> None:
        for handler in self._full.get(type(event), self._catch_all):
            try:
                handler(event)
            except Exception as exc:  # isolate the failing subscriber
                self._on_handler_error(handler, event, exc)

    def _on_handler_error(self, handler: Handler, event: Any, exc: Exception) -> None:
        self.errors += 1
        name = getattr(handler, "__qualname__", repr(handler))
        logger.exception("bus subscriber %s failed on %s", name, type(event).__name__)
        from core.events import EngineError  # local: events imports nothing from here

        if isinstance(event, EngineError):
            return  # never loop on a failing error handler
        ts = getattr(event, "ts_ms", 0)
        self._queue.append(
            EngineError(source=name, message=f"{type(exc).__name__}: {exc}", ts_ms=ts)
        )
