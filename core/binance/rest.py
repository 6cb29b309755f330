"""REST client for what the WebSocket API cannot do (shared/binance/PROTOCOL.md §2.5, §6).

Server time, exchangeInfo, leverage, margin type, the position-mode check, the listenKey
fallback, and the reads reconciliation needs that have no WS API method (open orders, open
algo orders, an algo order, user trades). ``place_order`` exists for the latency bench and as
a fallback; the adapter trades over the WS API.

Every request goes through the shared ``RateLimiter`` (weights of §5) and reports the
``X-MBX-*`` headers back to it. Errors become the ``core.binance.errors`` classes: a 429/418
blocks the limiter for ``Retry-After``; -1021 resyncs the clock and retries once (the request
was not executed); a timeout is ``UnknownOutcome``. Signed queries are never logged and never
part of an exception message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from core.binance.clock import ServerClock, local_ms
from core.binance.errors import (
    ClockSkew,
    ExchangeError,
    RetryLater,
    UnknownOutcome,
    classify,
    scrub,
)
from core.binance.rate_limit import RateLimiter
from core.binance.signing import SecretLike, Signer, rest_query, reveal, signed_rest_query

logger = logging.getLogger(__name__)

NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"


class RestClient:
    """aiohttp client for ``base_url`` (e.g. https://fapi.binance.com).

    Args:
        api_key: sent in ``X-MBX-APIKEY``; None for public data only.
        signer: HMAC or Ed25519 signer for SIGNED endpoints.
        clock: server time (timestamps); ``sync_time`` updates it.
        limiter: shared rate-limit pools.
        recv_window_ms: ``recvWindow`` of signed requests.
        timeout_s: total time per request; beyond it the outcome is unknown.
    """

    def __init__(self, base_url: str, *, api_key: SecretLike | str | None, signer: Signer | None,
                 clock: ServerClock, limiter: RateLimiter, recv_window_ms: int = 5000,
                 timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._signer = signer
        self.clock = clock
        self.limiter = limiter
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), trust_env=False)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ------------------------------------------------------------------ core

    async def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                      *, security: str = NONE, weight: int = 1, orders: int = 0,
                      urgent: bool = False) -> Any:
        """Send one request; the decoded JSON body on success.

        Raises:
            ExchangeError: the classified error (see core.binance.errors); ``UnknownOutcome``
                for a timeout or a lost connection after sending.
        """
        for attempt in (1, 2):
            try:
                return await self._once(method, path, params or {}, security, weight, orders,
                                        urgent)
            except ClockSkew:
                if attempt == 2:
                    raise
                logger.warning("REST %s %s: -1021 timestamp outside recvWindow; resyncing the "
                               "clock and retrying once", method, path)
                await self.sync_time()
        raise AssertionError("unreachable")

    async def _once(self, method: str, path: str, params: Mapping[str, Any], security: str,
                    weight: int, orders: int, urgent: bool) -> Any:
        if self._session is None:
            await self.start()
        assert self._session is not None
        await self.limiter.acquire(weight, orders, urgent=urgent)
        headers = {}
        if security != NONE:
            if self._api_key is None:
                raise ExchangeError(f"{path} needs an API key", http_status=401)
            headers["X-MBX-APIKEY"] = reveal(self._api_key)
        if security == SIGNED:
            if self._signer is None:
                raise ExchangeError(f"{path} needs a signing key", http_status=401)
            query = signed_rest_query(params, signer=self._signer,
                                      timestamp_ms=self.clock.now_ms(),
                                      recv_window_ms=self.recv_window_ms)
        else:
            query = rest_query(params)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        try:
            async with self._session.request(method, url, headers=headers) as resp:
                body = await resp.read()
                self.limiter.observe_headers(resp.headers)
                status, retry = resp.status, resp.headers.get("Retry-After")
        except TimeoutError:
            raise UnknownOutcome(f"{method} {path}: no response within {self.timeout_s:g}s"
                                 ) from None
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            raise RetryLater(f"{method} {path}: cannot connect ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            raise UnknownOutcome(f"{method} {path}: connection failed ({type(exc).__name__})"
                                 ) from None
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if 200 <= status < 300 and not (isinstance(data, dict) and _is_error(data)):
            return data
        code = data.get("code") if isinstance(data, dict) else None
        msg = data.get("msg", "") if isinstance(data, dict) else scrub(body[:200].decode(
            "utf-8", "replace"))
        err = classify(code if isinstance(code, int) else None, str(msg), status,
                       _seconds(retry))
        self.limiter.backoff(err)
        raise err

    # ------------------------------------------------------------------ endpoints

    async def server_time(self) -> int:
        """``GET /fapi/v1/time`` -> server time, ms."""
        return int((await self.request("GET", "/fapi/v1/time"))["serverTime"])

    async def sync_time(self) -> int:
        """Set the clock's offset from ``GET /fapi/v1/time``; returns the offset (ms)."""
        sent = local_ms()
        server = await self.server_time()
        self.clock.update(server, sent, local_ms())
        logger.info("server clock offset %+d ms", self.clock.offset_ms)
        return self.clock.offset_ms

    async def exchange_info(self) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v1/exchangeInfo")

    async def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        return await self.request("POST", "/fapi/v1/leverage",
                                  {"symbol": symbol, "leverage": leverage}, security=SIGNED)

    async def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """``POST /fapi/v1/marginType``; -4046 (already so) is success."""
        from core.binance.errors import NoChangeNeeded

        try:
            await self.request("POST", "/fapi/v1/marginType",
                               {"symbol": symbol, "marginType": margin_type}, security=SIGNED)
        except NoChangeNeeded:
            pass

    async def hedge_mode(self) -> bool:
        """``GET /fapi/v1/positionSide/dual``: True when the account is in hedge mode."""
        body = await self.request("GET", "/fapi/v1/positionSide/dual", security=SIGNED,
                                  weight=30)
        return bool(body.get("dualSidePosition")) if isinstance(body, dict) else False

    async def start_listen_key(self) -> str:
        return (await self.request("POST", "/fapi/v1/listenKey", security=USER_STREAM))[
            "listenKey"]

    async def keepalive_listen_key(self) -> None:
        await self.request("PUT", "/fapi/v1/listenKey", security=USER_STREAM)

    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        params = {"symbol": symbol} if symbol else {}
        return await self.request("GET", "/fapi/v1/openOrders", params, security=SIGNED,
                                  weight=1 if symbol else 40)

    async def open_algo_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        params = {"symbol": symbol} if symbol else {}
        return await self.request("GET", "/fapi/v1/openAlgoOrders", params, security=SIGNED,
                                  weight=1 if symbol else 40)

    async def algo_order(self, client_algo_id: str) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v1/algoOrder", {"clientAlgoId": client_algo_id},
                                  security=SIGNED)

    async def query_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v1/order",
                                  {"symbol": symbol, "origClientOrderId": client_order_id},
                                  security=SIGNED)

    async def user_trades(self, symbol: str, order_id: int) -> list[dict[str, Any]]:
        """``GET /fapi/v1/userTrades?symbol&orderId``: the fills of one order."""
        return await self.request("GET", "/fapi/v1/userTrades",
                                  {"symbol": symbol, "orderId": order_id}, security=SIGNED,
                                  weight=5)

    async def klines(self, symbol: str, interval: str, limit: int) -> list[Any]:
        """``GET /fapi/v1/klines``: the last ``limit`` bars (``[openTime, o, h, l, c, ...]``)."""
        from core.binance.market_rest import klines_weight

        return await self.request("GET", "/fapi/v1/klines",
                                  {"symbol": symbol, "interval": interval, "limit": limit},
                                  weight=klines_weight(limit))

    async def leverage_brackets(self) -> Any:
        """``GET /fapi/v1/leverageBracket`` (USER_DATA, weight 1): every symbol's brackets."""
        return await self.request("GET", "/fapi/v1/leverageBracket", security=SIGNED)

    async def place_order(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /fapi/v1/order`` (counts ORDERS; weight 0)."""
        return await self.request("POST", "/fapi/v1/order", params, security=SIGNED, weight=0,
                                  orders=1)


def _is_error(data: dict[str, Any]) -> bool:
    code = data.get("code")
    return isinstance(code, int) and code < 0


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
