"""Named crash points for the kill harness (tests/test_kill.py).

``DORT5BOT_CRASH_AT=<point>[@N]`` makes the process SIGKILL itself the Nth time (default 1st)
execution passes ``crash_point("<point>")``. Unset (always, outside tests) a crash point is one
global truth test. Points in the code:

* ``commit:<document or table>``: inside a store transaction that writes it, before COMMIT
  (e.g. ``commit:engine_state``, ``commit:paper_account``, ``commit:trades``);
* ``committed:<document or table>``: right after such a transaction committed;
* ``journal:flush``: before each batched journal commit;
* ``ordering:submit``: after an order was recorded, before it is handed to the connection.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_NAME = ""
_LEFT = 0
_ACTION: Callable[[], None] = _sigkill
ARMED = False


def arm(spec: str, action: Callable[[], None] = _sigkill) -> None:
    """Arm ``"<point>[@N]"`` ("" disarms); ``action`` replaces the SIGKILL (in-process tests
    raise an exception that unwinds like a kill: nothing after the point runs)."""
    global _NAME, _LEFT, _ACTION, ARMED
    name, _, nth = spec.partition("@")
    _NAME, _LEFT, _ACTION, ARMED = name, int(nth or 1), action, bool(spec)


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


arm(os.environ.get("DORT5BOT_CRASH_AT", ""))
