"""Backtest: the live engine, unchanged, driven by recorded data through the paper exchange.

``run_backtest`` replays the files as fast as possible, closes any position still open at the
end of the data (exit reason END) and returns a ``BacktestResult`` for core/backtest/report.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

from core.backtest.report import BacktestResult
from core.engine import build_engine
from core.events import Candle, EngineMode, ExitReason
from core.paper import PaperExchange
from core.replay.bar_ticks import with_bar_ticks
from core.replay.csv_files import symbol_from_filename
from core.replay.source import ReplaySource
from utils.settings import Settings

PROBE_EVENTS = 5_000  # events read ahead to learn which symbols the data holds
MAX_CHART_POINTS = 5_000
PROGRESS_EVERY = 1 << 16  # events between progress checks


class BacktestError(ValueError):
    """The backtest cannot run (no usable events for the symbol, ...); one-line message."""


@dataclass(slots=True)
class _Sampler:
    """Equity and price sampled on every closed candle of the traded symbols."""

    paper: PaperExchange
    symbols: frozenset[str]
    equity: list[tuple[int, float]]
    prices: list[tuple[int, float]]

    def on_candle(self, c: Candle) -> None:
        if c.closed and c.symbol in self.symbols:
            self.equity.append((c.ts_ms, float(self.paper.equity())))
            self.prices.append((c.ts_ms, c.close))


def _downsample(points: list[tuple[int, float]], n: int) -> list[tuple[int, float]]:
    if len(points) <= n:
        return points
    step = len(points) / n
    out = [points[int(i * step)] for i in range(n)]
    out[-1] = points[-1]
    return out


def _batched(events: Iterator, size: int = 4096) -> Iterator[list]:
    it = iter(events)
    while batch := list(islice(it, size)):
        yield batch


def run_backtest(
    settings: Settings,
    paths: Sequence[str | Path],
    *,
    symbol: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Replay ``paths`` through a fresh engine in paper mode, ARMED, with no persistence.

    Args:
        settings: strategy, risk and paper-exchange settings (``--param`` already applied).
        symbol: trade only this symbol; default: the SYMBOLS setting, or else the symbols the
            data holds.
        progress: called as ``progress(events, last_ts_ms)`` every ~65k events.

    Raises:
        core.replay.ReplayError: a file is unknown or corrupt.
        BacktestError: the data has no events for the symbol.
    """
    wanted = {symbol.upper()} if symbol else None
    unnamed = symbol and any(symbol_from_filename(Path(p).name) is None for p in paths)
    source = ReplaySource(paths, symbol=symbol.upper() if symbol and unnamed else None,
                          symbols=wanted,
                          reorder_ms=settings.replay_reorder_ms)
    if "klines_csv" in source.formats:  # no trades: give the paper exchange a price path
        chunks: Iterator[list] = _batched(with_bar_ticks(source))
    else:
        chunks = source.chunks()
    head: list[list] = []
    for chunk in chunks:
        head.append(chunk)
        if sum(map(len, head)) >= PROBE_EVENTS:
            break
    if not head:
        what = f" for {symbol.upper()}" if symbol else ""
        raise BacktestError(f"no market events{what} in {', '.join(map(str, paths))}")
    seen = {ev.symbol for chunk in head for ev in chunk}
    symbols: tuple[str, ...]
    if symbol:
        symbols = (symbol.upper(),)
    else:
        symbols = tuple(s for s in settings.symbols if s in seen) or tuple(sorted(seen))
    settings = settings.model_copy(update={"symbols": symbols})
    engine = build_engine(settings, persist=False, default_mode=EngineMode.ARMED)
    paper = engine.connection
    assert isinstance(paper, PaperExchange)
    sampler = _Sampler(paper, frozenset(symbols), [], [])
    engine.bus.subscribe(Candle, sampler.on_candle)
    first_ts = head[0][0].ts_ms
    paper.publish_balance(first_ts, "DEPOSIT")
    sampler.equity.append((first_ts, float(paper.equity())))
    publish = engine.bus.publish

    started = time.perf_counter()
    done = 0
    for chunk in chain(head, chunks):
        for ev in chunk:
            publish(ev)
        if progress is not None:
            done += len(chunk)
            if done >= PROGRESS_EVERY:
                progress(source.stats.events, chunk[-1].ts_ms)
                done = 0
    count = source.stats.events
    last_ts = source.stats.last_ts_ms or first_ts
    engine.close_position(ExitReason.END, last_ts)
    wall = time.perf_counter() - started
    sampler.equity.append((last_ts, float(paper.equity())))

    return BacktestResult(
        symbol=",".join(symbols), timeframe=settings.timeframe,
        files=[str(p) for p in paths], events=count, first_ts_ms=first_ts, last_ts_ms=last_ts,
        initial_balance=settings.initial_balance, final_balance=paper.wallet,
        trades=list(engine.ledger.trades),
        equity_curve=_downsample(sampler.equity, MAX_CHART_POINTS),
        price_series=_downsample(sampler.prices, MAX_CHART_POINTS), wall_s=wall,
    )


def stderr_progress() -> Callable[[int, int], None] | None:
    """A one-line progress indicator on stderr, or None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None
    t0 = time.perf_counter()

    def show(events: int, ts_ms: int) -> None:
        elapsed = time.perf_counter() - t0
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ms / 1000))
        sys.stderr.write(f"\r  {events:>12,} events  at {stamp} UTC  "
                         f"{events / max(elapsed, 1e-9):>10,.0f} ev/s")
        sys.stderr.flush()

    return show
