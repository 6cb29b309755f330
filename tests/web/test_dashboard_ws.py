"""The WebSocket channels: auth, subscription, message shape, live engine events during a
replay, and a client that stops reading is dropped while a reading one gets everything."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from bootstrap import build_services
from core.services import Services
from tests.conftest import eventually, shared_file
from tests.web.botthread import FAST_STRATEGY, TOKEN, dashboard_of, server_of
from utils.settings import load_settings
from web.dashboard import status_server
from web.hub import CHANNELS, CLOSE_TOO_SLOW

PROTOCOLS = ("dort5bot.v1", f"bearer.{TOKEN}")


def ws_url(services: Services, query: str = "") -> str:
    return f"http://127.0.0.1:{server_of(services).port}/api/v1/ws{query}"


async def idle_bot(tmp_path, **overrides) -> Services:
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", http_port=0,
                             api_token=TOKEN, market_analysis_executor="thread", **overrides)
    services = Services(settings, feed=None)
    services.attach(status_server(services))
    await services.start()
    return services


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict:
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def test_the_socket_needs_the_token_and_valid_channels(tmp_path):
    services = await idle_bot(tmp_path)
    try:
        async with aiohttp.ClientSession() as s:
            for protocols in ((), ("dort5bot.v1", "bearer.wrong")):
                with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                    await s.ws_connect(ws_url(services), protocols=protocols)
                assert exc.value.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await s.ws_connect(ws_url(services, "?channels=metrics,bogus"),
                                   protocols=PROTOCOLS)
            assert exc.value.status == 400
            async with s.ws_connect(ws_url(services), headers={
                    "Authorization": f"Bearer {TOKEN}"}) as ws:  # non-browser clients
                hello = await receive(ws)
                assert hello["type"] == "hello" and hello["data"]["channels"] == list(CHANNELS)
            async with s.ws_connect(ws_url(services), protocols=PROTOCOLS) as ws:
                assert ws.protocol == "dort5bot.v1"
                assert (await receive(ws))["data"]["subscribed"] == []
                await ws.send_str("not json")
                assert (await receive(ws))["type"] == "error"
                await ws.send_json({"type": "subscribe", "channels": ["nope"]})
                assert (await receive(ws))["type"] == "error"
                await ws.send_json({"type": "subscribe", "channels": ["metrics", "alerts"]})
                ack = await receive(ws)
                assert ack["type"] == "subscribed" and ack["data"]["channels"] == [
                    "alerts", "metrics"]
                metrics = await receive(ws)
                assert metrics["type"] == "metrics" and metrics["channel"] == "metrics"
                assert isinstance(metrics["ts_ms"], int) and metrics["data"]["mode"] in (
                    "ARMED", "DISARMED")
                services.engine.disarm(services.now_ms(), "test")
                while (msg := await receive(ws))["type"] != "alert":
                    pass
                assert "DISARMED" in msg["data"]["text"] and msg["channel"] == "alerts"
    finally:
        await services.stop()


@pytest.mark.realdata
async def test_a_replay_streams_candles_and_trade_updates(tmp_path):
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", http_port=0,
                             api_token=TOKEN, market_analysis_executor="thread",
                             **FAST_STRATEGY)
    services = build_services(settings, replay=[str(shared_file("btcusdt_20240808.gz"))],
                              speed=0)
    await services.start(start_feed=False)
    seen: dict[str, list[dict]] = {}
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                ws_url(services, "?channels=candles,trade_updates"), protocols=PROTOCOLS,
                max_msg_size=0) as ws:
            await receive(ws)  # hello
            services.start_feed()

            async def read() -> None:
                while True:
                    m = await receive(ws)
                    seen.setdefault(m["type"], []).append(m)

            reader = asyncio.get_running_loop().create_task(read())
            await services.wait_feed()
            await eventually(lambda: "trade_closed" in seen and len(seen.get("candle", [])) > 10,
                             timeout=10)
            reader.cancel()
        closed = services.engine.ledger.trades[0]
        msg = seen["trade_closed"][0]
        assert msg["channel"] == "trade_updates" and msg["ts_ms"] == closed.exit_ts_ms
        assert msg["data"]["net_pnl"] == str(closed.net_pnl)
        assert {"signal", "order", "position_opened"} <= set(seen)
        opened = seen["position_opened"][0]["data"]
        assert opened["symbol"] == "BTCUSDT" and opened["side"] in ("LONG", "SHORT")
        bars = [m["data"] for m in seen["candle"] if m["data"]["closed"]]
        assert bars and all(b["interval_ms"] == 5000 and b["open_ms"] % 5000 == 0 for b in bars)
    finally:
        await services.stop()


async def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_everything(tmp_path):
    services = await idle_bot(tmp_path, api_ws_queue=16)
    hub = dashboard_of(services).hub
    got: list[int] = []
    try:
        async with aiohttp.ClientSession() as s, \
                s.ws_connect(ws_url(services, "?channels=logs"), protocols=PROTOCOLS) as slow, \
                s.ws_connect(ws_url(services, "?channels=logs"), protocols=PROTOCOLS,
                             max_msg_size=0) as fast:
            await receive(fast)
            await eventually(lambda: len(hub.clients) == 2)

            async def read_fast() -> None:
                while True:
                    m = await receive(fast)
                    if "n" in m["data"]:  # not a real log line (the drop is logged too)
                        got.append(m["data"]["n"])

            reader = asyncio.get_running_loop().create_task(read_fast())
            blob = "x" * 65_536
            sent = 0
            while hub.dropped == 0:
                assert sent < 5_000, "the slow client was never dropped"
                hub.enqueue("logs", "log", sent, {"n": sent, "line": blob})
                sent += 1
                await eventually(lambda n=sent: len(got) == n, timeout=10)
            assert len(hub.clients) == 1
            closing = await slow.receive(timeout=10)
            while closing.type is aiohttp.WSMsgType.TEXT:  # drain what was sent before
                closing = await slow.receive(timeout=10)
            assert slow.close_code == CLOSE_TOO_SLOW
            hub.enqueue("logs", "log", sent, {"n": sent, "line": "after"})
            await eventually(lambda: len(got) == sent + 1, timeout=10)
            assert got == list(range(sent + 1))
            reader.cancel()
    finally:
        await services.stop()
