"""SIGKILL against the fake Binance (issue 9): the bot runs in a child process
(tests/fakes/kill_child.py) and is killed mid-position, with an entry in flight and with an exit
in flight; a new bot on the same DATA_DIR restarts with the same position, its stops on the
exchange, and no order sent twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.events import PositionAdopted
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.kill_child import KillChild
from tests.fakes.live_harness import LiveBot

D = Decimal


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as f:
        yield f


def entry_orders(fake: FakeBinance) -> int:
    return sum(1 for o in fake.account.orders.values() if not o.orig_type and o.side == "BUY")


async def test_sigkill_mid_position(fake: FakeBinance, tmp_path: Path) -> None:
    child = await KillChild.start(fake, tmp_path)
    await child.do("open", "OPEN")
    await child.kill()
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        assert bot.phase == "OPEN" and bot.engine.state.quantity == D("0.010")
        await eventually(lambda: not bot.conn.busy)
        assert len(bot.open_algos()) == 2 and len(fake.calls("algoOrder.place")) == 2
        assert [a.stops for a in bot.of(PositionAdopted)] in ([], ["adopted"])
        assert entry_orders(fake) == 1
        fake.set_price("BTCUSDT", "66900")
        await eventually(lambda: bot.phase == "FLAT" and not bot.open_algos())


async def test_sigkill_with_the_entry_in_flight(fake: FakeBinance, tmp_path: Path) -> None:
    child = await KillChild.start(fake, tmp_path)
    fake.faults.late_next_order(1)  # the entry's answer never comes back
    await child.do("enter", "ENTERING")
    await child.kill()
    fake.faults.release_late()  # ... and it executed while the bot was dead
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        await eventually(lambda: bot.phase == "OPEN" and len(bot.open_algos()) == 2)
        assert bot.engine.state.quantity == D("0.010") and entry_orders(fake) == 1
        assert len(fake.calls("order.place")) == 1  # resolved, never resent
        assert sorted(a.trigger for a in bot.open_algos()) == [D("67000.00"), D("69000.00")]


async def test_sigkill_with_the_exit_in_flight(fake: FakeBinance, tmp_path: Path) -> None:
    child = await KillChild.start(fake, tmp_path)
    await child.do("open", "OPEN")
    fake.faults.late_next_order(1)  # the exit's answer never comes back
    await child.do("exit", "EXITING")
    await child.kill()
    fake.faults.release_late()  # ... and it executed while the bot was dead
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        await eventually(lambda: bot.phase == "FLAT")
        await eventually(lambda: not bot.open_algos() and not bot.conn.busy)
        assert fake.position("BTCUSDT").amount == 0
        assert len(fake.calls("order.place")) == 2  # the entry and the one exit
        bot.signal()  # trading goes on
        await eventually(lambda: bot.phase == "OPEN" and len(bot.open_algos()) == 2)
