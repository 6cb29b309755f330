"""The bot in a child process, to be killed with SIGKILL (tests/test_kill_binance.py,
tests/test_kill_live.py); ``KillChild`` is the test's handle on it.

    python -m tests.fakes.kill_child REST_URL WS_API_URL STREAM_URL API_KEY SECRET DATA_DIR

The real engine + BinanceConnection (as ``LiveBot`` builds them, persisting to DATA_DIR) against
the fake Binance the parent runs. Commands arrive on stdin, one per line; each answers one line
on stdout once the bot's own state shows it done:

* ``open``  -> signal a long 0.010 BTCUSDT (SL 67000, TP 69000); ``OPEN`` when the position is
  open with both stops standing;
* ``enter`` -> the same signal; ``ENTERING`` as soon as the entry order left (its answer may be
  pending);
* ``exit``  -> close the position; ``EXITING`` as soon as the exit order left.

``READY`` is printed once the adapter has reconciled. The process then waits to be killed: by
the test, or by itself at the trigger ``DORT5BOT_CRASH_AT`` arms (core/crashpoints.py; counted
from the process's start, so the startup's own commits and events count too).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from core.events import ExitReason, OrderRequest, Side
from tests.conftest import ROOT, eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot


@dataclass
class Endpoint:
    """What ``LiveBot`` reads from a FakeBinance: its URLs and keys."""

    rest_url: str
    ws_api_url: str
    stream_url: str
    api_key: str
    api_secret: str


def say(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


async def main(argv: list[str]) -> None:
    rest, ws_api, stream, key, secret, data = argv
    bot = LiveBot(Endpoint(rest, ws_api, stream, key, secret), Path(data),  # type: ignore[arg-type]
                  persist=True)
    sent: list[OrderRequest] = []
    bot.bus.subscribe(OrderRequest, sent.append)
    async with bot:
        say("READY")
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line:
                await asyncio.Event().wait()  # stdin closed: wait for the kill
            if line in ("open", "enter"):
                bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
                if line == "enter":  # the parent holds the order: its outcome stays unknown
                    await eventually(lambda: bool(sent) and bool(bot.conn.tracker.unsettled()))
                    say("ENTERING")
                else:
                    await eventually(lambda: protected(bot))
                    say("OPEN")
            elif line == "exit":
                bot.engine.close_position(ExitReason.MANUAL)
                await eventually(lambda: any(r.reduce_only for r in sent)
                                 and bool(bot.conn.tracker.unsettled()))
                say("EXITING")


def protected(bot: LiveBot) -> bool:
    """The position is open with its SL and TP standing on the exchange."""
    prot = bot.conn.protective.positions.get("BTCUSDT")
    return (bot.phase == "OPEN" and prot is not None and len(prot.stops) == 2
            and all(s.status.value == "NEW" for s in prot.stops.values()))


class KillChild:
    """The test's side: the bot in a subprocess, driven line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, fake: FakeBinance, data: Path, *, crash: str = "") -> KillChild:
        """Start the child against ``fake`` on ``data``, armed with ``crash`` (a
        ``DORT5BOT_CRASH_AT`` spec, "" none); returns once it is READY."""
        env = {k: v for k, v in os.environ.items() if k != "DORT5BOT_CRASH_AT"}
        env["PYTHONPATH"] = str(ROOT)
        if crash:
            env["DORT5BOT_CRASH_AT"] = crash
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fakes.kill_child", fake.rest_url, fake.ws_api_url,
            fake.stream_url, fake.api_key, fake.api_secret, str(data), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env)
        child = cls(proc)
        await child.expect("READY")
        return child

    async def expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line.decode().strip() == word

    async def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()

    async def do(self, command: str, answer: str) -> None:
        await self.send(command)
        await self.expect(answer)

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL

    async def crash(self, command: str) -> None:
        """Send ``command`` and wait until the child has killed itself at its armed trigger
        (whatever it answered before)."""
        await self.send(command)
        assert self.proc.stdout is not None
        await asyncio.wait_for(self.proc.stdout.read(), 60)  # until its end of the pipe closes
        assert await asyncio.wait_for(self.proc.wait(), 60) == -signal.SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
