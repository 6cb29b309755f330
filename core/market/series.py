"""Small pieces of the market-data worker: its errors and result types, a kline series kept
current from a stream, and the persisted watchlist."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from core.events import Candle
from core.persisted import SYMBOL_RE, Fields, read_json_file
from utils.files import write_json_atomic

T = TypeVar("T")
WATCHLIST_VERSION = 1


class UnknownSymbol(LookupError):
    """Binance USDⓈ-M does not list the symbol (or, in a replay, the data has none of it)."""


class NoMarketData(LookupError):
    """The data needed is not available (yet); the message says which and why."""


@dataclass(frozen=True, slots=True)
class Piece(Generic[T]):
    """A cached value with its freshness. ``problem``: "" (fine), "budget" (the REST budget was
    spent), "error" (Binance failed), "stream" (its stream is down) or "none" (nothing
    known)."""

    value: T | None
    age_s: float | None = None
    stale: bool = False
    problem: str = ""


@dataclass(slots=True)
class RefreshPass:
    """What one worker pass did."""

    loaded: int = 0
    errors: int = 0
    budget_exhausted: bool = False
    failed: list[str] = field(default_factory=list)


class KlineSeries:
    """Closed candles of one symbol and timeframe, oldest first (at most ``maxlen``), plus the
    bar in progress.

    Built from a REST snapshot, then kept current by ``apply`` with kline stream updates (the
    bar in progress every ~250 ms, then its final state with ``closed=True``). Mutated only on
    the event loop; readers take ``snapshot()`` (a tuple) before handing candles to an executor.
    """

    __slots__ = ("symbol", "timeframe", "interval_ms", "closed", "current")

    def __init__(self, symbol: str, timeframe: str, interval_ms: int, candles: Iterable[Candle],
                 maxlen: int) -> None:
        self.symbol, self.timeframe, self.interval_ms = symbol, timeframe, interval_ms
        self.closed: deque[Candle] = deque(maxlen=maxlen)
        self.current: Candle | None = None
        for c in candles:
            if c.closed:
                self.closed.append(c)
            else:
                self.current = c

    def __len__(self) -> int:
        return len(self.closed)

    @property
    def last_open_ms(self) -> int | None:
        return self.closed[-1].open_ms if self.closed else None

    def apply(self, c: Candle) -> bool:
        """Fold one kline update in. Returns False when it shows that closed bars are missing
        between the series and ``c`` (updates were lost, e.g. during a reconnect): the series
        must be loaded again. Updates older than the last closed bar are ignored; a closed
        update of the last closed bar replaces it."""
        last = self.last_open_ms
        if last is not None and c.open_ms <= last:
            if c.open_ms == last and c.closed:
                self.closed[-1] = c
            return True
        contiguous = last is None or c.open_ms == last + self.interval_ms
        if c.closed:
            self.closed.append(c)
            if self.current is not None and self.current.open_ms <= c.open_ms:
                self.current = None
        elif self.current is None or c.open_ms >= self.current.open_ms:
            self.current = c
        return contiguous

    def snapshot(self) -> tuple[Candle, ...]:
        """The closed candles now, oldest first (a copy)."""
        return tuple(self.closed)


class WatchlistFull(ValueError):
    """The watchlist already holds its maximum number of symbols."""


class Watchlist:
    """Symbols watched besides the traded ones, persisted as
    ``{"version": 1, "symbols": [...]}`` (a file without ``version`` is version 1).

    The file, once written by /watch, wins over the WATCHLIST setting. It is validated on load
    like the store of record: a damaged file stops the start with ``PersistError`` and is never
    overwritten with the setting.

    Raises:
        core.persisted.PersistError: not JSON, an unknown field or schema version, ``symbols``
            not a list of Binance symbol names (``BTCUSDT``), or more than ``max_size`` of them
            (names the file and the field).
    """

    def __init__(self, path: Path | None, initial: Iterable[str] = (), *,
                 max_size: int = 30) -> None:
        self.path = path
        self.max_size = max_size
        symbols = list(dict.fromkeys(s.upper() for s in initial))
        doc = read_json_file(path) if path is not None else None
        if doc is not None:
            symbols = _read_symbols(Fields(doc, str(path)), max_size)
        self._symbols = symbols[:max_size]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._symbols

    def add(self, symbol: str) -> bool:
        """Add and save; False if it was there already.

        Raises:
            WatchlistFull: ``max_size`` symbols are watched already.
            OSError: the file cannot be written.
        """
        if symbol in self._symbols:
            return False
        if len(self._symbols) >= self.max_size:
            raise WatchlistFull(f"the watchlist holds at most {self.max_size} symbols")
        self._symbols.append(symbol)
        self._save()
        return True

    def remove(self, symbol: str) -> bool:
        """Remove and save; False if it was not there."""
        if symbol not in self._symbols:
            return False
        self._symbols.remove(symbol)
        self._save()
        return True

    def _save(self) -> None:
        if self.path is None:
            return
        write_json_atomic(self.path, {"version": WATCHLIST_VERSION, "symbols": self._symbols})


def _read_symbols(f: Fields, max_size: int) -> list[str]:
    f.only("version", "symbols")
    f.version(WATCHLIST_VERSION)
    raw = f.doc.get("symbols")
    if not isinstance(raw, list):
        f.fail("symbols", f"must be a list of symbol names, got {type(raw).__name__}")
    for i, symbol in enumerate(raw):
        if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
            f.fail(f"symbols.{i}", f"is {str(symbol)[:40]!r}, not a symbol name like BTCUSDT")
    if len(raw) > max_size:
        f.fail("symbols", f"holds {len(raw)} symbols, more than MARKET_WATCHLIST_MAX={max_size}")
    return list(dict.fromkeys(raw))
