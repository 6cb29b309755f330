"""Rate-limit pools (sans-I/O, on a fake clock) and the REST client's use of them against the
fake Binance: headers read, 429/418 with Retry-After, -1021 retried once."""

from __future__ import annotations

import aiohttp
import pytest

from core.binance.clock import Backoff, ServerClock
from core.binance.errors import IpBanned, RetryLater, UnknownOutcome, classify
from core.binance.models import RateLimit
from core.binance.parse import parse_rate_limits
from core.binance.rate_limit import RateLimiter
from core.binance.rest import RestClient
from core.binance.signing import HmacSigner
from core.events import RateLimitBackoff
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_data import RATE_LIMITS


class FakeClock(ServerClock):
    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        super().__init__()
        self.t = now_ms

    def now_ms(self) -> int:
        return self.t


def limiter(**kw) -> tuple[RateLimiter, FakeClock, list[RateLimitBackoff]]:
    clock = FakeClock()
    seen: list[RateLimitBackoff] = []

    async def sleep(s: float) -> None:
        clock.t += int(s * 1000) + 1

    lim = RateLimiter(clock, on_backoff=seen.append, sleep=sleep, **kw)
    return lim, clock, seen


async def test_configured_pools_and_local_counts() -> None:
    lim, clock, _ = limiter()
    lim.configure(parse_rate_limits(RATE_LIMITS))
    assert lim.status() == {"REQUEST_WEIGHT 1m": (0, 2400), "ORDERS 1m": (0, 1200),
                            "ORDERS 10s": (0, 300)}
    await lim.acquire(5)
    await lim.acquire(0, 1)
    assert lim.status() == {"REQUEST_WEIGHT 1m": (5, 2400), "ORDERS 1m": (1, 1200),
                            "ORDERS 10s": (1, 300)}
    clock.t += 60_000
    assert lim.status()["REQUEST_WEIGHT 1m"] == (0, 2400)


async def test_queue_briefly_then_refuse_before_the_limit() -> None:
    lim, clock, seen = limiter(fraction=0.8, max_wait_s=2.0)
    clock.t = 1_700_000_009_000  # 1 s before a 10 s window ends
    for _ in range(240):  # 80 % of 300 orders / 10 s
        await lim.acquire(0, 1)
    t0 = clock.t
    await lim.acquire(0, 1)  # queued until the 10 s window rolls (1 s)
    assert 1000 <= clock.t - t0 <= 1100
    assert seen and seen[0].pool == "ORDERS 10s" and seen[0].detail == "queueing"
    clock.t = 1_700_000_011_000  # same window as the queued order: 1 used
    for _ in range(239):
        await lim.acquire(0, 1)
    with pytest.raises(RetryLater, match="ORDERS 10s limit reached"):
        await lim.acquire(0, 1)  # 9 s to wait > 2 s: refused, nothing sent
    await lim.acquire(0, 1, urgent=True)  # closing orders may use the remaining 20 %


async def test_server_counts_raise_local_counts() -> None:
    lim, _, _ = limiter()
    lim.observe([RateLimit(rate_limit_type="REQUEST_WEIGHT", interval="MINUTE",
                           interval_num=1, limit=2400, count=1900)])
    lim.observe_headers({"X-MBX-USED-WEIGHT-1M": "1000", "X-MBX-ORDER-COUNT-10S": "7"})
    assert lim.status()["REQUEST_WEIGHT 1m"] == (1900, 2400)
    assert lim.status()["ORDERS 10s"] == (7, 300)
    wait, pool = lim.check(30)
    assert wait > 0 and pool is not None and pool.name == "REQUEST_WEIGHT 1m"


async def test_429_blocks_for_retry_after_and_418_bans() -> None:
    lim, clock, seen = limiter(max_wait_s=2.0)
    lim.backoff(classify(-1003, "Too many requests", 429, 1.5))
    assert lim.blocked and seen[-1].pool == "IP" and seen[-1].retry_after_s == 1.5
    t0 = clock.t
    await lim.acquire(1)  # waits the Retry-After out (1.5 s <= 2 s)
    assert clock.t - t0 >= 1500
    lim.backoff(classify(-1003, "Too many requests", 429, None))  # no header: 2 s default
    assert lim.blocked_until_ms - clock.t == 2000
    clock.t = lim.blocked_until_ms
    lim.backoff(classify(-1003, "IP banned until ...", 418, 0.5))
    assert seen[-1].banned
    with pytest.raises(IpBanned):
        await lim.acquire(1)  # a ban refuses at once, however short
    clock.t += 600
    await lim.acquire(1)


def test_backoff_grows_with_jitter_and_resets() -> None:
    import random

    b = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [b.next() for _ in range(6)]
    caps = [0.5, 1, 2, 4, 4, 4]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=False))
    b.reset()
    assert b.next() <= 0.5


# --------------------------------------------------------------------------- REST client


async def rest_client(fake: FakeBinance, secret: str | None = None) -> RestClient:
    clock = ServerClock()
    lim = RateLimiter(clock, max_wait_s=0.1)
    client = RestClient(fake.rest_url, api_key=fake.api_key,
                        signer=HmacSigner(secret or fake.api_secret), clock=clock, limiter=lim)
    await client.start()
    return client


async def test_rest_reads_weight_headers(fake: FakeBinance) -> None:
    client = await rest_client(fake)
    try:
        await client.sync_time()
        await client.open_algo_orders("BTCUSDT")
        used, limit = client.limiter.status()["REQUEST_WEIGHT 1m"]
        assert used == fake.rates.weight.count and limit == 2400
        await client.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                  "quantity": "0.010", "newClientOrderId": "rest-1"})
        assert client.limiter.status()["ORDERS 10s"][0] == fake.rates.orders_10s.count == 1
    finally:
        await client.close()


async def test_rest_429_retry_after_header_blocks_the_limiter(fake: FakeBinance) -> None:
    client = await rest_client(fake)
    try:
        fake.throttle_next(1, status=429, retry_after_s=1)
        with pytest.raises(RetryLater) as err:
            await client.server_time()
        assert err.value.retry_after_s == 1.0 and client.limiter.blocked
        sent = len(fake.requests)
        with pytest.raises(RetryLater):
            await client.server_time()  # refused locally while blocked (1 s > 0.1 s)
        assert len(fake.requests) == sent
    finally:
        await client.close()


async def test_rest_minus_1021_resyncs_and_retries_once(fake: FakeBinance) -> None:
    client = await rest_client(fake)
    try:
        fake.clock_offset_ms = 8_000
        fake.skew_next(1)
        assert (await client.hedge_mode()) is False
        assert 7_900 <= client.clock.offset_ms <= 8_100
        assert len(fake.calls("GET /fapi/v1/positionSide/dual")) == 2
    finally:
        await client.close()


async def test_rest_unreachable_is_retry_later_not_unknown() -> None:
    clock = ServerClock()
    client = RestClient("http://127.0.0.1:9", api_key=None, signer=None, clock=clock,
                        limiter=RateLimiter(clock), timeout_s=2)
    try:
        with pytest.raises(RetryLater):
            await client.server_time()
    finally:
        await client.close()
    assert not issubclass(RetryLater, UnknownOutcome)
    assert aiohttp  # the client is aiohttp
