import asyncio

import pytest

from utils.cache import BudgetExhausted, Entry, MarketCache

TTLS = {"mark": 2.0, "klines": 30.0, "ticker24h": 10.0}


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingLoader:
    """An async loader that returns ``value`` (or raises ``error``), optionally held open on
    ``gate`` until the test sets it."""

    def __init__(self, value=None, *, error: BaseException | None = None, hold: bool = False):
        self.value, self.error = value, error
        self.calls = 0
        self.was_cancelled = False
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()

    async def __call__(self):
        self.calls += 1
        self.started.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.was_cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock) -> MarketCache:
    return MarketCache(TTLS, clock=clock, wall_clock=lambda: 1_681_516_800_000 + int(clock.now))


async def test_put_then_get_is_a_fresh_hit(cache, clock):
    assert cache.get("mark", "BTCUSDT") is None
    cache.put("mark", "BTCUSDT", 30_000.5)
    clock.advance(1.5)
    entry = cache.get("mark", "BTCUSDT")
    assert entry == Entry(30_000.5, 1_681_516_800_000 + 1000, 1.5, False)
    loader = CountingLoader(1.0)
    assert (await cache.get_or_load("mark", "BTCUSDT", loader)).value == 30_000.5
    assert loader.calls == 0
    assert (cache.stats.hits, cache.stats.misses, cache.stats.loads) == (2, 1, 0)


async def test_miss_under_50_concurrent_callers_runs_the_loader_once(cache):
    loader = CountingLoader({"price": 30_000.0}, hold=True)
    others = CountingLoader("never used")
    tasks = [
        asyncio.create_task(cache.get_or_load("mark", "BTCUSDT", loader if i == 0 else others))
        for i in range(50)
    ]
    await loader.started.wait()
    assert cache.stats.misses == 50  # every caller is waiting on the one load
    loader.gate.set()
    entries = await asyncio.gather(*tasks)
    assert loader.calls == 1 and others.calls == 0
    assert all(e.value == {"price": 30_000.0} and not e.stale for e in entries)
    assert len({id(e.value) for e in entries}) == 1
    assert (cache.stats.misses, cache.stats.loads) == (50, 1)


async def test_stale_entry_is_refreshed(cache, clock):
    await cache.get_or_load("mark", "BTCUSDT", CountingLoader(1.0))
    clock.advance(2.0)  # TTL of "mark" reached
    stale = cache.get("mark", "BTCUSDT")
    assert stale.stale and stale.age_s == 2.0 and stale.value == 1.0
    fresh = await cache.get_or_load("mark", "BTCUSDT", CountingLoader(2.0))
    assert fresh.value == 2.0 and not fresh.stale and fresh.age_s == 0.0
    assert fresh.fetched_at == stale.fetched_at + 2
    assert cache.stats.loads == 2


async def test_loader_error_with_stale_entry_serves_it_with_its_age(cache, clock):
    cache.put("ticker24h", "ETHUSDT", {"last": 1900.0})
    clock.advance(25.0)
    entry = await cache.get_or_load("ticker24h", "ETHUSDT", CountingLoader(error=OSError("down")))
    assert entry.value == {"last": 1900.0}
    assert entry.stale and entry.age_s == 25.0
    assert cache.stats.stale_served == 1


async def test_loader_error_is_raised_when_stale_is_not_allowed(cache, clock):
    cache.put("ticker24h", "ETHUSDT", 1.0)
    clock.advance(25.0)
    with pytest.raises(OSError):
        await cache.get_or_load(
            "ticker24h",
            "ETHUSDT",
            CountingLoader(error=OSError("down")),
            allow_stale_on_error=False,
        )


async def test_loader_error_without_entry_is_raised_to_every_waiter(cache):
    loader = CountingLoader(error=RuntimeError("HTTP 502"), hold=True)
    tasks = [
        asyncio.create_task(cache.get_or_load("klines", "BTCUSDT:1m", loader)) for _ in range(5)
    ]
    await loader.started.wait()
    loader.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert loader.calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "HTTP 502" for r in results)
    assert cache.get("klines", "BTCUSDT:1m") is None
    # the failure is not remembered: the next call loads again
    entry = await cache.get_or_load("klines", "BTCUSDT:1m", CountingLoader([1, 2]))
    assert entry.value == [1, 2]


