"""/ta analysis: TA-Lib indicators, the trend rule's verdict and the chart, per timeframe.

``analyse`` is a pure function of a picklable ``TaRequest``, so it runs in an executor: a
separate process by default (``MARKET_ANALYSIS_EXECUTOR=process``), where neither its CPU time
nor matplotlib's garbage collections can hold the GIL against the event loop, or a thread.

The verdict is TRENDING's own: a fresh rule from ``rule_factory(STRATEGY, params)`` is fed the
closed candles of the timeframe, oldest first, and asked for ``verdict()``. Indicators
(``core.market.indicators_ta.compute_indicators``) are computed over the same closed candles, so the
readings describe the last closed bar.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.events import Candle
from core.strategies.rules import rule_factory

if TYPE_CHECKING:  # NumPy and TA-Lib load in the analysis worker, on the first /ta
    from core.market.indicators_ta import IndicatorValues

logger = logging.getLogger(__name__)

CHART_BARS = 120
_own_process = False  # True in the spawned analysis process (see _warm_up)


@dataclass(frozen=True, slots=True)
class TaRequest:
    """What to analyse: closed candles per timeframe (oldest first), the strategy (name and
    parameters, as for ``rule_factory``), and the timeframe to chart (None: no chart).

    Candles travel as plain tuples in ``Candle``'s field order (``plain``): a process executor
    pickles them on the bot's side, and plain tuples pickle about 5x faster than NamedTuples.
    """

    symbol: str
    series: tuple[tuple[str, tuple[tuple, ...]], ...]
    strategy: str
    params: tuple[tuple[str, Any], ...]
    chart_timeframe: str | None = None
    chart_bars: int = CHART_BARS
    #: every catalog rule (id, params) to read on ``verdict_timeframe``, the ensemble's
    #: parameters (None: no ensemble line) and the plugin folders to load in the executor
    rules: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    ensemble: tuple[tuple[str, Any], ...] | None = None
    verdict_timeframe: str | None = None
    plugin_dirs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleReading:
    """One catalog rule's verdict (or the ensemble's, ``strength`` = its confidence);
    bias ERROR with a one-line detail when the rule failed."""

    rule: str
    bias: str
    detail: str
    strength: float = 1.0


@dataclass(frozen=True, slots=True)
class FrameReading:
    """One timeframe: the last closed bar's indicator values and the rule's verdict."""

    timeframe: str
    bars: int
    values: IndicatorValues
    bias: str    # LONG | SHORT | NEUTRAL | WARMING_UP
    detail: str


@dataclass(frozen=True, slots=True)
class TaResult:
    readings: tuple[FrameReading, ...]
    chart: bytes | None
    rules: tuple[RuleReading, ...] = ()
    ensemble: RuleReading | None = None


def plain(candles: Sequence[Candle]) -> tuple[tuple, ...]:
    """Candles as plain tuples for a ``TaRequest``."""
    return tuple(map(tuple, candles))


def verdict_of(candles: Sequence[Candle], strategy: str, params: dict[str, Any]
               ) -> tuple[str, str]:
    """``(bias, detail)`` of a fresh rule fed ``candles`` (closed, oldest first)."""
    rule = rule_factory(strategy, params)()
    for c in candles:
        rule.on_candle(c)
    v = rule.verdict()
    return v.bias, v.detail


def read_rule(candles: Sequence[Candle], rule: str, params: dict[str, Any]) -> RuleReading:
    """A fresh ``rule`` fed ``candles``; its verdict. Never raises: a failing rule (a user
    plugin, bad parameters) reads as bias ERROR with one line saying why."""
    try:
        made = rule_factory(rule, params)()
        for c in candles:
            made.on_candle(c)
        v = made.verdict()
        return RuleReading(rule, v.bias, v.detail, v.strength)
    except Exception as exc:  # one rule must not break /ta
        return RuleReading(rule, "ERROR", f"{type(exc).__name__}: {exc}"[:200])


def read_rules(req: TaRequest, candles: Sequence[Candle]
               ) -> tuple[tuple[RuleReading, ...], RuleReading | None]:
    """Every requested catalog rule's reading, and the ensemble's, on ``candles``."""
    if req.plugin_dirs:
        from pathlib import Path

        from core.strategies.catalog import load_plugins

        for folder in req.plugin_dirs:
            load_plugins(Path(folder))
    rules = tuple(read_rule(candles, rule, dict(params)) for rule, params in req.rules)
    ensemble = None
    if req.ensemble is not None:
        ensemble = read_rule(candles, "ensemble", dict(req.ensemble))
    return rules, ensemble


def analyse(req: TaRequest) -> TaResult:
    """Indicators and verdict on every timeframe of ``req``, and the chart of
    ``req.chart_timeframe`` (PNG) when asked. CPU only: call it in an executor.

    Raises:
        ValueError: candles out of order, or a bad strategy.
    """
    params = dict(req.params)
    readings = []
    chart = None
    rules: tuple[RuleReading, ...] = ()
    ensemble = None
    for timeframe, bars in req.series:
        candles = [Candle._make(b) for b in bars]
        if timeframe == req.verdict_timeframe:
            rules, ensemble = read_rules(req, candles)
        from core.market.indicators_ta import candles_to_arrays, compute_indicators

        ind = compute_indicators(candles_to_arrays(candles))
        bias, detail = verdict_of(candles, req.strategy, params)
        readings.append(FrameReading(timeframe, len(candles), ind.latest, bias, detail))
        if timeframe == req.chart_timeframe:
            from core.market.ta_chart import render_ta_chart  # matplotlib: only to draw

            chart = render_ta_chart(ind, f"{req.symbol} {timeframe}", bars=req.chart_bars)
    if _own_process:
        gc.collect()  # the chart's garbage, now: ~5 ms instead of a 100 ms pause mid-render
    return TaResult(tuple(readings), chart, rules, ensemble)


def _warm_up() -> None:
    """Process initializer: load TA-Lib, matplotlib and its fonts before the first /ta, then
    take garbage collection in hand. A chart leaves ~50,000 objects in reference cycles;
    automatic collections then pause a render now and then for ~100 ms. Instead the
    libraries' objects are frozen out of collection, automatic collection is off, and
    ``analyse`` collects once at its end (~5 ms)."""
    global _own_process
    # Ctrl-C in a terminal signals the whole process group: the worker must not die with a
    # KeyboardInterrupt traceback; the bot shuts it down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    candles = tuple(Candle("WARMUP", i * 60_000, 60_000, i * 60_000, 1.0 + i % 3, 2.0 + i % 3,
                           0.5, 1.5, 1.0, True) for i in range(40))
    analyse(TaRequest("WARMUP", (("1m", plain(candles)),), "ema_adx", (), "1m", 40))
    gc.collect()
    gc.freeze()
    gc.disable()
    _own_process = True


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while a worker process is spawned, so the child starts with it ignored
    (an ignored disposition survives exec, and Python keeps it): a Ctrl-C to the process group
    during the worker's start-up cannot kill it halfway through its interpreter's start with a
    traceback. Only the main thread may change signal handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _AnalysisPool(ProcessPoolExecutor):
    """The process pool whose workers are spawned with SIGINT ignored (``_sigint_ignored``);
    ``submit`` is where ProcessPoolExecutor starts them."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with _sigint_ignored():
            return super().submit(fn, *args, **kwargs)


