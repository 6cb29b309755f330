"""``main.py run`` without --replay: the runner wires Binance's streams (paper) or the Binance
connection (testnet) and the market worker into Services, checked against the fake Binance."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bootstrap import RunError, build_services
from core.events import EngineMode, PositionPhase, ProtectiveOrderUpdate, Side, TradeSignal
from tests.conftest import eventually, shared_file
from tests.fakes.binance_market import FakeBinanceMarket
from utils.settings import load_settings

D = Decimal


def settings_for(fake, tmp_path, **kw):
    base = dict(_env_file=None, symbols="BTCUSDT", data_dir=tmp_path / "data",
                binance_rest_url=fake.rest_url, binance_ws_api_url=fake.ws_api_url,
                binance_stream_url=fake.stream_url, binance_stream_silence_s=0.5,
                log_json=False, max_notional=D("5000"))
    return load_settings(**(base | kw))


@pytest.fixture
async def fake():
    async with FakeBinanceMarket(shared_file("BTCUSDT-1m-2023-04-15.csv")) as f:
        yield f


async def test_paper_mode_trades_the_paper_exchange_on_live_streams(fake, tmp_path):
    settings = settings_for(fake, tmp_path, trading_mode="paper")
    services = build_services(settings, replay=None, speed=1.0)
    await services.start()
    try:
        paper = services.paper
        assert paper is not None  # no keys, no orders to Binance
        await eventually(lambda: fake.market_subscribers("btcusdt@aggTrade") > 0, timeout=5)
        trade = {"e": "aggTrade", "E": 1_700_000_000_000, "s": "BTCUSDT", "a": 1, "p": "30123.4",
                 "q": "0.5", "nq": "0.5", "f": 1, "l": 1, "T": 1_700_000_000_000, "m": False}
        await fake.push_market("btcusdt@aggTrade", trade)
        await eventually(lambda: paper.last_price("BTCUSDT") == 30123.4, timeout=5)
        assert fake.calls("order.place") == []
        assert services.market is not None  # the worker cache behind /ta is running
    finally:
        services.request_stop()
        await services.stop()


async def test_testnet_mode_trades_through_the_binance_connection(fake, tmp_path):
    settings = settings_for(fake, tmp_path, trading_mode="testnet",
                            binance_api_key=fake.api_key, binance_api_secret=fake.api_secret)
    services = build_services(settings, replay=None, speed=1.0)
    engine = services.engine
    assert services.paper is None and engine.state.mode is EngineMode.DISARMED
    stops: dict[str, str] = {}
    engine.bus.subscribe(ProtectiveOrderUpdate, lambda e: stops.__setitem__(e.kind, e.status))
    await services.start()
    try:
        conn = engine.connection
        await eventually(lambda: conn.ready, timeout=5)  # reconciled before any trade
        engine.arm(reason="test")
        fake.set_price("BTCUSDT", "68000")
        engine.bus.publish(TradeSignal(
            symbol="BTCUSDT", side=Side.LONG, entry_price=D("68000"), quantity=D("0.010"),
            stop_loss=D("67000"), take_profit=D("69000"), leverage=settings.leverage,
            reason="test", ts_ms=conn.clock.now_ms()))
        # the bot's own view: OPEN and both stops acknowledged to it (SL + TP)
        await eventually(lambda: engine.state.phase is PositionPhase.OPEN
                         and stops == {"SL": "NEW", "TP": "NEW"})
        assert len(fake.account.open_algos(None)) == 2
        assert len(fake.calls("order.place")) == 1
        assert fake.position("BTCUSDT").amount == D("0.010")
    finally:
        services.request_stop()
        await services.stop()


def test_testnet_without_keys_is_a_one_line_error(tmp_path):
    settings = load_settings(_env_file=None, trading_mode="testnet", data_dir=tmp_path)
    with pytest.raises(RunError, match="BINANCE_API_KEY"):
        build_services(settings, replay=None, speed=1.0)


def test_replay_is_paper_only(tmp_path):
    settings = load_settings(_env_file=None, trading_mode="live", data_dir=tmp_path)
    with pytest.raises(RunError, match="paper mode only"):
        build_services(settings, replay=["x.gz"], speed=1.0)


async def test_paper_market_worker_has_its_own_public_client_and_closes_it(fake, tmp_path):
    settings = settings_for(fake, tmp_path, trading_mode="paper")
    services = build_services(settings, replay=None, speed=1.0)
    worker = services.market_worker
    port = worker.rest_port
    assert port.owned  # its own client and limiter: stop() closes them
    await services.start(start_feed=False)
    try:
        await eventually(lambda: worker.passes >= 1, timeout=5)
        spent = services.market.rest.budget.spent_total
        assert spent > 0 and port.limiter.pools[("REQUEST_WEIGHT", 60_000)].used >= spent
    finally:
        services.request_stop()
        await services.stop()


async def test_testnet_market_worker_shares_the_connections_weight_pool(fake, tmp_path):
    settings = settings_for(fake, tmp_path, trading_mode="testnet",
                            binance_api_key=fake.api_key, binance_api_secret=fake.api_secret)
    services = build_services(settings, replay=None, speed=1.0)
    conn, worker = services.engine.connection, services.market_worker
    assert worker.rest_port.limiter is conn.limiter and not worker.rest_port.owned
    await services.start()
    try:
        await eventually(lambda: worker.passes >= 1 and conn.ready, timeout=5)
        spent = services.market.rest.budget.spent_total
        pool = conn.limiter.pools[("REQUEST_WEIGHT", 60_000)]
        assert spent > 0 and pool.used >= spent  # the worker's weight, in trading's pool
    finally:
        services.request_stop()
        await services.stop()
