"""Keep-alives as Binance runs them (PROTOCOL.md §1.3, §2.1, §10): the server pings every 3
minutes and waits 10 for the pong; bookTicker is pushed only on change."""

from __future__ import annotations

from pathlib import Path

from core.binance.streams import MarketStreams, stream_names
from core.events import BookTicker, ConnectionStatus, MarketTick, Side
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_client import AGG, BOOK
from tests.fakes.live_harness import LiveBot


def conn_of(fake: FakeBinance, kind: str):
    return next(c for c in fake.conns if c.kind == kind)


async def test_slow_pongs_do_not_drop_the_trading_connections(fake: FakeBinance,
                                                              tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, ping_interval_s=0.05) as bot:
        fake.faults.pong_delay_s = 0.8  # pongs come late (a loaded link); Binance allows 10 min
        await eventually(lambda: conn_of(fake, "ws-api").pongs_sent >= 3
                         and conn_of(fake, "user").pongs_sent >= 3, timeout=10)
        assert bot.conn.api.connects == 1 and bot.conn.user.connects == 1
        assert bot.conn.ready


async def test_quiet_public_book_is_pinged_not_reconnected(fake: FakeBinance) -> None:
    status: list[ConnectionStatus] = []
    events: list = []
    streams = MarketStreams(fake.stream_url, stream_names(["BTCUSDT"], ["bookTicker"]),
                            publish=events.append, bus_status=status.append, silence_s=0.1,
                            public_silence_s=60, ping_wait_s=1.0, backoff_base_s=0.01)
    await streams.start()
    try:
        await eventually(lambda: fake.market_subscribers("btcusdt@bookTicker") == 1)
        await eventually(lambda: streams.conns[0].pings >= 5, timeout=5)  # ~0.5 s of silence
        assert streams.reconnects == 0 and not [s for s in status if not s.up]
        await fake.push_market("btcusdt@bookTicker", BOOK)
        await eventually(lambda: any(type(e) is BookTicker for e in events))
    finally:
        await streams.stop()


async def test_public_silence_limit_still_reconnects(fake: FakeBinance) -> None:
    status: list[ConnectionStatus] = []
    streams = MarketStreams(fake.stream_url, stream_names(["BTCUSDT"], ["bookTicker"]),
                            publish=lambda ev: None, bus_status=status.append, silence_s=0.1,
                            public_silence_s=0.4, backoff_base_s=0.01, backoff_cap_s=0.05)
    await streams.start()
    try:
        await eventually(lambda: streams.reconnects >= 1, timeout=5)
        assert any("watchdog" in s.detail for s in status if not s.up)
    finally:
        await streams.stop()


async def test_testnet_without_routed_paths_falls_back_to_unrouted(fake: FakeBinance,
                                                                   tmp_path: Path) -> None:
    fake.faults.unrouted_only = True  # /public, /market, /private answer 404
    async with LiveBot(fake, tmp_path) as bot:  # TRADING_MODE=testnet, BINANCE_STREAM_PATHS=auto
        assert bot.conn.user.unrouted and bot.conn.ready
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "OPEN" and len(bot.open_algos()) == 2)
    events: list = []
    streams = MarketStreams(fake.stream_url, stream_names(["BTCUSDT"], ["aggTrade",
                                                                        "bookTicker"]),
                            publish=events.append, paths="auto", backoff_base_s=0.01,
                            backoff_cap_s=0.05)
    await streams.start()
    try:
        await eventually(lambda: fake.market_subscribers("btcusdt@aggTrade") == 1
                         and fake.market_subscribers("btcusdt@bookTicker") == 1)
        await fake.push_market("btcusdt@aggTrade", AGG)
        await fake.push_market("btcusdt@bookTicker", BOOK)
        await eventually(lambda: {type(e) for e in events} == {MarketTick, BookTicker})
        assert all("/stream?streams=" in c.url and "/market/" not in c.url
                   and "/public/" not in c.url for c in streams.conns)
    finally:
        await streams.stop()


def test_mainnet_never_falls_back_to_the_retired_paths(tmp_path: Path) -> None:
    from core.binance.live import stream_paths
    from utils.settings import load_settings

    live = load_settings(_env_file=None, trading_mode="live", data_dir=tmp_path,
                         binance_api_key="k" * 64, binance_api_secret="s" * 64)
    testnet = load_settings(_env_file=None, trading_mode="testnet", data_dir=tmp_path,
                            binance_api_key="k" * 64, binance_api_secret="s" * 64)
    assert stream_paths(live) == "routed" and stream_paths(testnet) == "auto"
