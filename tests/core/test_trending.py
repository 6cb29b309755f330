"""TRENDING (candles from trades, sizing, TradeSignal) and the EMA/ADX trend rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.balance import BalanceStore
from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    BarTick,
    Candle,
    MarketTick,
    Side,
    TradeSignal,
)
from core.strategies.ema_adx import EmaAdxRule
from core.strategies.rules import RuleDecision, Verdict, rule_factory
from core.trending import Trending

D = Decimal
SYM = "BTCUSDT"
TF = 60_000
T0 = 1_700_000_040_000  # a multiple of one minute
assert T0 % TF == 0


class StubRule:
    """A TrendRule that records the candles it sees and answers what the test tells it."""

    name = "stub"
    warmup = 0

    def __init__(self) -> None:
        self.seen: list[Candle] = []
        self.answer: RuleDecision | None = None

    def on_candle(self, candle: Candle) -> RuleDecision | None:
        self.seen.append(candle)
        return self.answer

    def verdict(self) -> Verdict:
        return Verdict("NEUTRAL", f"{len(self.seen)} candles")


class Setup:
    def __init__(self, *, symbols=(SYM,), available: str | None = "800", leverage: int = 5,
                 risk_fraction: float = 0.1, max_notional: str = "1000") -> None:
        self.bus = EventBus()
        self.balance = BalanceStore(self.bus)
        self.rules: dict[int, StubRule] = {}
        made: list[StubRule] = []

        def factory() -> StubRule:
            made.append(StubRule())
            return made[-1]

        self.tr = Trending(self.bus, factory, self.balance, symbols=symbols, timeframe_ms=TF,
                           leverage=leverage, risk_fraction=risk_fraction,
                           max_notional=D(max_notional))
        self.candles: list[Candle] = []
        self.signals: list[TradeSignal] = []
        self.bus.subscribe(Candle, self.candles.append)
        self.bus.subscribe(TradeSignal, self.signals.append)
        if available is not None:
            self.bus.publish(BalanceUpdate(asset="USDT", wallet_balance=D("1000"),
                                           available_balance=D(available), ts_ms=1))

    def rule(self, symbol: str = SYM) -> StubRule:
        return self.tr.rules[symbol]  # type: ignore[return-value]

    def trade(self, trade_ms: int, price: float, qty: float = 1.0, symbol: str = SYM,
              ts_ms: int | None = None, cls: type = MarketTick) -> None:
        self.bus.publish(cls(symbol, ts_ms if ts_ms is not None else trade_ms + 5, trade_ms,
                             price, qty, False))

    def kline(self, close: float, *, closed: bool = True, symbol: str = SYM,
              open_ms: int = T0) -> Candle:
        c = Candle(symbol, open_ms + TF - 1, TF, open_ms, close - 1, close + 2, close - 2, close,
                   10.0, closed)
        self.bus.publish(c)
        return c


# --------------------------------------------------------------------------- candle building


def test_trades_build_an_exact_ohlcv_candle_published_when_the_next_bucket_starts():
    s = Setup()
    s.trade(T0 + 1_000, 100.0, 1.0)
    s.trade(T0 + 20_000, 105.0, 2.0)
    s.trade(T0 + 30_000, 98.0, 0.5)
    s.trade(T0 + 59_999, 101.0, 1.0)
    assert s.candles == [] and s.rule().seen == []

    s.trade(T0 + TF, 102.0, 3.0, ts_ms=T0 + TF + 7)

    expected = Candle(SYM, T0 + TF + 7, TF, T0, 100.0, 105.0, 98.0, 101.0, 4.5, True)
    assert s.candles == [expected]
    assert s.rule().seen == [expected]
    assert s.tr.candles == 1


def test_bars_are_aligned_on_the_timeframe_and_gaps_skip_empty_buckets():
    s = Setup()
    s.trade(T0 + 30_000, 100.0)            # first trade mid-bucket: bar still opens at T0
    s.trade(T0 + 3 * TF + 1, 110.0)        # two empty buckets later
    s.trade(T0 + 4 * TF, 111.0)
    assert [c.open_ms for c in s.candles] == [T0, T0 + 3 * TF]
    assert s.candles[1][4:9] == (110.0, 110.0, 110.0, 110.0, 1.0)


def test_a_late_trade_is_folded_into_the_current_bar():
    s = Setup()
    s.trade(T0 + 1_000, 100.0, 1.0)
    s.trade(T0 + TF + 1_000, 102.0, 1.0)   # closes bar T0
    s.trade(T0 + 59_000, 90.0, 2.0)        # late: belongs to bar T0, already published
    s.trade(T0 + TF + 2_000, 103.0, 1.0)
    s.trade(T0 + 2 * TF, 104.0, 1.0)       # closes bar T0 + TF
    first, second = s.candles
    assert first[4:9] == (100.0, 100.0, 100.0, 100.0, 1.0)  # published bar unchanged
    assert second.open_ms == T0 + TF
    assert (second.open, second.high, second.low, second.volume) == (102.0, 103.0, 90.0, 4.0)
    assert second.close == 103.0  # the late trade is not the bar's latest price


def test_unconfigured_symbols_build_nothing():
    s = Setup()
    for i in range(5):
        s.trade(T0 + i * TF, 0.5, symbol="XRPUSDT")
    assert s.candles == [] and set(s.tr.rules) == {SYM}


def test_bar_ticks_do_not_build_candles():
    s = Setup()
    for i in range(3):
        s.trade(T0 + i * TF, 100.0 + i, cls=BarTick)
    assert s.candles == []


def test_each_symbol_has_its_own_bar_and_rule():
    s = Setup(symbols=(SYM, "ETHUSDT"))
    s.trade(T0 + 1, 100.0)
    s.trade(T0 + 2, 3000.0, symbol="ETHUSDT")
    s.trade(T0 + TF, 101.0)
    assert [(c.symbol, c.close) for c in s.candles] == [(SYM, 100.0)]
    assert len(s.rule(SYM).seen) == 1 and s.rule("ETHUSDT").seen == []
    assert s.rule(SYM) is not s.rule("ETHUSDT")


# --------------------------------------------------------------------------- kline input


def test_closed_kline_reaches_the_rule_and_open_ones_are_ignored():
    s = Setup()
    s.kline(100.0, closed=False)
    assert s.rule().seen == [] and s.tr.candles == 0
    c = s.kline(100.0, closed=True)
    assert s.rule().seen == [c]
    s.kline(100.0, symbol="XRPUSDT")
    assert s.rule().seen == [c]


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize(("side", "sl", "tp"), [(Side.LONG, "99.0", "103.5"),
                                                (Side.SHORT, "102.0", "97.5")])
def test_decision_becomes_a_sized_trade_signal(side, sl, tp):
    s = Setup(available="800", leverage=5, risk_fraction=0.1, max_notional="1000")
    s.rule().answer = RuleDecision(side=side, sl_distance=1.5, tp_distance=3.0, reason="stub")
    c = s.kline(100.5)
    (sig,) = s.signals
    # notional = min(800 * 0.1 * 5, 1000) = 400 USDT
    assert sig.quantity == D("400") / D("100.5")
    assert sig.quantity * sig.entry_price == pytest.approx(D("400"), abs=D("1e-20"))
    assert sig.entry_price == D("100.5")
    assert (sig.stop_loss, sig.take_profit) == (D(sl), D(tp))
    assert (sig.symbol, sig.side, sig.leverage, sig.reason, sig.ts_ms) == (
        SYM, side, 5, "stub", c.ts_ms)


def test_signal_notional_is_capped_at_max_notional():
    s = Setup(available="10000", leverage=10, risk_fraction=0.5, max_notional="1000")
    s.rule().answer = RuleDecision(side=Side.LONG, sl_distance=1, tp_distance=2, reason="x")
    s.kline(250.0)
    (sig,) = s.signals
    assert sig.quantity == D("4")  # 1000 / 250, not 50000 / 250


def test_built_candle_decision_is_a_signal_too():
    s = Setup()
    s.rule().answer = RuleDecision(side=Side.SHORT, sl_distance=2, tp_distance=4, reason="x")
    s.trade(T0 + 1, 200.0)
    s.trade(T0 + TF, 201.0, ts_ms=T0 + TF + 9)
    (sig,) = s.signals
    assert sig.entry_price == D("200.0") and sig.quantity == D("400") / D("200.0")
    assert (sig.stop_loss, sig.take_profit) == (D("202.0"), D("196.0"))
    assert sig.ts_ms == T0 + TF + 9


def test_no_decision_no_signal():
    s = Setup()
    s.kline(100.0)
    assert s.signals == []


def test_signal_without_a_known_balance_has_zero_quantity():
    s = Setup(available=None)
    s.rule().answer = RuleDecision(side=Side.LONG, sl_distance=1, tp_distance=2, reason="x")
    s.kline(100.0)
    (sig,) = s.signals
    assert sig.quantity == 0


def test_verdict_comes_from_the_symbols_rule():
    s = Setup()
    s.kline(100.0)
    assert s.tr.verdict(SYM) == Verdict("NEUTRAL", "1 candles")
    assert s.tr.verdict("XRPUSDT") is None


# --------------------------------------------------------------------------- EmaAdxRule

FAST = dict(ema_fast=3, ema_slow=6, adx_period=5, atr_period=5)


def _bar(i: int, close: float) -> Candle:
    return Candle(SYM, i * TF + TF - 1, TF, i * TF, close, close + 1.0, close - 1.0, close, 1.0,
                  True)


DOWN_THEN_UP = [200.0 - 3 * i for i in range(25)] + [128.0 + 4 * (i + 1) for i in range(10)]
UP_THEN_DOWN = [100.0 + 3 * i for i in range(25)] + [172.0 - 4 * (i + 1) for i in range(10)]


def _run(closes: list[float], **params) -> tuple[EmaAdxRule, list[tuple[int, RuleDecision]]]:
    rule = EmaAdxRule(**{**FAST, **params})
    out = []
    for i, c in enumerate(closes):
        d = rule.on_candle(_bar(i, c))
        if d is not None:
            out.append((i, d))
    return rule, out


def _replay_until(closes: list[float], index: int, **params) -> EmaAdxRule:
    rule = EmaAdxRule(**{**FAST, **params})
    for i, c in enumerate(closes[: index + 1]):
        rule.on_candle(_bar(i, c))
    return rule


@pytest.mark.parametrize(("closes", "side"), [(DOWN_THEN_UP, Side.LONG),
                                              (UP_THEN_DOWN, Side.SHORT)])
def test_ema_cross_with_adx_above_minimum_decides(closes, side):
    rule, decisions = _run(closes, adx_min=20.0)
    assert [d.side for _, d in decisions] == [side]
    (i, d), = decisions
    assert i > 25  # after the turn, not during the first trend
    at = _replay_until(closes, i, adx_min=20.0).last
    assert at["adx"] >= 20.0
    before = _replay_until(closes, i - 1).last
    if side is Side.LONG:
        assert before["ema_fast"] <= before["ema_slow"] and at["ema_fast"] > at["ema_slow"]
    else:
        assert before["ema_fast"] >= before["ema_slow"] and at["ema_fast"] < at["ema_slow"]
    assert d.sl_distance == pytest.approx(at["atr"] * 1.5)
    assert d.tp_distance == pytest.approx(at["atr"] * 3.0)
    assert d.reason.startswith("ema_cross 3/6")


@pytest.mark.parametrize("closes", [DOWN_THEN_UP, UP_THEN_DOWN])
def test_adx_below_minimum_gives_nothing(closes):
    _, decisions = _run(closes, adx_min=20.0)
    (i, _), = decisions
    adx_at_cross = _replay_until(closes, i).last["adx"]
    _, none = _run(closes, adx_min=adx_at_cross + 0.01)
    assert none == []
    _, again = _run(closes, adx_min=adx_at_cross - 0.01)
    assert [j for j, _ in again] == [i]


def test_percent_sl_tp_override_atr():
    _, decisions = _run(DOWN_THEN_UP, sl_pct=1.0, tp_pct=2.5)
    (i, d), = decisions
    close = DOWN_THEN_UP[i]
    assert d.sl_distance == pytest.approx(close * 0.01)
    assert d.tp_distance == pytest.approx(close * 0.025)
    atr = _replay_until(DOWN_THEN_UP, i).last["atr"]
    assert d.sl_distance != pytest.approx(atr * 1.5)


def test_verdict_warming_up_then_trend_then_neutral():
    rule = EmaAdxRule(**FAST)
    assert rule.warmup == 10  # max(6, 2 * 5, 5 + 1)
    for i, c in enumerate(DOWN_THEN_UP[: rule.warmup - 1]):
        rule.on_candle(_bar(i, c))
        assert rule.verdict().bias == "WARMING_UP"
    rule.on_candle(_bar(rule.warmup - 1, DOWN_THEN_UP[rule.warmup - 1]))
    assert rule.verdict().bias == "SHORT"
    for i in range(rule.warmup, len(DOWN_THEN_UP)):
        rule.on_candle(_bar(i, DOWN_THEN_UP[i]))
    assert rule.verdict().bias == "LONG"

    picky = _replay_until(UP_THEN_DOWN, 20, adx_min=101.0)
    assert picky.verdict().bias == "NEUTRAL"
    assert _replay_until(UP_THEN_DOWN, 20).verdict().bias == "LONG"


def test_rule_factory_makes_fresh_validated_rules():
    make = rule_factory("ema_adx", FAST)
    a, b = make(), make()
    assert a is not b and isinstance(a, EmaAdxRule) and a.params["ema_fast"] == 3


@pytest.mark.parametrize(("name", "params"), [
    ("nope", {}),
    ("ema_adx", {"ema_fast": 21, "ema_slow": 21}),
    ("ema_adx", {"ema_fast": 30, "ema_slow": 21}),
])
def test_rule_factory_rejects_bad_strategy(name, params):
    with pytest.raises(ValueError):
        rule_factory(name, params)


def test_unknown_strategy_message_names_it():
    with pytest.raises(ValueError, match="nope"):
        rule_factory("nope", {})


def test_ema_adx_end_to_end_through_trending():
    bus = EventBus()
    store = BalanceStore(bus)
    bus.publish(BalanceUpdate(asset="USDT", wallet_balance=D("1000"),
                              available_balance=D("1000"), ts_ms=1))
    tr = Trending(bus, rule_factory("ema_adx", FAST), store, symbols=[SYM], timeframe_ms=TF,
                  leverage=2, risk_fraction=0.1, max_notional=D("1000"))
    signals: list[TradeSignal] = []
    bus.subscribe(TradeSignal, signals.append)
    for i, c in enumerate(DOWN_THEN_UP):
        bus.publish(_bar(i, c))
    (sig,) = signals
    assert sig.side is Side.LONG and sig.stop_loss < sig.entry_price < sig.take_profit
    assert sig.quantity == D("200") / sig.entry_price
    assert bus.errors == 0 and tr.candles == len(DOWN_THEN_UP)
