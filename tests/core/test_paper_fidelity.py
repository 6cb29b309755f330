"""PaperExchange fidelity: stops never fill better than their trigger, stale quotes, price
expiry, bar paths, brackets (leverage cap, liquidation price), margin precision, funding once.

Driven through the ports only: market data on the bus, ``submit_order``, published events.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.brackets import liquidation_price, load_leverage_brackets
from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    BarTick,
    BookTicker,
    Candle,
    FundingRate,
    MarketTick,
    MarkPrice,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionUpdate,
)
from core.paper import PaperExchange

D = Decimal
BTC = "BTCUSDT"  # tick 0.10, step 0.001
XRP = "XRPUSDT"  # tick 0.0001, step 0.1
BRACKETS = load_leverage_brackets()


class Paper:
    def __init__(self, *, balance: str = "10000", leverage: int = 10, ticks: int = 0,
                 stale_ms: int = 60_000) -> None:
        self.bus = EventBus()
        self.ex = PaperExchange(self.bus, initial_balance=D(balance), leverage=leverage,
                                slippage=D(0), slippage_ticks=ticks, brackets=BRACKETS,
                                stale_ms=stale_ms)
        self.events: list = []
        self.bus.subscribe_all(self.events.append)
        self._cid = 0

    def book(self, bid: float, ask: float, ts: int, symbol: str = BTC) -> None:
        self.bus.publish(BookTicker(symbol, ts, bid, 1.0, ask, 1.0))

    def trade(self, price: float, ts: int, symbol: str = BTC, cls: type = MarketTick) -> None:
        self.bus.publish(cls(symbol, ts, ts, price, 0.5, False))

    def mark(self, price: float, ts: int, rate: float = 0.0, next_funding: int = 0,
             symbol: str = BTC) -> None:
        self.bus.publish(MarkPrice(symbol, ts, price, price, rate, next_funding))

    def order(self, side: OrderSide, qty: str, *, ts: int, reduce_only: bool = False,
              trigger: str | None = None, symbol: str = BTC) -> OrderUpdate:
        self._cid += 1
        start = len(self.events)
        self.ex.submit_order(OrderRequest(
            symbol=symbol, side=side, order_type=OrderType.MARKET, quantity=D(qty),
            client_order_id=f"t-{self._cid}", reduce_only=reduce_only,
            trigger_price=D(trigger) if trigger else None, ts_ms=ts,
        ))
        (last,) = [e for e in self.events[start:] if type(e) is OrderUpdate
                   and e.status in (OrderStatus.FILLED, OrderStatus.REJECTED)]
        return last


# --------------------------------------------------------------------------- fills


def test_a_quote_older_than_a_trade_through_it_is_not_executable():
    """README demo 1 (btcusdt_20240808): the bookTicker lagged a sell sweep; a long's SL
    triggered by a print at 61662.90 filled at the stale bid 61700.40."""
    p = Paper()
    p.book(61700.4, 61700.5, ts=1_000)
    p.trade(61700.5, ts=1_000)
    p.order(OrderSide.BUY, "0.010", ts=1_000)
    p.trade(61662.9, ts=1_200)  # the sweep: below the bid, later than the quote
    fill = p.order(OrderSide.SELL, "0.010", ts=1_200, reduce_only=True, trigger="61680.0")
    assert fill.last_fill_price == D("61662.9")


def test_a_stop_never_fills_better_than_its_trigger():
    p = Paper()
    p.book(100.0, 100.1, ts=1_000)
    p.order(OrderSide.BUY, "0.010", ts=1_000)
    p.book(100.0, 100.1, ts=1_100)  # the book still shows 100.0 although the stop at 99.5 hit
    fill = p.order(OrderSide.SELL, "0.010", ts=1_100, reduce_only=True, trigger="99.5")
    assert fill.last_fill_price == D("99.5")
    p.order(OrderSide.SELL, "0.010", ts=1_200)  # a short's stop above the ask
    fill = p.order(OrderSide.BUY, "0.010", ts=1_200, reduce_only=True, trigger="100.6")
    assert fill.last_fill_price == D("100.6")


def test_slippage_ticks_move_every_fill_against_the_order():
    p = Paper(ticks=2)
    p.book(50000.0, 50000.1, ts=1_000)
    assert p.order(OrderSide.BUY, "0.010", ts=1_000).last_fill_price == D("50000.3")
    fill = p.order(OrderSide.SELL, "0.010", ts=1_000, reduce_only=True, trigger="50010.0")
    assert fill.last_fill_price == D("49999.8")  # min(bid, trigger) - 2 ticks


def test_a_stop_crossed_inside_a_bar_fills_at_its_level_and_a_gap_at_the_open():
    p = Paper()
    p.trade(100.0, ts=0, cls=BarTick)
    p.order(OrderSide.BUY, "0.010", ts=0)
    p.trade(101.0, ts=1_000, cls=BarTick)
    p.trade(95.0, ts=2_000, cls=BarTick)  # low: the path went through 99.0 on the way
    fill = p.order(OrderSide.SELL, "0.010", ts=2_000, reduce_only=True, trigger="99.0")
    assert fill.last_fill_price == D("99.0")

    p.bus.publish(Candle(BTC, 3_000, 3_000, 0, 100.0, 101.0, 95.0, 96.0, 1.0, True))
    p.order(OrderSide.BUY, "0.010", ts=3_000)
    p.trade(90.0, ts=3_001, cls=BarTick)  # the next bar opens below the stop: a gap
    fill = p.order(OrderSide.SELL, "0.010", ts=3_001, reduce_only=True, trigger="94.0")
    assert fill.last_fill_price == D("90.0")


# --------------------------------------------------------------------------- expiry


def test_after_a_gap_no_entry_until_a_fresh_price():
    p = Paper()
    p.book(100.0, 100.1, ts=1_000)
    p.trade(100.0, ts=1_000)
    late = 11 * 86_400_000
    refused = p.order(OrderSide.BUY, "0.010", ts=late)
    assert refused.status is OrderStatus.REJECTED and "fresh" in refused.reason
    p.trade(120.0, ts=late)  # first price after the gap: the old quote is forgotten
    fill = p.order(OrderSide.BUY, "0.010", ts=late)
    assert fill.status is OrderStatus.FILLED and fill.last_fill_price == D("120.0")


def test_a_stale_mark_is_forgotten_on_the_first_fresh_price():
    p = Paper(leverage=20)
    p.mark(100.0, ts=0)
    p.trade(100.0, ts=0)
    p.order(OrderSide.BUY, "1.000", ts=0)
    p.mark(97.0, ts=1_000)  # the last mark of the first file: near the liquidation price
    assert p.ex.unrealized_pnl() == D("-3.000")
    p.trade(104.0, ts=86_400_000)  # the next file has trades only
    assert p.ex.reference_price(BTC) == D("104.0")
    assert p.ex.unrealized_pnl() == D("4.000")
    p.trade(95.0, ts=86_400_001)  # and liquidation is checked on trades again
    assert p.ex.position(BTC)[0] == 0


# --------------------------------------------------------------------------- brackets, margin


def test_leverage_above_the_bracket_of_the_notional_is_refused():
    """125x is allowed on BTCUSDT up to 50,000 USDT; a 112k USDT notional is bracket 2
    (100x): Binance refuses the order (-2027), so does the paper exchange."""
    p = Paper(balance="100000", leverage=125)
    p.book(56000.0, 56000.1, ts=1_000)
    refused = p.order(OrderSide.BUY, "2.000", ts=1_000)  # 112,000 USDT
    assert refused.status is OrderStatus.REJECTED and "-2027" in refused.reason
    assert p.order(OrderSide.BUY, "0.800", ts=1_000).status is OrderStatus.FILLED  # 44.8k


@pytest.mark.parametrize("side", [OrderSide.BUY, OrderSide.SELL])
def test_xrp_liquidates_at_its_bracket_maintenance_rate(side):
    """XRPUSDT bracket 1 is 0.5 % (not 0.4 %): at 75x a long liquidates at
    (q·EP − M) / (q·(1 − 0.005)), on the 0.0001 tick grid."""
    p = Paper(leverage=75)
    p.trade(1.0791, ts=0, symbol=XRP)
    p.order(side, "926.6", ts=0, symbol=XRP)
    pos = [e for e in p.events if type(e) is PositionUpdate][-1]
    q, ep = D("926.6"), D("1.0791")
    margin = (q * ep / 75).quantize(D("0.00000001"), rounding="ROUND_CEILING")
    assert pos.isolated_margin == margin
    sign = 1 if side is OrderSide.BUY else -1
    exact = (q * ep - sign * margin) / (q * (1 - sign * D("0.005")))
    assert pos.liquidation_price == liquidation_price(
        BRACKETS[XRP], quantity=sign * q, entry_price=ep, margin=margin, tick_size=D("0.0001"))
    assert abs(pos.liquidation_price - exact) < D("0.0001")
    assert pos.liquidation_price == (D("1.0701") if sign > 0 else D("1.0880"))  # 0.4 %: 1.0690


def test_balances_keep_eight_decimals():
    """A 75x XRP run used to end with 28-digit balances and fail its invariant by 1E-25."""
    p = Paper(leverage=75)
    for i in range(30):
        p.trade(1.0791 + i / 10_000, ts=i * 10, symbol=XRP)
        p.order(OrderSide.BUY, "926.6", ts=i * 10, symbol=XRP)
        p.trade(1.0731 + i / 10_000, ts=i * 10 + 5, symbol=XRP)  # some liquidate, some do not
        if p.ex.position(XRP)[0]:
            p.order(OrderSide.SELL, "926.6", ts=i * 10 + 5, symbol=XRP, reduce_only=True)
    for e in p.events:
        if type(e) is BalanceUpdate:
            assert -e.wallet_balance.as_tuple().exponent <= 8
        if type(e) is OrderUpdate:
            assert -e.commission.as_tuple().exponent <= 8
            assert -e.realized_pnl.as_tuple().exponent <= 8


# --------------------------------------------------------------------------- funding


def test_a_mark_stream_and_a_funding_file_charge_one_settlement_once():
    p = Paper()
    settle = 8 * 3_600_000
    p.mark(100.0, ts=settle - 5_000, rate=0.0001, next_funding=settle)
    p.trade(100.0, ts=settle - 5_000)
    p.order(OrderSide.BUY, "1.000", ts=settle - 5_000)
    p.bus.publish(FundingRate(BTC, settle + 17, 0.0001))  # the file's row of that settlement
    p.mark(101.0, ts=settle + 1_000, rate=0.0002, next_funding=2 * settle)
    fees = [e for e in p.events if type(e) is BalanceUpdate and e.reason == "FUNDING_FEE"]
    assert [f.change for f in fees] == [D("-0.01000000")]  # 1 × 100 (mark) × 0.0001


def test_a_funding_file_settles_at_the_mark_price_when_there_is_one():
    p = Paper()
    p.trade(100.0, ts=0)
    p.order(OrderSide.BUY, "1.000", ts=0)
    p.mark(102.0, ts=10)
    p.trade(99.0, ts=20)
    p.bus.publish(FundingRate(BTC, 30, 0.001))
    fees = [e for e in p.events if type(e) is BalanceUpdate and e.reason == "FUNDING_FEE"]
    assert [f.change for f in fees] == [D("-0.10200000")]


# --------------------------------------------------------------------------- older data


def test_data_older_than_a_restored_position_never_closes_it_before_it_opened():
    """``run --replay`` of old data over a DATA_DIR saved by a later run: the restored position
    opened after the replayed prices, so neither an exit nor a liquidation may fill at them."""
    p = Paper(leverage=20)
    opened = 1_700_000_000_000
    p.ex.restore({"wallet": "10000", "positions": {BTC: {
        "qty": "1.000", "entry": "100", "margin": "5", "leverage": 20, "opened_ms": opened}}})
    p.trade(50.0, ts=opened - 86_400_000)  # far through the liquidation price, a day earlier
    assert p.ex.position(BTC)[0] == D("1.000")
    refused = p.order(OrderSide.SELL, "1.000", ts=opened - 86_400_000, reduce_only=True)
    assert refused.status is OrderStatus.REJECTED and "fresh DATA_DIR" in refused.reason
    p.trade(99.0, ts=opened + 1)
    fill = p.order(OrderSide.SELL, "1.000", ts=opened + 1, reduce_only=True)
    assert fill.status is OrderStatus.FILLED and fill.ts_ms >= opened
