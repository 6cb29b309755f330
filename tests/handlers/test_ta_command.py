"""/ta and /watch end to end: the real PTB Application against the fake Bot API server, with the
market-data worker warming up from the fake Binance (REST and streams) and keeping current.
We assert on what the fake Telegram received and on the fake Binance's request log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.binance.live import live_connection_factory
from core.services import Services
from handlers.host import HostOptions, build_application, serve
from jobs.market_worker import live_market
from tests.conftest import eventually, shared_file
from tests.fakes.binance_market import FakeBinanceMarket
from tests.fakes.telegram import FakeTelegram
from tests.handlers.test_telegram_e2e import (
    ADMIN,
    ADMIN2,
    TOKEN,
    Bot,
    Clock,
    make_settings,
    only_line,
)

pytestmark = pytest.mark.realdata

KLINES = "BTCUSDT-1m-2023-04-15.csv"


@contextlib.asynccontextmanager
async def market_bot(tmp_path: Path, **overrides) -> AsyncIterator[tuple[Bot, FakeBinanceMarket]]:
    """The bot in paper mode without a replay: live market data from the fake Binance."""
    telegram = FakeTelegram(TOKEN)
    await telegram.start()
    binance = FakeBinanceMarket(shared_file(KLINES))
    await binance.start()
    settings = make_settings(
        tmp_path, telegram, timeframe="1m", ema_fast=9, ema_slow=21, adx_period=14, adx_min=20,
        binance_rest_url=binance.rest_url, binance_stream_url=binance.stream_url,
        market_analysis_executor="thread", binance_stream_silence_s=60, **overrides)
    public_rest = live_connection_factory(settings).market_data  # paper: its own client
    services = Services(settings, feed=None, market=live_market(settings, public_rest))
    options = HostOptions(
        clock=Clock(), project_root=tmp_path, poll_timeout_s=1.0, install_signal_handlers=False,
        outbox={"per_chat_rate": 1000, "per_chat_burst": 1000, "total_rate": 1000,
                "total_burst": 1000, "backoff_initial_s": 0.05, "backoff_max_s": 0.2})
    app = build_application(settings, services, options)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop=stop))
    bot = Bot(telegram, services, app, options.clock, stop, task)
    worker = services.market_worker
    try:
        await eventually(lambda: task.done() or (
            all(telegram.sent_to(a) for a in (ADMIN, ADMIN2)) and worker.passes >= 1
            and worker.streams is not None and worker.streams.connected()), timeout=10)
        if task.done():
            task.result()
        yield bot, binance
    finally:
        stop.set()
        try:
            assert await asyncio.wait_for(task, 15) == 0
        finally:
            await telegram.close()
            await binance.close()


async def test_ta_answers_with_indicators_verdict_funding_oi_and_a_chart(tmp_path):
    async with market_bot(tmp_path) as (bot, binance):
        klines_before = len(binance.market_calls("/fapi/v1/klines"))
        assert klines_before == 5  # the warm-up: one request per timeframe
        text, photo = await bot.command("/ta btcusdt", expect=2)
        assert text.text.startswith("<b>BTCUSDT 1m</b>: ")
        for part in ("<pre>tf", "RSI", "MACD-h", "ADX", "\n1m ", "\n4h ", "EMA20 ", "Bollinger",
                     "Mark 30,280.4, funding +0.0100%", "Open interest 80,000.0 BTC",
                     "Price 30,280.4, 24h -0.57%", "Last closed bar 2023-04-15 23:59 UTC"):
            assert part in text.text, part
        assert "old (" not in text.text  # nothing stale
        assert photo.method == "sendPhoto" and photo.content.startswith(b"\x89PNG")
        assert photo.filename == "ta_BTCUSDT_1m.png" and photo.text.startswith("BTCUSDT 1m: ")
        assert len(binance.market_calls("/fapi/v1/klines")) == klines_before  # from the cache
        (health,) = await bot.command("/health")
        assert re.search(r"Market data: \d+ passes, 0 failed, request weight \d+/480 this "
                         r"minute, streams 1/1 up", health.text)

        # the worker's streams keep it current: a new closed bar shows up in the next /ta
        bar = binance.next_bar("BTCUSDT", "1m", close=30_400.0)
        await binance.push_kline(bar, "1m", closed=True)
        series = bot.services.market.cache.get("klines", ("BTCUSDT", "1m")).value
        await eventually(lambda: series.last_open_ms == bar.open_ms)
        text, _ = await bot.command("/ta BTCUSDT 1m", expect=2)
        assert "Last closed bar 2023-04-16 00:00 UTC" in text.text

        text, photo = await bot.command("/ta BTCUSDT 4h", expect=2)
        assert text.text.startswith("<b>BTCUSDT 4h</b>: WARMING_UP (needs 28 candles)")
        assert photo.filename == "ta_BTCUSDT_4h.png"


async def test_unknown_symbol_and_wrong_arguments(tmp_path):
    async with market_bot(tmp_path) as (bot, _):
        assert only_line(await bot.command("/ta NOPE")) == (
            "Unknown symbol NOPE: Binance USDⓈ-M futures does not list it.")
        for command, usage in {"/ta": "/ta SYMBOL [tf]", "/ta BTC-USDT": "/ta SYMBOL [tf]",
                               "/ta BTCUSDT 5x": "/ta SYMBOL [tf]",
                               "/ta BTCUSDT 1m extra": "/ta SYMBOL [tf]",
                               "/watch": "/watch add|remove|list [SYMBOL]",
                               "/watch add": "/watch add|remove|list [SYMBOL]",
                               "/watch list BTCUSDT": "/watch add|remove|list [SYMBOL]",
                               "/watch drop ETHUSDT": "/watch add|remove|list [SYMBOL]"
                               }.items():
            assert only_line(await bot.command(command)) == f"Usage: {usage}", command
        assert only_line(await bot.command("/ta BTCUSDT 2d")).startswith(
            "No analysis for BTCUSDT: no 2d candles for BTCUSDT")


async def test_watch_add_list_remove(tmp_path):
    async with market_bot(tmp_path) as (bot, binance):
        assert only_line(await bot.command("/watch list")) == (
            "Watched (0 of at most 30 on the watchlist): BTCUSDT (traded)")
        assert only_line(await bot.command("/watch add ethusdt")) == (
            "Watching ETHUSDT; its data is loading.")
        await eventually(lambda: binance.market_subscribers("ethusdt@kline_1m") == 1
                         and bot.services.market.cache.get("oi", "ETHUSDT") is not None)
        assert json.loads((tmp_path / "data" / "watchlist.json").read_text()) == {
            "version": 1, "symbols": ["ETHUSDT"]}
        assert only_line(await bot.command("/watch add ETHUSDT")) == (
            "ETHUSDT is already watched.")
        assert only_line(await bot.command("/watch add NOPEUSDT")) == (
            "Unknown symbol NOPEUSDT: Binance USDⓈ-M futures does not list it.")
        assert only_line(await bot.command("/watch list")) == (
            "Watched (1 of at most 30 on the watchlist): BTCUSDT (traded), ETHUSDT")
        calls = len(binance.requests)
        text, _ = await bot.command("/ta ETHUSDT", expect=2)  # warm: no request
        assert text.text.startswith("<b>ETHUSDT 1m</b>: ") and len(binance.requests) == calls
        assert only_line(await bot.command("/watch remove BTCUSDT")) == (
            "BTCUSDT is traded, so it is always watched.")
        assert only_line(await bot.command("/watch remove ETHUSDT")) == "Stopped watching ETHUSDT."
        assert only_line(await bot.command("/watch remove ETHUSDT")) == (
            "ETHUSDT is not on the watchlist.")
        await eventually(lambda: binance.market_subscribers("ethusdt@kline_1m") == 0)


async def test_turkish_ta_reply(tmp_path):
    async with market_bot(tmp_path, bot_language="tr") as (bot, _):
        text, photo = await bot.command("/ta BTCUSDT", expect=2)
        assert "İşaret fiyatı 30.280,4, fonlama +0,0100%" in text.text  # Turkish numbers
        assert "15.04.2023 23:59 UTC" in text.text  # and dates
        assert "Açık pozisyon 80.000,0 BTC" in text.text and "<pre>zd " in text.text
        assert photo.text.startswith("BTCUSDT 1m: mumlar")
