"""The kill harness's triggers (core/crashpoints.py): named points and ``event:`` triggers.

The action is replaced by a recorder here (the real one is SIGKILL; tests/test_kill*.py use it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core import crashpoints
from core.event_bus import EventBus
from core.events import ConnectionStatus, StateChanged


@pytest.fixture(autouse=True)
def _disarm() -> Iterator[None]:
    yield
    crashpoints.arm("")


def up(stream: str = "market") -> ConnectionStatus:
    return ConnectionStatus(stream=stream, up=True, ts_ms=1)


def test_a_named_point_fires_on_its_nth_pass_once():
    fired: list[bool] = []
    crashpoints.arm("journal:flush@2", lambda: fired.append(True))
    for name in ("journal:flush", "commit:trades", "journal:flush", "journal:flush"):
        crashpoints.crash_point(name)
    assert fired == [True]


def test_an_event_trigger_fires_inside_the_dispatch_of_the_nth_event():
    bus, seen = EventBus(), []
    bus.subscribe(ConnectionStatus, lambda e: seen.append(e.stream))  # the engine's subscriber
    crashpoints.arm("event:ConnectionStatus@2", lambda: seen.append("KILL"))
    crashpoints.watch(bus)
    bus.subscribe_all(lambda e: seen.append(f"all:{e.stream}"))  # after the engine's
    for stream in ("a", "b", "c"):
        bus.publish(up(stream))
    assert seen == ["a", "all:a", "b", "KILL", "all:b", "c", "all:c"]


def test_a_delayed_event_trigger_fires_from_a_timer_thread_after_the_delay():
    bus = EventBus()
    fired = threading.Event()
    where: list[Any] = []

    def action() -> None:
        where.append((threading.current_thread(), time.monotonic()))
        fired.set()

    crashpoints.arm("event:ConnectionStatus+20ms", action)
    crashpoints.watch(bus)
    start = time.monotonic()
    bus.publish(up())
    assert fired.wait(timeout=10)  # the timer's own state, not a sleep
    thread, at = where[0]
    assert thread is not threading.main_thread() and at - start >= 0.019
    bus.publish(up())  # fired once: disarmed
    assert len(where) == 1


def test_other_event_types_and_an_unarmed_bus_carry_no_watcher():
    subscribed: list[type] = []

    class Recorder:
        def subscribe(self, event_type: type, handler: Any) -> None:
            subscribed.append(event_type)

    crashpoints.arm("commit:trades")
    crashpoints.watch(Recorder())
    crashpoints.arm("")
    crashpoints.watch(Recorder())
    assert subscribed == []
    crashpoints.arm("event:StateChanged+5ms@3")
    crashpoints.watch(Recorder())
    assert subscribed == [StateChanged]


@pytest.mark.parametrize("spec", ["event:NoSuchEvent", "event:OrderUpdate+5", "event:",
                                  "event:OrderUpdate+-1ms", "event:Decimal"])
def test_a_malformed_event_trigger_is_refused(spec):
    with pytest.raises(ValueError, match="core/events.py"):
        crashpoints.arm(spec)
