"""MarketData: the market-intelligence cache behind /ta and /watch (the worker's brain).

The "hybrid" model: a worker (jobs/market_worker.py) keeps the data hot, readers take it from
the cache, and only a miss or a stale entry goes to Binance, through ``utils.cache.MarketCache``
(single-flight: 50 concurrent misses make one request) and the worker's REST budget
(core/binance/market_rest.py). When the budget is spent or Binance fails, the cache serves the old
entry with its age.

Kept, for the traded symbols plus the watchlist:

==================  ===============================================  =========================
cache kind / key    content                                          kept current by
==================  ===============================================  =========================
klines (sym, tf)    ``KlineSeries`` of each MARKET_TIMEFRAMES         ``<sym>@kline_<tf>`` stream
mark sym            ``MarkInfo``: mark price, funding, next funding   ``<sym>@markPrice@1s``
ticker sym          ``Ticker24h``                                     ``<sym>@ticker``
oi sym              ``OpenInterest``                                  REST, every TTL
symbols "USDM"      exchangeInfo TRADING symbols (unknown symbols)    REST, every TTL
==================  ===============================================  =========================

Streams are on ``/market`` (PROTOCOL.md §1.3), combined envelope, lowercase symbols. A kline
update that reveals missing bars (a stream drop) expires the series, so the next read or pass
reloads it. Without REST (``rest=None``: a ``--replay`` run) the cache holds what the engine's
bus carries: its candles (the TRENDING timeframe, or a klines file's) and mark prices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar

import orjson

from core.binance.errors import Rejected
from core.binance.market_rest import (
    INTERVAL_MS,
    MarketRest,
    interval_label,
    mark_info,
    parse_ticker_stream,
)
from core.binance.parse_market import parse_kline, parse_mark_price
from core.binance.wire import ParseError, unwrap
from core.engine import strategy_params
from core.event_bus import EventBus
from core.events import Candle, MarkPrice
from core.market.series import (
    KlineSeries,
    NoMarketData,
    Piece,
    RefreshPass,
    UnknownSymbol,
    Watchlist,
)
from core.market.ta import Analyser, make_executor
from core.strategies.selection import params_from_settings, plugin_dirs
from utils.cache import BudgetExhausted, Entry, MarketCache, wall_clock_ms
from utils.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")
ALL_SYMBOLS = "USDM"
RETRY_MAX_S = 600.0


class MarketData:
    """Cache, series and loaders of the market-data worker; see the module docstring.

    Args:
        ttls: seconds each kind stays fresh (klines, mark, ticker, oi, symbols).
        timeframes: kline intervals kept for watched symbols.
        history_bars: klines per REST load (499 weighs 2).
        traded: the engine's symbols (always watched).
        watchlist: the persisted extra symbols.
        rest: REST fetchers on the worker budget; None in a replay (bus-fed, no network).
        strategy, params: the trend rule, as TRENDING builds it.
        executor_factory: makes the executor /ta's analysis runs in (``core.ta.make_executor``).
        bus: the engine bus to take candles and mark prices from (replay only).
        default_timeframe: /ta's timeframe when none is given, if available.
        clock / wall_clock: monotonic seconds and epoch ms (inject fakes in tests).
    """

    def __init__(self, *, ttls: Mapping[str, float], timeframes: Iterable[str],
                 history_bars: int, traded: Iterable[str], watchlist: Watchlist,
                 rest: MarketRest | None, strategy: str, params: Mapping[str, Any],
                 executor_factory: Callable[[], Executor], bus: EventBus | None = None,
                 default_timeframe: str = "1h", clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], int] = wall_clock_ms) -> None:
        self.cache = MarketCache(ttls, clock=clock, wall_clock=wall_clock)
        self.timeframes = tuple(timeframes)
        self.history_bars = history_bars
        self.traded = tuple(traded)
        self.watchlist = watchlist
        self.rest = rest
        self.strategy, self.params = strategy, tuple(params.items())
        self.rules: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
        self.ensemble: tuple[tuple[str, Any], ...] | None = None
        self.plugin_dirs: tuple[str, ...] = ()
        self.set_strategy(strategy, params)
        self.default_timeframe = default_timeframe
        self._clock = clock
        self.analyser = Analyser(executor_factory)
        self._series: dict[tuple[str, str], KlineSeries] = {}
        self._pending: dict[tuple[str, str], dict[int, Candle]] = {}
        self._problems: dict[tuple[str, Hashable], str] = {}
        self._retry: dict[tuple[str, Hashable], tuple[float, int]] = {}
        self.version = 0  # bumped when the watched set changes (see wait_change)
        self._changed = asyncio.Event()
        self.bad_frames = 0
        self.gaps = 0
        if bus is not None:
            bus.subscribe(Candle, self.on_candle)
            bus.subscribe(MarkPrice, self._on_bus_mark)

    def set_strategy(self, strategy: str, params: Mapping[str, Any], *,
                     ensemble: Mapping[str, Any] | None = None,
                     plugin_dirs: Iterable[str] | None = None) -> None:
        """The engine's strategy for /ta's verdict, and the catalog rules /ta reads besides
        (every catalog id with its defaults; the active one with ``params``). ``ensemble``:
        the ensemble's parameters for its confidence line (unchanged when None)."""
        from core.strategies.catalog import ENSEMBLE, catalog

        self.strategy, self.params = strategy, tuple(params.items())
        self.rules = tuple((rule, self.params if rule == strategy else ())
                           for rule in catalog())
        if strategy == ENSEMBLE:
            self.ensemble = self.params
        elif ensemble is not None:
            self.ensemble = tuple(ensemble.items())
        if plugin_dirs is not None:
            self.plugin_dirs = tuple(plugin_dirs)

    @property
    def live(self) -> bool:
        """True with REST and streams; False in a replay (bus-fed)."""
        return self.rest is not None

    async def stop(self) -> None:
        """Shut the analysis executor down."""
        await self.analyser.stop()

    # ------------------------------------------------------------------ symbols and watchlist

    def watched(self) -> tuple[str, ...]:
        """Traded symbols first, then the watchlist."""
        return tuple(dict.fromkeys((*self.traded, *self.watchlist.symbols)))

    def stream_names(self) -> list[str]:
        """The worker's market streams: klines per timeframe, markPrice@1s and the 24 h ticker
        of every watched symbol (lowercase; all on the /market route)."""
        kinds = [f"kline_{tf}" for tf in self.timeframes] + ["markPrice@1s", "ticker"]
        return [f"{s.lower()}@{k}" for s in self.watched() for k in kinds]

    async def check_symbol(self, symbol: str) -> None:
        """Raise unless ``symbol`` can be analysed.

        Raises:
            UnknownSymbol: not listed by Binance (replay: not in the data).
            NoMarketData: the symbol list cannot be read now.
        """
        if not self.live:
            if not any(s == symbol for s, _ in self._series):
                raise UnknownSymbol(symbol)
            return
        if symbol in self.traded:
            return
        try:
            entry = await self.cache.get_or_load("symbols", ALL_SYMBOLS,
                                                 self._fetcher("symbols", ALL_SYMBOLS))
        except Exception as exc:
            raise NoMarketData(f"the Binance symbol list is unavailable ({_reason(exc)})"
                               ) from None
        if symbol not in entry.value:
            raise UnknownSymbol(symbol)

    async def watch(self, symbol: str) -> bool:
        """Watch ``symbol`` from now on; False if it was watched already.

        Raises:
            UnknownSymbol, NoMarketData: as ``check_symbol``.
            core.market.series.WatchlistFull: no room left.
            OSError: the watchlist file cannot be written.
        """
        if symbol in self.traded:
            return False
        await self.check_symbol(symbol)
        if not self.watchlist.add(symbol):
            return False
        self._bump()
        return True

    def unwatch(self, symbol: str) -> bool:
        """Stop watching ``symbol``; False if it was not on the watchlist (traded symbols are
        always watched and cannot be removed)."""
        if symbol in self.traded or not self.watchlist.remove(symbol):
            return False
        for key in [k for k in self._series if k[0] == symbol]:
            del self._series[key]
        for key in [k for k in self._pending if k[0] == symbol]:
            del self._pending[key]
        self._bump()
        return True

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, seen: int, timeout: float | None = None) -> bool:
        """Wait until the watched set differs from version ``seen`` (True) or ``timeout``
        seconds pass (False). Any number of waiters may use it."""
        if self.version != seen:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ stream and bus input

    def on_stream_frame(self, raw: str, _recv_ns: int = 0) -> None:
        """One raw frame of the worker's market streams (``MarketStreams(on_raw=...)``):
        ``kline``, ``markPriceUpdate`` or ``24hrTicker``, read by the shared parsers; anything
        else is ignored, and so are COIN-M (``st == 2``) payloads; a malformed frame is counted
        and dropped."""
        try:
            data = unwrap(orjson.loads(raw))
            event = data.get("e") if isinstance(data, dict) else None
            if event == "kline":
                candle = parse_kline(data)
                if candle is not None:
                    self.on_candle(candle)
            elif event == "markPriceUpdate":
                mark = parse_mark_price(data)
                if mark is not None:
                    self._on_bus_mark(mark)
            elif event == "24hrTicker":
                ticker = parse_ticker_stream(data)
                if ticker is not None:
                    self.cache.put("ticker", ticker.symbol, ticker)
        except (ParseError, orjson.JSONDecodeError, KeyError) as exc:
            self.bad_frames += 1
            if self.bad_frames <= 3:
                logger.warning("market-data stream: bad frame skipped (%s)", exc)

    def on_candle(self, c: Candle) -> None:
        """A kline update (stream) or a candle of the engine's bus (replay)."""
        key = (c.symbol, interval_label(c.interval_ms))
        series = self._series.get(key)
        if series is None:
            if self.live:
                if c.symbol in self.watched():  # arrived before its REST snapshot: keep it
                    pending = self._pending.setdefault(key, {})
                    pending[c.open_ms] = c
                    if len(pending) > 16:
                        del pending[min(pending)]
                return
            series = self._series[key] = KlineSeries(c.symbol, key[1], c.interval_ms, (),
                                                     self.history_bars)
        if series.apply(c):
            self.cache.put("klines", key, series)
        else:
            self.gaps += 1
            logger.info("market data: %s %s has missing bars; reloading it", *key)
            self.cache.expire("klines", key)

    def _on_bus_mark(self, ev: MarkPrice) -> None:
        """A mark price of the stream (live) or of the engine's bus (replay)."""
        self.cache.put("mark", ev.symbol, mark_info(ev))

    # ------------------------------------------------------------------ loads

    def _loader(self, kind: str, key: Hashable, fetch: Callable[[], Awaitable[T]]
                ) -> Callable[[], Awaitable[T]]:
        """``fetch`` wrapped so the reason of a failure is remembered for the report."""
        async def load() -> T:
            try:
                value = await fetch()
            except BudgetExhausted:
                self._problems[(kind, key)] = "budget"
                raise
            except Exception:
                self._problems[(kind, key)] = "error"
                raise
            self._problems.pop((kind, key), None)
            self._retry.pop((kind, key), None)
            return value
        return load

    async def _fetch_series(self, symbol: str, timeframe: str) -> KlineSeries:
        assert self.rest is not None
        candles = await self.rest.klines(symbol, timeframe, self.history_bars)
        series = KlineSeries(symbol, timeframe, INTERVAL_MS[timeframe], candles,
                             self.history_bars)
        key = (symbol, timeframe)
        if symbol in self.watched():  # stream updates seen meanwhile are newer than REST's
            old = self._series.get(key)
            newer = list(self._pending.pop(key, {}).values())
            if old is not None and old.current is not None:
                newer.append(old.current)
            for c in sorted(newer, key=lambda c: c.open_ms):
                series.apply(c)
            self._series[key] = series
        return series

    def _fetcher(self, kind: str, key: Any) -> Callable[[], Awaitable[Any]]:
        rest = self.rest
        assert rest is not None

        async def fetch() -> Any:
            if kind == "klines":
                return await self._fetch_series(*key)
            if kind == "symbols":
                return await rest.symbols()
            method = {"mark": rest.mark, "ticker": rest.ticker, "oi": rest.open_interest}[kind]
            return await method(key)

        return self._loader(kind, key, fetch)

    async def get(self, kind: str, key: Any) -> Piece[Any]:
        """The cached value, loaded on a miss or when stale (live), with its freshness; a
        failed load without an old entry gives ``Piece(None, problem=...)``."""
        if not self.live:
            cached = self.cache.get(kind, key)
            return Piece(None, problem="none") if cached is None else Piece(cached.value,
                                                                             cached.age_s)
        try:
            entry: Entry[Any] = await self.cache.get_or_load(kind, key, self._fetcher(kind, key))
        except BudgetExhausted:
            return Piece(None, problem="budget")
        except Exception as exc:
            logger.warning("market data %s %s unavailable: %s", kind, key, _reason(exc))
            return Piece(None, problem="error")
        problem = self._problems.get((kind, key), "stream") if entry.stale else ""
        return Piece(entry.value, entry.age_s, entry.stale, problem)

    # ------------------------------------------------------------------ the worker's pass

    def _due(self, kind: str, key: Hashable, now: float) -> bool:
        retry = self._retry.get((kind, key))
        if retry is not None and now < retry[0]:
            return False
        entry = self.cache.get(kind, key)
        return entry is None or entry.stale

    async def refresh_due(self) -> RefreshPass:
        """One worker pass: load whatever is missing or stale for the watched symbols (the
        first pass is the warm-up), within the budget. A request the exchange refuses (e.g. a
        delisted symbol) is retried later with its own backoff; the pass goes on.

        Raises:
            core.binance.errors.ExchangeError (not ``Rejected``), OSError: Binance is
                unreachable or throttling; the worker backs off.
        """
        done = RefreshPass()
        if self.rest is None:
            return done
        now = self._clock()
        work: list[tuple[str, Any]] = [("symbols", ALL_SYMBOLS)]
        for symbol in self.watched():
            work += [("klines", (symbol, tf)) for tf in self.timeframes]
            work += [("mark", symbol), ("ticker", symbol), ("oi", symbol)]
        for kind, key in work:
            if not self._due(kind, key, now):
                continue
            try:
                await self.cache.get_or_load(kind, key, self._fetcher(kind, key),
                                             allow_stale_on_error=False)
                done.loaded += 1
            except BudgetExhausted:
                done.budget_exhausted = True
                break
            except (Rejected, ParseError) as exc:
                done.errors += 1
                done.failed.append(f"{kind} {key}")
                _, attempts = self._retry.get((kind, key), (0.0, 0))
                delay = min(RETRY_MAX_S, 10.0 * 2 ** attempts)
                self._retry[(kind, key)] = (now + delay, attempts + 1)
                logger.warning("market data %s %s failed (%s); retrying in %.0fs", kind, key,
                               _reason(exc), delay)
        return done

    # ------------------------------------------------------------------ /ta

    def timeframes_for(self, symbol: str) -> tuple[str, ...]:
        """Timeframes /ta reads for ``symbol``: MARKET_TIMEFRAMES (live) or the ones the
        replay has, shortest first."""
        if self.live:
            return self.timeframes
        have = sorted((s for s in self._series.values() if s.symbol == symbol),
                      key=lambda s: s.interval_ms)
        return tuple(s.timeframe for s in have)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def market_from_settings(settings: Settings, *, rest: MarketRest | None = None,
                         bus: EventBus | None = None,
                         executor_factory: Callable[[], Executor] | None = None,
                         clock: Callable[[], float] = time.monotonic,
                         wall_clock: Callable[[], int] = wall_clock_ms) -> MarketData:
    """MarketData configured from the ``# --- market data`` settings: live with ``rest``, or
    fed by the engine's ``bus`` (a replay). The watchlist lives in DATA_DIR/watchlist.json."""
    ttls = {"klines": settings.market_ttl_klines_s, "mark": settings.market_ttl_mark_s,
            "ticker": settings.market_ttl_ticker_s, "oi": settings.market_ttl_open_interest_s,
            "symbols": settings.market_ttl_symbols_s}
    watchlist = Watchlist(settings.data_dir / "watchlist.json", settings.watchlist,
                          max_size=settings.market_watchlist_max)
    kind = settings.market_analysis_executor
    market = MarketData(
        ttls=ttls, timeframes=settings.market_timeframes,
        history_bars=settings.market_history_bars, traded=settings.symbols,
        watchlist=watchlist, rest=rest, strategy=settings.strategy,
        params=strategy_params(settings),
        executor_factory=executor_factory or (lambda: make_executor(kind)), bus=bus,
        default_timeframe=settings.timeframe, clock=clock, wall_clock=wall_clock)
    market.set_strategy(settings.strategy, strategy_params(settings),
                        ensemble=params_from_settings(settings, "ensemble"),
                        plugin_dirs=[str(p) for p in plugin_dirs(settings)])
    return market
