"""The fake Binance, exercised with raw clients (aiohttp, websockets) and the production signing
and parsing code: REST and WS API signature checks, order and algo lifecycles on the user stream,
account queries, market routes. Fault switches: test_fake_binance_faults.py."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import websockets

from core.binance.errors import (
    ClockSkew,
    Fatal,
    InvalidListenKey,
    NoChangeNeeded,
    UseAlgoOrder,
    WouldImmediatelyTrigger,
    classify,
)
from core.binance.models import AlgoStatus, AlgoUpdate, TradeLite
from core.binance.parse import parse_market_event, parse_user_event, parse_ws_api_response
from core.binance.signing import Ed25519Signer, HmacSigner, sign_ws_params, signed_rest_query
from core.events import MarketTick, OrderStatus, OrderUpdate
from core.filters import parse_exchange_info
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_client import (
    AGG,
    BOOK,
    Events,
    WsApi,
    local_ms,
    market_order,
    open_session,
    rest,
    rest_error,
)
from tests.fakes.binance_ws import stream_route

D = Decimal


# --------------------------------------------------------------------------- REST


async def test_public_rest_endpoints(fake: FakeBinance, http: aiohttp.ClientSession) -> None:
    status, body, headers = await rest(fake, http, "GET", "/fapi/v1/time", signed=False)
    assert status == 200 and abs(body["serverTime"] - local_ms()) < 1000
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
    status, info, headers = await rest(fake, http, "GET", "/fapi/v1/exchangeInfo", signed=False)
    btc = parse_exchange_info(info)["BTCUSDT"]
    assert (btc.tick_size, btc.step_size, btc.min_notional, btc.market_max_qty) == (
        D("0.10"), D("0.001"), D("100"), D("120"))
    assert parse_exchange_info(info)["ETHUSDT"].tick_size == D("0.01")
    assert {r["rateLimitType"] for r in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    assert headers["X-MBX-USED-WEIGHT-1M"] == str(fake.rates.weight.count)


async def test_rest_signature_key_and_timestamp_checks(fake: FakeBinance,
                                                      http: aiohttp.ClientSession) -> None:
    path = "/fapi/v1/positionSide/dual"
    assert (await rest(fake, http, "GET", path))[:2] == (200, {"dualSidePosition": False})
    status, body, headers = await rest(fake, http, "GET", path, secret="wrong")
    assert (status, body["code"]) == (400, -1022)
    assert isinstance(rest_error(status, body, headers), Fatal)
    ed = Ed25519Signer(fake.ed25519_private_key)        # base64, URL-encoded on REST
    assert (await rest(fake, http, "GET", path, api_key=fake.ed25519_api_key, signer=ed))[0] == 200
    status, body, _ = await rest(fake, http, "GET", path, signer=ed)
    assert (status, body["code"]) == (400, -1022)
    status, body, _ = await rest(fake, http, "GET", path, api_key="nobody")
    assert (status, body["code"]) == (401, -2015)
    status, body, _ = await rest(fake, http, "GET", path, signed=False)
    assert (status, body["code"]) == (400, -1102)
    fake.clock_offset_ms = 6_000                        # our clock is 6 s behind the server
    status, body, headers = await rest(fake, http, "GET", path)
    assert isinstance(rest_error(status, body, headers), ClockSkew)


async def test_rest_params_in_body_are_signed_as_sent(fake: FakeBinance,
                                                      http: aiohttp.ClientSession) -> None:
    body = signed_rest_query({"symbol": "BTCUSDT", "leverage": 10},
                             signer=HmacSigner(fake.api_secret), timestamp_ms=local_ms())
    async with http.post(f"{fake.rest_url}/fapi/v1/leverage", data=body,
                         headers={"X-MBX-APIKEY": fake.api_key,
                                  "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 200
        assert await r.json() == {"leverage": 10, "maxNotionalValue": "230000000.0",
                                  "symbol": "BTCUSDT"}
    assert fake.position("BTCUSDT").leverage == 10


async def test_margin_type_and_listen_key_over_rest(fake: FakeBinance,
                                                    http: aiohttp.ClientSession) -> None:
    params = {"symbol": "BTCUSDT", "marginType": "ISOLATED"}
    assert (await rest(fake, http, "POST", "/fapi/v1/marginType", params))[0] == 200
    status, body, headers = await rest(fake, http, "POST", "/fapi/v1/marginType", params)
    assert isinstance(rest_error(status, body, headers), NoChangeNeeded)
    _, first, _ = await rest(fake, http, "POST", "/fapi/v1/listenKey", signed=False)
    _, again, _ = await rest(fake, http, "POST", "/fapi/v1/listenKey", signed=False)
    assert first == again and len(first["listenKey"]) == 64
    assert (await rest(fake, http, "PUT", "/fapi/v1/listenKey", signed=False))[0] == 200
    assert (await rest(fake, http, "DELETE", "/fapi/v1/listenKey", signed=False))[0] == 200
    status, body, headers = await rest(fake, http, "PUT", "/fapi/v1/listenKey", signed=False)
    assert isinstance(rest_error(status, body, headers), InvalidListenKey)
    status, body, _ = await rest(fake, http, "POST", "/fapi/v1/listenKey", signed=False,
                                 api_key="nobody")
    assert (status, body["code"]) == (401, -2015)


async def test_rest_order_validation_and_queries(fake: FakeBinance,
                                                 http: aiohttp.ClientSession) -> None:
    async def place(**params: Any) -> tuple[int, Any, Any]:
        base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                "quantity": "0.010", "price": "60000.00"}
        return await rest(fake, http, "POST", "/fapi/v1/order", base | params)

    for params, code in [({"type": "STOP_MARKET"}, -4120), ({"quantity": "0.0105"}, -1111),
                         ({"quantity": "0.001"}, -4164), ({"price": "60000.05"}, -4014),
                         ({"positionSide": "LONG"}, -4061), ({"reduceOnly": "true"}, -2022),
                         ({"symbol": "DOGEUSDT"}, -1121), ({"quantity": "5.000"}, -2019)]:
        status, body, headers = await place(**params)
        assert (status, body["code"]) == (400, code), params
        assert "X-MBX-ORDER-COUNT-10S" in headers
    assert isinstance(classify(-4120, "", 400), UseAlgoOrder)
    status, order, _ = await place(newClientOrderId="rest-1")
    assert (status, order["status"], order["clientOrderId"]) == (200, "NEW", "rest-1")
    assert "avgPrice" not in order                      # removed from placement results
    assert (await place(newClientOrderId="rest-1"))[1]["code"] == -4116
    _, open_orders, _ = await rest(fake, http, "GET", "/fapi/v1/openOrders",
                                   {"symbol": "BTCUSDT"})
    assert [o["clientOrderId"] for o in open_orders] == ["rest-1"]
    _, queried, _ = await rest(fake, http, "GET", "/fapi/v1/order",
                               {"symbol": "BTCUSDT", "origClientOrderId": "rest-1"})
    assert queried["orderId"] == order["orderId"] and queried["avgPrice"] == "0.00000"
    status, body, _ = await rest(fake, http, "GET", "/fapi/v1/order",
                                 {"symbol": "BTCUSDT", "origClientOrderId": "nope"})
    assert (status, body["code"]) == (400, -2013)
    _, canceled, _ = await rest(fake, http, "DELETE", "/fapi/v1/order",
                                {"symbol": "BTCUSDT", "orderId": order["orderId"]})
    assert canceled["status"] == "CANCELED"
    assert (await rest(fake, http, "GET", "/fapi/v1/openOrders"))[1] == []
    assert len(fake.calls("POST /fapi/v1/order")) == 10


# --------------------------------------------------------------------------- WS API


async def test_ws_api_signature_rejection(fake: FakeBinance) -> None:
    async with websockets.connect(fake.ws_api_url) as ws:
        api = WsApi(ws, fake)
        bad = await api.call("order.place", market_order("BUY", "0.010", "sig-1"),
                             signer=HmacSigner("not-the-secret"))
        assert (bad.status, bad.error_code) == (400, -1022)
        assert isinstance(bad.exception(), Fatal) and bad.rate_limits
        unknown = await api.call("order.place", market_order("BUY", "0.010", "sig-2"),
                                 api_key="nobody")
        assert (unknown.status, unknown.error_code) == (401, -2015)
        unsigned = await api.call("order.place", market_order("BUY", "0.010", "sig-3"),
                                  sign=False)
        assert unsigned.error_code == -1102
        tampered = sign_ws_params(market_order("BUY", "0.010", "sig-4"), api_key=fake.api_key,
                                  signer=HmacSigner(fake.api_secret),
                                  timestamp_ms=local_ms())
        tampered["quantity"] = "0.020"
        await ws.send(json.dumps({"id": "t", "method": "order.place", "params": tampered}))
        assert parse_ws_api_response(await ws.recv()).error_code == -1022
    assert fake.account.orders == {}
    assert len(fake.calls("order.place")) == 4


async def test_order_lifecycle_on_the_user_stream(fake: FakeBinance) -> None:
    api, user, _ = await open_session(fake)
    placed = await api.call("order.place", market_order("BUY", "0.010", "entry-1"))
    assert placed.ok and placed.result["status"] == "NEW"      # ACK: before the fill
    assert [r.rate_limit_type for r in placed.rate_limits] == ["REQUEST_WEIGHT", "ORDERS",
                                                               "ORDERS"]
    new, lite, trade, account = await user.take(4)
    assert [new["e"], lite["e"], trade["e"], account["e"]] == [
        "ORDER_TRADE_UPDATE", "TRADE_LITE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]
    assert parse_user_event(new).status is OrderStatus.NEW
    fill = parse_user_event(trade)
    assert isinstance(fill, OrderUpdate) and isinstance(parse_user_event(lite), TradeLite)
    assert (fill.client_order_id, fill.status, fill.last_fill_qty, fill.last_fill_price) == (
        "entry-1", OrderStatus.FILLED, D("0.010"), D("68000"))
    assert (fill.commission, fill.realized_pnl) == (D("0.34"), 0)   # taker 0.05 %
    (balance,), (position,) = parse_user_event(account)
    assert (position.quantity, position.entry_price) == (D("0.010"), D("68000"))
    assert balance.wallet_balance == D("9999.66")

    fake.set_price("BTCUSDT", "69000")
    exit_ = await api.call("order.place", market_order("SELL", "0.010", "exit-1",
                                                       reduceOnly=True,
                                                       newOrderRespType="RESULT"))
    assert exit_.result["status"] == "FILLED" and exit_.result["reduceOnly"] is True
    close = parse_user_event(await user.until(
        lambda f: f["e"] == "ORDER_TRADE_UPDATE" and f["o"]["x"] == "TRADE"))
    assert (close.realized_pnl, close.commission) == (D("10"), D("0.345"))
    (_,), (flat,) = parse_user_event(await user.until(lambda f: f["e"] == "ACCOUNT_UPDATE"))
    assert flat.quantity == 0 and fake.wallet_balance == D("10009.315")
    status = await api.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "exit-1"})
    assert (status.result["status"], status.result["avgPrice"]) == ("FILLED", "69000.00000")
    assert [p["newClientOrderId"] for p in fake.calls("order.place")] == ["entry-1", "exit-1"]
    await api.ws.close()
    await user.ws.close()


async def test_limit_order_rests_then_fills_as_maker_and_cancel(fake: FakeBinance) -> None:
    api, user, key = await open_session(fake, mode="stream")
    limit = {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": D("0.100"), "price": D("2450.00"), "newClientOrderId": "lim-1"}
    assert (await api.call("order.place", limit)).ok
    frame = await user.next()
    assert frame["stream"] == key and frame["data"]["o"]["X"] == "NEW"
    fake.set_price("ETHUSDT", "2449.50")
    trade = await user.until(lambda f: f["data"].get("o", {}).get("x") == "TRADE")
    fill = parse_user_event(trade)
    assert (fill.last_fill_price, fill.commission, trade["data"]["o"]["m"]) == (
        D("2450"), D("0.049"), True)                   # maker 0.02 %
    assert fill.order_id > 2**53                       # ETHUSDT ids exceed 2^53
    gtx = limit | {"timeInForce": "GTX", "price": D("2460.00"), "newClientOrderId": "lim-2"}
    assert (await api.call("order.place", gtx)).error_code == -5022
    resting = limit | {"price": D("2400.00"), "newClientOrderId": "lim-3"}
    assert (await api.call("order.place", resting)).ok
    canceled = await api.call("order.cancel", {"symbol": "ETHUSDT", "origClientOrderId": "lim-3"})
    assert canceled.result["status"] == "CANCELED"
    frame = await user.until(lambda f: f["data"]["e"] == "ORDER_TRADE_UPDATE"
                             and f["data"]["o"]["x"] == "CANCELED")
    assert parse_user_event(frame).client_order_id == "lim-3"
    again = await api.call("order.cancel", {"symbol": "ETHUSDT", "origClientOrderId": "lim-3"})
    assert again.error_code == -2011
    await api.ws.close()
    await user.ws.close()


async def test_algo_stop_triggers_and_fills(fake: FakeBinance, http: aiohttp.ClientSession
                                            ) -> None:
    api, user, _ = await open_session(fake)
    await api.call("order.place", market_order("BUY", "0.020", "entry-2"))
    await user.take(4)
    stop = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
            "type": "STOP_MARKET", "triggerPrice": D("67000.00"), "closePosition": True,
            "workingType": "MARK_PRICE", "clientAlgoId": "sl-1"}
    placed = await api.call("algoOrder.place", stop)
    assert placed.ok and placed.result["algoStatus"] == "NEW"
    algo_id = placed.result["algoId"]
    new = parse_user_event(await user.next())
    assert isinstance(new, AlgoUpdate) and (new.status, new.me_order_id) == (AlgoStatus.NEW, None)
    _, open_algos, _ = await rest(fake, http, "GET", "/fapi/v1/openAlgoOrders")
    assert [a["clientAlgoId"] for a in open_algos] == ["sl-1"]

    fake.set_price("BTCUSDT", "67500")                 # not crossed yet
    await user.nothing()
    fake.set_price("BTCUSDT", "66990")
    frames = await user.take(7)
    events = [parse_user_event(f) for f in frames]
    assert [f["e"] for f in frames] == [
        "ALGO_UPDATE", "ALGO_UPDATE", "ORDER_TRADE_UPDATE", "TRADE_LITE",
        "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ALGO_UPDATE"]
    triggering, triggered, me_new, _, me_fill, (_, (position,)), finished = events
    assert (triggering.status, triggering.me_order_id) == (AlgoStatus.TRIGGERING, None)
    assert triggered.status is AlgoStatus.TRIGGERED and triggered.me_order_id is not None
    assert me_new.order_id == triggered.me_order_id == me_fill.order_id
    assert me_fill.client_order_id == "sl-1" and frames[4]["o"]["ot"] == "STOP_MARKET"
    assert (me_fill.status, me_fill.last_fill_qty, me_fill.reduce_only) == (
        OrderStatus.FILLED, D("0.020"), True)
    assert me_fill.realized_pnl == D("-20.2")           # (66990 - 68000) * 0.02
    assert position.quantity == 0
    assert (finished.status, finished.executed_qty, finished.avg_price) == (
        AlgoStatus.FINISHED, D("0.020"), D("66990"))
    assert finished.algo_id == algo_id
    assert (await rest(fake, http, "GET", "/fapi/v1/openAlgoOrders"))[1] == []
    await api.ws.close()
    await user.ws.close()


async def test_algo_cancel_and_immediate_trigger(fake: FakeBinance,
                                                 http: aiohttp.ClientSession) -> None:
    api, user, _ = await open_session(fake)
    take_profit = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                   "type": "TAKE_PROFIT_MARKET", "triggerPrice": D("67000.00"),
                   "quantity": D("0.010"), "reduceOnly": True, "clientAlgoId": "tp-1"}
    wrong_side = await api.call("algoOrder.place", take_profit)   # price 68000 >= 67000
    assert isinstance(wrong_side.exception(), WouldImmediatelyTrigger)
    stop = take_profit | {"type": "STOP_MARKET"}
    assert (await api.call("algoOrder.place", stop)).ok
    status, body, _ = await rest(fake, http, "DELETE", "/fapi/v1/algoOrder",
                                 {"clientAlgoId": "tp-1"})
    assert (status, body["code"], body["msg"]) == (200, "200", "success")
    frames = await user.take(2)
    assert [parse_user_event(f).status for f in frames] == [AlgoStatus.NEW, AlgoStatus.CANCELED]
    gone = await api.call("algoOrder.cancel", {"clientAlgoId": "tp-1"})
    assert gone.error_code == -2011
    await api.ws.close()
    await user.ws.close()


async def test_reduce_only_stop_without_position_is_rejected_at_trigger(
        fake: FakeBinance) -> None:
    api, user, _ = await open_session(fake)
    stop = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
            "type": "STOP_MARKET", "triggerPrice": D("67000.00"), "closePosition": "true"}
    assert (await api.call("algoOrder.place", stop)).ok
    fake.set_price("BTCUSDT", "66000")
    statuses = [parse_user_event(f) for f in await user.take(3)]
    assert [a.status for a in statuses] == [AlgoStatus.NEW, AlgoStatus.TRIGGERING,
                                            AlgoStatus.REJECTED]
    assert statuses[-1].reason == "Reduce Only reject"
    await api.ws.close()
    await user.ws.close()


async def test_session_logon_with_ed25519(fake: FakeBinance) -> None:
    ed = Ed25519Signer(fake.ed25519_private_key)
    async with websockets.connect(fake.ws_api_url + "?returnRateLimits=false") as ws:
        api = WsApi(ws, fake)
        hmac_logon = await api.call("session.logon", api_key=fake.api_key)
        assert hmac_logon.error_code == -4056
        before = await api.call("session.status", sign=False)
        assert before.result["apiKey"] is None and before.rate_limits == ()
        logon = await api.call("session.logon", api_key=fake.ed25519_api_key, signer=ed)
        assert logon.ok and logon.result["apiKey"] == fake.ed25519_api_key
        order = market_order("BUY", "0.010", "ed-1") | {"timestamp": local_ms()}
        placed = await api.call("order.place", order, sign=False)      # no apiKey/signature
        assert placed.ok and placed.result["clientOrderId"] == "ed-1"
        await api.call("session.logout", sign=False)
        refused = await api.call("order.place", market_order("BUY", "0.010", "ed-2")
                                 | {"timestamp": local_ms()}, sign=False)
        assert refused.error_code == -1102
        signed = await api.call("v2/account.position", {}, api_key=fake.ed25519_api_key,
                                signer=ed)
        assert [p["positionAmt"] for p in signed.result] == ["0.010"]


async def test_account_queries(fake: FakeBinance, http: aiohttp.ClientSession) -> None:
    async with websockets.connect(fake.ws_api_url) as ws:
        api = WsApi(ws, fake)
        await api.call("order.place", market_order("SELL", "0.010", "short-1"))
        fake.set_price("BTCUSDT", "67000")
        (balance,) = (await api.call("v2/account.balance")).result
        assert balance["asset"] == "USDT" and D(balance["balance"]) == D("9999.66")
        (position,) = (await api.call("v2/account.position", {"symbol": "BTCUSDT"})).result
        assert (D(position["positionAmt"]), D(position["unRealizedProfit"])) == (
            D("-0.010"), D("10"))
        status = (await api.call("v2/account.status")).result
        assert D(status["totalUnrealizedProfit"]) == D("10")
    _, v2, _ = await rest(fake, http, "GET", "/fapi/v2/positionRisk")
    _, v3, _ = await rest(fake, http, "GET", "/fapi/v3/positionRisk")
    assert len(v2) == 2 and [p["symbol"] for p in v3] == ["BTCUSDT"]
    assert v2[0]["leverage"] == "20" and v2[0]["marginType"] == "cross"


# --------------------------------------------------------------------------- market streams


async def test_market_routes(fake: FakeBinance) -> None:
    base = fake.stream_url
    async with (websockets.connect(f"{base}/market/stream?streams=btcusdt@aggTrade/"
                                   "btcusdt@bookTicker") as market,
                websockets.connect(f"{base}/public/stream?streams=btcusdt@bookTicker") as public,
                websockets.connect(f"{base}/market/ws/btcusdt@aggTrade") as raw,
                websockets.connect(f"{base}/stream?streams=btcusdt@aggTrade") as legacy):
        assert await fake.push_market("btcusdt@aggTrade", AGG) == 2
        assert await fake.push_market("btcusdt@bookTicker", BOOK) == 1   # /public only
        frame = await Events(market).next()
        assert frame["stream"] == "btcusdt@aggTrade"
        assert parse_market_event(frame) == MarketTick("BTCUSDT", 1771263510195, 1771263510041,
                                                       68005.0, 2.695, True)
        assert await Events(raw).next() == AGG                           # no envelope
        assert (await Events(public).next())["data"] == BOOK
        await Events(market).nothing()                 # bookTicker is not on /market
        await Events(legacy).nothing()                 # retired URL: handshake, then silence
        await market.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"],
                                      "id": 1}))
        assert await Events(market).next() == {"result": None, "id": 1}
        assert fake.market_subscribers("ethusdt@aggTrade") == 1
        await market.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert (await Events(market).next())["result"] == [
            "btcusdt@aggTrade", "btcusdt@bookTicker", "ethusdt@aggTrade"]
        assert fake.connections("legacy") == 1


@pytest.mark.parametrize(("stream", "route"), [
    ("btcusdt@bookTicker", "public"), ("!bookTicker", "public"), ("btcusdt@depth", "public"),
    ("btcusdt@depth5@100ms", "public"), ("btcusdt@aggTrade", "market"),
    ("btcusdt@markPrice@1s", "market"), ("btcusdt@kline_1m", "market"),
    ("!markPrice@arr@1s", "market"),
])
def test_stream_routes(stream: str, route: str) -> None:
    assert stream_route(stream) == route


async def test_user_stream_refuses_unknown_listen_key(fake: FakeBinance) -> None:
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"{fake.stream_url}/private/ws?listenKey=nope")
