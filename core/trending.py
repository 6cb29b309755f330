"""TRENDING: trend analysis -> ``TradeSignal``. Never orders.

Builds candles of ``timeframe_ms`` (1 s .. 1 h) from market trades, bucketed on trade time;
closed candles of a klines input pass straight through. Each closed candle of a configured
symbol goes to that symbol's trend rule (core/strategies/rules.py); a decision becomes a TradeSignal
sized from the available balance:

    notional = min(available x RISK_FRACTION x LEVERAGE, MAX_NOTIONAL)   (USDT)
    quantity = notional / close price                                      (base asset)

Built candles are published as ``Candle`` events (closed=True), so the journal, charts and the
backtest's equity sampling see the same bars the rule saw.

The last ``HISTORY`` closed candles of each symbol are kept, so ``set_rule_factory`` (the
``/strategy set`` switch) hands the new rule a warm history instead of starting it cold.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from decimal import Decimal

from core.balance import BalanceStore
from core.event_bus import EventBus
from core.events import Candle, MarketTick, TradeSignal
from core.follow_orders import protective_levels
from core.strategies.rules import RuleFactory, TrendRule, Verdict

HISTORY = 1_000  # closed candles kept per symbol to warm a newly chosen rule


class Trending:
    """Candle builder plus one trend rule per symbol.

    Args:
        bus: engine bus (MarketTick and Candle in; Candle and TradeSignal out).
        rule_factory: makes a fresh rule per symbol.
        symbols: symbols to analyse; others are ignored.
        timeframe_ms: candle length built from trades.
        leverage: leverage put on signals.
        risk_fraction: fraction of available balance used as margin per trade.
        max_notional: cap on a signal's notional, USDT.
    """

    def __init__(
        self,
        bus: EventBus,
        rule_factory: RuleFactory,
        balance: BalanceStore,
        *,
        symbols: Iterable[str],
        timeframe_ms: int,
        leverage: int,
        risk_fraction: float,
        max_notional: Decimal,
        asset: str = "USDT",
        strategy: str = "",
    ) -> None:
        self._bus = bus
        self._publish = bus.publish
        self._balance = balance
        self.symbols = frozenset(symbols)
        self.tf = timeframe_ms
        self.leverage = leverage
        self.risk_fraction = Decimal(repr(risk_fraction))
        self.max_notional = max_notional
        self.asset = asset
        self.strategy = strategy
        self.rules: dict[str, TrendRule] = {s: rule_factory() for s in self.symbols}
        self.history: dict[str, deque[Candle]] = {s: deque(maxlen=HISTORY)
                                                  for s in self.symbols}
        self.last_signal: TradeSignal | None = None
        self._bars: dict[str, list] = {}  # symbol -> [open_ms, o, h, l, c, v]
        self.candles = 0
        bus.subscribe(MarketTick, self._on_tick)
        bus.subscribe(Candle, self._on_candle)

    def verdict(self, symbol: str) -> Verdict | None:
        rule = self.rules.get(symbol)
        return rule.verdict() if rule else None

    def set_rule_factory(self, rule_factory: RuleFactory, strategy: str) -> None:
        """Replace every symbol's rule by a fresh one from ``rule_factory``, fed the kept
        history (up to ``HISTORY`` closed candles) so it is warm if that covers its warm-up.
        Decisions made while replaying the history are dropped: a switch never trades on the
        past."""
        rules = {s: rule_factory() for s in self.symbols}
        for sym, rule in rules.items():
            for c in self.history[sym]:
                rule.on_candle(c)
        self.rules, self.strategy = rules, strategy

    # ------------------------------------------------------------------ candles (hot path)

    def _on_tick(self, ev: MarketTick) -> None:
        sym = ev.symbol
        bar = self._bars.get(sym)
        t = ev.trade_ms
        p = ev.price
        if bar is not None:
            start = t - t % self.tf
            if start <= bar[0]:  # same bar (or a late trade folded into it)
                if p > bar[2]:
                    bar[2] = p
                elif p < bar[3]:
                    bar[3] = p
                if start == bar[0]:
                    bar[4] = p  # a late trade is not the bar's latest price
                bar[5] += ev.quantity
                return
            self._bars[sym] = [start, p, p, p, p, ev.quantity]
            self._publish(Candle(sym, ev.ts_ms, self.tf, bar[0], bar[1], bar[2], bar[3],
                                 bar[4], bar[5], True))
        elif sym in self.symbols:
            self._bars[sym] = [t - t % self.tf, p, p, p, p, ev.quantity]

    def _on_candle(self, c: Candle) -> None:
        if not c.closed:
            return
        rule = self.rules.get(c.symbol)
        if rule is None:
            return
        self.candles += 1
        self.history[c.symbol].append(c)
        decision = rule.on_candle(c)
        if decision is None:
            return
        price = Decimal(repr(c.close))
        available = self._balance.available(self.asset)
        notional = min(available * self.risk_fraction * self.leverage, self.max_notional)
        quantity = notional / price if price > 0 else Decimal(0)
        sl, tp = protective_levels(decision.side, price, Decimal(repr(decision.sl_distance)),
                                   Decimal(repr(decision.tp_distance)))
        self.last_signal = signal = TradeSignal(
            symbol=c.symbol, side=decision.side, entry_price=price, quantity=quantity,
            stop_loss=sl, take_profit=tp, leverage=self.leverage, reason=decision.reason,
            ts_ms=c.ts_ms, strategy=self.strategy or getattr(rule, "name", ""),
            confidence=decision.confidence, votes=decision.votes,
        )
        self._publish(signal)
