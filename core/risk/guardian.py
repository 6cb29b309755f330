"""RISK, the guardian between TRENDING and ORDERING.

Every ``TradeSignal`` comes here first. While the engine is ARMED and FLAT (the only time an
entry could leave), each limit of core/risk/limits.py is checked in a fixed order; the first
one breached turns the signal into a ``RiskRejected`` (journaled, counted by limit, alerted
once per limit and period), otherwise it goes on as ``RiskApproved``, the only event ORDERING
opens positions on. In any other mode or phase the signal passes untouched and ORDERING refuses
it with its own reason (not ARMED, a position already open), so RISK's counts are about
entries that could really have been sent.

The kill switch watches the book on every closed trade and equity change: a daily realized
loss (USDT or % of the start-of-day equity) or a drawdown from the equity peak at or over its
limit publishes one ``HaltRequest``; ORDERING then sets HALTED with the reason, cancels entry
orders and closes the position at market. HALTED is persisted with the engine state and lifted
only by /arm. After that /arm, a daily-loss breach keeps refusing entries until the next UTC
day without halting again, and the equity peak restarts at the equity of that moment.

Equity is the quote asset's wallet (``BalanceUpdate``) plus the open position's unrealized PnL
at the mark price (else the connection's last price), or the exchange's ``EquitySnapshot``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    Candle,
    ClosedTrade,
    EngineMode,
    EquitySnapshot,
    HaltRequest,
    MarkPrice,
    OrderRequest,
    PositionPhase,
    PositionUpdate,
    RiskApproved,
    RiskRejected,
    StateChanged,
    TradeClosed,
    TradeSignal,
)
from core.ports import Connection
from core.risk import limits as L
from core.risk.book import RiskBook, day_start
from core.risk.limits import Breach, RiskLimits
from core.risk.view import risk_snapshot, risk_summary

if TYPE_CHECKING:
    from core.state import EngineState

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
#: Limits whose alert period is the UTC day; every other limit alerts at most once an hour.
DAY_PERIOD_LIMITS = frozenset({"daily_loss_usdt", "daily_loss_pct", "max_drawdown_pct",
                               "entries_per_day"})
MAX_REFUSED_KEPT = 10_000  # refused signals remembered for the backtest report
MARK_MAX_AGE_MS = 60_000  # an older mark price is unknown (Binance sends one every 1-3 s)


def _q(x: Decimal, places: str = "0.01") -> Decimal:
    return x.quantize(Decimal(places))


class RiskGuardian:
    """The RISK module.

    Args:
        bus: engine bus; subscribes to TradeSignal, OrderRequest, TradeClosed, BalanceUpdate,
            EquitySnapshot, MarkPrice, Candle and StateChanged; publishes RiskApproved,
            RiskRejected and HaltRequest.
        state: the engine state (read: mode, phase, position; written: the ``risk``
            checkpoint, saved with the state).
        connection: for the last price of the open position when no mark price is known.
        limits: the thresholds.
        asset: the margin asset whose wallet makes the equity (USDT).
    """

    def __init__(self, bus: EventBus, state: EngineState, connection: Connection,
                 limits: RiskLimits, *, asset: str = "USDT") -> None:
        self._bus = bus
        self.state = state
        self._conn = connection
        self.limits = limits
        self.asset = asset
        self.book = RiskBook.from_dict(state.risk)  # checked when the state was loaded
        self._wallet: Decimal | None = None
        self._marks: dict[str, tuple[Decimal, Decimal, int, int]] = {}  # mark, rate, next, ts
        self._positions: dict[str, tuple[Decimal, Decimal]] = {}  # signed qty, entry price
        self.refusals: Counter[str] = Counter()
        self.refused: list[dict[str, Any]] = []
        self._alerted: set[tuple[str, int]] = set()
        self._tripping = False
        self.halt_limit = ""
        bus.subscribe(TradeSignal, self.on_signal)
        bus.subscribe(OrderRequest, self._on_order)
        bus.subscribe(TradeClosed, self._on_trade)
        bus.subscribe(BalanceUpdate, self._on_balance)
        bus.subscribe(PositionUpdate, self._on_position)
        bus.subscribe(EquitySnapshot, self._on_equity_snapshot)
        bus.subscribe(MarkPrice, self._on_mark)
        bus.subscribe(Candle, self._on_candle)
        bus.subscribe(StateChanged, self._on_state)

    # ------------------------------------------------------------------ the gate

    def on_signal(self, sig: TradeSignal) -> None:
        st = self.state
        if st.mode is not EngineMode.ARMED or st.phase is not PositionPhase.FLAT:
            self._bus.publish(RiskApproved(signal=sig, ts_ms=sig.ts_ms))
            return
        self.book.roll(sig.ts_ms)
        breach = self.check(sig)
        if breach is None:
            self._bus.publish(RiskApproved(signal=sig, ts_ms=sig.ts_ms))
            return
        self.refusals[breach.limit] += 1
        period = (day_start(sig.ts_ms) if breach.limit in DAY_PERIOD_LIMITS
                  else sig.ts_ms - sig.ts_ms % L.HOUR_MS)
        first = (breach.limit, period) not in self._alerted
        self._alerted.add((breach.limit, period))
        if len(self.refused) < MAX_REFUSED_KEPT:
            self.refused.append({
                "ts_ms": sig.ts_ms, "symbol": sig.symbol, "side": sig.side.value,
                "limit": breach.limit, "value": str(breach.value),
                "threshold": str(breach.threshold), "unit": breach.unit,
                "detail": breach.detail})
        logger.info("signal %s %s refused by RISK: %s %s / %s %s %s", sig.symbol,
                    sig.side.value, breach.limit, breach.value, breach.threshold, breach.unit,
                    breach.detail)
        self._bus.publish(RiskRejected(
            signal=sig, limit=breach.limit, value=breach.value, threshold=breach.threshold,
            unit=breach.unit, detail=breach.detail, alert=first, ts_ms=sig.ts_ms))

    def check(self, sig: TradeSignal) -> Breach | None:
        """The first limit ``sig`` would breach now, in a fixed order, or None."""
        lim, book, ts = self.limits, self.book, sig.ts_ms
        breach = L.check_trading_window(lim, ts)
        if breach:
            return breach
        if book.cooldown_until_ms > ts:
            return Breach("loss_cooldown", _q(Decimal(book.cooldown_until_ms - ts) / 60_000, "0.1"),
                          Decimal(lim.loss_cooldown_min), "min",
                          f"{lim.max_consecutive_losses} losses in a row")
        breach = self._kill_breach()
        if breach:
            return breach
        if lim.min_entry_interval_s and book.last_entry_ms:
            since = Decimal(ts - book.last_entry_ms) / 1000
            if since < lim.min_entry_interval_s:
                return Breach("min_entry_interval", _q(since, "0.1"),
                              Decimal(lim.min_entry_interval_s), "s")
        book.prune(ts)
        hour = book.entries_since(ts - L.HOUR_MS)
        if lim.max_entries_per_hour and hour >= lim.max_entries_per_hour:
            return Breach("entries_per_hour", Decimal(hour), Decimal(lim.max_entries_per_hour),
                          "count")
        day = book.entries_since(book.day_start_ms - 1)
        if lim.max_entries_per_day and day >= lim.max_entries_per_day:
            return Breach("entries_per_day", Decimal(day), Decimal(lim.max_entries_per_day),
                          "count")
        orders = book.orders_since(ts - L.MINUTE_MS)
        if lim.max_orders_per_minute and orders >= lim.max_orders_per_minute:
            return Breach("orders_per_minute", Decimal(orders),
                          Decimal(lim.max_orders_per_minute), "count")
        breach = L.check_exposure(lim, sig.quantity * sig.entry_price, sig.leverage)
        if breach:
            return breach
        mark = self._mark(sig.symbol, ts)
        breach = L.check_price_band(lim, sig.entry_price, mark[0] if mark else None)
        if breach:
            return breach
        breach = L.check_liquidation(lim, sig.side, sig.entry_price, sig.stop_loss, sig.leverage)
        if breach:
            return breach
        if mark is not None:
            return L.check_funding(lim, sig.side, ts, mark[1], mark[2])
        return None

    def _kill_breach(self, *, for_halt: bool = False) -> Breach | None:
        """A breached kill-switch limit, or None. ``for_halt`` skips a daily-loss breach an
        admin already acknowledged today (it still refuses entries)."""
        lim, book = self.limits, self.book
        acked = for_halt and book.daily_ack_ms == book.day_start_ms
        loss = book.daily_loss
        if lim.daily_loss_usdt and loss >= lim.daily_loss_usdt and not acked:
            return Breach("daily_loss_usdt", _q(loss), lim.daily_loss_usdt, "USDT")
        pct = book.daily_loss_pct()
        if lim.daily_loss_pct and pct is not None and pct >= lim.daily_loss_pct and not acked:
            return Breach("daily_loss_pct", _q(pct), lim.daily_loss_pct, "%",
                          f"{_q(loss)} USDT of {_q(book.day_start_equity or ZERO)}")
        dd = book.drawdown_pct()
        if lim.max_drawdown_pct and dd is not None and dd >= lim.max_drawdown_pct:
            return Breach("max_drawdown_pct", _q(dd), lim.max_drawdown_pct, "%",
                          f"equity {_q(book.equity or ZERO)} from peak {_q(book.peak_equity)}")
        return None

    # ------------------------------------------------------------------ kill switch

    def _check_kill(self, ts_ms: int) -> None:
        if self.state.mode is EngineMode.HALTED or self._tripping:
            return
        breach = self._kill_breach(for_halt=True)
        if breach is None:
            return
        self._tripping = True
        self.halt_limit = breach.limit
        reason = f"{breach.limit} {breach.value} / {breach.threshold} {breach.unit}"
        if breach.detail:
            reason += f" ({breach.detail})"
        logger.warning("kill switch: %s", reason)
        self._bus.publish(HaltRequest(reason=reason, limit=breach.limit, ts_ms=ts_ms))

    def _on_state(self, ev: StateChanged) -> None:
        if ev.what != "mode":
            return
        if ev.new == EngineMode.HALTED.value:
            self._tripping = False
            return
        if ev.old == EngineMode.HALTED.value:  # an admin lifted the halt
            book = self.book
            book.roll(ev.ts_ms)
            if book.equity is not None:
                book.peak_equity = book.equity
            book.peak_since_ms = ev.ts_ms
            if self._kill_breach() is not None:
                book.daily_ack_ms = book.day_start_ms
            self._save()

    # ------------------------------------------------------------------ book inputs

    def _on_order(self, req: OrderRequest) -> None:
        entry = req.intent == "ENTRY"
        self.book.record_order(req.ts_ms, entry=entry)
        if entry:
            self._save()

    def _on_trade(self, ev: TradeClosed) -> None:
        self.fold(ev.trade)
        self._refresh_equity(ev.ts_ms)
        self._save()
        self._check_kill(ev.ts_ms)

    def fold(self, trade: ClosedTrade) -> bool:
        """Count a closed round trip once (also used to replay the journal at startup)."""
        lim = self.limits
        return self.book.fold_trade(trade, max_losses=lim.max_consecutive_losses,
                                    cooldown_ms=lim.loss_cooldown_min * L.MINUTE_MS)

    def _on_balance(self, ev: BalanceUpdate) -> None:
        if ev.asset != self.asset:
            return
        self._wallet = ev.wallet_balance
        if ev.reason != "ORDER":  # a fill's PositionUpdate follows: measure after it
            self._refresh_equity(ev.ts_ms)

    def _on_position(self, ev: PositionUpdate) -> None:
        if ev.quantity:
            self._positions[ev.symbol] = (ev.quantity, ev.entry_price)
        else:
            self._positions.pop(ev.symbol, None)
        self._refresh_equity(ev.ts_ms)

    def _on_equity_snapshot(self, ev: EquitySnapshot) -> None:
        self.book.observe_equity(ev.equity, ev.ts_ms)
        self._check_kill(ev.ts_ms)

    def _on_mark(self, ev: MarkPrice) -> None:
        self._marks[ev.symbol] = (Decimal(repr(ev.mark_price)), Decimal(repr(ev.funding_rate)),
                                  ev.next_funding_ms, ev.ts_ms)
        if ev.symbol in self._positions:
            self._refresh_equity(ev.ts_ms)
        elif ev.ts_ms >= self.book.day_start_ms + L.DAY_MS:
            self.book.roll(ev.ts_ms)

    def _on_candle(self, c: Candle) -> None:
        if c.closed:
            self._refresh_equity(c.ts_ms)

    def _refresh_equity(self, ts_ms: int) -> None:
        if self._wallet is None:
            self.book.roll(ts_ms)
            return
        self.book.observe_equity(self._wallet + self.unrealized_pnl(ts_ms), ts_ms)
        self._check_kill(ts_ms)

    def _mark(self, symbol: str, now_ms: int) -> tuple[Decimal, Decimal, int, int] | None:
        """The symbol's latest mark price, funding rate and next funding time, unless older
        than ``MARK_MAX_AGE_MS`` (a gap in the data: an old mark says nothing about now)."""
        mark = self._marks.get(symbol)
        if mark is None or now_ms - mark[3] > MARK_MAX_AGE_MS:
            return None
        return mark

    def unrealized_pnl(self, now_ms: int) -> Decimal:
        """Unrealized PnL of the exchange's positions (``PositionUpdate``) at the mark
        (else last) price, USDT."""
        total = ZERO
        for symbol, (qty, entry) in self._positions.items():
            mark = self._mark(symbol, now_ms)
            price = mark[0] if mark else self._conn.reference_price(symbol)
            if price is not None:
                total += (price - entry) * qty
        return total

    def _save(self) -> None:
        self.state.risk = self.book.to_dict()
        self.state.save()

    # ------------------------------------------------------------------ startup

    def restore(self, trades: list[ClosedTrade], entry_times: list[int],
                peak: Decimal | None, day_equity: Sequence[tuple[int, Decimal]] = ()) -> int:
        """Top the book up from the journal at startup: closed trades (oldest first) the
        checkpoint has not folded yet, entry order times, the highest equity since the peak's
        last reset, and the day's equity points (for a start-of-day equity the checkpoint
        lacks). Returns the number of trades folded.

        So a restart neither forgets a loss (even one whose checkpoint write was lost) nor
        resets the day, the streak or the cooldown. The day itself only moves on exchange
        time, never on the wall clock (a replay runs in the past).
        """
        book = self.book
        folded = sum(1 for t in trades if self.fold(t))
        known = set(book.entries)
        fresh = [ts for ts in entry_times if ts not in known]
        if fresh:
            book.entries = type(book.entries)(sorted((*book.entries, *fresh)))
        if peak is not None and peak > book.peak_equity:
            book.peak_equity = peak
        if book.day_start_equity is None:
            today = [eq for ts, eq in day_equity if day_start(ts) == book.day_start_ms]
            if today:
                book.day_start_equity = today[0]
        if folded or fresh:
            self._save()
        logger.info("risk book restored: %d trades folded, day PnL %s, streak %d", folded,
                    book.day_realized, book.loss_streak)
        return folded

    # ------------------------------------------------------------------ read models

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        """Limits, today's usage, cooldowns and the halt (core/risk/view.py: the shape)."""
        return risk_snapshot(self, now_ms)

    def summary(self) -> dict[str, Any]:
        """The backtest report's ``risk`` object (core/risk/view.py)."""
        return risk_summary(self)
