"""ORDERING: the state machine, pre-trade checks, and the one-position guarantee."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core.balance import BalanceStore
from core.event_bus import EventBus
from core.events import (
    CloseRequest,
    EngineError,
    EngineMode,
    ExitReason,
    OrderStatus,
    PositionOpened,
    PositionPhase,
    PositionUpdate,
    RiskApproved,
    Side,
    SignalRejected,
    TradeSignal,
)
from core.ordering import TRANSITIONS, Ordering
from core.state import EngineState
from core.store import Store
from tests.fakes.ports import FakeExchange, fund

D = Decimal
PRICES = {"BTCUSDT": D("30000"), "ETHUSDT": D("2000")}
QTY = {"BTCUSDT": D("0.0105"), "ETHUSDT": D("0.105")}


def make(mode=EngineMode.ARMED, path=None, balance="10000"):
    bus = EventBus()
    ex = FakeExchange(bus, dict(PRICES))
    db = Store.open(path) if path is not None else None
    state = EngineState.load(db, default_mode=mode)
    if db is not None:
        db.bind(bus)
    store = BalanceStore(bus)
    ordering = Ordering(bus, ex, state, store, max_notional=D("1000"))
    # RISK (tested in tests/core/risk/) stands aside here: every signal is approved
    bus.subscribe(TradeSignal, lambda s: bus.publish(RiskApproved(signal=s, ts_ms=s.ts_ms)))
    fund(bus, balance)
    seen: list = []
    bus.subscribe_all(seen.append)
    return bus, ex, ordering, seen


def signal(symbol="BTCUSDT", side=Side.LONG, qty=None, leverage=5) -> TradeSignal:
    price = PRICES[symbol]
    sl = price * D("0.99") if side is Side.LONG else price * D("1.01")
    tp = price * D("1.02") if side is Side.LONG else price * D("0.98")
    return TradeSignal(symbol=symbol, side=side, entry_price=price,
                       quantity=qty if qty is not None else QTY[symbol], stop_loss=sl,
                       take_profit=tp, leverage=leverage, reason="test", ts_ms=1000)


def of(seen, cls):
    return [e for e in seen if isinstance(e, cls)]


def test_accepted_signal_sends_one_rounded_market_entry():
    bus, ex, o, _ = make()
    bus.publish(signal())
    assert o.phase is PositionPhase.ENTERING
    [req] = ex.submitted
    assert req.quantity == D("0.010")  # floored to the 0.001 step
    assert not req.reduce_only and req.intent == "ENTRY"
    assert re.fullmatch(r"[\.A-Z\:/a-z0-9_-]{1,36}", req.client_order_id)


@pytest.mark.parametrize("kwargs, why", [
    ({"mode": EngineMode.DISARMED}, "DISARMED"),
    ({"mode": EngineMode.HALTED}, "HALTED"),
    ({"balance": "50"}, "exceeds the available"),
])
def test_signal_rejected_by_mode_or_balance(kwargs, why):
    bus, ex, o, seen = make(**kwargs)
    bus.publish(signal())
    assert ex.submitted == [] and o.phase is PositionPhase.FLAT
    [rej] = of(seen, SignalRejected)
    assert why in rej.reason


@pytest.mark.parametrize("sig, why", [
    (signal(qty=D("0.0009")), "below the minimum"),       # under minQty
    (signal(qty=D("0.002")), "notional"),                 # 60 USDT < MIN_NOTIONAL 100
    (signal(qty=D("0.05")), "MAX_NOTIONAL"),              # 1500 USDT > 1000
    (signal(leverage=150), "exceeds the maximum"),
])
def test_pre_trade_checks(sig, why):
    bus, ex, o, seen = make()
    bus.publish(sig)
    assert ex.submitted == []
    assert why in of(seen, SignalRejected)[0].reason


def test_unknown_symbol_rejected():
    bus, ex, o, seen = make()
    sig = signal()
    bus.publish(TradeSignal(**{**{f: getattr(sig, f) for f in sig.__slots__},
                               "symbol": "NOPEUSDT"}))
    assert ex.submitted == [] and "NOPEUSDT" in of(seen, SignalRejected)[0].reason


def test_second_signal_rejected_while_a_position_exists_on_any_symbol():
    bus, ex, o, seen = make()
    bus.publish(signal("BTCUSDT"))
    bus.publish(signal("ETHUSDT"))          # while ENTERING
    ex.fill(ex.submitted[0].client_order_id)
    bus.publish(signal("ETHUSDT", Side.SHORT))  # while OPEN
    assert len(ex.submitted) == 1
    assert len(of(seen, SignalRejected)) == 2


def test_full_round_trip_and_levels_anchored_on_fill_price():
    bus, ex, o, seen = make()
    bus.publish(signal())
    ex.prices["BTCUSDT"] = D("30010")  # fill 10 above the signal price
    ex.fill(ex.submitted[0].client_order_id)
    assert o.phase is PositionPhase.OPEN
    [opened] = of(seen, PositionOpened)
    assert opened.entry_price == D("30010")
    assert opened.stop_loss == D("29710.0") and opened.take_profit == D("30610.0")
    bus.publish(CloseRequest(symbol="BTCUSDT", reason=ExitReason.TP, ts_ms=2))
    assert o.phase is PositionPhase.EXITING
    exit_req = ex.submitted[1]
    assert exit_req.reduce_only and exit_req.quantity == D("0.010") and exit_req.intent == "TP"
    ex.fill(exit_req.client_order_id, position_first=False)
    assert o.phase is PositionPhase.FLAT and o.state.orders == {}


def test_partial_entry_then_cancel_keeps_the_partial_position():
    bus, ex, o, _ = make()
    bus.publish(signal())
    cid = ex.submitted[0].client_order_id
    ex.fill(cid, D("0.004"))
    assert o.phase is PositionPhase.ENTERING
    ex.finish(cid, OrderStatus.CANCELED)
    assert o.phase is PositionPhase.OPEN and o.state.quantity == D("0.004")


def test_rejected_entry_returns_to_flat_and_reports():
    bus, ex, o, seen = make()
    bus.publish(signal())
    ex.finish(ex.submitted[0].client_order_id, OrderStatus.REJECTED, "Margin is insufficient")
    assert o.phase is PositionPhase.FLAT
    assert "Margin is insufficient" in of(seen, EngineError)[0].message


def test_close_while_entering_runs_after_the_entry_fills():
    bus, ex, o, _ = make()
    bus.publish(signal())
    bus.publish(CloseRequest(symbol="BTCUSDT", reason=ExitReason.FLAT, ts_ms=2))
    assert len(ex.submitted) == 1
    ex.fill(ex.submitted[0].client_order_id)
    assert o.phase is PositionPhase.EXITING
    assert ex.submitted[1].reduce_only and ex.submitted[1].intent == "FLAT"


def test_failed_exits_return_to_open_then_halt():
    bus, ex, o, _ = make()
    bus.publish(signal())
    ex.fill(ex.submitted[0].client_order_id)
    for _ in range(3):
        bus.publish(CloseRequest(symbol="BTCUSDT", reason=ExitReason.SL, ts_ms=2))
        ex.finish(ex.submitted[-1].client_order_id, OrderStatus.REJECTED, "-1008")
        assert o.phase is PositionPhase.OPEN
    assert o.state.mode is EngineMode.HALTED


def test_exchange_closing_the_position_returns_to_flat():
    bus, ex, o, _ = make()
    bus.publish(signal())
    ex.fill(ex.submitted[0].client_order_id)
    ex.external_close("BTCUSDT")
    assert o.phase is PositionPhase.FLAT


def test_position_found_on_exchange_is_adopted():
    bus, ex, o, _ = make()
    bus.publish(PositionUpdate(symbol="ETHUSDT", quantity=D("-0.5"), entry_price=D("2000"),
                               ts_ms=5))
    assert o.phase is PositionPhase.OPEN
    assert (o.state.symbol, o.state.side, o.state.quantity) == ("ETHUSDT", Side.SHORT, D("0.5"))


def test_duplicate_fill_updates_are_not_double_counted():
    bus, ex, o, _ = make()
    bus.publish(signal())
    cid = ex.submitted[0].client_order_id
    ex.fill(cid, D("0.004"))
    bus.publish(ex.last_update)  # delivered twice after a reconnect
    assert o.state.quantity == D("0.004")


def test_state_survives_restart(tmp_path):
    path = tmp_path / "journal.sqlite3"
    bus, ex, o, _ = make(path=path)
    bus.publish(signal())
    ex.fill(ex.submitted[0].client_order_id)
    first_id = ex.submitted[0].client_order_id
    bus2, ex2, o2, _ = make(mode=EngineMode.DISARMED, path=path)
    assert o2.state.mode is EngineMode.ARMED  # the file wins over the default
    assert o2.phase is PositionPhase.OPEN and o2.state.quantity == D("0.010")
    bus2.publish(CloseRequest(symbol="BTCUSDT", reason=ExitReason.MANUAL, ts_ms=3))
    assert ex2.submitted[0].client_order_id != first_id


def test_every_transition_is_in_the_table():
    phases = {p for pair in TRANSITIONS for p in (pair[0],)} | set(TRANSITIONS.values())
    assert phases == set(PositionPhase)


# ---------------------------------------------------------------- the one-position property

SYMBOLS = st.sampled_from(sorted(PRICES))


class OnePositionMachine(RuleBasedStateMachine):
    """Any interleaving of signals, closes, fills, partial fills, rejects, duplicates and
    exchange-side closes never yields two positions, or an entry order while in a position."""

    def __init__(self) -> None:
        super().__init__()
        self.bus, self.ex, self.o, _ = make()

    def _pick(self, data_index: int) -> str | None:
        keys = sorted(self.ex.outstanding)
        return keys[data_index % len(keys)] if keys else None

    @rule(symbol=SYMBOLS, side=st.sampled_from(list(Side)))
    def signal(self, symbol, side):
        self.bus.publish(signal(symbol, side))

    @rule(symbol=SYMBOLS, reason=st.sampled_from([ExitReason.SL, ExitReason.TP, ExitReason.FLAT]))
    def close(self, symbol, reason):
        self.bus.publish(CloseRequest(symbol=symbol, reason=reason, ts_ms=2))

    @precondition(lambda self: self.ex.outstanding)
    @rule(i=st.integers(0, 9), partial=st.booleans(), position_first=st.booleans())
    def fill(self, i, partial, position_first):
        cid = self._pick(i)
        req = self.ex.outstanding[cid]
        qty = (req.quantity / 2).quantize(D("0.001")) if partial else None
        self.ex.fill(cid, qty, position_first=position_first)

    @precondition(lambda self: self.ex.outstanding)
    @rule(i=st.integers(0, 9), status=st.sampled_from(
        [OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED]))
    def end_order(self, i, status):
        self.ex.finish(self._pick(i), status)

    @precondition(lambda self: self.ex.last_update is not None)
    @rule()
    def duplicate(self):
        self.bus.publish(self.ex.last_update)

    @rule(symbol=SYMBOLS)
    def exchange_closes(self, symbol):
        self.ex.external_close(symbol)

    @rule(armed=st.booleans())
    def mode(self, armed):
        self.o.set_mode(EngineMode.ARMED if armed else EngineMode.DISARMED, 3)

    @invariant()
    def at_most_one_position(self):
        assert self.ex.open_position_count() <= 1

    @invariant()
    def no_entry_while_in_position(self):
        assert self.ex.violations == []

    @invariant()
    def engine_knows_the_exchange_position(self):
        held = {s: q for s, q in self.ex.positions.items() if q}
        if held:
            [(sym, qty)] = held.items()
            assert self.o.phase is not PositionPhase.FLAT
            assert self.o.state.symbol == sym
        elif not self.ex.outstanding:
            assert self.o.phase is PositionPhase.FLAT

    @invariant()
    def open_size_matches_exchange(self):
        if self.o.phase is PositionPhase.OPEN and not self.ex.outstanding:
            assert self.o.state.quantity == abs(self.ex.positions.get(self.o.state.symbol, 0))


OnePositionMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestOnePosition = OnePositionMachine.TestCase
