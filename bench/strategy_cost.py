"""TRENDING's cost per closed candle for every catalog rule and the ensemble.

    .venv/bin/python bench/strategy_cost.py [--runs 5] [--passes 10]

The shared klines (BTCUSDT 1m, 1,440 bars, and XRPUSDT 5m, 1,999 bars) are loaded once as
closed ``Candle`` events; each run builds a fresh ``Trending`` with the rule (defaults; the
ensemble with ENSEMBLE_MEMBERS' default ``ema_adx:1,macd:1,supertrend:1`` and with all seven
rules) on a bus of its own and publishes ``--passes`` x 3,439 candles (timestamps shifted per
pass so the series continues). The figure is wall time / candles, so it includes the bus
dispatch, the rule's update and, when the rule decides, building the TradeSignal (Decimal
sizing and levels). Median of ``--runs`` runs; one core; the machine is shared, so compare
rows of the same run, not runs of different days.
"""

from __future__ import annotations

import argparse
import csv
import gc
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.balance import BalanceStore  # noqa: E402
from core.event_bus import EventBus  # noqa: E402
from core.events import BalanceUpdate, Candle, TradeSignal  # noqa: E402
from core.strategies.catalog import catalog, rule_factory  # noqa: E402
from core.trending import Trending  # noqa: E402

DATA = ROOT.parent.parent / "shared" / "data" / "binance-usdm"
FILES = (("BTCUSDT-1m-2023-04-15.csv", 60_000), ("XRPUSDT-5m-2021-11-15.csv", 300_000))
ALL7 = ",".join(f"{r}:1" for r in ("ema_adx", "macd", "rsi_reversion", "donchian_breakout",
                                   "supertrend", "bollinger_squeeze", "ict_fvg"))


def data_dir() -> Path:
    for d in (DATA, ROOT.parent / "shared" / "data" / "binance-usdm",
              Path("/work/shared/data/binance-usdm")):
        if d.is_dir():
            return d
    raise SystemExit("shared data not found")


def load() -> list[Candle]:
    out: list[Candle] = []
    for name, tf in FILES:
        with (data_dir() / name).open(newline="") as f:
            rows = list(csv.DictReader(f))
        base = out[-1].open_ms + tf if out else int(rows[0]["open_time"])
        first = int(rows[0]["open_time"])
        for row in rows:
            open_ms = base + int(row["open_time"]) - first
            out.append(Candle("BTCUSDT", open_ms + tf - 1, tf, open_ms, float(row["open"]),
                              float(row["high"]), float(row["low"]), float(row["close"]),
                              float(row["volume"]), True))
    return out


def one_run(name: str, params: dict, candles: list[Candle], passes: int) -> tuple[float, int]:
    bus = EventBus()
    balance = BalanceStore(bus)
    bus.publish(BalanceUpdate(asset="USDT", wallet_balance=Decimal(1000),
                              available_balance=Decimal(1000), reason="DEPOSIT", ts_ms=0))
    signals = [0]
    bus.subscribe(TradeSignal, lambda _s: signals.__setitem__(0, signals[0] + 1))
    Trending(bus, rule_factory(name, params), balance, symbols=["BTCUSDT"], timeframe_ms=60_000,
             leverage=5, risk_fraction=0.1, max_notional=Decimal(1000), strategy=name)
    span = candles[-1].open_ms - candles[0].open_ms + 300_000
    stream = [c._replace(open_ms=c.open_ms + k * span, ts_ms=c.ts_ms + k * span)
              for k in range(passes) for c in candles]
    publish = bus.publish
    gc.collect()
    started = time.perf_counter()
    for c in stream:
        publish(c)
    return (time.perf_counter() - started) / len(stream), signals[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--passes", type=int, default=10)
    args = p.parse_args()
    candles = load()
    cases = [(rule, {}) for rule in catalog()]
    cases.append(("ensemble", {"members": "ema_adx:1,macd:1,supertrend:1", "threshold": 0.6}))
    cases.append(("ensemble", {"members": ALL7, "threshold": 0.6}))
    print(f"python {sys.version.split()[0]}, {len(candles) * args.passes:,} candles per run, "
          f"median of {args.runs} runs")
    print("| rule | µs per candle | signals per run |")
    print("|---|---:|---:|")
    for name, params in cases:
        results = [one_run(name, params, candles, args.passes) for _ in range(args.runs)]
        median = statistics.median(r[0] for r in results) * 1e6
        label = name if name != "ensemble" else (
            "ensemble (all 7)" if params["members"] == ALL7 else "ensemble (3 members)")
        print(f"| {label} | {median:.2f} | {results[0][1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
