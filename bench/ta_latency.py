"""/ta latency from a warm cache, the worker's REST weight per hour, and the engine's tick
latency while /ta charts are rendered.

    .venv/bin/python bench/ta_latency.py [--answers 200] [--charts 60] [--seconds 20]

1. /ta answer time: ``handlers.cmd_market.answer_ta`` called directly (no Telegram) on a
   ``MarketData`` warmed from the fake Binance (BTCUSDT 1m history of the shared klines file,
   MARKET_TIMEFRAMES 1m..4h, 499 bars each): indicators and verdict on 5 timeframes, the text,
   and optionally the chart; with the analysis in a spawned process (the default) and in a
   thread. Targets: p95 < 50 ms without the chart, < 300 ms with it.
2. REST weight the worker spends per simulated hour for 10 watched symbols (BTCUSDT traded, 9
   on the watchlist), counted by the worker's budget and by the fake server: with healthy
   streams (their frames are fed to the cache every 5 s of simulated time, klines closing on
   time) and with the streams down the whole hour (REST fallback on every TTL).
3. Engine tick latency: ticks due on a schedule (10,000/s in batches of 10, as a stream
   reader hands them over) through ``bus.publish(MarketTick)`` of the paper engine (TRENDING,
   FOLLOW_ORDERS, ORDERING, paper exchange, ledger, market-data bus listener); latency from a
   tick's due time to the end of its publish (event-loop lateness + engine work), idle and
   while a task renders /ta charts back to back in the process / thread executor.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from core.binance.clock import ServerClock  # noqa: E402
from core.binance.market_rest import INTERVAL_MS, MarketRest, WorkerBudget  # noqa: E402
from core.binance.rate_limit import RateLimiter  # noqa: E402
from core.binance.rest import RestClient  # noqa: E402
from core.engine import build_engine  # noqa: E402
from core.events import MarketTick  # noqa: E402
from core.market.data import market_from_settings  # noqa: E402
from core.market.ta import make_executor  # noqa: E402
from handlers.cmd_market import answer_ta  # noqa: E402
from handlers.i18n import Texts  # noqa: E402
from tests.fakes.binance_market import FakeBinanceMarket  # noqa: E402
from utils.settings import Settings  # noqa: E402

KLINES = ROOT.parent / "shared" / "data" / "binance-usdm" / "BTCUSDT-1m-2023-04-15.csv"
WATCHED = ["ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT",
           "LINKUSDT", "LTCUSDT"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class SimClock:
    """Monotonic seconds ``()`` and server ms ``now_ms()`` from one simulated time."""

    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def __call__(self) -> float:
        return self.ms / 1000

    def now_ms(self) -> int:
        return self.ms


def market_for(fake: FakeBinanceMarket, settings: Settings, clock=None, executor=None):
    """MarketData on the fake's REST, with its own limiter (on ``clock`` when given)."""
    limiter = RateLimiter(clock if clock is not None else ServerClock())
    rest = RestClient(fake.rest_url, api_key=None, signer=None, clock=limiter.clock,
                      limiter=limiter)
    budget = WorkerBudget(limiter, settings.market_worker_budget_fraction)
    kw = {"clock": clock} if clock is not None else {}
    market = market_from_settings(settings, rest=MarketRest(rest, budget, limiter.clock.now_ms),
                                  executor_factory=executor, **kw)
    return market, rest, budget


# ---------------------------------------------------------------------- 1. /ta answer time


async def answer_times(kind: str, answers: int, charts: int) -> dict[str, list[float]]:
    # no streams here: long TTLs keep the entries fresh, as the streams do in the bot
    ttls = {f"market_ttl_{k}_s": 3600 for k in ("klines", "mark", "ticker", "open_interest")}
    settings = Settings(_env_file=None, data_dir=tempfile.mkdtemp(), **ttls)
    async with FakeBinanceMarket(KLINES) as fake:
        market, rest, _ = market_for(fake, settings, executor=partial(make_executor, kind))
        try:
            await market.refresh_due()  # warm: every timeframe, mark, ticker, OI
            texts = Texts("en")
            for _ in range(3):  # executor start (a spawned process loads its libraries)
                await answer_ta(market, texts, "BTCUSDT", "1m", chart=True)
            out: dict[str, list[float]] = {"text": [], "chart": []}
            requests = len(fake.requests)
            for chart, n in ((False, answers), (True, charts)):
                for i in range(n):
                    t0 = time.perf_counter()
                    answer = await answer_ta(market, texts, "BTCUSDT", ("1m", "15m")[i % 2],
                                             chart=chart)
                    out["chart" if chart else "text"].append(time.perf_counter() - t0)
                    assert (answer.chart is not None) is chart
            assert len(fake.requests) == requests, "a warm /ta must not call Binance"
            return out
        finally:
            await rest.close()
            await market.stop()


