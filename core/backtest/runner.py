"""Backtest: the live engine, unchanged, driven by recorded data through the paper exchange.

``run_backtest`` replays the files as fast as possible, closes any position still open at the
last price of the data (exit reason END) and returns a ``BacktestResult`` for
core/backtest/report.py. Nothing is persisted: a backtest never reads or writes DATA_DIR.

Timeframe: trades and captures are bucketed into candles of the requested timeframe. Klines
are used at their own interval when no timeframe is asked; a coarser one that is a multiple of
it is built from them (1m -> 5m); a finer one, or one that is not a multiple, is an error.

Mark-price klines among the files (``markPriceKlines``) become MarkPrice events on their own
price path (core/replay/bar_ticks.py), so the mark price drives unrealized PnL, liquidation,
funding payments and mark-price stops as on Binance. They cannot drive a backtest alone.
"""

from __future__ import annotations

import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

from core.backtest.inputs import (
    file_info,
    hold_funding,
    in_range,
    parse_timerange,
    resample,
)
from core.backtest.report import BacktestResult
from core.backtest.tracking import Diagnostics, EquityTracker
from core.engine import build_engine
from core.event_bus import EventBus
from core.events import Candle, EngineMode, ExitReason, FundingRate
from core.replay.bar_ticks import position_side, with_bar_ticks
from core.replay.csv_files import symbol_from_filename
from core.replay.lines import MarkKline
from core.replay.source import ReplaySource
from utils.settings import Settings, parse_timeframe
from utils.version import code_version

PROBE_EVENTS = 5_000  # events read ahead to learn which symbols the data holds
MAX_CHART_POINTS = 5_000
PROGRESS_EVERY = 1 << 16  # events between progress checks
_SECRETS = ("binance_api_key", "binance_api_secret", "telegram_bot_token")
MARK_KLINES = "markprice_klines_csv"


class BacktestError(ValueError):
    """The backtest cannot run (no usable events for the symbol, ...); one-line message."""


def _downsample(points: list[tuple[int, float]], n: int) -> list[tuple[int, float]]:
    if len(points) <= n:
        return points
    step = len(points) / n
    out = [points[int(i * step)] for i in range(n)]
    out[-1] = points[-1]
    return out