def make_executor(kind: str = "process") -> Executor:
    """The analysis executor: one spawned worker process (``process``: its own GIL and garbage
    collector; spawn, because forking a process with running threads is unsafe) or a small
    thread pool (``thread``)."""
    if kind == "process":
        return _AnalysisPool(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_warm_up)
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=2, thread_name_prefix="ta")
    raise ValueError(f"unknown executor kind {kind!r}; use process or thread")


class Analyser:
    """Owns the analysis executor: made on first use (or ``prewarm``), replaced once when its
    process died (killed, out of memory) so one bad moment does not break every later /ta,
    shut down by ``stop``."""

    def __init__(self, executor_factory: Callable[[], Executor]) -> None:
        self._factory = executor_factory
        self._executor: Executor | None = None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._factory()
        return self._executor

    def prewarm(self) -> None:
        """Start the executor now (a process pool spawns and loads its libraries in the
        background) instead of at the first /ta."""
        self.executor.submit(int)

    async def run(self, request: TaRequest) -> TaResult:
        """``analyse(request)`` in the executor; the event loop only waits."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, analyse, request)
        except BrokenExecutor:
            logger.warning("the /ta analysis process died; starting a new one")
            broken, self._executor = self._executor, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(self.executor, analyse, request)

    async def stop(self) -> None:
        """Shut the executor down (a running analysis is waited for, queued ones cancelled)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)
