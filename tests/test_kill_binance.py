"""SIGKILL against the fake Binance (issue 9): the bot runs in a child process
(tests/fakes/kill_child.py) and is killed mid-position, with an entry in flight and with an exit
in flight; a new bot on the same DATA_DIR restarts with the same position, its stops on the
exchange, and no order sent twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.events import PositionAdopted
from tests.conftest import ROOT, eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot

D = Decimal


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as f:
        yield f


class Child:
    """The bot in a subprocess, driven line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, fake: FakeBinance, data: Path) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fakes.kill_child", fake.rest_url, fake.ws_api_url,
            fake.stream_url, fake.api_key, fake.api_secret, str(data), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        child = cls(proc)
        await child.expect("READY")
        return child

    async def expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line.decode().strip() == word

    async def do(self, command: str, answer: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()
        await self.expect(answer)

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL


def entry_orders(fake: FakeBinance) -> int:
    return sum(1 for o in fake.account.orders.values() if not o.orig_type and o.side == "BUY")


async def test_sigkill_mid_position(fake: FakeBinance, tmp_path: Path) -> None:
    child = await Child.start(fake, tmp_path)
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
    child = await Child.start(fake, tmp_path)
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
    child = await Child.start(fake, tmp_path)
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