def _tf_text(ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _kline_timeframe(head: list, asked: str | None) -> tuple[int | None, str | None]:
    """(interval to resample to or None, timeframe text) for kline data; raises on a bad ask."""
    interval = next((ev.interval_ms for ev in head if type(ev) is Candle), None)
    if interval is None:
        return None, asked
    if asked is None:
        return None, _tf_text(interval)
    want = parse_timeframe(asked)
    if want == interval:
        return None, asked
    if want < interval or want % interval:
        raise BacktestError(f"--timeframe {asked} cannot be built from the data's "
                            f"{_tf_text(interval)} klines (use {_tf_text(interval)} or a "
                            f"multiple of it)")
    return want, asked


def _counted(chunks: Iterator[list], read: list[int]) -> Iterator[list]:
    """``chunks`` unchanged, their events counted into ``read[0]``."""
    for chunk in chunks:
        read[0] += len(chunk)
        yield chunk


def _settings_doc(settings: Settings) -> dict[str, str]:
    view = settings.public_view()
    for name in _SECRETS:
        view.pop(name, None)
    return view


@dataclass(frozen=True, slots=True)
class LoadedData:
    """A backtest's market events read once and kept in memory, for an optimizer that runs many
    backtests over the same data (``run_backtest(..., data=)``). ``events`` are the replay's
    output in exchange-time order (no synthetic bar path: that depends on each run's position);
    ``klines`` says whether the files were klines, ``marks`` whether they had mark-price klines
    (``MarkKline`` records, turned into MarkPrice events by each run)."""

    files: tuple[str, ...]
    symbol: str | None
    klines: bool
    events: list[Any]
    marks: bool = False

    @property
    def first_ts_ms(self) -> int:
        return int(self.events[0].ts_ms) if self.events else 0

    @property
    def last_ts_ms(self) -> int:
        return int(self.events[-1].ts_ms) if self.events else 0

    def window(self, start_ms: int | None, end_ms: int | None) -> LoadedData:
        """The events with ``start_ms <= ts_ms < end_ms`` (either bound may be None)."""
        lo = 0 if start_ms is None else bisect_left(self.events, start_ms, key=_TS)
        hi = len(self.events) if end_ms is None else bisect_left(self.events, end_ms, key=_TS)
        return LoadedData(self.files, self.symbol, self.klines, self.events[lo:hi], self.marks)


_TS = attrgetter("ts_ms")


def _source(settings: Settings, paths: Sequence[str | Path], symbol: str | None) -> ReplaySource:
    wanted = {symbol.upper()} if symbol else None
    unnamed = symbol and any(symbol_from_filename(Path(p).name) is None for p in paths)
    return ReplaySource(paths, symbol=symbol.upper() if symbol and unnamed else None,
                        symbols=wanted, reorder_ms=settings.replay_reorder_ms)


def load_events(settings: Settings, paths: Sequence[str | Path], *,
                symbol: str | None = None) -> LoadedData:
    """Read ``paths`` once into memory for repeated ``run_backtest(..., data=)`` calls.

    Raises:
        core.replay.ReplayError: a file is unknown or corrupt.
        BacktestError: the files hold no events for the symbol.
    """
    source = _source(settings, paths, symbol)
    events = list(source)
    if not events:
        what = f" for {symbol.upper()}" if symbol else ""
        raise BacktestError(f"no market events{what} in {', '.join(map(str, paths))}")
    return LoadedData(tuple(str(p) for p in paths), symbol.upper() if symbol else None,
                      "klines_csv" in source.formats, events,
                      MARK_KLINES in source.formats)


def run_backtest(
    settings: Settings,
    paths: Sequence[str | Path],
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    timerange: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    observe: Callable[[EventBus], None] | None = None,
    data: LoadedData | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> BacktestResult:
    """Replay ``paths`` through a fresh engine in paper mode, ARMED, with no persistence.

    Args:
        settings: strategy, risk and paper-exchange settings (``--param`` already applied).
        symbol: trade only this symbol; default: the SYMBOLS setting, or else every symbol
            the data holds.
        timeframe: the candle length asked for (``--timeframe``); None = the TIMEFRAME setting
            for trades, the klines' own interval for klines (see the module docstring).
        timerange: Freqtrade ``YYYYMMDD-YYYYMMDD`` cut of the data (core/backtest/inputs.py).
        progress: called as ``progress(events, last_ts_ms)`` every ~65k events.
        observe: called with the engine's bus before the replay (tests subscribe to it).
        data: the events already in memory (``load_events``); ``paths`` are then only reported.
        start_ms, end_ms: a further cut, ``start_ms <= ts_ms < end_ms`` (ms, UTC; None = open),
            applied with ``timerange`` (walk-forward windows).

    Raises:
        core.replay.ReplayError: a file is unknown or corrupt.
        BacktestError: no price data for the symbol in the files or the time range, or a
            timeframe the data cannot give; the message says which.
    """
    try:
        tr_start, tr_end = parse_timerange(timerange)
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    starts = [t for t in (tr_start, start_ms) if t is not None]
    ends = [t for t in (tr_end, end_ms) if t is not None]
    start_ms, end_ms = (max(starts) if starts else None), (min(ends) if ends else None)
    stream: Iterator[list]
    if data is not None:
        symbol = symbol or data.symbol
        klines, marks = data.klines, data.marks
        kept = data.window(start_ms, end_ms).events
        stream = (kept[i:i + 4096] for i in range(0, len(kept), 4096))
    else:
        source = _source(settings, paths, symbol)
        klines = "klines_csv" in source.formats
        marks = MARK_KLINES in source.formats
        stream = in_range(source.chunks(), start_ms, end_ms)
    head_chunks: list[list] = []
    for chunk in stream:
        head_chunks.append(chunk)
        if sum(map(len, head_chunks)) >= PROBE_EVENTS:
            break
    head = [ev for chunk in head_chunks for ev in chunk]
    prices = [ev for ev in head if type(ev) is not FundingRate]
    if not prices:
        what = f" for {symbol.upper()}" if symbol else ""
        where = f" within --timerange {timerange}" if timerange else ""
        kind = "market events" if not head else "price data (only funding rates)"
        raise BacktestError(f"no {kind}{what}{where} in {', '.join(map(str, paths))}")
    if all(type(ev) is MarkKline for ev in prices):
        raise BacktestError(f"only mark-price klines in {', '.join(map(str, paths))}: the "
                            f"mark price is not traded; add the symbol's trades or klines")
    notes: list[str] = []
    seen = sorted({ev.symbol for ev in prices})
    if symbol:
        symbols: tuple[str, ...] = (symbol.upper(),)
    else:
        symbols = tuple(s for s in settings.symbols if s in seen) or tuple(seen)
    ignored = [s for s in seen if s not in symbols]
    if ignored:
        notes.append(f"not traded (not in SYMBOLS): {', '.join(ignored)}")
    resample_ms, tf = _kline_timeframe(prices, timeframe) if klines else (None, timeframe)
    tf = tf or settings.timeframe
    if klines and timeframe is None and tf != settings.timeframe:
        notes.append(f"timeframe {tf}: the klines' own interval")
    settings = settings.model_copy(update={"symbols": symbols, "timeframe": tf})
    engine = build_engine(settings, persist=False, default_mode=EngineMode.ARMED)
    paper = engine.paper
    assert paper is not None  # build_engine made the paper exchange (no connection_factory)
    tracker = EquityTracker(engine.bus, paper, frozenset(symbols))
    diag = Diagnostics()
    diag.attach(engine.bus, paper, max(r.warmup for r in engine.trending.rules.values()))
    if observe is not None:
        observe(engine.bus)
    first_ts = prices[0].ts_ms
    paper.publish_balance(first_ts, "DEPOSIT")
    tracker.start(first_ts)

    chunks: Iterator[list] = hold_funding(chain(head_chunks, stream))
    read = [0]  # the data's events read so far (not the synthetic paths)
    if klines or marks:  # price paths per bar, adverse extreme first for the held side
        chunks = _counted(chunks, read)
        events: Iterator = with_bar_ticks(chain.from_iterable(chunks),
                                          position_side(engine.state))
        if resample_ms:
            events = resample(events, resample_ms)
        chunks = ([ev] for ev in events)  # lazily: each bar's path sees the position
    publish = engine.bus.publish
    started = time.perf_counter()
    count = done = 0
    last_ts = first_ts
    for chunk in chunks:
        for ev in chunk:
            publish(ev)
        last_ts = chunk[-1].ts_ms
        done += len(chunk)
        if progress is not None and done >= PROGRESS_EVERY:
            progress(read[0] if klines or marks else count + done, last_ts)
            count, done = count + done, 0
    count = read[0] if klines or marks else count + done
    engine.close_position(ExitReason.END, last_ts)
    wall = time.perf_counter() - started
    tracker.finish(last_ts)
    if diag.tight_stops:
        notes.append(f"{diag.tight_stops} of {diag.entries} entries had a stop loss within 3 "
                     f"spreads of the entry price: those exits are mostly noise and costs")

    return BacktestResult(
        symbol=",".join(symbols), timeframe=tf, files=[str(p) for p in paths], events=count,
        first_ts_ms=first_ts, last_ts_ms=last_ts, initial_balance=settings.initial_balance,
        final_balance=paper.wallet, trades=list(engine.ledger.trades),
        equity_curve=_downsample(tracker.curve, MAX_CHART_POINTS),
        price_series=_downsample(tracker.prices[symbols[0]], MAX_CHART_POINTS)
        if symbols else [], wall_s=wall,
        symbols=symbols,
        symbol_prices={s: _downsample(p, MAX_CHART_POINTS) for s, p in tracker.prices.items()},
        market_change={s: (tracker.first_price[s][1], tracker.last_price[s][1])
                       for s in symbols if s in tracker.first_price},
        drawdown=tracker.dd, notes=notes,
        no_trade_reasons=[] if engine.ledger.trades else diag.no_trade_reasons(symbols),
        params=_settings_doc(settings),
        # hashing the files and asking git cost more than a short backtest: not per trial
        file_info=file_info(paths) if data is None else [],
        code_version=code_version() if data is None else "",
        timerange=timerange or "", asset=settings.quote_asset, risk=engine.risk.summary(),
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
