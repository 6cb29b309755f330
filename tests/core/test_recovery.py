"""Startup recovery (core/recovery.py, ORDERING's position snapshots): what the store holds is
checked against the paper account or the exchange before anything trades. The inconsistent
inputs here are what the JSON files of earlier versions could hold after a kill (issue 10)."""

from __future__ import annotations

from decimal import Decimal

from core.engine import build_engine
from core.events import (
    EngineMode,
    PositionOpened,
    PositionPhase,
    PositionUpdate,
    Side,
    StateChanged,
)
from core.store import Store
from tests.fakes.ports import FakeExchange, fund
from utils.settings import load_settings

D = Decimal
T0 = 1_723_161_540_000
ENTERING_NO_ORDER = {"version": 1, "mode": "ARMED", "phase": "ENTERING", "symbol": "BTCUSDT",
                     "side": "LONG", "quantity": "0", "stop_loss": "29700",
                     "take_profit": "30600", "orders": {}, "seq": 3}
POSITION = {"qty": "0.010", "entry": "30000", "margin": "60", "leverage": 5,
            "opened_ms": T0}
STALE_TRADE = {"version": 1, "intents": {}, "open": {"BTCUSDT": {
    "side": "LONG", "entry_ts": T0, "qty": "0.010", "entry_cost": "300", "entry_qty": "0.010",
    "exit_value": "0", "exit_qty": "0", "gross": "0", "fees": "0.15", "funding": "0"}}}


def paper_engine(tmp_path, docs: dict):
    data = tmp_path / "data"
    store = Store.open(data / "journal.sqlite3")
    store.write(docs)
    store.close()
    settings = load_settings(_env_file=None, data_dir=data, symbols="BTCUSDT", log_json=False)
    return build_engine(settings)


def test_entering_with_no_order_and_no_position_goes_flat(tmp_path):
    engine = paper_engine(tmp_path, {"engine_state": ENTERING_NO_ORDER})
    assert engine.state.phase is PositionPhase.FLAT and engine.state.quantity == 0
    assert engine.recovery_notes and engine.close_position() is False  # no "close 0 at 0"


def test_entering_with_a_filled_paper_position_goes_open_with_it(tmp_path):
    engine = paper_engine(tmp_path, {
        "engine_state": ENTERING_NO_ORDER,
        "paper_account": {"version": 1, "wallet": "999.85", "positions": {"BTCUSDT": POSITION}},
    })
    st = engine.state
    assert st.phase is PositionPhase.OPEN and st.quantity == D("0.010")
    assert (st.stop_loss, st.take_profit) == (D("29700"), D("30600"))  # the signal's levels
    trade = engine.ledger.open_trade("BTCUSDT")  # the running trade starts from the position
    assert trade is not None and trade["quantity"] == D("0.010")


def test_a_stale_running_trade_without_a_position_is_dropped(tmp_path):
    engine = paper_engine(tmp_path, {"ledger": STALE_TRADE})
    assert engine.ledger.open_trade("BTCUSDT") is None  # never swallows the next trade
    assert any("dropped" in n for n in engine.recovery_notes)


def test_flat_with_a_paper_position_adopts_it(tmp_path):
    engine = paper_engine(tmp_path, {
        "engine_state": {"version": 1, "mode": "ARMED", "phase": "FLAT"},
        "paper_account": {"version": 1, "wallet": "999.85", "positions": {"BTCUSDT": POSITION}},
    })
    assert engine.state.phase is PositionPhase.OPEN and engine.state.side is Side.LONG
    assert engine.ledger.open_trade("BTCUSDT")["quantity"] == D("0.010")


def live_like(phase: str):
    holder = {}

    def factory(bus):
        holder["ex"] = FakeExchange(bus, {"BTCUSDT": D("30000")})
        return holder["ex"]

    settings = load_settings(_env_file=None, max_notional=D("5000"))
    engine = build_engine(settings, connection_factory=factory, persist=False,
                          default_mode=EngineMode.ARMED)
    fund(engine.bus)
    st = engine.state
    st.phase, st.symbol, st.side = PositionPhase(phase), "BTCUSDT", Side.LONG
    seen: list = []
    engine.bus.subscribe_all(seen.append)
    return engine, seen


def snapshot(qty: str) -> PositionUpdate:
    return PositionUpdate(symbol="BTCUSDT", quantity=D(qty), entry_price=D("30000"),
                          reason="SNAPSHOT", ts_ms=T0)


def test_live_entering_or_exiting_with_no_order_goes_where_the_exchange_says():
    for phase in ("ENTERING", "EXITING"):
        engine, seen = live_like(phase)
        engine.publish(snapshot("0"))
        assert engine.state.phase is PositionPhase.FLAT
        engine, seen = live_like(phase)
        engine.publish(snapshot("0.010"))
        assert engine.state.phase is PositionPhase.OPEN and engine.state.quantity == D("0.010")
        assert [e for e in seen if isinstance(e, PositionOpened)]  # stops are (re)checked
        assert [e for e in seen if isinstance(e, StateChanged) and e.new == "OPEN"]
        assert engine.ledger.open_trade("BTCUSDT")["quantity"] == D("0.010")
