"""Market streams against the fake: routed combined streams, pings answered, watchdog on a
silent socket, reconnect after a drop, rotation before 24 h, control-message pacing, and paper
mode fed by the live streams."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from core.binance.live import live_connection_factory
from core.binance.streams import (
    ControlRate,
    MarketStreams,
    connection_urls,
    route_of,
    stream_names,
)
from core.engine import build_engine
from core.events import BookTicker, ConnectionStatus, MarketTick, MarkPrice
from core.paper import PaperExchange
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_client import AGG, BOOK
from utils.settings import load_settings

MARK = {"e": "markPriceUpdate", "E": 1771263510000, "s": "BTCUSDT", "p": "68001.10",
        "ap": "68000.00", "P": "68002.00", "i": "68003.00", "r": "0.00010000",
        "T": 1771286400000, "st": 1}
STREAMS = stream_names(["BTCUSDT"], ["aggTrade", "bookTicker", "markPrice@1s"])


class Sink:
    def __init__(self) -> None:
        self.events: list = []
        self.status: list[ConnectionStatus] = []

    def of(self, kind: type) -> list:
        return [e for e in self.events if type(e) is kind]


def make(fake: FakeBinance, sink: Sink, **kw) -> MarketStreams:
    kw = {"silence_s": 5.0, "backoff_base_s": 0.01, "backoff_cap_s": 0.05} | kw
    return MarketStreams(fake.stream_url, STREAMS, publish=sink.events.append,
                         bus_status=sink.status.append, **kw)


async def subscribed(fake: FakeBinance, n: int = 1) -> None:
    await eventually(lambda: all(fake.market_subscribers(s) == n for s in STREAMS))


def test_routes_and_names() -> None:
    assert stream_names(["BTCUSDT", "EthUsdt"], ["aggTrade"]) == ["btcusdt@aggTrade",
                                                                  "ethusdt@aggTrade"]
    assert [route_of(s) for s in ("btcusdt@bookTicker", "btcusdt@depth5@100ms",
                                  "btcusdt@aggTrade", "btcusdt@markPrice@1s",
                                  "btcusdt@kline_1m", "!bookTicker", "btcusdt@trade")] == [
        "public", "public", "market", "market", "market", "public", "public"]
    urls = connection_urls("wss://fstream.binance.com", STREAMS)
    assert urls == [
        ("market", "wss://fstream.binance.com/market/stream?streams="
                   "btcusdt@aggTrade/btcusdt@markPrice@1s"),
        ("public", "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker")]
    many = connection_urls("wss://x", [f"s{i}@aggTrade" for i in range(450)])
    assert len(many) == 3 and all(u.count("@") <= 200 for _, u in many)


def test_control_rate_keeps_under_ten_messages_per_second() -> None:
    rate = ControlRate()
    sends = []
    now = 100.0
    for _ in range(20):
        now += rate.delay(now)
        sends.append(now)
    for i, t in enumerate(sends):
        assert sum(1 for u in sends[i:] if u < t + 1.0) <= 5


async def test_combined_streams_publish_engine_events(fake: FakeBinance) -> None:
    sink = Sink()
    streams = make(fake, sink)
    await streams.start()
    try:
        await subscribed(fake)
        assert fake.connections("market") == 2 and fake.connections("legacy") == 0
        await fake.push_market("btcusdt@aggTrade", AGG)
        await fake.push_market("btcusdt@bookTicker", BOOK)
        await fake.push_market("btcusdt@markPrice@1s", MARK)
        await eventually(lambda: len(sink.events) == 3)
        tick, = sink.of(MarketTick)
        assert (tick.symbol, tick.price, tick.quantity) == ("BTCUSDT", 68005.0, 2.695)
        assert sink.of(BookTicker)[0].ask == 68005.1
        assert sink.of(MarkPrice)[0].mark_price == 68001.1
        assert {s.stream for s in sink.status if s.up} == {"market/market", "market/public"}
    finally:
        await streams.stop()


async def test_pings_are_answered_with_the_same_payload(fake: FakeBinance) -> None:
    streams = make(fake, Sink())
    await streams.start()
    try:
        await subscribed(fake)
        assert await fake.ping_all("market", b"ping-123") == 2
        await eventually(lambda: all(c.pongs == [b"ping-123"] for c in fake.conns
                                     if c.kind == "market"))
    finally:
        await streams.stop()


async def test_watchdog_reconnects_a_silent_socket(fake: FakeBinance) -> None:
    sink = Sink()
    streams = make(fake, sink, silence_s=0.2)
    await streams.start()
    try:
        await subscribed(fake)
        fake.go_silent()
        await eventually(lambda: streams.reconnects >= 2, timeout=3)
        down = [s for s in sink.status if not s.up]
        assert down and "watchdog" in down[0].detail
        fake.resume()
        await subscribed(fake)
        await fake.push_market("btcusdt@aggTrade", AGG)
        await eventually(lambda: len(sink.of(MarketTick)) == 1)
    finally:
        await streams.stop()


async def test_dropped_socket_reconnects(fake: FakeBinance) -> None:
    sink = Sink()
    streams = make(fake, sink)
    await streams.start()
    try:
        await subscribed(fake)
        await fake.drop_all_sockets()
        await eventually(lambda: streams.reconnects == 2)
        await subscribed(fake)
        await fake.push_market("btcusdt@bookTicker", BOOK)
        await eventually(lambda: len(sink.of(BookTicker)) == 1)
    finally:
        await streams.stop()


async def test_rotation_opens_the_new_connection_before_closing_the_old(fake: FakeBinance
                                                                        ) -> None:
    sink = Sink()
    streams = make(fake, sink, rotate_s=0.3)
    await streams.start()
    try:
        await subscribed(fake)
        await eventually(lambda: streams.reconnects >= 2, timeout=3)
        assert not [s for s in sink.status if not s.up]  # never down while rotating
        await subscribed(fake)
        await fake.push_market("btcusdt@aggTrade", AGG)
        await fake.push_market("btcusdt@aggTrade", AGG | {"a": 2, "p": "68006.00"})
        await eventually(lambda: len(sink.of(MarketTick)) >= 2)
        assert [t.price for t in sink.of(MarketTick)] == [68005.0, 68006.0]  # no duplicate
    finally:
        await streams.stop()


async def test_bad_frame_is_skipped(fake: FakeBinance) -> None:
    sink = Sink()
    streams = make(fake, sink)
    await streams.start()
    try:
        await subscribed(fake)
        await fake.push_market("btcusdt@aggTrade", {k: v for k, v in AGG.items() if k != "p"})
        await fake.push_market("btcusdt@aggTrade", AGG)
        await eventually(lambda: len(sink.of(MarketTick)) == 1)
        assert streams.bad_frames == 1
    finally:
        await streams.stop()


async def test_live_subscribe_is_paced(fake: FakeBinance) -> None:
    streams = make(fake, Sink())
    await streams.start()
    try:
        await subscribed(fake)
        await eventually(streams.connected)  # the fake registers sockets before the handshake
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await streams.subscribe(["ethusdt@aggTrade", "ethusdt@markPrice@1s", "ethusdt@kline_1m"])
        assert loop.time() - t0 >= 0.39  # 3 messages at 5/s: 0, 0.2, 0.4 s
        await eventually(lambda: fake.market_subscribers("ethusdt@kline_1m") == 1)
        market = [c for c in fake.conns if c.kind == "market" and c.route == "market"][0]
        assert market.text_frames == 3
    finally:
        await streams.stop()


async def test_paper_mode_trades_on_live_streams_without_keys(fake: FakeBinance,
                                                              tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, trading_mode="paper", data_dir=tmp_path,
                             binance_stream_url=fake.stream_url)
    setup = live_connection_factory(settings)
    assert setup.connection_factory is None
    engine = build_engine(settings, persist=False)
    assert isinstance(engine.connection, PaperExchange)
    stop = asyncio.Event()
    task = asyncio.create_task(setup.feed(engine, stop))
    await subscribed(fake)
    await fake.push_market("btcusdt@markPrice@1s", MARK)
    await eventually(lambda: engine.connection.reference_price("BTCUSDT") is not None)
    assert engine.connection.reference_price("BTCUSDT") == Decimal("68001.1")
    stop.set()
    assert await task == 1
    assert fake.connections("market") == 0 or await eventually(
        lambda: fake.connections("market") == 0) is None


@pytest.mark.parametrize("kinds", [("aggTrade", "kline_1m")])
def test_settings_streams(kinds: tuple[str, ...], tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, binance_market_streams=",".join(kinds),
                             symbols="BTCUSDT,ETHUSDT", data_dir=tmp_path)
    setup = live_connection_factory(settings)
    assert setup.streams == ("btcusdt@aggTrade", "btcusdt@kline_1m", "ethusdt@aggTrade",
                             "ethusdt@kline_1m")
    assert settings.binance_url("stream") == "wss://fstream.binance.com"
