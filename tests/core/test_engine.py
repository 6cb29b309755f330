"""The engine facade the front-ends call (/arm, /close, /flat, /status)."""

from __future__ import annotations

from decimal import Decimal

from core.engine import build_engine
from core.events import EngineMode, PositionPhase, Side, TradeSignal
from tests.fakes.ports import FakeExchange, fund
from utils.settings import load_settings

D = Decimal


def engine_with_fake():
    holder = {}

    def factory(bus):
        holder["ex"] = FakeExchange(bus, {"BTCUSDT": D("30000")})
        return holder["ex"]

    settings = load_settings(_env_file=None, max_notional=D("5000"))
    engine = build_engine(settings, connection_factory=factory, persist=False,
                          default_mode=EngineMode.ARMED)
    fund(engine.bus)
    return engine, holder["ex"]


def signal() -> TradeSignal:
    return TradeSignal(symbol="BTCUSDT", side=Side.LONG, entry_price=D("30000"),
                       quantity=D("0.010"), stop_loss=D("29700"), take_profit=D("30600"),
                       leverage=5, reason="test", ts_ms=1)


def test_flat_cancels_an_entry_in_flight_and_disarms():
    engine, ex = engine_with_fake()
    engine.publish(signal())
    assert engine.state.phase is PositionPhase.ENTERING
    assert engine.flat(ts_ms=2) is True
    assert engine.state.mode is EngineMode.DISARMED
    assert engine.state.phase is PositionPhase.FLAT  # cancelled before any fill
    assert ex.outstanding == {} and ex.open_position_count() == 0


def test_flat_closes_a_partly_filled_entry():
    engine, ex = engine_with_fake()
    engine.publish(signal())
    cid = ex.submitted[0].client_order_id
    ex.fill(cid, D("0.004"))
    engine.flat(ts_ms=2)
    assert engine.state.phase is PositionPhase.EXITING  # the filled part is being closed
    exit_order = ex.submitted[-1]
    assert exit_order.reduce_only and exit_order.quantity == D("0.004")
    ex.fill(exit_order.client_order_id)
    assert engine.state.phase is PositionPhase.FLAT and ex.open_position_count() == 0


def test_close_without_a_position_says_so():
    engine, _ = engine_with_fake()
    assert engine.close_position() is False
    assert engine.flat() is False and engine.state.mode is EngineMode.DISARMED


def test_status_reports_the_open_position():
    engine, ex = engine_with_fake()
    engine.publish(signal())
    ex.fill(ex.submitted[0].client_order_id)
    pos = engine.status()["position"]
    assert (pos["symbol"], pos["side"], pos["quantity"]) == ("BTCUSDT", "LONG", D("0.010"))
    assert pos["unrealized_pnl"] == 0 and pos["stop_loss"] == D("29700.0")
    assert engine.status()["mode"] == "ARMED"
