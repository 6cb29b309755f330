"""Every fault switch of the fake Binance, observed through raw clients: dropped and silent
sockets, 429/418 with Retry-After, -1021, 503 "Unknown error" after execution, injected order
rejections, listenKey expiry, partial fills."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest
import websockets

from core.binance.errors import (
    ClockSkew,
    InsufficientMargin,
    InvalidListenKey,
    IpBanned,
    MinNotionalRejected,
    RetryLater,
    UnknownOutcome,
    WouldImmediatelyTrigger,
)
from core.binance.models import ListenKeyExpired
from core.binance.parse import parse_user_event
from core.events import OrderStatus
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_client import (
    AGG,
    Events,
    WsApi,
    market_order,
    open_session,
    rest,
    rest_error,
)

D = Decimal



async def test_drop_all_sockets(fake: FakeBinance) -> None:
    api, user, _ = await open_session(fake)
    market = await websockets.connect(f"{fake.stream_url}/market/stream?streams=x@aggTrade")
    assert await fake.drop_all_sockets() == 3
    for ws in (api.ws, user.ws, market):
        with pytest.raises(websockets.ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 2)
    await eventually(lambda: not fake.conns)


async def test_go_silent_and_resume(fake: FakeBinance) -> None:
    api, user, _ = await open_session(fake)
    market = Events(await websockets.connect(
        f"{fake.stream_url}/market/stream?streams=btcusdt@aggTrade"))
    fake.go_silent()
    await api.send("order.place", market_order("BUY", "0.010", "silent-1"))
    await fake.push_market("btcusdt@aggTrade", AGG)
    fake.set_price("BTCUSDT", "68100")
    for events in (Events(api.ws), market, user):
        await events.nothing()
    assert fake.calls("order.place") == [] and fake.account.orders == {}   # lost in transit
    fake.resume()
    assert (await api.call("v2/account.balance")).ok
    await fake.push_market("btcusdt@aggTrade", AGG)
    assert (await market.next())["data"] == AGG
    for ws in (api.ws, user.ws, market.ws):
        await ws.close()


@pytest.mark.parametrize(("status", "expected"), [(429, RetryLater), (418, IpBanned)])
async def test_throttle_next(fake: FakeBinance, http: aiohttp.ClientSession, status: int,
                             expected: type) -> None:
    fake.throttle_next(2, status=status, retry_after_s=3)
    code, body, headers = await rest(fake, http, "GET", "/fapi/v1/time", signed=False)
    assert (code, body["code"], headers["Retry-After"]) == (status, -1003, "3")
    err = rest_error(code, body, headers)
    assert type(err) is expected and err.retry_after_s == 3
    async with websockets.connect(fake.ws_api_url) as ws:
        api = WsApi(ws, fake)
        limited = await api.call("order.place", market_order("BUY", "0.010", "thr-1"))
        assert (limited.status, limited.error_code, limited.retry_after_s) == (status, -1003, 3)
        assert type(limited.exception()) is expected
        assert fake.account.orders == {}
        assert (await api.call("order.place", market_order("BUY", "0.010", "thr-1"))).ok
    assert (await rest(fake, http, "GET", "/fapi/v1/time", signed=False))[0] == 200


async def test_skew_next(fake: FakeBinance, http: aiohttp.ClientSession) -> None:
    fake.skew_next(2)
    code, body, headers = await rest(fake, http, "GET", "/fapi/v1/openOrders")
    assert isinstance(rest_error(code, body, headers), ClockSkew)
    async with websockets.connect(fake.ws_api_url) as ws:
        api = WsApi(ws, fake)
        skewed = await api.call("order.status", {"symbol": "BTCUSDT", "orderId": 1})
        assert skewed.error_code == -1021 and isinstance(skewed.exception(), ClockSkew)
        assert (await api.call("order.status", {"symbol": "BTCUSDT", "orderId": 1})
                ).error_code == -2013


async def test_unknown_error_after_execution(fake: FakeBinance,
                                             http: aiohttp.ClientSession) -> None:
    api, user, _ = await open_session(fake)
    fake.unknown_error_next_order(2)
    answer = await api.call("order.place", market_order("BUY", "0.010", "unk-1"))
    assert (answer.status, answer.error_msg) == (
        503, "Unknown error, please check your request or try again later.")
    assert isinstance(answer.exception(), UnknownOutcome)
    fill = await user.until(lambda f: f["e"] == "ORDER_TRADE_UPDATE" and f["o"]["x"] == "TRADE")
    assert parse_user_event(fill).client_order_id == "unk-1"      # it did execute
    query = await api.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "unk-1"})
    assert query.result["status"] == "FILLED"
    assert len([p for p in fake.calls("order.place") if p["newClientOrderId"] == "unk-1"]) == 1
    code, body, headers = await rest(fake, http, "POST", "/fapi/v1/order",
                                     market_order("SELL", "0.010", "unk-2", reduceOnly=True))
    assert isinstance(rest_error(code, body, headers), UnknownOutcome)
    assert fake.position("BTCUSDT").amount == 0
    await api.ws.close()
    await user.ws.close()


@pytest.mark.parametrize(("code", "expected"), [(-2019, InsufficientMargin),
                                                (-4164, MinNotionalRejected)])
async def test_reject_next_order(fake: FakeBinance, code: int, expected: type) -> None:
    fake.reject_next_order(code)
    async with websockets.connect(fake.ws_api_url) as ws:
        api = WsApi(ws, fake)
        rejected = await api.call("order.place", market_order("BUY", "0.010", "rej-1"))
        assert rejected.error_code == code and isinstance(rejected.exception(), expected)
        assert fake.account.orders == {}
        assert (await api.call("order.place", market_order("BUY", "0.010", "rej-1"))).ok


async def test_reject_next_algo_order(fake: FakeBinance) -> None:
    fake.reject_next_order(-2021)
    async with websockets.connect(fake.ws_api_url) as ws:
        stop = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                "type": "STOP_MARKET", "triggerPrice": D("60000.00"), "closePosition": True}
        rejected = await WsApi(ws, fake).call("algoOrder.place", stop)
        assert isinstance(rejected.exception(), WouldImmediatelyTrigger)
        assert fake.account.algos == {}


async def test_expire_listen_key(fake: FakeBinance, http: aiohttp.ClientSession) -> None:
    api, user, key = await open_session(fake)
    fake.expire_listen_key()
    frame = await user.next()
    assert isinstance(frame["E"], str)
    assert parse_user_event(frame) == ListenKeyExpired(listen_key=key, ts_ms=int(frame["E"]))
    ping = await api.call("userDataStream.ping", {"apiKey": fake.api_key}, sign=False)
    assert isinstance(ping.exception(), InvalidListenKey)
    code, body, headers = await rest(fake, http, "PUT", "/fapi/v1/listenKey", signed=False)
    assert isinstance(rest_error(code, body, headers), InvalidListenKey)
    await api.call("order.place", market_order("BUY", "0.010", "after-expiry"))
    await user.nothing()                               # no events on the expired key
    fresh = await api.call("userDataStream.start", {"apiKey": fake.api_key}, sign=False)
    assert fresh.result["listenKey"] != key
    assert (await api.call("userDataStream.ping", {"apiKey": fake.api_key}, sign=False)).ok
    await api.ws.close()
    await user.ws.close()


async def test_partial_fills(fake: FakeBinance) -> None:
    fake.fills_per_order = 2
    api, user, _ = await open_session(fake)
    await api.call("order.place", market_order("BUY", "0.015", "part-1"))
    fills = []
    while len(fills) < 2:
        event = parse_user_event(await user.until(lambda f: f["e"] == "ORDER_TRADE_UPDATE"))
        if event.is_fill:
            fills.append(event)
    assert [(f.status, f.last_fill_qty, f.filled_qty) for f in fills] == [
        (OrderStatus.PARTIALLY_FILLED, D("0.007"), D("0.007")),
        (OrderStatus.FILLED, D("0.008"), D("0.015"))]
    assert fills[0].trade_id != fills[1].trade_id
    assert fake.position("BTCUSDT").amount == D("0.015")
    await api.ws.close()
    await user.ws.close()
