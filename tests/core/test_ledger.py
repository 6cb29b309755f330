"""Ledger: fills, fees and funding -> ClosedTrade, exactly."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    ExitReason,
    MarketTick,
    MarkPrice,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TradeClosed,
)
from core.ledger import Ledger, LedgerError
from core.paper import PaperExchange
from core.store import Store

D = Decimal
SYM = "BTCUSDT"


class Books:
    def __init__(self, path=None) -> None:
        self.bus = EventBus()
        store = None
        if path is not None:
            store = Store.open(path)
            store.bind(self.bus)
        self.ledger = Ledger(self.bus, store)
        self.closed: list[TradeClosed] = []
        self.bus.subscribe(TradeClosed, self.closed.append)
        self._trade_id = 0

    def request(self, cid: str, side: OrderSide, qty: str, intent: str, ts: int = 0) -> None:
        self.bus.publish(OrderRequest(symbol=SYM, side=side, order_type=OrderType.MARKET,
                                      quantity=D(qty), client_order_id=cid,
                                      reduce_only=intent != "ENTRY", intent=intent, ts_ms=ts))

    def fill(self, cid: str, side: OrderSide, qty: str, price: str, *, fee: str = "0",
             realized: str = "0", ts: int = 0, status: OrderStatus = OrderStatus.FILLED,
             order_type: OrderType = OrderType.MARKET, trade_id: int | None = None,
             symbol: str = SYM) -> OrderUpdate:
        if trade_id is None:
            self._trade_id += 1
            trade_id = self._trade_id
        up = OrderUpdate(symbol=symbol, client_order_id=cid, order_id=1, side=side,
                         order_type=order_type, status=status, quantity=D(qty),
                         filled_qty=D(qty), last_fill_qty=D(qty), last_fill_price=D(price),
                         avg_price=D(price), commission=D(fee), realized_pnl=D(realized),
                         trade_id=trade_id, ts_ms=ts)
        self.bus.publish(up)
        return up

    def funding(self, change: str, symbol: str = SYM, ts: int = 0,
                reason: str = "FUNDING_FEE") -> None:
        self.bus.publish(BalanceUpdate(asset="USDT", wallet_balance=D("1000"), change=D(change),
                                       reason=reason, symbol=symbol, ts_ms=ts))

    @property
    def trades(self):
        return [c.trade for c in self.closed]


def test_round_trip_gross_fees_funding_net_exactly():
    b = Books()
    b.funding("-7", ts=500)                     # before entry: not this trade's
    b.request("E1", OrderSide.BUY, "0.010", "ENTRY", ts=1_000)
    b.fill("E1", OrderSide.BUY, "0.010", "50000.0", fee="0.25", ts=1_000)
    assert b.closed == []
    b.funding("-0.1002", ts=2_000)
    b.funding("0.03", ts=3_000)
    b.funding("-5", symbol="ETHUSDT", ts=3_000)   # another symbol
    b.funding("-9", reason="ORDER", ts=3_000)     # not funding
    b.request("X2", OrderSide.SELL, "0.010", "TP", ts=4_000)
    b.fill("X2", OrderSide.SELL, "0.010", "51000.0", fee="0.255", realized="10", ts=4_000)

    (ev,) = b.closed
    t = ev.trade
    assert ev.ts_ms == 4_000 and b.ledger.trades == [t]
    assert (t.symbol, t.side, t.quantity) == (SYM, Side.LONG, D("0.010"))
    assert (t.entry_ts_ms, t.exit_ts_ms) == (1_000, 4_000)
    assert (t.entry_price, t.exit_price) == (D("50000.0"), D("51000.0"))
    assert t.gross_pnl == D("10")
    assert t.fees == D("0.505")
    assert t.funding == D("-0.0702")
    assert t.net_pnl == t.gross_pnl - t.fees + t.funding == D("9.4248")
    assert t.exit_reason is ExitReason.TP
    assert b.ledger.open_trade(SYM) is None
    assert b.bus.errors == 0


def test_funding_after_close_is_not_counted():
    b = Books()
    b.fill("E1", OrderSide.SELL, "1", "100", ts=1)
    b.fill("X1", OrderSide.BUY, "1", "90", realized="10", ts=2)
    b.funding("-3", ts=3)
    (t,) = b.trades
    assert t.side is Side.SHORT and t.funding == 0 and t.net_pnl == D("10")


def test_open_trade_reports_the_running_fees_and_funding():
    b = Books()
    b.fill("E1", OrderSide.BUY, "0.5", "100", fee="0.1", ts=1)
    b.funding("-0.02", ts=2)
    running = b.ledger.open_trade(SYM)
    assert running["quantity"] == D("0.5") and running["fees"] == D("0.1")
    assert running["funding"] == D("-0.02") and running["entry_price"] == D("100")


def test_partial_fills_give_quantity_weighted_prices():
    b = Books()
    b.request("E1", OrderSide.BUY, "0.010", "ENTRY")
    b.fill("E1", OrderSide.BUY, "0.004", "100", fee="0.01", status=OrderStatus.PARTIALLY_FILLED,
           ts=1)
    b.fill("E1", OrderSide.BUY, "0.006", "110", fee="0.02", ts=2)
    b.request("X1", OrderSide.SELL, "0.010", "SL")
    b.fill("X1", OrderSide.SELL, "0.005", "120", fee="0.03", realized="0.07",
           status=OrderStatus.PARTIALLY_FILLED, ts=3)
    assert b.closed == []
    b.fill("X1", OrderSide.SELL, "0.005", "130", fee="0.04", realized="0.12", ts=4)
    (t,) = b.trades
    assert t.entry_price == D("106")   # (0.004 * 100 + 0.006 * 110) / 0.010
    assert t.exit_price == D("125")    # (0.005 * 120 + 0.005 * 130) / 0.010
    assert t.quantity == D("0.010")
    assert t.gross_pnl == D("0.19") and t.fees == D("0.10")
    assert (t.entry_ts_ms, t.exit_ts_ms) == (1, 4)
    assert t.exit_reason is ExitReason.SL  # intent survives the partial fill


def test_a_duplicate_fill_is_counted_once():
    b = Books()
    b.request("E1", OrderSide.BUY, "0.010", "ENTRY")
    first = b.fill("E1", OrderSide.BUY, "0.004", "100", fee="0.01",
                   status=OrderStatus.PARTIALLY_FILLED, trade_id=7)
    b.bus.publish(first)  # the same fill replayed after a reconnect
    b.fill("E1", OrderSide.BUY, "0.006", "110", fee="0.02", trade_id=8)
    b.request("X1", OrderSide.SELL, "0.010", "SIGNAL")
    b.fill("X1", OrderSide.SELL, "0.010", "120", fee="0.03", realized="0.14", trade_id=9)
    (t,) = b.trades
    assert t.quantity == D("0.010") and t.entry_price == D("106")
    assert t.fees == D("0.06")


def test_same_trade_id_on_another_order_is_a_different_fill():
    b = Books()
    b.fill("E1", OrderSide.BUY, "1", "100", trade_id=5, status=OrderStatus.PARTIALLY_FILLED)
    b.fill("E2", OrderSide.BUY, "1", "100", trade_id=5)
    assert b.ledger.open_trade(SYM)["quantity"] == D("2")


@pytest.mark.parametrize("intent", ["TP", "SL", "TRAILING", "SIGNAL", "FLAT", "END"])
def test_exit_reason_is_the_closing_orders_intent(intent):
    b = Books()
    b.fill("E1", OrderSide.BUY, "1", "100")
    b.request("X1", OrderSide.SELL, "1", intent)
    b.fill("X1", OrderSide.SELL, "1", "101", realized="1")
    assert b.trades[0].exit_reason is ExitReason(intent)


@pytest.mark.parametrize(("order_type", "cid", "reason"), [
    (OrderType.LIQUIDATION, "autoclose-123", ExitReason.LIQUIDATION),
    (OrderType.STOP_MARKET, "exchange-sl", ExitReason.SL),
    (OrderType.TAKE_PROFIT_MARKET, "exchange-tp", ExitReason.TP),
    (OrderType.MARKET, "someone-else", ExitReason.MANUAL),
])
def test_exit_reason_of_orders_the_engine_did_not_tag(order_type, cid, reason):
    b = Books()
    b.fill("E1", OrderSide.BUY, "1", "100")
    b.fill(cid, OrderSide.SELL, "1", "99", realized="-1", order_type=order_type)
    assert b.trades[0].exit_reason is reason


def test_an_entry_intent_that_closes_is_manual():
    b = Books()
    b.fill("E1", OrderSide.BUY, "1", "100")
    b.request("E2", OrderSide.SELL, "1", "ENTRY")
    b.fill("E2", OrderSide.SELL, "1", "99", realized="-1")
    assert b.trades[0].exit_reason is ExitReason.MANUAL


def test_non_fill_updates_change_nothing():
    b = Books()
    b.bus.publish(OrderUpdate(symbol=SYM, client_order_id="E1", order_id=1, side=OrderSide.BUY,
                              order_type=OrderType.MARKET, status=OrderStatus.NEW,
                              quantity=D("1"), filled_qty=D(0), ts_ms=1))
    assert b.ledger.open_trade(SYM) is None and b.closed == []


def test_two_round_trips_are_two_trades():
    b = Books()
    for k in range(2):
        b.fill(f"E{k}", OrderSide.BUY, "1", "100", fee="0.05", ts=10 * k)
        b.request(f"X{k}", OrderSide.SELL, "1", "TP")
        b.fill(f"X{k}", OrderSide.SELL, "1", "102", fee="0.05", realized="2", ts=10 * k + 5)
    assert [t.net_pnl for t in b.trades] == [D("1.90"), D("1.90")]
    assert [t.entry_ts_ms for t in b.trades] == [0, 10]


# ----------------------------------------------------------------------- with the paper exchange


def _submit(bus: EventBus, ex: PaperExchange, cid: str, side: OrderSide, qty: str, intent: str,
            ts: int) -> None:
    req = OrderRequest(symbol=SYM, side=side, order_type=OrderType.MARKET, quantity=D(qty),
                       client_order_id=cid, reduce_only=intent != "ENTRY", intent=intent,
                       ts_ms=ts)
    bus.publish(req)  # as ORDERING does: the ledger sees the request before any answer
    ex.submit_order(req)


def test_paper_wallet_moves_by_exactly_the_net_pnl():
    b = Books()
    ex = PaperExchange(b.bus, initial_balance=D("10000"), leverage=10)
    h8 = 8 * 3_600_000
    b.bus.publish(MarkPrice(SYM, 1_000, 50000.0, 50000.0, 0.0001, h8))
    b.bus.publish(MarketTick(SYM, 1_000, 1_000, 50000.1, 1.0, False))
    _submit(b.bus, ex, "E1", OrderSide.BUY, "0.010", "ENTRY", 1_000)
    b.bus.publish(MarkPrice(SYM, h8 + 1_000, 50123.4, 50123.4, 0.0002, 2 * h8))
    b.bus.publish(MarketTick(SYM, h8 + 2_000, h8 + 2_000, 49000.7, 1.0, False))
    _submit(b.bus, ex, "X1", OrderSide.SELL, "0.010", "SL", h8 + 2_000)
    (t,) = b.trades
    assert t.funding == -(D("0.010") * D("50000.0") * D("0.0001"))
    assert t.exit_reason is ExitReason.SL
    assert ex.wallet - D("10000") == t.net_pnl
    assert b.bus.errors == 0


def test_paper_liquidation_is_a_trade_losing_margin_plus_entry_fee():
    b = Books()
    ex = PaperExchange(b.bus, initial_balance=D("10000"), leverage=20, slippage=D(0))
    b.bus.publish(MarketTick(SYM, 1_000, 1_000, 50000.0, 1.0, False))
    _submit(b.bus, ex, "E1", OrderSide.BUY, "0.100", "ENTRY", 1_000)
    b.bus.publish(MarketTick(SYM, 2_000, 2_000, 40000.0, 1.0, False))
    (t,) = b.trades
    assert t.exit_reason is ExitReason.LIQUIDATION
    margin, entry_fee = D("250"), D("0.100") * D("50000.0") * D("0.0005")
    assert t.net_pnl == -(margin + entry_fee) == ex.wallet - D("10000")


def test_a_trade_spanning_a_restart_is_booked_whole(tmp_path):
    path = tmp_path / "journal.sqlite3"
    before = Books(path)
    before.request("E1", OrderSide.BUY, "0.010", "ENTRY", ts=1_000)
    before.fill("E1", OrderSide.BUY, "0.010", "50000.0", fee="0.25", ts=1_000)
    before.funding("-0.1002", ts=2_000)
    before.request("X2", OrderSide.SELL, "0.010", "SL", ts=3_000)  # sent, then the bot dies

    after = Books(path)  # a new process
    after.fill("X2", OrderSide.SELL, "0.010", "49000.0", fee="0.245", realized="-10", ts=4_000)
    (t,) = after.trades
    assert (t.side, t.entry_ts_ms, t.entry_price, t.quantity) == (Side.LONG, 1_000,
                                                                  D("50000.0"), D("0.010"))
    assert (t.fees, t.funding, t.gross_pnl) == (D("0.495"), D("-0.1002"), D("-10"))
    assert t.net_pnl == D("-10.5952") and t.exit_reason is ExitReason.SL
    assert Books(path).ledger.open_trade(SYM) is None  # nothing left open on disk


@pytest.mark.parametrize(("doc", "field"), [
    ({"open": {"BTCUSDT": {"side": "UP"}}}, "open.BTCUSDT.side"),
    ([], "(document)"),
    ({"open": {"BTCUSDT": {"side": "LONG", "entry_ts": 1, "qty": "NaN"}}}, "open.BTCUSDT.qty"),
    ({"open": {"BTCUSDT": {"side": "LONG", "entry_ts": 1, "qty": "-1"}}}, "open.BTCUSDT.qty"),
    ({"open": {"123": {"side": "LONG"}}}, "open.123."),
    ({"version": 99}, "version"),
    ({"intents": {"c1": 5}}, "intents.c1"),
])
def test_an_invalid_stored_ledger_is_a_clear_error(tmp_path, doc, field):
    path = tmp_path / "journal.sqlite3"
    Store.open(path).write({"ledger": doc})
    where = rf"journal.sqlite3 \[ledger\]: field '{re.escape(field)}"
    with pytest.raises(LedgerError, match=where):
        Ledger(EventBus(), Store.open(path))
