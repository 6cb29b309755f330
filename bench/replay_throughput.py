"""Full-engine replay throughput and peak memory on the shared raw captures.

Pipeline measured: raw capture line -> JSON parse -> reorder buffer -> bus -> paper exchange,
TRENDING (candles, EMA/ADX rule, signals) -> ORDERING -> FOLLOW_ORDERS, with the README's demo
strategy parameters (so signals, orders and fills happen during the run).

Two figures per capture, each the median of --runs runs (default 5) in one process:
  * lines/s: from raw lines already in memory (decompressed), i.e. parse + engine;
  * file/s:  from the .gz file on disk, i.e. gzip + line splitting + parse + engine.
Peak memory: peak resident set (VmHWM) of a fresh child process that replays the file once.

    .venv/bin/python bench/replay_throughput.py [--runs 5] [FILE ...]
"""

from __future__ import annotations

import argparse
import gzip
import resource
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.engine import build_engine  # noqa: E402
from core.events import EngineMode, ExitReason  # noqa: E402
from core.replay.source import ReplaySource, read_capture_chunks  # noqa: E402
from utils.settings import load_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance-usdm"
CAPTURES = ["btcusdt_20240808.gz", "ethusdt_20240808.gz", "btcusdt_20230405.dat.gz"]
DEMO = dict(timeframe="5s", ema_fast=5, ema_slow=13, adx_period=7, adx_min=15)


PERSIST = "--persist" in sys.argv


def _engine(symbol: str):
    if PERSIST:  # as `run` does: state, ledger and paper account persisted under DATA_DIR
        import tempfile

        from core.services import Services

        settings = load_settings(symbols=symbol, initial_balance=Decimal("1000"),
                                 data_dir=tempfile.mkdtemp(), paper_start_armed=True, **DEMO)
        engine = Services(settings, feed=None, persist=True).engine
    else:
        settings = load_settings(symbols=symbol, initial_balance=Decimal("1000"), **DEMO)
        engine = build_engine(settings, persist=False, default_mode=EngineMode.ARMED)
    engine.connection.publish_balance(0, "DEPOSIT")
    return engine


def run_lines(lines: list[bytes], symbol: str) -> tuple[int, float, int]:
    """(events, seconds, trades) for one replay from in-memory raw lines."""
    engine = _engine(symbol)
    publish = engine.bus.publish
    n = 0
    t0 = time.perf_counter()
    for chunk in read_capture_chunks(lines, reorder_ms=2000):
        for ev in chunk:
            publish(ev)
        n += len(chunk)
    engine.close_position(ExitReason.END, 0)
    return n, time.perf_counter() - t0, len(engine.ledger.trades)


def run_file(path: Path, symbol: str) -> tuple[int, float, int]:
    """(events, seconds, trades) for one replay from the file on disk (as
    core/backtest/runner.py)."""
    engine = _engine(symbol)
    publish = engine.bus.publish
    t0 = time.perf_counter()
    source = ReplaySource([path])
    for chunk in source.chunks():
        for ev in chunk:
            publish(ev)
    engine.close_position(ExitReason.END, 0)
    return source.stats.events, time.perf_counter() - t0, len(engine.ledger.trades)


def peak_rss_mb(path: Path) -> float:
    """Peak RSS (MB) of a fresh interpreter that replays ``path`` once through the engine."""
    extra = ["--persist"] if PERSIST else []
    out = subprocess.run([sys.executable, __file__, "--child", str(path), *extra], check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--persist", action="store_true",
                    help="persist state, ledger and paper account as `run` does")
    args = ap.parse_args()
    if args.child:
        run_file(args.child, _symbol_of(args.child))
        print(_peak_rss_kb() / 1024)
        return 0
    files = args.files or [DATA / name for name in CAPTURES]
    print(f"python {sys.version.split()[0]}, median of {args.runs} runs\n")
    print("| capture | market events | trades | from raw lines (ev/s) | from .gz file (ev/s) "
          "| peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in files:
        symbol = _symbol_of(path)
        lines = gzip.decompress(path.read_bytes()).splitlines()
        mem = [run_lines(lines, symbol) for _ in range(args.runs)]
        disk = [run_file(path, symbol) for _ in range(args.runs)]
        events, trades = mem[0][0], mem[0][2]
        lines_rate = statistics.median(n / s for n, s, _ in mem)
        file_rate = statistics.median(n / s for n, s, _ in disk)
        print(f"| {path.name} | {events:,} | {trades} | {lines_rate:,.0f} | {file_rate:,.0f} "
              f"| {peak_rss_mb(path):.0f} |", flush=True)
    return 0


def _peak_rss_kb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that high-water
    mark over from the parent across fork+exec, so a child would report the bench's own peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _symbol_of(path: Path) -> str:
    return path.name.split("_", 1)[0].upper()


if __name__ == "__main__":
    sys.exit(main())
