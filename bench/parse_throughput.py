"""Replay parsing throughput: market events per second on one core.

    .venv/bin/python bench/parse_throughput.py [capture_file] [--runs 5]

Prints the median of the runs, as CPU time of this process (robust when other work shares the
machine) and as wall-clock time, for
* in memory: ``read_capture_lines`` over the file's lines already decompressed into a list of
  bytes (the parser alone; the engine's budget is >= 300k events/s end to end);
* full file: ``ReplaySource`` on the file (gzip, line splitting, parsing, reorder buffer);
* for reference, ``orjson.loads`` of every non-depth line (the floor of a JSON-based parser).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.replay.source import ReplaySource, read_capture_lines  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "binance-usdm" / "btcusdt_20240808.gz"


def median_seconds(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median (cpu, wall) seconds of ``runs`` calls."""
    cpu, wall = [], []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    with open(args.path, "rb") as f:
        raw = f.read()
    lines = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).splitlines()
    events = sum(1 for _ in read_capture_lines(lines, source=str(args.path)))
    bodies = [line[line.find(b" ") + 1:] for line in lines if line.find(b"depth", 0, 60) < 0]

    def consume(it: object) -> None:
        deque(it, maxlen=0)  # type: ignore[call-overload]

    def loads_only() -> None:
        loads = orjson.loads
        for body in bodies:
            loads(body)

    mem = median_seconds(lambda: consume(read_capture_lines(lines, source="bench")), args.runs)
    full = median_seconds(lambda: consume(ReplaySource([args.path])), args.runs)
    ref = median_seconds(loads_only, args.runs)
    print(f"{args.path.name}: {len(lines):,} lines, {events:,} events; median of {args.runs} runs")
    print(f"{'':34}{'cpu ms':>8} {'events/s':>10}   {'wall ms':>8} {'events/s':>10}")
    for name, (cpu, wall), n in (("in memory (read_capture_lines)", mem, events),
                                 ("full file (ReplaySource, gzip)", full, events),
                                 (f"orjson.loads alone ({len(bodies):,} lines)", ref, len(bodies))):
        print(f"  {name:32}{cpu * 1e3:8.1f} {n / cpu:10,.0f}   {wall * 1e3:8.1f} {n / wall:10,.0f}")


if __name__ == "__main__":
    main()
