"""Does the dashboard slow the engine? Tick latency with 0 vs N WebSocket clients.

The bot (paper exchange, journal, status server with the dashboard) replays a shared capture
paced at ``--speed`` x exchange time; N clients in another process subscribe to every channel
(metrics, trade_updates, alerts, logs, candles) and read everything. Per market event:

* ``publish``: time spent in ``bus.publish`` (the engine's synchronous work for that tick,
  the dashboard's bus handlers included),
* ``lateness``: how late the event was published against its paced due time (event-loop
  contention: WebSocket encoding and sending compete with the feed for the loop).

Reports medians and p99 per run, and the median of runs::

    .venv/bin/python bench/dashboard_ws.py [--clients 10] [--runs 3] [--speed 50] [DATA]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-token-0123456789"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "binance-usdm" / "btcusdt_20240808.gz"
CHANNELS = "metrics,trade_updates,alerts,logs,candles"


async def clients_main(url: str, n: int) -> None:
    """Client process: ``n`` sockets reading every message until the server closes them."""
    import aiohttp

    counts = [0] * n
    async with aiohttp.ClientSession() as s:
        sockets = [await s.ws_connect(f"{url}?channels={CHANNELS}", max_msg_size=0,
                                      protocols=("dort5bot.v1", f"bearer.{TOKEN}"))
                   for _ in range(n)]
        print("ready", flush=True)

        async def read(i: int) -> None:
            async for _msg in sockets[i]:
                counts[i] += 1

        await asyncio.gather(*(read(i) for i in range(n)))
    print("received", sum(counts), flush=True)


def pct(values: list[int], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1000  # µs


async def one_run(data: Path, clients: int, speed: float) -> dict[str, float]:
    from core.replay.bar_ticks import with_bar_ticks
    from core.replay.source import ReplaySource
    from core.services import Services
    from utils.settings import load_settings
    from web.dashboard import status_server

    publish_ns: list[int] = []
    late_ns: list[int] = []

    async def feed(engine, stop) -> int:
        publish = engine.bus.publish
        t0 = time.monotonic_ns()
        first = None
        count = 0
        for ev in with_bar_ticks(ReplaySource([data], reorder_ms=2_000)):
            if first is None:
                first = ev.ts_ms
            due = t0 + int((ev.ts_ms - first) * 1e6 / speed)
            now = time.monotonic_ns()
            if due - now > 1_000_000:  # sleep only for gaps over 1 ms (as the replay feed)
                await asyncio.sleep((due - now) / 1e9)
            elif not count % 2_000:
                await asyncio.sleep(0)
            start = time.monotonic_ns()
            late_ns.append(max(0, start - due))
            publish(ev)
            publish_ns.append(time.monotonic_ns() - start)
            count += 1
        return count

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_env_file=None, data_dir=Path(tmp), http_port=0,
                                 api_token=TOKEN, timeframe="5s", ema_fast=5, ema_slow=13,
                                 adx_period=7, adx_min=15, market_analysis_executor="thread",
                                 log_level="WARNING")
        services = Services(settings, feed=feed)
        server = status_server(services)
        services.attach(server)
        await services.start(start_feed=False)
        proc = None
        try:
            if clients:
                url = f"http://127.0.0.1:{server.port}/api/v1/ws"
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--client-mode", url, "--clients", str(clients),
                    stdout=subprocess.PIPE)
                assert proc.stdout is not None
                assert (await proc.stdout.readline()).strip() == b"ready"
                hub = server.extensions[0].hub
                while len(hub.clients) < clients:  # noqa: ASYNC110  (a bench, polling is fine)
                    await asyncio.sleep(0.01)
            services.start_feed()
            await services.wait_feed()
            dropped = server.extensions[0].hub.dropped
        finally:
            await services.stop()
            if proc is not None:
                out, _ = await proc.communicate()
                received = int(out.split()[-1]) if out else 0
            else:
                received = 0
    return {"events": len(publish_ns), "publish_p50_us": pct(publish_ns, 0.5),
            "publish_p99_us": pct(publish_ns, 0.99), "late_p50_us": pct(late_ns, 0.5),
            "late_p99_us": pct(late_ns, 0.99), "messages": received, "dropped": dropped}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--speed", type=float, default=50.0)
    p.add_argument("--client-mode", metavar="URL")
    args = p.parse_args()
    if args.client_mode:
        asyncio.run(clients_main(args.client_mode, args.clients))
        return 0
    print(f"{args.data.name}, speed {args.speed:g}x, {args.runs} runs per setting")
    keys = ("publish_p50_us", "publish_p99_us", "late_p50_us", "late_p99_us")
    for n in (0, args.clients):
        runs = [asyncio.run(one_run(args.data, n, args.speed)) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        print(f"{n:>3} clients: events {runs[0]['events']}, "
              + ", ".join(f"{k} {med[k]:.2f}" for k in keys)
              + f", messages/run {statistics.median(r['messages'] for r in runs):.0f}, "
              f"dropped {sum(r['dropped'] for r in runs)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
