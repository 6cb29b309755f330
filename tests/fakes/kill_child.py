"""The bot in a child process, to be killed with SIGKILL by a test (tests/test_kill_binance.py).

    python -m tests.fakes.kill_child REST_URL WS_API_URL STREAM_URL API_KEY SECRET DATA_DIR

The real engine + BinanceConnection (as ``LiveBot`` builds them, persisting to DATA_DIR) against
the fake Binance the parent runs. Commands arrive on stdin, one per line; each answers one line
on stdout once the bot's own state shows it done:

* ``open``  -> signal a long 0.010 BTCUSDT (SL 67000, TP 69000); ``OPEN`` when the position is
  open with both stops standing;
* ``enter`` -> the same signal; ``ENTERING`` as soon as the entry order left (its answer may be
  pending);
* ``exit``  -> close the position; ``EXITING`` as soon as the exit order left.

``READY`` is printed once the adapter has reconciled. The process then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from core.events import ExitReason, OrderRequest, Side
from tests.conftest import eventually
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


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