# ---------------------------------------------------------------------- 2. weight per hour


def _frames(symbol: str, now_ms: int, bars: dict, last_close: float) -> list[str]:
    """Stream frames of one 5 s step: klines (closing bars first), markPrice, ticker."""
    out = []
    for tf, step in ((tf, INTERVAL_MS[tf]) for tf in ("1m", "5m", "15m", "1h", "4h")):
        start = now_ms - now_ms % step
        prev = bars.get(tf)
        if prev is not None and prev < start:
            out.append(_kline(symbol, tf, prev, step, last_close, closed=True))
        bars[tf] = start
        out.append(_kline(symbol, tf, start, step, last_close, closed=False))
    out.append(orjson.dumps({"stream": f"{symbol.lower()}@markPrice@1s", "data": {
        "e": "markPriceUpdate", "E": now_ms, "s": symbol, "p": f"{last_close:.2f}",
        "i": f"{last_close:.2f}", "P": f"{last_close:.2f}", "r": "0.00010000",
        "T": now_ms + 3_600_000}}).decode())
    out.append(orjson.dumps({"stream": f"{symbol.lower()}@ticker", "data": {
        "e": "24hrTicker", "E": now_ms, "s": symbol, "p": "1.0", "P": "0.1", "w": "1",
        "c": f"{last_close:.2f}", "Q": "1", "o": "1", "h": f"{last_close:.2f}",
        "l": f"{last_close:.2f}", "v": "100", "q": "100", "O": now_ms - 86_400_000,
        "C": now_ms, "F": 1, "L": 2, "n": 3}}).decode())
    return out


def _kline(symbol: str, tf: str, start: int, step: int, price: float, *, closed: bool) -> str:
    return orjson.dumps({"stream": f"{symbol.lower()}@kline_{tf}", "data": {
        "e": "kline", "E": start + step - 1, "s": symbol, "k": {
            "t": start, "T": start + step - 1, "s": symbol, "i": tf, "f": 1, "L": 2,
            "o": f"{price:.2f}", "c": f"{price:.2f}", "h": f"{price:.2f}", "l": f"{price:.2f}",
            "v": "1.0", "n": 1, "x": closed, "q": "1", "V": "0", "Q": "0", "B": "0"}}}).decode()


async def weight_per_hour(streams_up: bool, step_s: float = 5.0) -> dict[str, float]:
    with KLINES.open() as f:  # the simulated hour starts where the fake's history ends
        last_open_ms = int(f.readlines()[-1].split(",", 1)[0])
    clock = SimClock(last_open_ms + 60_000)
    settings = Settings(_env_file=None, data_dir=tempfile.mkdtemp(), watchlist=WATCHED)
    async with FakeBinanceMarket(KLINES, extra_symbols=WATCHED[1:], clock_ms=clock.now_ms) as fake:
        market, rest, budget = market_for(fake, settings, clock=clock,
                                          executor=partial(ThreadPoolExecutor, 1))
        bars: dict[str, dict] = {s: {} for s in market.watched()}
        refused = 0
        try:
            end = clock.ms + 3_600_000
            while clock.ms < end:
                done = await market.refresh_due()
                refused += done.budget_exhausted
                clock.ms += int(step_s * 1000)
                if streams_up:
                    for symbol in market.watched():
                        close = fake.last_bar(symbol, "1m").close
                        for frame in _frames(symbol, clock.ms, bars[symbol], close):
                            market.on_stream_frame(frame)
            calls: dict[str, int] = {}
            for r in fake.requests:
                calls[r.method] = calls.get(r.method, 0) + 1
            return {"weight": budget.spent_total, "server_weight": fake.market_weight,
                    "refused_passes": refused, "gaps": market.gaps, **calls}
        finally:
            await rest.close()
            await market.stop()


# ---------------------------------------------------------------------- 3. tick latency


