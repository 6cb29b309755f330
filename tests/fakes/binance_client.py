"""Raw test clients for the fake Binance: REST over aiohttp, a bare WS API client and a frame
reader, signing with core.binance.signing and parsing with core.binance.parse. The ``fake``
and ``http`` fixtures are in tests/core/binance/conftest.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import websockets

from core.binance.errors import ExchangeError, classify
from core.binance.models import WsApiResponse
from core.binance.parse import parse_ws_api_response
from core.binance.signing import (
    HmacSigner,
    Signer,
    rest_query,
    sign_ws_params,
    signed_rest_query,
    ws_params,
)
from tests.fakes.binance import FakeBinance

D = Decimal


def local_ms() -> int:
    """The client's clock (the fake's clock can be skewed with ``clock_offset_ms``)."""
    return int(time.time() * 1000)


async def rest(fake: FakeBinance, http: aiohttp.ClientSession, method: str, path: str,
               params: dict[str, Any] | None = None, *, signed: bool = True,
               api_key: str | None = None, secret: str | None = None,
               signer: Signer | None = None) -> tuple[int, Any, Any]:
    if signed:
        signer = signer or HmacSigner(secret or fake.api_secret)
        query = signed_rest_query(params or {}, signer=signer, timestamp_ms=local_ms())
    else:
        query = rest_query(params or {})
    headers = {"X-MBX-APIKEY": api_key or fake.api_key}
    async with http.request(method, f"{fake.rest_url}{path}?{query}", headers=headers) as r:
        return r.status, await r.json(), r.headers


def rest_error(status: int, body: dict[str, Any], headers: Any) -> ExchangeError:
    retry = headers.get("Retry-After")
    return classify(body.get("code"), body.get("msg", ""), status,
                    float(retry) if retry else None)


class WsApi:
    """A bare WS API client: signs with core.binance.signing, parses with core.binance.parse."""

    def __init__(self, ws: Any, fake: FakeBinance) -> None:
        self.ws, self.fake, self.ids = ws, fake, itertools.count(1)

    async def send(self, method: str, params: dict[str, Any] | None = None, *,
                   sign: bool = True, api_key: str | None = None,
                   signer: Signer | None = None) -> int:
        p = ws_params(params or {})
        if sign:
            p = sign_ws_params(p, api_key=api_key or self.fake.api_key,
                               signer=signer or HmacSigner(self.fake.api_secret),
                               timestamp_ms=local_ms())
        req_id = next(self.ids)
        await self.ws.send(json.dumps({"id": req_id, "method": method, "params": p}))
        return req_id

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   **kw: Any) -> WsApiResponse:
        req_id = await self.send(method, params, **kw)
        response = parse_ws_api_response(await asyncio.wait_for(self.ws.recv(), 2))
        assert response.id == req_id
        return response


class Events:
    """Reads JSON frames from a stream socket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def next(self, timeout: float = 2) -> Any:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def take(self, n: int) -> list[Any]:
        return [await self.next() for _ in range(n)]

    async def until(self, pred: Callable[[Any], bool]) -> Any:
        while not pred(frame := await self.next()):
            pass
        return frame

    async def nothing(self, timeout: float = 0.05) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.ws.recv(), timeout)


async def open_session(fake: FakeBinance, mode: str = "ws") -> tuple[WsApi, Events, str]:
    """A WS API client plus a user stream on /private/<mode>?listenKey=..."""
    api_ws = await websockets.connect(fake.ws_api_url)
    api = WsApi(api_ws, fake)
    started = await api.call("userDataStream.start", {"apiKey": fake.api_key}, sign=False)
    key = started.result["listenKey"]
    user_ws = await websockets.connect(f"{fake.stream_url}/private/{mode}?listenKey={key}")
    return api, Events(user_ws), key


def market_order(side: str, qty: str, cid: str, **extra: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": D(qty),
            "newClientOrderId": cid, **extra}


# Market payloads in the live 2026 shape (aggTrade with nq/st), for push_market.
AGG = {"e": "aggTrade", "E": 1771263510195, "a": 1, "s": "BTCUSDT", "p": "68005.00",
       "q": "2.695", "nq": "2.695", "f": 1, "l": 2, "T": 1771263510041, "m": True, "st": 1}
BOOK = {"e": "bookTicker", "u": 1, "s": "BTCUSDT", "b": "68005.00", "B": "2.394",
        "a": "68005.10", "A": "0.857", "T": 1, "E": 1}
