"""Optimizer throughput: trials per minute with --jobs 1 and --jobs 2, parallel efficiency,
peak memory per worker; and backtest throughput on a month of 1m klines (candles per second).

Trials: ``ema_adx`` with the catalog's search ranges on ``BTCUSDT-1m-2023-04-15.csv`` (1,440
candles), objective sharpe, TPE sampler with a fixed seed, a fresh SQLite study each run (the
default storage). Trials/min counts finished trials between the first trial's start and the
last one's end (steady state: worker start-up and data loading excluded); "wall" adds them.
Peak memory: each worker's ``ru_maxrss`` recorded with its trials. Each figure is the median of
--runs runs; jobs 1 and jobs 2 alternate inside one process so they see the same machine load.

Backtest: the shared day repeated (timestamps shifted) into ``--days`` (30) consecutive days of
1m klines, as ``download`` stores a month; full engine backtest (bar path, paper exchange,
TRENDING, ORDERING, FOLLOW_ORDERS) from the CSV file; candles/s = candles / backtest wall time.
``--mark`` measures it a second time with mark-price klines of the same bars added (synthetic:
the traded OHLC, volume 0, in a ``markPriceKlines`` folder), the two alternating; candles/s
still counts the traded candles.

    .venv/bin/python bench/optimize_throughput.py [--trials 60] [--runs 3] [--days 30] [--mark]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.backtest.runner import run_backtest  # noqa: E402
from core.optimize.space import strategy_space  # noqa: E402
from core.optimize.study import StudySpec, run_study, storage_url  # noqa: E402
from utils.settings import load_settings  # noqa: E402

DATA = Path(os.environ.get("DORT5BOT_SHARED", ROOT.parent / "shared")) / "data" / "binance-usdm"
DAY_FILE = DATA / "BTCUSDT-1m-2023-04-15.csv"
DAY_MS = 86_400_000


def one_study(tmp: Path, trials: int, jobs: int, seed: int) -> dict[str, float]:
    import optuna

    settings = load_settings(trading_mode="paper", data_dir=str(tmp))
    name = f"bench-j{jobs}-{seed}"
    spec = StudySpec(study_name=name, storage_url=storage_url(None, tmp), strategy="ema_adx",
                     objective="sharpe", ranges=tuple(strategy_space("ema_adx")),
                     settings=settings, paths=(str(DAY_FILE),), seed=seed)
    t0 = time.perf_counter()
    study = run_study(spec, trials, jobs)
    wall = time.perf_counter() - t0
    done = [t for t in study.get_trials(deepcopy=False)
            if t.state != optuna.trial.TrialState.RUNNING and t.datetime_complete]
    first = min(t.datetime_start for t in done).timestamp()
    last = max(t.datetime_complete for t in done).timestamp()
    rss: dict[int, float] = {}
    for t in done:
        w = t.user_attrs.get("worker")
        if w is not None:
            rss[w] = max(rss.get(w, 0.0), t.user_attrs.get("rss_mb", 0.0))
    return {"steady": len(done) / (last - first) * 60, "wall": len(done) / wall * 60,
            "rss": max(rss.values()) if rss else 0.0, "workers": len(rss)}


def month_file(tmp: Path, days: int, mark: bool = False) -> tuple[Path, int]:
    lines = DAY_FILE.read_text().splitlines()
    header, rows = lines[0], [ln.split(",") for ln in lines[1:] if ln.strip()]
    out = tmp / f"BTCUSDT-1m-{days}d.csv"
    if mark:  # the same bars as mark-price klines: every volume column 0
        rows = [[*r[:5], "0", r[6], "0", "60", "0", "0", "0"] for r in rows]
        (tmp / "markPriceKlines").mkdir(exist_ok=True)
        out = tmp / "markPriceKlines" / out.name
    n = 0
    with out.open("w") as f:
        f.write(header + "\n")
        for d in range(days):
            shift = d * DAY_MS
            for r in rows:
                f.write(",".join([str(int(r[0]) + shift), *r[1:6], str(int(r[6]) + shift),
                                  *r[7:]]) + "\n")
                n += 1
    return out, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--mark", action="store_true",
                    help="also measure the backtest with mark-price klines added")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} at start")
    res: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for run in range(args.runs):
            for jobs in (1, 2):
                r = one_study(tmp, args.trials, jobs, seed=run)
                res[jobs].append(r)
                print(f"  run {run} jobs {jobs}: {r['steady']:.0f} trials/min steady, "
                      f"{r['wall']:.0f} with start-up; peak RSS/worker {r['rss']:.0f} MB "
                      f"({r['workers']:.0f} workers)", flush=True)
        med = {j: {k: statistics.median(x[k] for x in res[j]) for k in ("steady", "wall", "rss")}
               for j in (1, 2)}
        print(f"\n{args.trials} trials per study, median of {args.runs} runs:")
        print("| --jobs | trials/min (steady) | trials/min (incl. start-up) | peak RSS/worker MB |")
        print("|---:|---:|---:|---:|")
        for j in (1, 2):
            print(f"| {j} | {med[j]['steady']:.0f} | {med[j]['wall']:.0f} | {med[j]['rss']:.0f} |")
        speedups = sorted(b["steady"] / a["steady"] for a, b in zip(res[1], res[2], strict=True))
        print(f"parallel efficiency (jobs 2 / jobs 1, steady, per run): "
              f"{', '.join(f'{s:.2f}x' for s in speedups)}; median "
              f"{statistics.median(speedups):.2f}x")

        path, candles = month_file(tmp, args.days)
        variants = {"": [path]}
        if args.mark:
            variants[" + mark-price klines"] = [path, month_file(tmp, args.days, mark=True)[0]]
        settings = load_settings(trading_mode="paper")
        walls: dict[str, list[float]] = {v: [] for v in variants}
        rates: dict[str, list[float]] = {v: [] for v in variants}
        trades: dict[str, int] = {}
        for _ in range(5):
            for label, paths in variants.items():
                t0 = time.perf_counter()
                result = run_backtest(settings, paths)
                walls[label].append(time.perf_counter() - t0)
                rates[label].append(candles / result.wall_s)
                trades[label] = len(result.trades)
        for label in variants:
            wall = statistics.median(walls[label])
            print(f"\nbacktest, {args.days} days of 1m klines{label} ({candles:,} candles, "
                  f"{trades[label]} trades), median of 5: "
                  f"{statistics.median(rates[label]):,.0f} candles/s engine loop, "
                  f"{candles / wall:,.0f} candles/s including reading the files ({wall:.2f} s)")


if __name__ == "__main__":
    main()
