"""What a backtest watches while it runs: equity on every change, prices, and why it did not trade.

``EquityTracker`` measures equity (wallet + unrealized PnL at the paper exchange's reference
price, USDT, float: analytics) on every price of a held symbol and every balance change, so the
maximum drawdown sees intrabar troughs, not only candle closes. It keeps a sampled curve for
the chart (one point per closed candle and per balance change) and per-symbol price series.

``Diagnostics`` counts closed candles per symbol against the rule's warm-up, signals, and every
refusal (ORDERING's ``SignalRejected`` and the exchange's rejected entries) by reason, so "No
trades." can say why. It also counts entries whose stop loss lies within ``SL_SPREADS`` spreads
(or ticks + slippage, without a book) of the entry: such stops are mostly noise.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    BarTick,
    Candle,
    MarketTick,
    MarkPrice,
    OrderStatus,
    OrderUpdate,
    PositionOpened,
    PositionUpdate,
    RiskRejected,
    SignalRejected,
    TradeSignal,
)
from core.paper import PaperExchange

SL_SPREADS = 3  # a stop loss closer than this many spreads to the entry gets a warning


@dataclass(slots=True)
class Drawdown:
    """Largest fall of equity from a running peak. ``fraction`` is of the peak (0..1)."""

    fraction: float = 0.0
    usdt: float = 0.0
    peak_ts_ms: int = 0
    trough_ts_ms: int = 0
    peak: float = 0.0
    trough: float = 0.0


class EquityTracker:
    """Equity on every change; see the module docstring."""

    def __init__(self, bus: EventBus, paper: PaperExchange, symbols: frozenset[str]) -> None:
        self._paper = paper
        self._symbols = symbols
        self.curve: list[tuple[int, float]] = []
        self.prices: dict[str, list[tuple[int, float]]] = {s: [] for s in symbols}
        self.first_price: dict[str, tuple[int, float]] = {}
        self.last_price: dict[str, tuple[int, float]] = {}
        self.dd = Drawdown()
        self._peak = float(paper.equity())
        self._peak_ts = 0
        self._wallet = float(paper.wallet)
        self._held: dict[str, tuple[float, float]] = {}  # symbol -> (signed qty, entry)
        bus.subscribe(MarketTick, self._on_price)
        bus.subscribe(BarTick, self._on_price)
        bus.subscribe(MarkPrice, self._on_mark)
        bus.subscribe(BalanceUpdate, self._on_balance)
        bus.subscribe(PositionUpdate, self._on_position)
        bus.subscribe(Candle, self._on_candle)

    def start(self, ts_ms: int) -> None:
        self._peak_ts = ts_ms
        self.curve.append((ts_ms, self._peak))

    def _equity(self) -> float:
        eq = self._wallet
        for sym, (qty, entry) in self._held.items():
            ref = self._paper.market.reference(sym)
            if ref:
                eq += (ref - entry) * qty
        return eq

    def _observe(self, ts: int) -> float:
        eq = self._equity()
        if eq > self._peak:
            self._peak, self._peak_ts = eq, ts
        fall = self._peak - eq
        if fall > self.dd.usdt:
            self.dd.usdt = fall
        if self._peak > 0 and fall / self._peak > self.dd.fraction:
            self.dd = Drawdown(min(fall / self._peak, 1.0), self.dd.usdt, self._peak_ts, ts,
                               self._peak, eq)
        return eq

    def _on_price(self, ev: MarketTick) -> None:
        sym = ev.symbol
        if sym in self._symbols:
            if sym not in self.first_price:
                self.first_price[sym] = (ev.ts_ms, ev.price)
            self.last_price[sym] = (ev.ts_ms, ev.price)
        if sym in self._held:
            self._observe(ev.ts_ms)

    def _on_mark(self, ev: MarkPrice) -> None:
        if ev.symbol in self._held:
            self._observe(ev.ts_ms)

    def _on_balance(self, ev: BalanceUpdate) -> None:
        self._wallet = float(ev.wallet_balance)

    def _on_position(self, ev: PositionUpdate) -> None:
        if ev.quantity:
            self._held[ev.symbol] = (float(ev.quantity), float(ev.entry_price))
        else:
            self._held.pop(ev.symbol, None)
        self.curve.append((ev.ts_ms, self._observe(ev.ts_ms)))

    def _on_candle(self, c: Candle) -> None:
        if c.closed and c.symbol in self._symbols:
            self.curve.append((c.ts_ms, self._observe(c.ts_ms)))
            self.prices[c.symbol].append((c.ts_ms, c.close))

    def finish(self, ts_ms: int) -> None:
        self.curve.append((ts_ms, self._observe(ts_ms)))


@dataclass(slots=True)
class Diagnostics:
    """Counts that explain a run (see the module docstring)."""

    warmup: int = 0
    candles: Counter[str] = field(default_factory=Counter)
    signals: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    tight_stops: int = 0
    entries: int = 0

    def attach(self, bus: EventBus, paper: PaperExchange, warmup: int) -> None:
        self.warmup = warmup
        bus.subscribe(Candle, self._on_candle)
        bus.subscribe(TradeSignal, self._on_signal)
        bus.subscribe(SignalRejected, self._on_rejected)
        bus.subscribe(RiskRejected, self._on_risk_rejected)
        bus.subscribe(OrderUpdate, self._on_order)
        bus.subscribe(PositionOpened, lambda ev: self._on_opened(ev, paper))

    def _on_candle(self, c: Candle) -> None:
        if c.closed:
            self.candles[c.symbol] += 1

    def _on_signal(self, _sig: TradeSignal) -> None:
        self.signals += 1

    def _on_rejected(self, ev: SignalRejected) -> None:
        self.refused[_reason_kind(ev.reason)] += 1

    def _on_risk_rejected(self, ev: RiskRejected) -> None:
        self.refused[f"RISK {ev.limit}"] += 1

    def _on_order(self, up: OrderUpdate) -> None:
        if up.status is OrderStatus.REJECTED and not up.reduce_only:
            self.refused[f"exchange: {_reason_kind(up.reason)}"] += 1

    def _on_opened(self, ev: PositionOpened, paper: PaperExchange) -> None:
        self.entries += 1
        if ev.stop_loss <= 0:
            return
        spread = paper.market.spread(ev.symbol)
        try:
            tick = float(paper.filters(ev.symbol).tick_size)
        except KeyError:
            tick = 0.0
        cost = spread if spread else tick * max(paper.slippage_ticks, 1)
        cost += float(ev.entry_price * paper.slippage)
        if cost > 0 and abs(float(ev.entry_price - ev.stop_loss)) < SL_SPREADS * cost:
            self.tight_stops += 1

    def no_trade_reasons(self, symbols: tuple[str, ...]) -> list[str]:
        """Why a run made no trade, most telling first."""
        out = []
        for sym in symbols:
            n = self.candles.get(sym, 0)
            if n == 0:
                out.append(f"{sym}: no candles: the data has no trades or klines of it "
                           f"(quotes or funding rates alone cannot drive the rule)")
            elif n < self.warmup:
                out.append(f"{sym}: the rule is still warming up after {n} of {self.warmup} "
                           f"candles")
        if self.signals and self.refused:
            why = ", ".join(f"{k} ({v}x)" for k, v in self.refused.most_common())
            out.append(f"all {self.signals} signal(s) were refused: {why}")
        elif not self.signals and not out:
            out.append(f"the rule gave no signal in {sum(self.candles.values())} candles")
        return out


def _reason_kind(reason: str) -> str:
    """A refusal reason without its numbers, so equal causes count together."""
    head = reason.split(":", 1)[0] if ": need" in reason else reason
    return " ".join(w for w in head.split() if not any(ch.isdigit() for ch in w)) or reason

