"""The market-data cache and its worker against the fake Binance (REST and streams): hits,
single-flight misses, stale -> refresh, the REST budget, unknown symbols, recovery from errors
and stream drops, the watchlist; /ta's readings checked against TA-Lib and TRENDING's rule on
the shared 1m klines file. Clocks are injected: no sleeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
import talib

from core.binance.market_rest import MarketRest, WorkerBudget, klines_weight
from core.binance.rate_limit import RateLimiter
from core.binance.rest import RestClient
from core.binance.streams import MarketStreams
from core.engine import build_engine
from core.market.data import MarketData, market_from_settings
from core.market.indicators_ta import candles_to_arrays
from core.market.series import (
    KlineSeries,
    NoMarketData,
    UnknownSymbol,
    Watchlist,
    WatchlistFull,
)
from core.market.ta_report import ta_report
from core.persisted import PersistError
from handlers.cmd_market import answer_ta
from handlers.i18n import Texts
from jobs.market_worker import MarketWorker, live_market
from tests.conftest import eventually, shared_file
from tests.fakes.binance_market import FakeBinanceMarket, read_klines_csv
from tests.fakes.ports import FakeMarketDataRest
from utils.settings import Settings

pytestmark = pytest.mark.realdata

KLINES = "BTCUSDT-1m-2023-04-15.csv"
KEY_1M = ("BTCUSDT", "1m")


class SimClock:
    """One simulated time for everything: monotonic seconds (``()``), server ms
    (``now_ms()``); starts on a minute boundary."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000 - 1_800_000_000_000 % 60_000

    def __call__(self) -> float:
        return self.ms / 1000

    def now_ms(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@dataclass
class Rig:
    fake: FakeBinanceMarket
    market: MarketData
    rest: RestClient
    limiter: RateLimiter
    budget: WorkerBudget
    clock: SimClock

    def klines_requests(self, symbol: str = "BTCUSDT", interval: str = "1m") -> int:
        return sum(1 for p in self.fake.market_calls("/fapi/v1/klines")
                   if p["symbol"] == symbol and p["interval"] == interval)


def make_market(fake: FakeBinanceMarket, settings: Settings, clock: SimClock
                ) -> tuple[MarketData, RestClient, RateLimiter, WorkerBudget]:
    limiter = RateLimiter(clock)
    rest = RestClient(fake.rest_url, api_key=None, signer=None, clock=clock, limiter=limiter)
    budget = WorkerBudget(limiter, settings.market_worker_budget_fraction)
    market = market_from_settings(settings, rest=MarketRest(rest, budget, clock.now_ms),
                                  clock=clock, executor_factory=partial(ThreadPoolExecutor, 1))
    return market, rest, limiter, budget


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[Rig]:
    clock = SimClock()
    async with FakeBinanceMarket(shared_file(KLINES), clock_ms=clock.now_ms) as fake:
        settings = Settings(_env_file=None, data_dir=tmp_path, market_analysis_executor="thread")
        market, rest, limiter, budget = make_market(fake, settings, clock)
        try:
            yield Rig(fake, market, rest, limiter, budget, clock)
        finally:
            await rest.close()
            await market.stop()


# ---------------------------------------------------------------------- cache behaviour


async def test_hit_after_a_load_sends_nothing(rig):
    first = await rig.market.get("klines", KEY_1M)
    again = await rig.market.get("klines", KEY_1M)
    assert again.value is first.value and not again.stale and again.problem == ""
    assert rig.klines_requests() == 1
    assert rig.fake.market_calls("/fapi/v1/klines")[0]["limit"] == "499"
    assert len(first.value) == 499 and rig.budget.spent_total == klines_weight(499) == 2


async def test_50_concurrent_misses_make_one_request(rig):
    pieces = await asyncio.gather(*(rig.market.get("klines", KEY_1M) for _ in range(50)))
    assert rig.klines_requests() == 1
    assert len({id(p.value) for p in pieces}) == 1 and all(not p.stale for p in pieces)


async def test_stale_entry_is_refreshed_on_the_next_read(rig):
    await rig.market.get("oi", "BTCUSDT")
    rig.clock.advance(59)
    assert (await rig.market.get("oi", "BTCUSDT")).age_s == 59
    rig.fake.open_interest["BTCUSDT"] = 90_000.0
    rig.clock.advance(1)  # MARKET_TTL_OPEN_INTEREST_S = 60
    piece = await rig.market.get("oi", "BTCUSDT")
    assert piece.value.open_interest == 90_000.0 and piece.age_s == 0 and not piece.stale
    assert len(rig.fake.market_calls("/fapi/v1/openInterest")) == 2


async def test_spent_budget_serves_stale_data_with_its_age(tmp_path):
    clock = SimClock()
    async with FakeBinanceMarket(shared_file(KLINES), clock_ms=clock.now_ms) as fake:
        # 0.001 x 2400 = 2 weight a minute: exactly one 499-bar klines request
        settings = Settings(_env_file=None, data_dir=tmp_path,
                            market_worker_budget_fraction=0.001)
        market, rest, _, budget = make_market(fake, settings, clock)
        try:
            await market.get("klines", KEY_1M)
            clock.advance(75)  # stale (TTL 60 s), in the next budget minute ...
            assert budget.cap == 2
            budget.take(budget.cap)  # ... which other worker requests have spent already
            piece = await market.get("klines", KEY_1M)
            assert piece.stale and piece.age_s == 75 and piece.problem == "budget"
            assert len(fake.market_calls("/fapi/v1/klines")) == 1 and budget.refusals == 1
            answer = await answer_ta(market, Texts("en"), "BTCUSDT", "1m", chart=False)
            assert "1m candles is 75 s old (request budget spent)" in answer.text
            assert (await market.get("oi", "BTCUSDT")).problem == "budget"  # nothing cached
            clock.advance(60)  # a new minute: the budget is back
            assert not (await market.get("klines", KEY_1M)).stale
        finally:
            await rest.close()
            await market.stop()


async def test_budget_also_refuses_when_the_connection_pool_is_full(rig):
    pool = rig.limiter.pools[("REQUEST_WEIGHT", 60_000)]
    pool.roll(rig.clock.now_ms())
    pool.used = int(pool.limit * rig.limiter.fraction)  # trading used the normal share
    assert (await rig.market.get("ticker", "BTCUSDT")).problem == "budget"
    assert rig.fake.market_calls("/fapi/v1/ticker/24hr") == []


async def test_unknown_symbol_is_refused_and_the_symbol_list_is_cached(rig):
    for _ in range(2):
        with pytest.raises(UnknownSymbol):
            await ta_report(rig.market, "NOPEUSDT")
    assert len(rig.fake.market_calls("/fapi/v1/exchangeInfo")) == 1
    answer = await answer_ta(rig.market, Texts("en"), "NOPEUSDT", None)
    assert answer.text == ("Unknown symbol NOPEUSDT: Binance USDⓈ-M futures does not list it.")
    assert answer.chart is None
    with pytest.raises(NoMarketData, match="no 2d candles"):
        await ta_report(rig.market, "BTCUSDT", "2d")


# ---------------------------------------------------------------------- the worker


async def test_worker_pass_warms_everything_within_the_budget_then_only_open_interest(rig):
    worker = MarketWorker(rig.market, rig.fake.stream_url)
    assert await worker.run_pass() == worker.refresh_s
    weight = 1 + 5 * klines_weight(499) + 3  # exchangeInfo, 5 timeframes, mark/ticker/OI
    assert rig.budget.spent_total == weight == rig.fake.market_weight
    assert rig.market.cache.get("klines", ("BTCUSDT", "4h")).value.timeframe == "4h"
    rig.clock.advance(5)
    await worker.run_pass()
    assert rig.budget.spent_total == weight  # everything fresh: nothing sent
    rig.clock.advance(55)
    for kind in ("klines", "mark", "ticker"):  # as if their streams had kept them fresh
        for key in ([("BTCUSDT", tf) for tf in rig.market.timeframes]
                    if kind == "klines" else ["BTCUSDT"]):
            rig.market.cache.put(kind, key, rig.market.cache.get(kind, key).value)
    await worker.run_pass()
    assert rig.budget.spent_total == weight + 1  # open interest only (REST, every TTL)


async def test_live_market_spends_the_ports_pool_and_closes_the_port(rig, tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path, market_analysis_executor="thread",
                        market_worker_budget_fraction=0.25)
    port = FakeMarketDataRest(rig.rest, rig.limiter)
    factory = live_market(settings, lambda: port, clock=rig.clock,
                          executor_factory=partial(ThreadPoolExecutor, 1))
    market, worker = factory(settings, build_engine(settings, persist=False))
    pool = rig.limiter.pools[("REQUEST_WEIGHT", 60_000)]
    before = pool.used
    try:
        await worker.run_pass()
        spent = port.budgets[0].spent_total
        assert port.fractions == [0.25] and spent > 0
        assert pool.used - before == spent == rig.fake.market_weight  # one pool: the port's
    finally:
        await worker.stop()
        await market.stop()
    assert port.closed == 1


async def test_worker_backs_off_on_errors_keeps_serving_and_recovers(rig):
    worker = MarketWorker(rig.market, rig.fake.stream_url, refresh_s=5, backoff_cap_s=60)
    await worker.run_pass()
    rig.clock.advance(61)
    rig.fake.fail_next(100)  # 503 Service Unavailable on every market-data request
    delays = [await worker.run_pass() for _ in range(4)]
    assert worker.failures == 4 and "503" in worker.last_error
    assert delays[-1] > delays[0] and max(delays) <= 60  # exponential, capped
    served = await rig.market.get("klines", KEY_1M)  # the old series, with its age
    assert served.stale and served.age_s == 61 and served.problem == "error"
    rig.fake.clear_failures()
    assert await worker.run_pass() == 5 and worker.last_error == ""
    assert not rig.market.cache.get("klines", KEY_1M).stale


async def test_worker_waits_what_binance_asks_after_a_429(rig):
    worker = MarketWorker(rig.market, rig.fake.stream_url, refresh_s=5)
    rig.fake.throttle_next(1, retry_after_s=7)
    assert await worker.run_pass() == 7
    assert rig.limiter.blocked  # nothing goes out until the Retry-After passes ...
    assert (await worker.market.refresh_due()).budget_exhausted
    rig.clock.advance(7)
    assert await worker.run_pass() == 5  # ... then the warm-up completes


async def test_a_refused_symbol_backs_off_alone(tmp_path):
    clock = SimClock()
    async with FakeBinanceMarket(shared_file(KLINES), clock_ms=clock.now_ms) as fake:
        (tmp_path / "watchlist.json").write_text(json.dumps({"symbols": ["GONEUSDT"]}))
        settings = Settings(_env_file=None, data_dir=tmp_path)
        market, rest, _, _ = make_market(fake, settings, clock)
        try:
            done = await market.refresh_due()
            assert done.errors == 8 and not done.budget_exhausted  # 5 klines, mark, ticker, OI
            assert market.cache.get("klines", KEY_1M) is not None  # the others loaded
            calls = len(fake.requests)
            assert (await market.refresh_due()).errors == 0 and len(fake.requests) == calls
        finally:
            await rest.close()
            await market.stop()


# ---------------------------------------------------------------------- streams


async def test_streams_keep_series_current_and_a_drop_with_lost_bars_reloads(rig):
    fake, market = rig.fake, rig.market
    streams = partial(MarketStreams, backoff_base_s=0.01, backoff_cap_s=0.05)
    worker = MarketWorker(market, fake.stream_url, refresh_s=3600, silence_s=60,
                          streams_factory=streams)
    await worker.start()
    try:
        await eventually(lambda: worker.passes == 1 and worker.streams is not None
                         and worker.streams.connected())
        assert fake.market_subscribers("btcusdt@kline_1m") == 1
        series: KlineSeries = market.cache.get("klines", KEY_1M).value
        bar = fake.next_bar("BTCUSDT", "1m", close=30_300.0)
        await fake.push_kline(bar._replace(close=30_290.0), "1m", closed=False)
        await eventually(lambda: series.current is not None)
        assert series.current.close == 30_290.0 and series.last_open_ms == bar.open_ms - 60_000
        await fake.push_kline(bar, "1m", closed=True)
        await fake.push_mark("BTCUSDT", 30_301.5, rate=0.0002)
        await eventually(lambda: series.last_open_ms == bar.open_ms
                         and market.cache.get("mark", "BTCUSDT").value.mark_price == 30_301.5)
        assert series.current is None and series.closed[-1].close == 30_300.0
        fake.add_bar(bar, "1m")

        await fake.drop_all_sockets()  # bars are lost while the stream is down
        lost = fake.next_bar("BTCUSDT", "1m")
        fake.add_bar(lost, "1m")
        after = fake.next_bar("BTCUSDT", "1m", close=30_310.0)
        await eventually(lambda: worker.streams.reconnects >= 1 and worker.streams.connected())
        await fake.push_kline(after, "1m", closed=False)
        await eventually(lambda: market.gaps == 1)
        assert market.cache.get("klines", KEY_1M).stale  # expired: the next read reloads
        reloaded = (await market.get("klines", KEY_1M)).value
        assert rig.klines_requests() == 2 and reloaded.last_open_ms == lost.open_ms
        assert reloaded.current.open_ms == after.open_ms  # the update seen meanwhile is kept
    finally:
        await worker.stop()


async def test_stream_frames_go_through_the_shared_parsers_and_coin_m_is_dropped(rig):
    market = rig.market
    mark = {"e": "markPriceUpdate", "E": 1_700_000_000_000, "s": "BTCUSDT", "p": "30301.50",
            "ap": "30300.00", "P": "30302.00", "i": "30299.00", "r": "0.00020000",
            "T": 1_700_006_400_000}
    ticker = {"e": "24hrTicker", "E": 1_700_000_000_000, "s": "BTCUSDT", "p": "10", "P": "0.5",
              "w": "30000", "c": "30300.0", "Q": "1", "o": "30000", "h": "30400", "l": "29900",
              "v": "100", "q": "3000000", "O": 0, "C": 1, "F": 1, "L": 2, "n": 3}
    for payload in (mark, ticker):  # COIN-M (st 2, since the 2026 CM migration): dropped
        market.on_stream_frame(json.dumps({"stream": "x", "data": {**payload, "st": 2}}))
    assert market.cache.get("mark", "BTCUSDT") is None
    assert market.cache.get("ticker", "BTCUSDT") is None
    for payload in (mark, ticker):
        market.on_stream_frame(json.dumps({"stream": "x", "data": {**payload, "st": 1}}))
    assert market.cache.get("mark", "BTCUSDT").value.mark_price == 30_301.5
    assert market.cache.get("ticker", "BTCUSDT").value.last_price == 30_300.0
    market.on_stream_frame(json.dumps({**mark, "p": "nan"}))  # counted and dropped
    market.on_stream_frame("{not json")
    assert market.bad_frames == 2
    assert market.cache.get("mark", "BTCUSDT").value.mark_price == 30_301.5


async def test_watch_adds_streams_and_persists(rig, tmp_path):
    market = rig.market
    worker = MarketWorker(market, rig.fake.stream_url, refresh_s=3600, silence_s=60)
    await worker.start()
    try:
        await eventually(lambda: worker.passes == 1)
        assert await market.watch("ETHUSDT") is True
        assert await market.watch("ETHUSDT") is False and await market.watch("BTCUSDT") is False
        with pytest.raises(UnknownSymbol):
            await market.watch("NOPEUSDT")
        await eventually(lambda: rig.fake.market_subscribers("ethusdt@kline_4h") == 1
                         and rig.fake.market_subscribers("btcusdt@kline_1m") == 1
                         and market.cache.get("oi", "ETHUSDT") is not None)
        assert json.loads((tmp_path / "watchlist.json").read_text()) == {"version": 1,
                                                                       "symbols": ["ETHUSDT"]}
        assert Watchlist(tmp_path / "watchlist.json", ["SOLUSDT"]).symbols == ("ETHUSDT",)
        assert market.unwatch("BTCUSDT") is False and market.unwatch("ETHUSDT") is True
        await eventually(lambda: rig.fake.market_subscribers("ethusdt@kline_4h") == 0)
    finally:
        await worker.stop()


def test_watchlist_bounds_and_a_bad_file(tmp_path):
    path = tmp_path / "watchlist.json"
    wl = Watchlist(path, ["ethusdt"], max_size=2)
    assert wl.symbols == ("ETHUSDT",) and not path.exists()
    assert wl.add("SOLUSDT") and not wl.add("SOLUSDT")
    with pytest.raises(WatchlistFull):
        wl.add("XRPUSDT")
    assert Watchlist(path, ["XRPUSDT"], max_size=2).symbols == ("ETHUSDT", "SOLUSDT")
    path.write_text('{"symbols": ["BTCUSDT", "BTCUSDT"]}')  # version 1; duplicates folded
    assert Watchlist(path).symbols == ("BTCUSDT",)


@pytest.mark.parametrize(("content", "field"), [
    ("{not json", "(document)"),
    ('["ETHUSDT"]', "(document)"),
    ('{"symbols": "ETHUSDT"}', "symbols"),
    ('{"symbols": ["ETHUSDT", "eth/usdt"]}', "symbols.1"),
    ('{"symbols": [NaN]}', "symbols.0"),
    ('{"symbols": ["A", "B", "C"]}', "symbols.0"),
    ('{"symbols": ["ETHUSDT", "SOLUSDT", "XRPUSDT"]}', "symbols"),
    ('{"symbols": [], "extra": 1}', "extra"),
    ('{"version": 2, "symbols": []}', "version"),
])
def test_a_bad_watchlist_file_stops_naming_the_field_and_is_kept(tmp_path, content, field):
    path = tmp_path / "watchlist.json"
    path.write_text(content)
    with pytest.raises(PersistError) as err:
        Watchlist(path, ["ETHUSDT"], max_size=2)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"field '{field}'" in msg, msg
    assert path.read_text() == content


def test_kline_series_folds_updates_and_detects_gaps():
    bars = read_klines_csv(shared_file(KLINES))[:5]
    s = KlineSeries("BTCUSDT", "1m", 60_000, bars[:3], maxlen=3)
    assert s.apply(bars[3]._replace(closed=False)) and s.current.open_ms == bars[3].open_ms
    assert s.apply(bars[1]) and s.apply(bars[2]._replace(close=1.0))  # old / correction
    assert s.closed[-1].close == 1.0
    assert s.apply(bars[3]) and s.current is None and len(s) == 3  # maxlen drops the oldest
    assert not s.apply(bars[4]._replace(open_ms=bars[4].open_ms + 60_000))


# ---------------------------------------------------------------------- /ta readings


async def test_ta_readings_equal_talib_and_the_trending_verdict(rig, tmp_path):
    report = await ta_report(rig.market, "BTCUSDT", "1m", chart=True)
    reading = next(r for r in report.readings if r.timeframe == "1m")
    csv_bars = read_klines_csv(shared_file(KLINES))[-499:]
    a = candles_to_arrays(csv_bars)
    macd, signal, hist = talib.MACD(a.close, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(a.close, 20, 2.0, 2.0, matype=talib.MA_Type.SMA)
    expected = {
        "close": a.close[-1], "rsi": talib.RSI(a.close, 14)[-1], "macd": macd[-1],
        "macd_signal": signal[-1], "macd_hist": hist[-1], "ema20": talib.EMA(a.close, 20)[-1],
        "ema50": talib.EMA(a.close, 50)[-1], "ema200": talib.EMA(a.close, 200)[-1],
        "adx": talib.ADX(a.high, a.low, a.close, 14)[-1],
        "atr": talib.ATR(a.high, a.low, a.close, 14)[-1], "bb_upper": upper[-1],
        "bb_middle": middle[-1], "bb_lower": lower[-1],
        "volume_ratio": a.volume[-1] / talib.SMA(a.volume, 20)[-1],
    }
    got = reading.values._asdict()
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, err_msg=name)
    assert reading.bars == 499 and report.last_bar_ms["1m"] == csv_bars[-1].open_ms

    # TRENDING, fed the same candles through the engine's bus, holds the same verdict
    engine = build_engine(Settings(_env_file=None, data_dir=tmp_path), persist=False)
    for c in csv_bars:
        engine.publish(c)
    verdict = engine.trending.verdict("BTCUSDT")
    assert (reading.bias, reading.detail) == (verdict.bias, verdict.detail)
    assert report.chart is not None and report.chart.startswith(b"\x89PNG")
    assert report.mark.value.funding_rate == 0.0001 and report.open_interest.value is not None
    assert report.ticker.value.last_price == csv_bars[-1].close


async def test_replay_market_data_comes_from_the_engine_bus(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path, market_analysis_executor="thread")
    engine = build_engine(settings, persist=False)
    market = market_from_settings(settings, bus=engine.bus)
    try:
        for c in read_klines_csv(shared_file(KLINES))[:300]:
            engine.publish(c)
        assert not market.live and market.timeframes_for("BTCUSDT") == ("1m",)
        report = await ta_report(market, "BTCUSDT", chart=False)
        assert report.timeframe == "1m" and report.chart is None
        assert report.readings[0].bias == engine.trending.verdict("BTCUSDT").bias
        with pytest.raises(UnknownSymbol):
            await ta_report(market, "ETHUSDT")
        assert not await market.watch("BTCUSDT")
    finally:
        await market.stop()


def _sigint_disposition() -> object:
    import signal

    return signal.getsignal(signal.SIGINT)


def test_the_analysis_process_ignores_ctrl_c_so_it_never_prints_a_traceback():
    """Ctrl-C signals the whole foreground process group; the spawned /ta worker must leave
    shutting down to the bot instead of dying with a KeyboardInterrupt traceback."""
    import signal

    from core.market.ta import make_executor

    executor = make_executor("process")
    try:
        assert executor.submit(_sigint_disposition).result(timeout=60) == signal.SIG_IGN
    finally:
        executor.shutdown()
