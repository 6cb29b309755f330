"""Crash consistency against the fake Binance: the bot SIGKILLed at a named point or a bus
event of an entry or an exit restarts consistent with the exchange and with itself (issue 10).

The bot runs in a child process (tests/fakes/kill_child.py) armed with ``DORT5BOT_CRASH_AT``
(core/crashpoints.py; counted from the child's start: its startup arms the engine, which is
``commit:engine_state@1``). The test sends the command that leads into the trigger and waits
for the child's death, then a new bot on the same DATA_DIR reconciles with the exchange.

The child's store of record and the exchange, one entry then one exit (tests/fakes/kill_child
``open``, ``exit``): ``ordering:submit`` @1 entry, @2 exit (recorded in memory, before the
commit); ``committed:engine_state`` @2 ENTERING with the entry recorded, @5 EXITING with the
exit recorded (before either leaves); ``commit:ledger@2`` the entry's fill booked;
``OrderUpdate`` #1/#2 the entry's NEW/FILLED, #3/#4 the exit's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest

from core.events import PositionPhase
from core.store import read_document
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.kill_child import KillChild, protected
from tests.fakes.live_harness import LiveBot

D = Decimal


class Case(NamedTuple):
    crash: str        # DORT5BOT_CRASH_AT of the child
    exiting: bool     # killed during the exit ("open" first), else during the entry
    held: bool        # the exchange holds the position after the kill
    sent: int         # orders that reached the exchange before the kill (never sent again)


CASES = {
    "entry: ENTERING before the order was recorded": Case("ordering:submit@1", False, False, 0),
    "entry: recorded, killed before sending": Case("committed:engine_state@2", False, False, 0),
    "entry: while the fill was being booked": Case("commit:ledger@2", False, True, 1),
    "entry: inside the fill's dispatch": Case("event:OrderUpdate@2", False, True, 1),
    # the fill's commit, the stops' placement in flight or done: the timer races them
    "entry: 5 ms after the fill": Case("event:OrderUpdate+5ms@2", False, True, 1),
    "exit: EXITING before the order was recorded": Case("ordering:submit@2", True, True, 1),
    "exit: recorded, killed before sending": Case("committed:engine_state@5", True, True, 1),
    "exit: inside the fill's dispatch": Case("event:OrderUpdate@4", True, False, 2),
    "exit: 5 ms after the fill": Case("event:OrderUpdate+5ms@4", True, False, 2),
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as f:
        yield f


def assert_consistent(bot: LiveBot, fake: FakeBinance, data: Path) -> None:
    """Engine, ledger and store agree with the exchange's position."""
    held = fake.position("BTCUSDT").amount
    st = bot.engine.state
    if held:
        assert st.phase is PositionPhase.OPEN and st.quantity == abs(held)
        trade = bot.engine.ledger.open_trade("BTCUSDT")
        assert trade is not None and trade["quantity"] == abs(held)
    else:
        assert st.phase is PositionPhase.FLAT and not st.orders
        assert bot.engine.ledger.open_trade("BTCUSDT") is None
    doc = read_document(data / "journal.sqlite3", "engine_state")
    assert doc["phase"] == st.phase.value


def round_trips(data: Path) -> list[Decimal]:
    """Quantities of the round trips in the store of record (every process's)."""
    with closing(sqlite3.connect(data / "journal.sqlite3")) as conn:
        return [D(q) for (q,) in conn.execute("SELECT quantity FROM trades ORDER BY id")]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_sigkilled_during_an_entry_or_exit_restarts_consistent_with_the_exchange(
        fake: FakeBinance, tmp_path: Path, case: Case) -> None:
    child = await KillChild.start(fake, tmp_path, crash=case.crash)
    if case.exiting:
        await child.do("open", "OPEN")
        await child.crash("exit")
    else:
        await child.crash("open")
    assert (fake.position("BTCUSDT").amount != 0) == case.held
    assert len(fake.calls("order.place")) == case.sent
    # an order recorded but never seen is UNKNOWN until its horizon passes (both shortened)
    async with LiveBot(fake, tmp_path, persist=True, unknown_timeout_s=0.3,
                       reconcile_interval_s=0.2) as bot:
        settled = (PositionPhase.OPEN if case.held else PositionPhase.FLAT)
        await eventually(lambda: bot.engine.state.phase is settled and not bot.conn.busy)
        assert_consistent(bot, fake, tmp_path)
        assert len(fake.calls("order.place")) == case.sent  # never sent twice
        if case.held:
            # its SL and TP standing, in its view (placed, or found and adopted) and the fake's
            await eventually(lambda: protected(bot) and len(bot.open_algos()) == 2)
            assert bot.engine.close_position()
            await eventually(bot.closed)
            assert len(fake.calls("order.place")) == case.sent + 1  # the one exit
        else:
            await eventually(bot.closed)  # no stop left behind
        assert fake.position("BTCUSDT").amount == 0
        # the round trip booked once (an exit filled while the bot was dying included), or none
        assert round_trips(tmp_path) == ([D("0.010")] if case.held or case.exiting else [])
