"""FOLLOW_ORDERS: SL / TP / trailing stop / reverse signal -> exactly one CloseRequest."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.event_bus import EventBus
from core.events import (
    BarTick,
    CloseRequest,
    ExitReason,
    MarketTick,
    MarkPrice,
    PositionOpened,
    PositionUpdate,
    Side,
    StateChanged,
    TradeSignal,
)
from core.follow_orders import FollowOrders, protective_levels

D = Decimal
SYM = "BTCUSDT"


class Follow:
    def __init__(self, **kw) -> None:
        self.bus = EventBus()
        kw.setdefault("price_source", "last")
        self.fo = FollowOrders(self.bus, **kw)
        self.closes: list[CloseRequest] = []
        self.bus.subscribe(CloseRequest, self.closes.append)
        self.ts = 1_000

    def open(self, side: Side, entry: str = "100", sl: str = "95", tp: str = "110",
             symbol: str = SYM) -> None:
        self.bus.publish(PositionOpened(symbol=symbol, side=side, quantity=D("1"),
                                        entry_price=D(entry), stop_loss=D(sl),
                                        take_profit=D(tp), ts_ms=self.ts))

    def _ts(self) -> int:
        self.ts += 1_000
        return self.ts

    def tick(self, *prices: float, symbol: str = SYM, cls: type = MarketTick) -> None:
        for p in prices:
            ts = self._ts()
            self.bus.publish(cls(symbol, ts, ts, p, 1.0, False))

    def mark(self, *prices: float, symbol: str = SYM) -> None:
        for p in prices:
            self.bus.publish(MarkPrice(symbol, self._ts(), p, p, 0.0001, 0))

    def signal(self, side: Side, symbol: str = SYM) -> None:
        self.bus.publish(TradeSignal(symbol=symbol, side=side, entry_price=D("101"),
                                     quantity=D("1"), stop_loss=D("90"), take_profit=D("120"),
                                     leverage=5, reason="ema_cross", ts_ms=self._ts()))

    def phase(self, old: str, new: str) -> None:
        self.bus.publish(StateChanged(what="phase", old=old, new=new, ts_ms=self._ts()))

    @property
    def reasons(self) -> list[ExitReason]:
        return [c.reason for c in self.closes]


# --------------------------------------------------------------------------- SL / TP


@pytest.mark.parametrize(("side", "sl", "tp", "path", "reason"), [
    (Side.LONG, "95", "110", [100, 97, 95.5, 95], ExitReason.SL),
    (Side.LONG, "95", "110", [100, 104, 109.9, 110], ExitReason.TP),
    (Side.LONG, "95", "110", [100, 90], ExitReason.SL),          # gap through the level
    (Side.SHORT, "105", "90", [100, 103, 104.9, 105], ExitReason.SL),
    (Side.SHORT, "105", "90", [100, 95, 90.1, 90], ExitReason.TP),
    (Side.SHORT, "105", "90", [100, 120], ExitReason.SL),
])
def test_sl_and_tp_fire_on_last_price(side, sl, tp, path, reason):
    f = Follow()
    f.open(side, sl=sl, tp=tp)
    f.tick(*path[:-1])
    assert f.closes == []
    f.tick(path[-1])
    assert f.reasons == [reason]
    (close,) = f.closes
    assert close.symbol == SYM and close.ts_ms == f.ts


@pytest.mark.parametrize(("side", "beyond"), [(Side.LONG, [94, 93, 80, 94.9]),
                                              (Side.SHORT, [106, 107, 130])])
def test_only_one_close_request_per_position(side, beyond):
    f = Follow()
    f.open(side, sl="95" if side is Side.LONG else "105",
           tp="110" if side is Side.LONG else "90")
    f.tick(*beyond)
    assert f.reasons == [ExitReason.SL]


def test_nothing_fires_before_a_position_is_opened():
    f = Follow()
    f.tick(1, 1_000_000)
    f.signal(Side.SHORT)
    assert f.closes == []


def test_ticks_of_other_symbols_are_ignored():
    f = Follow()
    f.open(Side.LONG)
    f.tick(50, 500, symbol="ETHUSDT")
    assert f.closes == []
    f.tick(94)
    assert f.reasons == [ExitReason.SL]


def test_bar_tick_works_like_a_tick():
    f = Follow()
    f.open(Side.LONG)
    f.tick(100, 111, cls=BarTick)
    assert f.reasons == [ExitReason.TP]


def test_zero_levels_mean_no_sl_or_tp():
    f = Follow()
    f.open(Side.LONG, sl="0", tp="0")
    f.tick(1, 1_000_000)
    assert f.closes == []


# --------------------------------------------------------------------------- price source


def test_mark_source_ignores_ticks_once_a_mark_is_known():
    f = Follow(price_source="mark")
    f.mark(100)
    f.open(Side.LONG)
    f.tick(90, 120)  # would hit SL then TP on last price
    assert f.closes == []
    f.mark(96)
    assert f.closes == []
    f.mark(95)
    assert f.reasons == [ExitReason.SL]


def test_mark_source_watches_ticks_until_the_symbol_has_a_mark():
    f = Follow(price_source="mark")
    f.mark(3000, symbol="ETHUSDT")  # another symbol's mark does not count
    f.open(Side.LONG)
    f.tick(111)
    assert f.reasons == [ExitReason.TP]


def test_mark_source_switches_from_ticks_to_marks_when_the_first_mark_arrives():
    f = Follow(price_source="mark")
    f.open(Side.LONG)
    f.tick(100)
    f.mark(100)
    f.tick(90)
    assert f.closes == []
    f.mark(94)
    assert f.reasons == [ExitReason.SL]


def test_last_source_ignores_marks():
    f = Follow(price_source="last")
    f.open(Side.LONG)
    f.mark(50, 500)
    assert f.closes == []
    f.tick(94)
    assert f.reasons == [ExitReason.SL]


# --------------------------------------------------------------------------- trailing stop


def test_long_trailing_fires_only_once_activated():
    # entry 100, SL 95; trail 2 % behind the best price once it is 5 % up (>= 105)
    f = Follow(trailing_pct=2.0, activation_pct=5.0)
    f.open(Side.LONG, sl="95", tp="200")
    f.tick(104, 101.5)       # 2 % below 104 is 101.92, but not activated yet
    assert f.closes == [] and f.fo.levels()[2] == 0.0
    f.tick(110, 108)          # activated: stop 107.8
    assert f.closes == []
    assert f.fo.levels()[2] == pytest.approx(107.8)
    f.tick(107.7)
    assert f.reasons == [ExitReason.TRAILING]
    f.tick(100, 50)
    assert len(f.closes) == 1


def test_short_trailing_fires_only_once_activated():
    f = Follow(trailing_pct=2.0, activation_pct=5.0)
    f.open(Side.SHORT, sl="105", tp="10")
    f.tick(96, 98.5)          # 2 % above 96 is 97.92, but not activated (<= 95)
    assert f.closes == []
    f.tick(90, 91.5)          # activated: stop 91.8
    assert f.closes == []
    assert f.fo.levels()[2] == pytest.approx(91.8)
    f.tick(91.9)
    assert f.reasons == [ExitReason.TRAILING]


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_trailing_without_activation_starts_at_once(side):
    f = Follow(trailing_pct=1.0)
    f.open(side, sl="0", tp="0")
    if side is Side.LONG:
        f.tick(102, 101.5)       # stop 100.98
        assert f.closes == []
        f.tick(100.9)
    else:
        f.tick(98, 98.5)         # stop 98.98
        assert f.closes == []
        f.tick(99)
    assert f.reasons == [ExitReason.TRAILING]


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_trailing_looser_than_sl_never_fires_as_trailing(side):
    # trail 10 % behind the best price is looser than the 2 % SL: the SL closes
    f = Follow(trailing_pct=10.0)
    if side is Side.LONG:
        f.open(side, sl="98", tp="200")
        f.tick(101, 99)
        assert f.closes == []
        f.tick(97)
    else:
        f.open(side, sl="102", tp="1")
        f.tick(99, 101)
        assert f.closes == []
        f.tick(103)
    assert f.reasons == [ExitReason.SL]


def test_trailing_off_by_default():
    f = Follow()
    f.open(Side.LONG, sl="50", tp="200")
    f.tick(150, 60)
    assert f.closes == [] and f.fo.levels() == (50.0, 200.0, 0.0)


# --------------------------------------------------------------------------- reverse signal


def test_opposite_signal_on_the_same_symbol_closes_with_reason_signal():
    f = Follow()
    f.open(Side.LONG)
    f.signal(Side.LONG)                    # same direction: nothing
    f.signal(Side.SHORT, symbol="ETHUSDT")  # another symbol: nothing
    assert f.closes == []
    f.signal(Side.SHORT)
    assert f.reasons == [ExitReason.SIGNAL]
    assert f.closes[0].detail == "ema_cross"


def test_opposite_signal_closes_a_short_too():
    f = Follow()
    f.open(Side.SHORT, sl="105", tp="90")
    f.signal(Side.LONG)
    assert f.reasons == [ExitReason.SIGNAL]


def test_no_signal_exit_when_exit_on_reverse_is_off():
    f = Follow(exit_on_reverse=False)
    f.open(Side.LONG)
    f.signal(Side.SHORT)
    assert f.closes == []
    f.tick(94)
    assert f.reasons == [ExitReason.SL]


def test_signal_after_a_fired_exit_adds_nothing():
    f = Follow()
    f.open(Side.LONG)
    f.tick(94)
    f.signal(Side.SHORT)
    assert f.reasons == [ExitReason.SL]


# --------------------------------------------------------------------------- lifecycle


def test_failed_exit_rearms_the_watch():
    f = Follow()
    f.open(Side.LONG)
    f.tick(94)
    f.phase("OPEN", "EXITING")
    f.tick(93)
    assert f.reasons == [ExitReason.SL]
    f.phase("EXITING", "OPEN")  # ORDERING: the exit failed
    f.tick(93)
    assert f.reasons == [ExitReason.SL, ExitReason.SL]


def test_mode_changes_do_not_rearm():
    f = Follow()
    f.open(Side.LONG)
    f.tick(94)
    f.bus.publish(StateChanged(what="mode", old="EXITING", new="OPEN", ts_ms=1))
    f.tick(93)
    assert len(f.closes) == 1


def test_flat_phase_stops_watching():
    f = Follow()
    f.open(Side.LONG)
    f.phase("EXITING", "FLAT")
    assert f.fo.watching == "" and f.fo.levels() is None
    f.tick(50, 500)
    f.signal(Side.SHORT)
    assert f.closes == []


def test_flat_position_update_stops_watching():
    f = Follow()
    f.open(Side.LONG)
    f.bus.publish(PositionUpdate(symbol="ETHUSDT", quantity=D(0), entry_price=D(0), ts_ms=1))
    assert f.fo.watching == SYM  # another symbol going flat changes nothing
    f.bus.publish(PositionUpdate(symbol=SYM, quantity=D("0.5"), entry_price=D(100), ts_ms=2))
    assert f.fo.watching == SYM
    f.bus.publish(PositionUpdate(symbol=SYM, quantity=D(0), entry_price=D(0), ts_ms=3))
    assert f.fo.watching == ""
    f.tick(50)
    assert f.closes == []


def test_a_new_position_gets_a_fresh_watch():
    f = Follow()
    f.open(Side.LONG)
    f.tick(94)
    f.phase("EXITING", "FLAT")
    f.open(Side.SHORT, entry="94", sl="99", tp="90")
    f.tick(99)
    assert f.reasons == [ExitReason.SL, ExitReason.SL]


def test_protective_levels():
    assert protective_levels(Side.LONG, D("100"), D("2"), D("5")) == (D("98"), D("105"))
    assert protective_levels(Side.SHORT, D("100"), D("2"), D("5")) == (D("102"), D("95"))


def test_no_handler_failed():
    f = Follow(trailing_pct=1.0, price_source="mark")
    f.open(Side.LONG)
    f.mark(101, 99)
    f.tick(120)
    f.signal(Side.SHORT)
    assert f.bus.errors == 0
