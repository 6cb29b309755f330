"""What the paper exchange knows of the market, and the prices it can fill at.

Rules (README "Paper exchange" → fill model):

* Expiry: every symbol's prices (best bid/ask, last trade, mark) carry their exchange time. When a
  new price of a symbol arrives more than ``stale_ms`` after another kind's, the older kind is
  forgotten: after a gap in the data (two files days apart) nothing is filled, marked or
  liquidated at a price from before the gap. ``fresh(symbol, now)`` is False while no price of
  the symbol is younger than ``stale_ms``; new entries are refused then. A mark price more than
  ``stale_ms`` older than the symbol's newest price (the mark data ended, or is sparser than
  the trades) no longer drives liquidation and valuation: the last price does until a mark
  arrives.
* Executable price of a market order: the best ask (BUY) / bid (SELL), unless a trade printed
  after that quote *through* it (a trade above the ask, below the bid): such a quote is stale
  (bookTicker lags a sweep) and the trade price is the executable one. Without a book, the last
  trade price.
* A triggered exit (SL, TP, trailing stop) fills at the *worse* of its trigger price and the
  executable price: never better than the trigger. On a kline price path (``BarTick``s), the
  path between two ticks of one bar is continuous, so a trigger crossed inside a segment is
  executable at the trigger itself; a bar that opens beyond the trigger fills at the open.
"""

from __future__ import annotations

ABSENT = (0.0, -1)  # (price, ts_ms) of a price never seen or forgotten


