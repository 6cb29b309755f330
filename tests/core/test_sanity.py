"""Edge sanity checks (core/sanity.py): each bad input of issue 10 is kept from the engine,
reported, counted and alerted when it repeats; good input passes untouched."""

from __future__ import annotations

from decimal import Decimal

from core.engine import build_engine
from core.events import (
    BookTicker,
    Candle,
    CloseRequest,
    EngineError,
    EngineMode,
    ExitReason,
    InputRejected,
    MarketTick,
    MarkPrice,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionPhase,
    PositionUpdate,
    Side,
    TradeClosed,
    TradeSignal,
)
from tests.fakes.ports import FakeExchange, fund
from utils.settings import load_settings

D = Decimal
T0 = 1_723_161_540_000  # 2024-08-08 23:59 UTC
YEAR_2100 = 4_102_444_800_000


def engine_open_long():
    """An engine (fake exchange) with a LONG 0.010 BTCUSDT open at 30000, TP 30600."""
    holder = {}

    def factory(bus):
        holder["ex"] = FakeExchange(bus, {"BTCUSDT": D("30000")})
        return holder["ex"]

    settings = load_settings(_env_file=None, max_notional=D("5000"), price_source="mark")
    engine = build_engine(settings, connection_factory=factory, persist=False,
                          default_mode=EngineMode.ARMED)
    fund(engine.bus)
    seen: list = []
    engine.bus.subscribe_all(seen.append)
    engine.publish(MarkPrice("BTCUSDT", T0, 30000.0, 30000.0, 0.0001, T0 + 3_600_000))
    engine.publish(TradeSignal(symbol="BTCUSDT", side=Side.LONG, entry_price=D("30000"),
                               quantity=D("0.010"), stop_loss=D("29700"),
                               take_profit=D("30600"), leverage=5, reason="test", ts_ms=T0))
    ex = holder["ex"]
    ex.fill(ex.submitted[0].client_order_id)
    assert engine.state.phase is PositionPhase.OPEN
    return engine, ex, seen


def of(seen, kind):
    return [e for e in seen if isinstance(e, kind)]


def test_a_mark_price_of_zero_never_fires_the_take_profit():
    engine, ex, seen = engine_open_long()
    engine.publish(MarkPrice("BTCUSDT", T0 + 1_000, 0.0, 0.0, 0.0001, T0 + 3_600_000))
    assert not of(seen, CloseRequest) and len(ex.submitted) == 1
    assert engine.state.phase is PositionPhase.OPEN
    (rej,) = of(seen, InputRejected)
    assert rej.kind == "MarkPrice" and rej.reason == "price not positive and finite"
    assert engine.sanity.counts == {"price not positive and finite": 1}
    # a real mark price at the TP still closes
    engine.publish(MarkPrice("BTCUSDT", T0 + 2_000, 30600.0, 30600.0, 0.0001, T0 + 3_600_000))
    assert of(seen, CloseRequest)


def test_non_finite_and_absurd_prices_are_rejected_a_real_gap_is_accepted_on_the_third():
    engine, _, seen = engine_open_long()
    bad = [float("nan"), float("inf"), -1.0, 3_000_000.0]
    for i, p in enumerate(bad):
        engine.publish(MarketTick("BTCUSDT", T0 + i, T0 + i, p, 1.0, False))
    assert engine.sanity.total == 4 and not of(seen, MarketTick)
    assert engine.connection.reference_price("BTCUSDT") == D("30000")
    gap = [36_000.0, 36_010.0, 35_990.0]  # +20 %: 2 rejected, the 3rd agreeing one accepted
    for i, p in enumerate(gap):
        engine.publish(MarketTick("BTCUSDT", T0 + 10 + i, T0 + 10 + i, p, 1.0, False))
    assert [t.price for t in of(seen, MarketTick)] == [35_990.0]
    engine.publish(BookTicker("BTCUSDT", T0 + 20, 0.0, 1.0, 36_000.0, 1.0))  # bid 0
    engine.publish(Candle("BTCUSDT", T0 + 21, 60_000, T0, 36_000.0, 36_100.0, -5.0, 36_000.0,
                          1.0, True))
    assert not of(seen, BookTicker) and not of(seen, Candle)


def test_a_trade_stamped_2100_is_rejected_and_trending_keeps_working():
    engine, _, seen = engine_open_long()
    engine.publish(MarketTick("BTCUSDT", YEAR_2100, YEAR_2100, 30_010.0, 1.0, False))
    assert not of(seen, MarketTick)
    assert of(seen, InputRejected)[0].reason == "timestamp in the future"
    engine.publish(MarketTick("BTCUSDT", T0 + 5_000, T0 + 5_000, 30_020.0, 1.0, False))
    engine.publish(MarketTick("BTCUSDT", T0 + 70_000, T0 + 70_000, 30_030.0, 1.0, False))
    assert [t.ts_ms for t in of(seen, MarketTick)] == [T0 + 5_000, T0 + 70_000]
    assert [c.ts_ms for c in of(seen, Candle) if c.closed]  # candles still close


def test_an_account_update_older_than_the_newest_applied_is_rejected():
    engine, ex, seen = engine_open_long()
    newer = PositionUpdate(symbol="BTCUSDT", quantity=D("0.010"), entry_price=D("30000"),
                           reason="ORDER", ts_ms=T0 + 60_000)
    engine.publish(newer)
    stale = PositionUpdate(symbol="BTCUSDT", quantity=D(0), entry_price=D(0), reason="ORDER",
                           ts_ms=T0)  # 60 s older: "position 0"
    engine.publish(stale)
    assert engine.state.phase is PositionPhase.OPEN  # not sent FLAT, stops not cancelled
    assert of(seen, InputRejected)[-1].reason == "account update older than the newest applied"
    snapshot = PositionUpdate(symbol="BTCUSDT", quantity=D("0.010"), entry_price=D("30000"),
                              reason="SNAPSHOT", ts_ms=T0)  # a reconciliation read passes
    engine.publish(snapshot)
    assert of(seen, PositionUpdate)[-1] is snapshot


def test_a_fill_with_trade_id_zero_is_never_counted():
    engine, ex, seen = engine_open_long()
    engine.publish(CloseRequest(symbol="BTCUSDT", reason=ExitReason.MANUAL, ts_ms=T0 + 1))
    cid = ex.submitted[-1].client_order_id
    fill = OrderUpdate(symbol="BTCUSDT", client_order_id=cid, order_id=7, side=OrderSide.SELL,
                       order_type=OrderType.MARKET, status=OrderStatus.FILLED,
                       quantity=D("0.010"), filled_qty=D("0.010"), last_fill_qty=D("0.010"),
                       last_fill_price=D("30100"), trade_id=0, ts_ms=T0 + 2)
    for _ in range(3):  # delivered three times (reconnects)
        engine.publish(fill)
    assert not of(seen, TradeClosed) and engine.state.phase is PositionPhase.EXITING
    assert engine.sanity.counts == {"fill without a trade id": 3}
    alerts = [e for e in of(seen, EngineError) if e.source == "sanity"]
    assert len(alerts) == 1  # alerted once it repeats (3rd time), not per input
    ex.fill(cid)  # the real fill (with its trade id), as the reconciliation reads it
    (closed,) = of(seen, TradeClosed)
    assert closed.trade.quantity == D("0.010")
