"""Property: restarted at random points of a replay (between events, or inside a transaction),
the bot's books always agree: wallet = initial + Σ journal net PnL (+ the running trade's
realized part), no trade exits before it enters, the phase matches the position.

Each "kill" unwinds the process's work at that point without committing (an exception raised
there; the store's connection is then abandoned), which leaves on disk exactly what a SIGKILL
leaves (tests/test_kill.py does the real thing for each named point). Each restart builds a new
bot on the same DATA_DIR, which recovers and resumes the replay after the last committed event.
"""

from __future__ import annotations

import asyncio
import tempfile
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import crashpoints
from core.replay.feed import feed_replay
from core.replay.source import ReplaySource
from core.services import Services
from tests.conftest import shared_file
from tests.kill_harness import books
from utils.settings import load_settings

DEMO = dict(timeframe="5s", ema_fast=5, ema_slow=13, adx_period=7, adx_min=15)


class Killed(BaseException):
    """Unwinds like a kill: nothing after the crash point runs (not an Exception)."""


def _kill() -> None:
    raise Killed


@lru_cache(maxsize=1)
def events() -> tuple:
    return tuple(ReplaySource([shared_file("btcusdt_20240808.gz")], reorder_ms=2000))


class Stream:
    """The capture's events, raising Killed before event number ``kill_at`` (1-based)."""

    def __init__(self, kill_at: int | None) -> None:
        self.kill_at = kill_at

    def __iter__(self):
        for n, ev in enumerate(events(), 1):
            if n == self.kill_at:
                raise Killed
            yield ev


def run_once(data: Path, *, kill_at: int | None = None, crash: str = "") -> bool:
    """One process lifetime; True when it was killed."""
    s = load_settings(_env_file=None, data_dir=data, symbols="BTCUSDT", log_json=False,
                      log_level="ERROR", initial_balance="1000", **DEMO)
    svc = Services(s, feed=None)
    engine = svc.engine
    svc.paper.publish_balance(0, "SNAPSHOT")  # what start() does
    svc.paper.publish_positions(0)
    crashpoints.arm(crash, _kill)
    try:
        asyncio.run(feed_replay(engine, Stream(kill_at), 0, asyncio.Event(),
                                identity=["capture"]))
    except Killed:
        engine.store.abandon()
        return True
    finally:
        crashpoints.arm("")
    engine.store.close()
    return False


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    kills=st.lists(st.integers(min_value=1, max_value=90_000), min_size=1, max_size=3,
                   unique=True).map(sorted),
    crash=st.sampled_from(["", "commit:engine_state@3", "commit:paper_account@2",
                           "commit:ledger@2", "commit:trades@1", "committed:trades@1"]),
)
def test_restarts_at_random_points_keep_the_books_consistent(kills, crash):
    data = Path(tempfile.mkdtemp()) / "data"
    if crash:
        run_once(data, crash=crash)
        books(data)
    for k in kills:
        run_once(data, kill_at=k)
        books(data)
    assert not run_once(data)  # the rest of the replay, to the end
    after = books(data)
    assert len(after.trades) <= 1  # the capture's one round trip at most, never doubled
