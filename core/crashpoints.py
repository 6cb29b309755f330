"""Named crash points and bus-event triggers for the kill harness (tests/test_kill*.py).

``DORT5BOT_CRASH_AT`` (read once, at import) arms one trigger; the process then SIGKILLs itself:

* ``<point>[@N]``: the Nth time (default 1st) execution passes ``crash_point("<point>")``;
* ``event:<EventType>[+<D>ms][@N]``: D milliseconds (default 0) after the Nth event of that
  type (a class name of core/events.py, exact type) was published on the engine's bus. 0 ms
  kills inside the dispatch: after the engine's own subscribers of that type have run, before
  the events they caused and before the transition's commit. D > 0 starts a
  ``threading.Timer`` that kills from its own thread, whatever the event loop is doing then
  (awaiting the network, committing, dispatching): a pulled plug, not a scheduled callback.

Unset (always, outside tests) a crash point is one global truth test and the bus carries no
watcher: ``watch(bus)`` (called where the engine's bus is built, core/engine.py) subscribes one
only when an ``event:`` trigger is armed. Points in the code:

* ``commit:<document or table>``: inside a store transaction that writes it, before COMMIT
  (e.g. ``commit:engine_state``, ``commit:paper_account``, ``commit:trades``);
* ``committed:<document or table>``: right after such a transaction committed;
* ``journal:flush``: before each batched journal commit;
* ``ordering:submit``: after an order was recorded, before it is handed to the connection.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from core import events

_EVENT_SPEC = re.compile(r"event:(?P<kind>\w+)(?:\+(?P<ms>\d+)ms)?")


class _Bus(Protocol):
    def subscribe(self, event_type: type, handler: Callable[[Any], None]) -> None: ...


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_NAME = ""
_LEFT = 0
_ACTION: Callable[[], None] = _sigkill
_EVENT: type | None = None
_DELAY_S = 0.0
ARMED = False


def arm(spec: str, action: Callable[[], None] = _sigkill) -> None:
    """Arm ``"<point>[@N]"`` or ``"event:<EventType>[+<D>ms][@N]"`` ("" disarms).

    ``action`` replaces the SIGKILL (in-process tests raise an exception that unwinds like a
    kill: nothing after the point runs); after a delay it runs on the timer's thread.

    Raises:
        ValueError: an ``event:`` spec that is malformed or names no event type of
            core/events.py.
    """
    global _NAME, _LEFT, _ACTION, _EVENT, _DELAY_S, ARMED
    name, _, nth = spec.partition("@")
    kind: type | None = None
    delay_s = 0.0
    if name.startswith("event:"):
        match = _EVENT_SPEC.fullmatch(name)
        kind = getattr(events, match["kind"], None) if match else None
        if (match is None or not isinstance(kind, type)
                or kind.__module__ != events.__name__):
            raise ValueError(f"DORT5BOT_CRASH_AT={spec!r}: expected event:<EventType>[+<D>ms]"
                             "[@N] with a class name of core/events.py")
        delay_s = int(match["ms"] or 0) / 1000
    _NAME, _LEFT, _ACTION, ARMED = name, int(nth or 1), action, bool(spec)
    _EVENT, _DELAY_S = kind, delay_s


def crash_point(name: str) -> None:
    """Kill this process if ``name`` is the armed crash point and its count is reached."""
    global _LEFT
    if not ARMED or name != _NAME:
        return
    _LEFT -= 1
    if _LEFT <= 0:
        action = _ACTION
        arm("")
        action()


def watch(bus: _Bus) -> None:
    """Subscribe the armed ``event:`` trigger to ``bus``; nothing when none is armed."""
    if _EVENT is not None:
        bus.subscribe(_EVENT, _on_event)


def _on_event(event: Any) -> None:
    global _LEFT
    if type(event) is not _EVENT:
        return  # fired already, disarmed or re-armed for another type
    _LEFT -= 1
    if _LEFT > 0:
        return
    action, delay_s = _ACTION, _DELAY_S
    arm("")
    if delay_s <= 0:
        action()
        return
    timer = threading.Timer(delay_s, action)
    timer.daemon = True  # a process that ends first is not kept alive by its pending kill
    timer.start()


arm(os.environ.get("DORT5BOT_CRASH_AT", ""))