class MarketView:
    """Latest book, trade and mark prices per symbol, with expiry.

    Args:
        stale_ms: a price older than this (exchange time, ms) relative to the symbol's newest
            price is forgotten; 0 disables expiry.
    """

    __slots__ = ("stale_ms", "_gap", "book", "last", "mark", "newest", "_bar_prev", "_bar_last",
                 "_in_bar")

    def __init__(self, stale_ms: int = 60_000) -> None:
        self.stale_ms = stale_ms
        self._gap = stale_ms if stale_ms > 0 else float("inf")
        self.book: dict[str, tuple[float, float, int]] = {}  # symbol -> (bid, ask, ts)
        self.last: dict[str, tuple[float, int]] = {}  # symbol -> (price, ts)
        self.mark: dict[str, tuple[float, int]] = {}
        self.newest: dict[str, int] = {}  # symbol -> newest price time seen
        self._bar_prev: dict[str, float] = {}  # previous tick of the current bar's path
        self._bar_last: set[str] = set()  # symbols whose last price is a bar-path tick
        self._in_bar: set[str] = set()  # symbols inside a bar's path (its open was seen)

    # ------------------------------------------------------------------ updates

    def _age_out(self, symbol: str, ts: int, prev: int | None) -> None:
        """A price at ``ts`` after a gap (or the first one): forget the symbol's prices older
        than ``stale_ms`` before it."""
        if prev is None or ts > prev:
            self.newest[symbol] = ts
        if prev is None:
            return
        limit = ts - self.stale_ms
        b = self.book.get(symbol)
        if b is not None and b[2] < limit:
            del self.book[symbol]
        for table in (self.last, self.mark):
            p = table.get(symbol)
            if p is not None and p[1] < limit:
                del table[symbol]
        self._bar_prev.pop(symbol, None)
        self._in_bar.discard(symbol)

    def on_book(self, symbol: str, ts: int, bid: float, ask: float) -> None:
        prev = self.newest.get(symbol)
        if prev is None or ts - prev > self._gap:
            self._age_out(symbol, ts, prev)
        elif ts > prev:
            self.newest[symbol] = ts
        self.book[symbol] = (bid, ask, ts)

    def on_trade(self, symbol: str, ts: int, price: float) -> None:
        prev = self.newest.get(symbol)
        if prev is None or ts - prev > self._gap:
            self._age_out(symbol, ts, prev)
        elif ts > prev:
            self.newest[symbol] = ts
        if symbol in self._bar_last:
            self._bar_last.discard(symbol)
            self._in_bar.discard(symbol)
            self._bar_prev.pop(symbol, None)
        self.last[symbol] = (price, ts)

    def on_bar_tick(self, symbol: str, ts: int, price: float) -> None:
        """A price on a kline's path (see the module docstring)."""
        prev = self.newest.get(symbol)
        if prev is None or ts - prev > self._gap:
            self._age_out(symbol, ts, prev)
        elif ts > prev:
            self.newest[symbol] = ts
        last = self.last.get(symbol)
        if symbol in self._in_bar and last is not None:
            self._bar_prev[symbol] = last[0]
        else:
            self._bar_prev.pop(symbol, None)
        self._bar_last.add(symbol)
        self._in_bar.add(symbol)
        self.last[symbol] = (price, ts)

    def bar_closed(self, symbol: str) -> None:
        """The current kline ended: its next path starts with the next bar's open (a gap)."""
        self._bar_prev.pop(symbol, None)
        self._in_bar.discard(symbol)

    def on_mark(self, symbol: str, ts: int, price: float) -> None:
        prev = self.newest.get(symbol)
        if prev is None or ts - prev > self._gap:
            self._age_out(symbol, ts, prev)
        elif ts > prev:
            self.newest[symbol] = ts
        self.mark[symbol] = (price, ts)

    # ------------------------------------------------------------------ views

    def fresh(self, symbol: str, now: int) -> bool:
        """Whether a price of ``symbol`` is at most ``stale_ms`` old at ``now``."""
        ts = self.newest.get(symbol)
        if ts is None:
            return False
        return not self.stale_ms or now - ts <= self.stale_ms

    def _fresh_mark(self, symbol: str) -> tuple[float, int] | None:
        """The mark unless ``stale_ms`` older than the symbol's newest price (mark data that
        ends, or is coarser than the trades, gives way to the last price)."""
        p = self.mark.get(symbol)
        if p is None or self.stale_ms and self.newest[symbol] - p[1] > self.stale_ms:
            return None
        return p

    def reference(self, symbol: str) -> float | None:
        """Mark price (unless stale, see ``has_mark``), else last trade price, else mid of the
        book; None when none is known."""
        p = self._fresh_mark(symbol) or self.last.get(symbol)
        if p is not None:
            return p[0]
        b = self.book.get(symbol)
        return (b[0] + b[1]) / 2 if b is not None else None

    def last_price(self, symbol: str) -> float | None:
        p = self.last.get(symbol)
        return p[0] if p is not None else None

    def has_mark(self, symbol: str) -> bool:
        """Whether a mark price drives the symbol now: one at most ``stale_ms`` older than the
        symbol's newest price of any kind."""
        return self._fresh_mark(symbol) is not None

    def spread(self, symbol: str) -> float | None:
        """Ask − bid of the latest quote, None without a book."""
        b = self.book.get(symbol)
        return b[1] - b[0] if b is not None else None

    def executable(self, symbol: str, buy: bool) -> float | None:
        """The price a market order would take now (see the module docstring), or None."""
        b = self.book.get(symbol)
        t = self.last.get(symbol)
        if b is None:
            return t[0] if t is not None else None
        bid, ask, bts = b
        if t is not None and t[1] > bts:
            price = t[0]
            if buy and price > ask or not buy and price < bid:
                return price  # a later trade went through the quote: the quote is stale
        return ask if buy else bid

    def exit_price(self, symbol: str, buy: bool, trigger: float | None) -> float | None:
        """Executable price of a closing order, never better than ``trigger`` (if given)."""
        price = self.executable(symbol, buy)
        if price is None or not trigger:
            return price
        if symbol in self._bar_prev and symbol in self._bar_last and symbol not in self.book:
            lo, hi = sorted((self._bar_prev[symbol], self.last[symbol][0]))
            if lo <= trigger <= hi:
                price = trigger  # crossed inside a continuous bar segment
        return max(price, trigger) if buy else min(price, trigger)