async def tick_latency(seconds: float, load: str | None, *, rate: int = 10_000,
                       batch: int = 10) -> dict[str, float]:
    """Ticks arrive on a schedule (``rate`` per second, in batches every ``batch / rate`` s,
    as a stream reader hands them over); each tick's latency is from its batch's due time to
    the end of its ``publish``: event-loop lateness (the loop busy elsewhere, or waiting for
    the GIL) plus the engine's own work. The loop spins between batches (``sleep(0)``), so
    any other task or thread that holds it up shows as lateness."""
    settings = Settings(_env_file=None, data_dir=tempfile.mkdtemp(), timeframe="1s")
    engine = build_engine(settings, persist=False)
    market = market_from_settings(settings, bus=engine.bus,
                                  executor_factory=partial(make_executor, load or "thread"))
    publish = engine.bus.publish
    t0 = 1_700_000_000_000
    stop = asyncio.Event()
    renders = 0

    async def render_forever() -> None:
        nonlocal renders
        texts = Texts("en")
        while not stop.is_set():
            await answer_ta(market, texts, "BTCUSDT", "1s", chart=True)
            renders += 1

    # history for the chart: 600 one-second candles built by TRENDING from ticks
    for i in range(600 * 4):
        publish(MarketTick("BTCUSDT", t0 + i * 250, t0 + i * 250, 30_000 + (i % 40) - 20, 0.01,
                           bool(i % 2)))
    task = None
    if load is not None:
        for _ in range(2):
            await answer_ta(market, Texts("en"), "BTCUSDT", "1s", chart=True)  # warm
        task = asyncio.create_task(render_forever())
    lat: list[float] = []
    engine_us: list[float] = []
    clock = time.perf_counter
    interval = batch / rate
    gc.collect()
    gc.freeze()  # the process's own heap (libraries, engine) out of the collector's way
    start = clock()
    n = 0
    while clock() - start < seconds:
        due = start + (n // batch) * interval
        await asyncio.sleep(0)  # other tasks run here, as between two stream frames
        # spin rather than sleep: epoll timers only have ms resolution
        while clock() < due:  # noqa: ASYNC110
            await asyncio.sleep(0)
        for _ in range(batch):
            ts = t0 + 600_000 + n
            ev = MarketTick("BTCUSDT", ts, ts, 30_000 + (n % 50) - 25, 0.01, bool(n % 3))
            a = clock()
            publish(ev)
            b = clock()
            engine_us.append((b - a) * 1e6)
            lat.append((b - due) * 1e6)
            n += 1
    stop.set()
    if task is not None:
        await task
    await market.stop()
    gc.unfreeze()
    return {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "p999": pct(lat, 0.999),
            "max": max(lat), "engine_p50": pct(engine_us, 0.5),
            "engine_p99": pct(engine_us, 0.99), "ticks": n, "renders": renders}


# ---------------------------------------------------------------------- main


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--answers", type=int, default=200)
    ap.add_argument("--charts", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="duration of each tick-latency run")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}")
    print("\n/ta answer time from a warm cache (BTCUSDT, 5 timeframes x 499 bars)")
    for kind in ("process", "thread"):
        t = await answer_times(kind, args.answers, args.charts)
        for what, xs in t.items():
            ms = [x * 1000 for x in xs]
            print(f"  {kind:<7} {what:<6} n={len(ms):<4} p50 {pct(ms, .5):6.1f} ms  "
                  f"p95 {pct(ms, .95):6.1f} ms  max {max(ms):6.1f} ms")
    print("\nREST weight per simulated hour, 10 watched symbols (BTCUSDT + 9 on the watchlist)")
    for up in (True, False):
        w = await weight_per_hour(up)
        label = "streams up  " if up else "streams down"
        calls = ", ".join(f"{k.split()[-1].rsplit('/', 1)[-1]} {v}" for k, v in w.items()
                          if k.startswith("GET "))
        print(f"  {label}: {w['weight']} weight/h (server counted {w['server_weight']}), "
              f"budget refusals in {w['refused_passes']} passes, gaps {w['gaps']}; {calls}")
    print("\nEngine tick latency: MarketTick due -> bus.publish done, 10,000 ticks/s, paper engine")
    for load in (None, "process", "thread"):
        r = await tick_latency(args.seconds, load)
        label = "idle" if load is None else f"+ /ta charts in {load}"
        print(f"  {label:<26} p50 {r['p50']:7.1f} µs  p99 {r['p99']:8.1f} µs  "
              f"p99.9 {r['p999']:8.1f} µs  max {r['max']:8.1f} µs; publish alone p50 "
              f"{r['engine_p50']:.2f} µs p99 {r['engine_p99']:.2f} µs; {r['ticks']} ticks, "
              f"{r['renders']} charts")

if __name__ == "__main__":
    asyncio.run(main())
