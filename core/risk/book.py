"""RISK's book: the running figures the limits are measured on, as a fold over closed trades,
equity observations and sent orders.

* The day is the UTC calendar day (00:00:00.000 to 23:59:59.999 UTC) of exchange time. When the
  first event of a new day arrives, the day's realized PnL restarts at 0 and the start-of-day
  equity is the equity then (wallet + unrealized PnL).
* Realized PnL of the day is the sum of ``net_pnl`` (after fees and funding) of the round trips
  whose exit falls in the day (the ledger's ``ClosedTrade``).
* The equity peak is the highest equity seen since the last reset (an admin's /arm after a
  drawdown halt resets it to the equity at that moment).
* The loss streak counts consecutive losing round trips (``net_pnl < 0``); a winning one resets
  it; a break-even one leaves it. Reaching the maximum starts the cooldown and restarts the count.

``to_dict``/``from_dict`` give the checkpoint kept in the engine state (plain JSON types, money
as decimal strings), so a restart resumes the same day, peak, streak, cooldown and entries;
``fold_trade`` skips trades already folded (by exit time), so the journal can replay history
into it at startup without counting a trade twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.events import ClosedTrade
from core.persisted import Fields
from core.risk.limits import DAY_MS, MINUTE_MS

ZERO = Decimal(0)
ENTRY_MEMORY_MS = DAY_MS  # entries older than this matter to no limit


def day_start(ts_ms: int) -> int:
    """Start of the UTC day holding ``ts_ms`` (ms)."""
    return ts_ms - ts_ms % DAY_MS


_RISK_TIMES = ("day_start_ms", "cooldown_until_ms", "last_trade_ms", "daily_ack_ms",
               "peak_since_ms")
_RISK_COUNTS = ("day_trades", "loss_streak")
_RISK_LISTS = ("entries", "orders")  # exchange times (ms) of recent entries / orders


def check_checkpoint(f: Fields) -> dict[str, Any]:
    """Validate a checkpoint on load (``RiskBook.to_dict``'s output, kept in the engine state;
    ``{}`` for a fresh book): times in ms, counts >= 0, money as finite Decimal strings (USDT; the
    equities may be null before the first figure), no unknown field. Returns it unchanged.

    Raises:
        PersistError: names the field, e.g. ``risk.day_realized`` or ``risk.entries[3]``.
    """
    f.only(*_RISK_TIMES, *_RISK_COUNTS, *_RISK_LISTS, "day_start_equity", "day_realized",
           "equity", "peak_equity")
    for name in _RISK_TIMES:
        f.ts(name, default=0)
    for name in _RISK_COUNTS:
        f.int_(name, default=0)
    for name in ("day_start_equity", "equity"):
        if f.doc.get(name) is not None:
            f.dec(name, minimum=None)
    f.dec("day_realized", default="0", minimum=None)
    f.dec("peak_equity", default="0")
    for name in _RISK_LISTS:
        times = f.doc.get(name, [])
        if not isinstance(times, list):
            f.fail(name, f"must be a list of times (ms), got {type(times).__name__}")
        for i, t in enumerate(times):
            item = f"{name}[{i}]"
            Fields({item: t}, f.where, f.prefix).ts(item)
    return dict(f.doc)


@dataclass(slots=True)
class RiskBook:
    """The figures behind the limits. Money in USDT; times exchange ms."""

    day_start_ms: int = 0
    day_start_equity: Decimal | None = None
    day_realized: Decimal = ZERO
    day_trades: int = 0
    equity: Decimal | None = None
    peak_equity: Decimal = ZERO
    loss_streak: int = 0
    cooldown_until_ms: int = 0
    last_trade_ms: int = 0
    daily_ack_ms: int = 0  # the day an admin re-armed after a daily-loss halt
    peak_since_ms: int = 0  # when the peak was last reset (by /arm after a halt)
    entries: deque[int] = field(default_factory=deque)
    orders: deque[int] = field(default_factory=deque)

    # ------------------------------------------------------------------ time

    def roll(self, ts_ms: int) -> bool:
        """Move to the UTC day of ``ts_ms`` if it is a later one; True when the day changed."""
        start = day_start(ts_ms)
        if start <= self.day_start_ms:
            return False
        self.day_start_ms = start
        self.day_realized = ZERO
        self.day_trades = 0
        self.day_start_equity = self.equity
        return True

    def prune(self, now_ms: int) -> None:
        while self.entries and self.entries[0] <= now_ms - ENTRY_MEMORY_MS:
            self.entries.popleft()
        while self.orders and self.orders[0] <= now_ms - MINUTE_MS:
            self.orders.popleft()

    # ------------------------------------------------------------------ inputs

    def observe_equity(self, equity: Decimal, ts_ms: int) -> None:
        """A new equity figure (wallet + unrealized PnL, USDT)."""
        self.roll(ts_ms)
        self.equity = equity
        if self.day_start_equity is None:
            self.day_start_equity = equity
        if equity > self.peak_equity:
            self.peak_equity = equity

    def fold_trade(self, trade: ClosedTrade, *, max_losses: int, cooldown_ms: int) -> bool:
        """Count a closed round trip; False (and nothing changes) when it was already folded
        (its exit is not newer than the last folded one)."""
        ts = trade.exit_ts_ms
        if ts <= self.last_trade_ms:
            return False
        self.last_trade_ms = ts
        self.roll(ts)
        if day_start(ts) == self.day_start_ms:
            self.day_realized += trade.net_pnl
            self.day_trades += 1
        if trade.net_pnl < 0:
            self.loss_streak += 1
            if max_losses and self.loss_streak >= max_losses:
                self.cooldown_until_ms = max(self.cooldown_until_ms, ts + cooldown_ms)
                self.loss_streak = 0
        elif trade.net_pnl > 0:
            self.loss_streak = 0
        return True

    def record_order(self, ts_ms: int, *, entry: bool) -> None:
        self.orders.append(ts_ms)
        if entry:
            self.entries.append(ts_ms)
        self.prune(ts_ms)

    # ------------------------------------------------------------------ measures

    @property
    def daily_loss(self) -> Decimal:
        """Today's realized loss as a positive number (0 when the day is in profit)."""
        return max(-self.day_realized, ZERO)

    def daily_loss_pct(self) -> Decimal | None:
        base = self.day_start_equity
        if base is None or base <= 0:
            return None
        return self.daily_loss / base * 100

    def drawdown_pct(self) -> Decimal | None:
        if self.equity is None or self.peak_equity <= 0:
            return None
        return max(self.peak_equity - self.equity, ZERO) / self.peak_equity * 100

    def entries_since(self, since_ms: int) -> int:
        return sum(1 for t in self.entries if t > since_ms)

    def orders_since(self, since_ms: int) -> int:
        return sum(1 for t in self.orders if t > since_ms)

    @property
    def last_entry_ms(self) -> int:
        return self.entries[-1] if self.entries else 0

    # ------------------------------------------------------------------ checkpoint

    def to_dict(self) -> dict[str, Any]:
        def money(x: Decimal | None) -> str | None:
            return None if x is None else str(x)
        return {
            "day_start_ms": self.day_start_ms, "day_start_equity": money(self.day_start_equity),
            "day_realized": str(self.day_realized), "day_trades": self.day_trades,
            "equity": money(self.equity), "peak_equity": str(self.peak_equity),
            "loss_streak": self.loss_streak, "cooldown_until_ms": self.cooldown_until_ms,
            "last_trade_ms": self.last_trade_ms, "daily_ack_ms": self.daily_ack_ms,
            "peak_since_ms": self.peak_since_ms,
            "entries": list(self.entries), "orders": list(self.orders),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RiskBook:
        """Rebuild from ``to_dict``'s output, checked on load by ``check_checkpoint``; an
        empty dict gives a fresh book."""
        def money(x: Any) -> Decimal | None:
            return None if x is None else Decimal(str(x))
        return cls(
            day_start_ms=int(raw.get("day_start_ms", 0)),
            day_start_equity=money(raw.get("day_start_equity")),
            day_realized=Decimal(str(raw.get("day_realized", "0"))),
            day_trades=int(raw.get("day_trades", 0)),
            equity=money(raw.get("equity")),
            peak_equity=Decimal(str(raw.get("peak_equity", "0"))),
            loss_streak=int(raw.get("loss_streak", 0)),
            cooldown_until_ms=int(raw.get("cooldown_until_ms", 0)),
            last_trade_ms=int(raw.get("last_trade_ms", 0)),
            daily_ack_ms=int(raw.get("daily_ack_ms", 0)),
            peak_since_ms=int(raw.get("peak_since_ms", 0)),
            entries=deque(int(t) for t in raw.get("entries", ())),
            orders=deque(int(t) for t in raw.get("orders", ())),
        )
