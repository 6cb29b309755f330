"""Crash consistency against the fake Binance: the bot killed at a named point of an entry
restarts consistent with the exchange and with itself (issue 10).

The kill is in-process: at the crash point (core/crashpoints.py) the store of record is
abandoned (nothing after that point is committed) and an exception unwinds the work in progress,
then the adapter is stopped without touching the exchange; what the store holds is what a
SIGKILL at that point leaves. A new bot on the same DATA_DIR then reconciles with the exchange.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core import crashpoints
from core.events import PositionPhase, Side
from core.store import read_document
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot

D = Decimal


class Killed(BaseException):
    """Unwinds like a kill (not an Exception: nothing catches it on the way)."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as f:
        yield f


async def killed_during_entry(fake: FakeBinance, data: Path, point: str) -> None:
    bot = LiveBot(fake, data, persist=True)
    await bot.__aenter__()
    store = bot.engine.store
    fired: list[bool] = []

    def kill() -> None:
        store.abandon()  # nothing after this point reaches the disk
        fired.append(True)
        raise Killed

    crashpoints.arm(point, kill)
    try:
        try:
            bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        except Killed:
            pass
        await eventually(lambda: fired, timeout=5)  # also when it fired in the stream task
    finally:
        crashpoints.arm("")
        # Orders in flight not yet sent are dropped with their tasks. When the kill fired in a
        # stream task (the fill's commit runs where the fill arrived), stopping that task hands
        # its Killed back; stop() is re-entrant, so stop the rest too, as a dead process would.
        try:
            await bot.conn.stop()
        except Killed:
            await bot.conn.stop()


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


@pytest.mark.parametrize(("point", "opened"), [
    ("ordering:submit", False),            # ENTERING in memory, order neither recorded nor sent
    ("committed:engine_state", False),     # ENTERING + order recorded, killed before it left
    ("commit:ledger@2", True),             # the entry filled; killed while booking the fill
], ids=["before the order was recorded", "after it was recorded, before sending",
        "while the fill was being booked"])
async def test_killed_during_an_entry_restarts_consistent_with_the_exchange(
        fake: FakeBinance, tmp_path: Path, point: str, opened: bool) -> None:
    await killed_during_entry(fake, tmp_path, point)
    assert (fake.position("BTCUSDT").amount != 0) == opened
    # an order recorded but never seen is UNKNOWN until its horizon passes (both shortened)
    async with LiveBot(fake, tmp_path, persist=True, unknown_timeout_s=0.3,
                       reconcile_interval_s=0.2) as bot:
        await eventually(lambda: bot.engine.state.phase in (PositionPhase.FLAT,
                                                           PositionPhase.OPEN), timeout=5)
        assert_consistent(bot, fake, tmp_path)
        assert len(fake.calls("order.place")) == (1 if opened else 0)  # never sent twice
        if opened:
            await eventually(lambda: len(bot.open_algos()) == 2, timeout=5)  # protected
            assert bot.engine.close_position()
            await eventually(lambda: bot.phase == "FLAT" and not bot.open_algos(), timeout=5)
            assert bot.engine.ledger.trades and bot.engine.ledger.trades[-1].quantity == D(
                "0.010")
