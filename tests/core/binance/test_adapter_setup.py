"""Adapter setup and the smaller paths: hedge mode refused, leverage and margin type set,
config and margin-call events, listenKey over REST, cancel, account refresh, the live feed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from core.alerts import alert_text
from core.binance.adapter import SetupError
from core.binance.live import live_connection_factory
from core.engine import build_engine
from core.events import (
    AccountConfigChanged,
    EquitySnapshot,
    MarginCall,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    StateChanged,
)
from core.ports import Connection
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_client import AGG
from tests.fakes.live_harness import FAST, LiveBot, settings_for

D = Decimal


async def test_hedge_mode_is_refused_with_a_clear_message(fake: FakeBinance,
                                                          tmp_path: Path) -> None:
    fake.dual_side_position = True
    bot = LiveBot(fake, tmp_path)
    with pytest.raises(SetupError, match="hedge mode.*One-way"):
        await bot.conn.start()
    await bot.conn.stop()
    assert fake.connections("ws-api") == 0  # nothing trades


async def test_unknown_symbol_is_refused(fake: FakeBinance, tmp_path: Path) -> None:
    bot = LiveBot(fake, tmp_path, settings=settings_for(fake, tmp_path, symbols="DOGEUSDT"))
    with pytest.raises(SetupError, match="DOGEUSDT"):
        await bot.conn.start()
    await bot.conn.stop()


async def test_leverage_and_margin_type_are_set(fake: FakeBinance, tmp_path: Path) -> None:
    settings = settings_for(fake, tmp_path, symbols="BTCUSDT,ETHUSDT", leverage=7,
                            binance_margin_type="ISOLATED")
    async with LiveBot(fake, tmp_path, settings=settings) as bot:
        assert isinstance(bot.conn, Connection) and bot.conn.name == "testnet"
        for sym in ("BTCUSDT", "ETHUSDT"):
            assert fake.position(sym).leverage == 7
            assert fake.position(sym).margin_type == "ISOLATED"
        assert bot.conn.filters("ETHUSDT").tick_size == D("0.01")
    async with LiveBot(fake, tmp_path / "again", settings=settings) as bot:
        assert bot.conn.ready  # -4046 "no need to change margin type" is fine


async def test_config_and_margin_call_events(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        fake.exchange.set_leverage({"symbol": "BTCUSDT", "leverage": "12"})
        fake.margin_call("BTCUSDT", "42.5")
        await eventually(lambda: bot.of(AccountConfigChanged) and bot.of(MarginCall))
        assert bot.of(AccountConfigChanged)[0].leverage == 12
        call = bot.of(MarginCall)[0]
        assert call.symbols == ("BTCUSDT",) and call.maintenance_margin == D("42.5")
        assert "MARGIN CALL on BTCUSDT" in (alert_text(call) or "")


async def test_listen_key_falls_back_to_rest(fake: FakeBinance, tmp_path: Path) -> None:
    settings = settings_for(fake, tmp_path, binance_ws_api_url=f"{fake.stream_url}/nowhere")
    async with LiveBot(fake, tmp_path, settings=settings, wait_ready=False,
                       request_timeout_s=0.2) as bot:
        await eventually(lambda: bot.conn.user.connected, timeout=3)
        assert fake.calls("POST /fapi/v1/listenKey") and not fake.calls("userDataStream.start")
        assert bot.conn.gate == "DISCONNECTED" and bot.conn.filters("BTCUSDT").status != "TRADING"


async def test_cancel_a_resting_order(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        req = OrderRequest(symbol="BTCUSDT", side=OrderSide.BUY, order_type=OrderType.LIMIT,
                           quantity=D("0.010"), price=D("66000.00"), client_order_id="d5L1-1",
                           ts_ms=1)
        bot.conn.submit_order(req)
        await eventually(lambda: any(u.status is OrderStatus.NEW for u in bot.of(OrderUpdate)))
        bot.conn.cancel_order("BTCUSDT", "d5L1-1")
        await eventually(lambda: any(u.status is OrderStatus.CANCELED
                                     for u in bot.of(OrderUpdate)))
        bot.conn.cancel_order("BTCUSDT", "d5L1-1")  # already final: -2011 is not an error
        await eventually(lambda: len(fake.calls("order.cancel")) == 2 and not bot.conn.busy)


async def test_refresh_account_publishes_balance_and_equity(fake: FakeBinance,
                                                            tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        bot.signal(Side.LONG, "0.010")
        await eventually(lambda: bot.phase == "OPEN")
        fake.set_price("BTCUSDT", "68500")
        equity = await bot.conn.refresh_account()
        snap = bot.of(EquitySnapshot)[-1]
        assert snap.unrealized_pnl == D("5.00000000") and equity == snap.equity
        assert snap.wallet_balance == fake.wallet_balance
        assert bot.engine.balance.available("USDT") == fake.account.available()


async def test_live_feed_starts_the_connection_and_says_disarmed(fake: FakeBinance,
                                                                  tmp_path: Path) -> None:
    settings = settings_for(fake, tmp_path)
    setup = live_connection_factory(settings, **FAST)
    engine = build_engine(settings, connection_factory=setup.connection_factory, persist=True)
    said: list[StateChanged] = []
    engine.bus.subscribe(StateChanged, said.append)
    stop = asyncio.Event()
    await engine.connection.start()  # the runner may start it first to report setup errors
    feed = asyncio.create_task(setup.feed(engine, stop))
    await eventually(lambda: engine.connection.ready, timeout=5)
    assert len(fake.calls("GET /fapi/v1/exchangeInfo")) == 1  # the feed's start is a no-op
    assert engine.state.mode.value == "DISARMED"
    assert said and "starts DISARMED" in said[0].reason
    await eventually(lambda: fake.market_subscribers("btcusdt@aggTrade") == 1)
    await fake.push_market("btcusdt@aggTrade", AGG)
    await eventually(lambda: engine.connection.reference_price("BTCUSDT") is not None)
    stop.set()
    assert await feed == 1
    assert fake.connections("user") == 0 or await eventually(
        lambda: fake.connections("user") == 0) is None


def test_keys_are_required_outside_paper(tmp_path: Path) -> None:
    from utils.settings import load_settings

    settings = load_settings(_env_file=None, trading_mode="live", data_dir=tmp_path)
    with pytest.raises(SetupError, match="BINANCE_API_KEY"):
        live_connection_factory(settings)
    settings = load_settings(_env_file=None, trading_mode="live", data_dir=tmp_path,
                             binance_api_key="k" * 64,
                             binance_private_key_path=tmp_path / "missing.pem")
    with pytest.raises(SetupError, match="BINANCE_PRIVATE_KEY_PATH") as err:
        live_connection_factory(settings)
    assert "k" * 64 not in str(err.value)
    assert settings.binance_url("ws_api") == "wss://ws-fapi.binance.com/ws-fapi/v1"
    testnet = load_settings(_env_file=None, trading_mode="testnet", data_dir=tmp_path)
    assert (testnet.binance_url("rest"), testnet.binance_url("ws_api"),
            testnet.binance_url("stream")) == (
        "https://demo-fapi.binance.com", "wss://testnet.binancefuture.com/ws-fapi/v1",
        "wss://fstream.binancefuture.com")


async def test_connections_rotate_and_trading_goes_on(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, rotate_s=0.3) as bot:
        await eventually(lambda: bot.conn.api.connects >= 2 and bot.conn.user.connects >= 2,
                         timeout=3)
        await eventually(lambda: bot.conn.ready)
        bot.signal()
        await eventually(lambda: bot.phase == "OPEN" and bot.protected())
        assert bot.placed_orders() == 1 and len(fake.calls("algoOrder.place")) == 2
