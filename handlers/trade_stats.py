"""Grouping closed trades for /daily, /weekly, /monthly, /performance and /stats.

Pure functions over ``ClosedTrade`` rows from the journal; money stays ``Decimal`` (USDT).
Periods are UTC: a day starts at 00:00 UTC, a week on Monday 00:00 UTC (ISO 8601), a month on
its first day. A trade belongs to the period of its exit time (when its PnL was realized), as in
Freqtrade's /daily.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.backtest.stats import PERIOD_LABELS
from core.events import ClosedTrade

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Group:
    """Trades of one period, symbol or exit reason.

    ``net_pnl``/``fees`` in USDT; ``return_pct`` is net PnL in percent of the equity at the
    start of the period (None when that is unknown or not positive); holding times in seconds.
    """

    key: str
    trades: int
    wins: int
    losses: int
    net_pnl: Decimal
    fees: Decimal
    return_pct: Decimal | None = None
    avg_hold_s: float = 0.0
    avg_win_hold_s: float = 0.0
    avg_loss_hold_s: float = 0.0

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0


def _utc(ts_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)


def period_start(kind: str, ts_ms: int) -> dt.datetime:
    """Start of the UTC day, ISO week (Monday) or month holding ``ts_ms``."""
    d = _utc(ts_ms).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "week":
        return d - dt.timedelta(days=d.weekday())
    if kind == "month":
        return d.replace(day=1)
    return d


def previous_start(kind: str, start: dt.datetime) -> dt.datetime:
    if kind == "week":
        return start - dt.timedelta(days=7)
    if kind == "month":
        return (start - dt.timedelta(days=1)).replace(day=1)
    return start - dt.timedelta(days=1)


def _hold_s(trades: Sequence[ClosedTrade]) -> float:
    if not trades:
        return 0.0
    return sum((t.exit_ts_ms - t.entry_ts_ms) for t in trades) / len(trades) / 1000


def summarize(key: str, trades: Sequence[ClosedTrade], start_equity: Decimal | None = None
              ) -> Group:
    wins = [t for t in trades if t.net_pnl > 0]
    losses = [t for t in trades if t.net_pnl <= 0]
    net = sum((t.net_pnl for t in trades), ZERO)
    pct = (net / start_equity * 100) if start_equity is not None and start_equity > 0 else None
    return Group(key=key, trades=len(trades), wins=len(wins), losses=len(losses), net_pnl=net,
                 fees=sum((t.fees for t in trades), ZERO), return_pct=pct,
                 avg_hold_s=_hold_s(trades), avg_win_hold_s=_hold_s(wins),
                 avg_loss_hold_s=_hold_s(losses))


def period_starts(kind: str, count: int, now_ms: int) -> list[dt.datetime]:
    """Starts of the last ``count`` periods, newest first (the first holds ``now_ms``)."""
    starts = [period_start(kind, now_ms)]
    while len(starts) < count:
        starts.append(previous_start(kind, starts[-1]))
    return starts


def by_period(trades: Iterable[ClosedTrade], kind: str, count: int, now_ms: int,
              equity_now: Decimal) -> list[Group]:
    """The last ``count`` periods (``day``/``week``/``month``), newest first, empty ones
    included. Each period's return is measured on the equity at its start, rebuilt from
    ``equity_now`` (the wallet, USDT) minus the net PnL realized since then."""
    rows = sorted(trades, key=lambda t: t.exit_ts_ms)
    starts = period_starts(kind, count, now_ms)
    out: list[Group] = []
    equity_end = equity_now  # the newest period ends now
    for i, start in enumerate(starts):
        end = None if i == 0 else starts[i - 1]
        inside = [t for t in rows if _utc(t.exit_ts_ms) >= start
                  and (end is None or _utc(t.exit_ts_ms) < end)]
        net = sum((t.net_pnl for t in inside), ZERO)
        start_equity = equity_end - net
        label = PERIOD_LABELS[kind](int(start.timestamp() * 1000))
        out.append(summarize(label, inside, start_equity))
        equity_end = start_equity
    return out


def grouped(trades: Iterable[ClosedTrade], key: Callable[[ClosedTrade], str]) -> list[Group]:
    """Trades grouped by ``key`` (symbol, exit reason), best net PnL first."""
    buckets: dict[str, list[ClosedTrade]] = {}
    for t in trades:
        buckets.setdefault(key(t), []).append(t)
    groups = [summarize(k, v) for k, v in buckets.items()]
    return sorted(groups, key=lambda g: (-g.net_pnl, g.key))
