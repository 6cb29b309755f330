"""Fixtures of the dashboard tests: a bot that replayed the shared BTCUSDT capture (API and
schemathesis), a stored backtest result, one headless Chromium per session (Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import shared_file
from tests.web.botthread import FAST_STRATEGY, BotThread

CAPTURE = "btcusdt_20240808.gz"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking"]


def write_backtest_result(data_dir: Path) -> Path:
    """``main.py backtest --json`` of a short slice of the capture, stored under
    DATA_DIR/results/ where the Backtests screen finds it."""
    from core.backtest.report import compute_stats, to_json, write_json
    from core.backtest.runner import run_backtest
    from utils.settings import load_settings

    settings = load_settings(_env_file=None, trading_mode="paper", **FAST_STRATEGY)
    result = run_backtest(settings, [str(shared_file(CAPTURE))])
    out = data_dir / "results" / "capture-5s.json"
    write_json(out, to_json(result, compute_stats(result)))
    return out


@pytest.fixture(scope="session")
def stored_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_backtest_result(tmp_path_factory.mktemp("results"))


def _bot(tmp: Path, stored_result: Path, **overrides) -> BotThread:
    data = tmp / "data"
    (data / "results").mkdir(parents=True)
    (data / "results" / stored_result.name).write_bytes(stored_result.read_bytes())
    return BotThread(data, shared_file(CAPTURE), **overrides)


@pytest.fixture(scope="module")
def replayed_bot(tmp_path_factory: pytest.TempPathFactory, stored_result: Path
                 ) -> Iterator[BotThread]:
    """The bot after replaying the whole capture at full speed (a position is open at the
    end, one trade closed), dashboard on with TOKEN."""
    bot = _bot(tmp_path_factory.mktemp("bot"), stored_result).start()
    try:
        yield bot
    finally:
        bot.stop()


@pytest.fixture
def live_bot(tmp_path: Path, stored_result: Path) -> Iterator[BotThread]:
    """The bot, feed not started: the test starts it (``bot.call(bot.services.start_feed)``);
    it then replays at full speed until the capture's second position opens (the one still open
    when the data ends) and at 2x real time from there, so the page sees it appear and its PnL
    move for about 12 s."""
    bot = _bot(tmp_path, stored_result, paced_speed=2.0, paced_entries=2,
               autostart_feed=False).start(wait_feed=False)
    try:
        yield bot
    finally:
        bot.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    """One headless Chromium (Debian's, driven by Playwright) for the page tests, which all
    live in one module: launched once per session. Module scope, because Playwright's sync API
    keeps an event loop running in the main thread while it is open, and pytest-asyncio tests
    elsewhere cannot start theirs meanwhile."""
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
