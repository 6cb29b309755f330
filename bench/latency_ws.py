"""Order latency of the live adapter over loopback, against the fake Binance.

    .venv/bin/python bench/latency_ws.py [--signals 1000] [--round-trips 500]

1. Tick to order: the real engine (TRENDING, FOLLOW_ORDERS, ORDERING, ledger) on the real
   ``BinanceConnection`` and ``MarketStreams``. Each aggTrade frame pushed by the fake makes a
   bench strategy publish a TradeSignal (when flat) or a CloseRequest (when open); ORDERING
   checks it and submits; the adapter signs and writes ``order.place``. Measured from the
   moment the stream reader has the frame (before JSON parsing) to the moment the order frame
   is written to the socket, over ``--signals`` orders (half entries, half exits). The next
   frame is pushed once the fill, the SL/TP algo orders and their cancellation have settled,
   so each measurement sees an idle loop. Targets: p50 < 200 µs, p99 < 1 ms.
2. Round trip of the same MARKET order (alternating BUY/SELL 0.002 BTCUSDT, HMAC-signed) over
   the WS API (``order.place``, answer frame received) and over REST (``POST /fapi/v1/order``
   on a keep-alive aiohttp session), ``--round-trips`` each.

The fake runs in the same process and event loop (it answers between measurements, never
during one). Rate-limit pools are raised for the bench: 1,000 orders in seconds would
otherwise be queued by the adapter's own ORDERS 300/10 s pool, as they should be live.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.binance.live import live_connection_factory  # noqa: E402
from core.binance.models import RateLimit  # noqa: E402
from core.binance.streams import MarketStreams, stream_names  # noqa: E402
from core.engine import build_engine  # noqa: E402
from core.events import (  # noqa: E402
    CloseRequest,
    EngineMode,
    ExitReason,
    MarketTick,
    Side,
    TradeSignal,
)
from tests.conftest import eventually  # noqa: E402
from tests.fakes.binance import FakeBinance  # noqa: E402
from tests.fakes.live_harness import FAST, settings_for  # noqa: E402

D = Decimal
AGG = {"e": "aggTrade", "E": 0, "a": 0, "s": "BTCUSDT", "p": "68000.00", "q": "0.010",
       "nq": "0.010", "f": 1, "l": 1, "T": 0, "m": False, "st": 1}


# 1,000 losing round trips in seconds: the RISK guardian would (rightly) stop them after 5 losses
# in a row or 12 entries an hour; its checks still run, its limits are off (0 = off).
NO_RISK_LIMITS = {k: 0 for k in (
    "risk_max_consecutive_losses", "risk_max_entries_per_hour", "risk_max_entries_per_day",
    "risk_daily_loss_usdt", "risk_daily_loss_pct", "risk_max_drawdown_pct",
    "risk_max_orders_per_minute")}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(name: str, us: list[float]) -> None:
    print(f"{name:<34} n={len(us):<5} p50 {pct(us, 0.5):8.1f} µs   p99 {pct(us, 0.99):8.1f} µs"
          f"   mean {statistics.fmean(us):8.1f} µs   max {max(us):8.1f} µs")


def unlimited(conn) -> None:
    big = [RateLimit(rate_limit_type="REQUEST_WEIGHT", interval="MINUTE", interval_num=1,
                     limit=10**9),
           RateLimit(rate_limit_type="ORDERS", interval="SECOND", interval_num=10, limit=10**9),
           RateLimit(rate_limit_type="ORDERS", interval="MINUTE", interval_num=1, limit=10**9)]
    conn.limiter.configure(big)
    conn.limiter.fraction = 1.0
    conn.limiter.observe = lambda limits: None  # the fake's counts would refill the pools
    conn.limiter.observe_headers = lambda headers: None


async def tick_to_order(fake: FakeBinance, data_dir: Path, signals: int,
                        persist: bool = False) -> list[float]:
    settings = settings_for(fake, data_dir, **NO_RISK_LIMITS)
    setup = live_connection_factory(settings, **FAST | {"request_timeout_s": 5.0})
    engine = build_engine(settings, connection_factory=setup.connection_factory,
                          persist=persist, default_mode=EngineMode.DISARMED)
    conn = engine.connection
    await conn.start()
    streams = MarketStreams(fake.stream_url, stream_names(["BTCUSDT"], ["aggTrade"]),
                            publish=engine.bus.publish, silence_s=60)
    await streams.start()
    samples: list[float] = []

    def on_sent(method: str, _id: int) -> None:
        if method == "order.place":
            samples.append((time.perf_counter_ns() - streams.last_frame_ns) / 1000)

    conn.api.on_sent = on_sent
    bus, state = engine.bus, engine.state

    def strategy(tick: MarketTick) -> None:  # a signal on every trade
        if state.phase.value == "FLAT":
            bus.publish(TradeSignal(symbol="BTCUSDT", side=Side.LONG, entry_price=D("68000"),
                                    quantity=D("0.010"), stop_loss=D("60000"),
                                    take_profit=D("80000"), leverage=5, reason="bench",
                                    ts_ms=tick.ts_ms))
        elif state.phase.value == "OPEN":
            bus.publish(CloseRequest(symbol="BTCUSDT", reason=ExitReason.SIGNAL, ts_ms=tick.ts_ms))

    bus.subscribe(MarketTick, strategy)
    try:
        await eventually(lambda: conn.ready and fake.market_subscribers("btcusdt@aggTrade") == 1,
                         timeout=10)
        unlimited(conn)
        engine.arm(reason="bench")
        for i in range(signals):
            now = conn.clock.now_ms()
            await fake.push_market("btcusdt@aggTrade", AGG | {"E": now, "T": now, "a": i})
            if i % 2 == 0:
                await eventually(lambda: state.phase.value == "OPEN"
                                 and len(fake.account.open_algos(None)) == 2, timeout=10)
            else:
                await eventually(lambda: state.phase.value == "FLAT"
                                 and not fake.account.open_algos(None)
                                 and not conn.busy, timeout=10)
        await eventually(lambda: len(samples) == signals, timeout=10)
    finally:
        await streams.stop()
        await conn.stop()
    return samples


async def round_trips(fake: FakeBinance, data_dir: Path, n: int) -> tuple[list[float],
                                                                          list[float]]:
    settings = settings_for(fake, data_dir)
    setup = live_connection_factory(settings, **FAST | {"request_timeout_s": 5.0})
    engine = build_engine(settings, connection_factory=setup.connection_factory,
                          persist=False, default_mode=EngineMode.DISARMED)
    conn = engine.connection
    await conn.start()
    try:
        await eventually(lambda: conn.ready, timeout=10)
        unlimited(conn)
        ws, rest = [], []
        for i in range(2 * n):
            params = {"symbol": "BTCUSDT", "side": "BUY" if i % 2 == 0 else "SELL",
                      "type": "MARKET", "quantity": D("0.002"), "newClientOrderId": f"rt-{i}"}
            t0 = time.perf_counter_ns()
            if i % 4 < 2:
                await conn.api.call("order.place", params, weight=0, orders=1)
                ws.append((time.perf_counter_ns() - t0) / 1000)
            else:
                await conn.rest.place_order(params)
                rest.append((time.perf_counter_ns() - t0) / 1000)
        return ws, rest
    finally:
        await conn.stop()


async def amain(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeBinance(balance=D("1000000")) as fake:
            samples = await tick_to_order(fake, Path(tmp) / "a", args.signals,
                                          persist=args.persist)
        async with FakeBinance(balance=D("1000000")) as fake:
            ws, rest = await round_trips(fake, Path(tmp) / "b", args.round_trips)
    print(f"python {sys.version.split()[0]}, loopback, fake Binance in-process")
    report("tick -> order.place written", samples)
    report("order round trip, WS API", ws)
    report("order round trip, REST", rest)
    p50, p99 = pct(samples, 0.5), pct(samples, 0.99)
    print(f"targets: p50 < 200 µs {'OK' if p50 < 200 else 'MISSED'}, "
          f"p99 < 1000 µs {'OK' if p99 < 1000 else 'MISSED'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signals", type=int, default=1000)
    ap.add_argument("--round-trips", type=int, default=500)
    ap.add_argument("--persist", action="store_true",
                    help="persist engine state as `run` does (DATA_DIR in a temp folder)")
    asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    main()
