"""No API key, secret, signature or listenKey in any log line (captured raw, without the
redacting filter) or exception message, through a trade, faults and rejected credentials."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from core.binance.adapter import SetupError
from core.binance.errors import ExchangeError
from core.events import EngineError, Side
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot, settings_for

HEX64 = re.compile(r"[0-9a-f]{64}")


class Capture(logging.Handler):
    """Every record of the bot (not the fake server's own aiohttp logs), fully rendered."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("aiohttp.server", "aiohttp.access", "aiohttp.web")):
            self.lines.append(self.format(record))


@pytest.fixture
def capture():
    handler = Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def assert_clean(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked in: {text[:200]}"
        assert not HEX64.search(text), f"signature-like token in: {text[:200]}"


async def test_no_secret_in_logs_or_errors(fake: FakeBinance, tmp_path: Path,
                                           capture: Capture) -> None:
    keys: list[str] = []
    start = fake.start_listen_key
    fake.start_listen_key = lambda: keys.append(start()) or keys[-1]  # type: ignore[method-assign]
    errors: list[str] = []
    async with LiveBot(fake, tmp_path, keepalive_s=0.05) as bot:
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "OPEN" and bot.protected())
        fake.expire_listen_key()
        await eventually(lambda: bot.conn.user.connects == 2 and bot.conn.ready)
        fake.throttle_next(1, status=429, retry_after_s=0.1)
        fake.unknown_error_next_order(1)
        assert bot.engine.close_position()
        await eventually(lambda: bot.phase == "FLAT")
        fake.reject_next_order(-2019)
        bot.signal()
        await eventually(lambda: bot.of(EngineError))
        errors += [e.message for e in bot.of(EngineError)]
        errors += [repr(bot.conn.config), repr(bot.conn.api._signer), str(bot.settings)]
    for wrong in (dict(binance_api_secret="f" * 64), dict(binance_api_key="bad" + "k" * 60)):
        settings = settings_for(fake, tmp_path / "bad", **wrong)
        bot = LiveBot(fake, tmp_path / "bad", settings=settings)
        with pytest.raises(SetupError) as err:
            await bot.conn.start()
        errors += [str(err.value), repr(err.value)]
        await bot.conn.stop()
    async with LiveBot(fake, tmp_path / "c", settings=settings_for(
            fake, tmp_path / "c"), wait_ready=True) as bot:
        bot.conn.api._signer = type(bot.conn.api._signer)("e" * 64)  # wrong secret mid-run
        with pytest.raises(ExchangeError) as err:
            await bot.conn.api.call("v2/account.balance", weight=5)
        errors += [str(err.value), repr(err.value)]
    assert len(keys) >= 2 and capture.lines
    assert_clean(capture.lines + errors,
                 [fake.api_key, fake.api_secret, "f" * 64, "k" * 60, *keys])