async def test_budget_exhausted_serves_stale_with_age(cache, clock):
    cache.put("klines", "BTCUSDT:1m", [1, 2, 3])
    clock.advance(95.0)
    spent = CountingLoader(error=BudgetExhausted())
    entry = await cache.get_or_load("klines", "BTCUSDT:1m", spent)
    assert entry.stale and entry.age_s == 95.0 and entry.value == [1, 2, 3]
    assert cache.stats.stale_served == 1
    with pytest.raises(BudgetExhausted):
        await cache.get_or_load("klines", "ETHUSDT:1m", CountingLoader(error=BudgetExhausted()))


async def test_cancelled_caller_cancels_its_load_and_does_not_poison_the_key(cache):
    stuck = CountingLoader("never", hold=True)
    caller = asyncio.create_task(cache.get_or_load("mark", "BTCUSDT", stuck))
    await stuck.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert stuck.was_cancelled  # nobody waits for it any more, so the load was cancelled too
    entry = await cache.get_or_load("mark", "BTCUSDT", CountingLoader(3.0))
    assert entry.value == 3.0 and not entry.stale
    assert cache.stats.loads == 2


async def test_one_cancelled_waiter_does_not_cancel_the_shared_load(cache):
    loader = CountingLoader(5.0, hold=True)
    first = asyncio.create_task(cache.get_or_load("mark", "BTCUSDT", loader))
    second = asyncio.create_task(cache.get_or_load("mark", "BTCUSDT", loader))
    await loader.started.wait()
    assert cache.stats.misses == 2
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    loader.gate.set()
    assert (await second).value == 5.0
    assert loader.calls == 1 and first.cancelled()


async def test_loader_raising_cancelled_error_does_not_poison_the_key(cache):
    gone = CountingLoader(error=asyncio.CancelledError(), hold=True)
    caller = asyncio.create_task(cache.get_or_load("mark", "BTCUSDT", gone))
    await gone.started.wait()
    gone.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    entry = await cache.get_or_load("mark", "BTCUSDT", CountingLoader(4.0))
    assert entry.value == 4.0


async def test_ttls_differ_per_kind(cache, clock):
    cache.put("mark", "BTCUSDT", 1.0)
    cache.put("klines", "BTCUSDT", [1.0])
    clock.advance(5.0)
    assert cache.get("mark", "BTCUSDT").stale
    assert not cache.get("klines", "BTCUSDT").stale
    clock.advance(25.0)
    assert cache.get("klines", "BTCUSDT").stale


async def test_same_key_in_different_kinds_are_separate_entries(cache):
    cache.put("mark", "BTCUSDT", 1.0)
    assert cache.get("ticker24h", "BTCUSDT") is None


def test_unknown_kind_and_bad_ttl_are_rejected(cache):
    with pytest.raises(KeyError, match="open_interest"):
        cache.get("open_interest", "BTCUSDT")
    with pytest.raises(ValueError, match="mark"):
        MarketCache({"mark": -1.0})


def test_size_is_bounded_least_recently_used_first(clock):
    cache = MarketCache({"mark": 60.0}, maxsize=2, clock=clock)
    cache.put("mark", "A", 1)
    cache.put("mark", "B", 2)
    cache.get("mark", "A")
    cache.put("mark", "C", 3)
    assert len(cache) == 2
    assert cache.get("mark", "B") is None and cache.get("mark", "A").value == 1


async def test_expired_entry_is_served_stale_with_its_true_age_then_reloaded(cache, clock):
    assert cache.expire("klines", ("BTCUSDT", "1m")) is False
    cache.put("klines", ("BTCUSDT", "1m"), "series with a gap")
    clock.advance(3.0)
    assert cache.expire("klines", ("BTCUSDT", "1m")) is True
    entry = cache.get("klines", ("BTCUSDT", "1m"))
    assert entry.stale and entry.age_s == 3.0 and entry.value == "series with a gap"
    failing = await cache.get_or_load("klines", ("BTCUSDT", "1m"),
                                      CountingLoader(error=BudgetExhausted("spent")))
    assert failing.stale and failing.value == "series with a gap"
    loader = CountingLoader("reloaded")
    fresh = await cache.get_or_load("klines", ("BTCUSDT", "1m"), loader)
    assert loader.calls == 1 and fresh.value == "reloaded" and not fresh.stale
