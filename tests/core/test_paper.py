"""PaperExchange: fills, fees, event order, rejections, funding, liquidation, snapshots.

Every test drives the exchange only through its ports: market data published on the bus and
``submit_order``; the outcome is read from the events it publishes and its account views.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    BarTick,
    BookTicker,
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
from core.filters import ceil_to_step, floor_to_step
from core.paper import PaperExchange

D = Decimal
SYM = "BTCUSDT"  # DEFAULT_FILTERS: tick 0.10, step 0.001
TAKER = D("0.0005")
SLIP = D("0.0001")


class Paper:
    """A paper exchange on its own bus plus everything it published."""

    def __init__(self, *, balance: str = "10000", leverage: int = 10, slippage: Decimal = SLIP,
                 mmr: Decimal = Decimal("0.004")) -> None:
        self.bus = EventBus()
        self.initial = D(balance)
        self.ex = PaperExchange(self.bus, initial_balance=self.initial, leverage=leverage,
                                taker_fee=TAKER, slippage=slippage, mmr=mmr)
        self.events: list = []
        self.bus.subscribe_all(self.events.append)
        self._cid = 0

    def of(self, cls: type) -> list:
        return [e for e in self.events if type(e) is cls]

    def book(self, bid: float, ask: float, ts: int = 1_000, symbol: str = SYM) -> None:
        self.bus.publish(BookTicker(symbol, ts, bid, 1.0, ask, 1.0))

    def tick(self, price: float, ts: int = 1_000, symbol: str = SYM,
             cls: type = MarketTick) -> None:
        self.bus.publish(cls(symbol, ts, ts, price, 0.5, False))

    def mark(self, price: float, ts: int, rate: float = 0.0, next_funding: int = 0,
             symbol: str = SYM) -> None:
        self.bus.publish(MarkPrice(symbol, ts, price, price, rate, next_funding))

    def order(self, side: OrderSide, qty: str, *, reduce_only: bool = False,
              order_type: OrderType = OrderType.MARKET, symbol: str = SYM,
              price: Decimal | None = None, ts: int = 1_000) -> list:
        """Submit; return the events this submission published."""
        self._cid += 1
        start = len(self.events)
        self.ex.submit_order(OrderRequest(
            symbol=symbol, side=side, order_type=order_type, quantity=D(qty),
            client_order_id=f"t-{self._cid}", reduce_only=reduce_only, price=price, ts_ms=ts,
        ))
        return self.events[start:]


def fill_of(events: list) -> OrderUpdate:
    (filled,) = [e for e in events if type(e) is OrderUpdate and e.status is OrderStatus.FILLED]
    return filled


# --------------------------------------------------------------------------- fill price, fee


def test_market_buy_fills_at_ask_plus_slippage_rounded_up_to_the_tick():
    p = Paper()
    p.book(bid=50000.0, ask=50000.1)
    up = fill_of(p.order(OrderSide.BUY, "0.010"))
    # 50000.1 * 1.0001 = 50005.10001: up to the tick is 50005.2 (nearest would be 50005.1)
    assert up.last_fill_price == D("50005.2")
    assert up.avg_price == D("50005.2")
    assert p.ex.position(SYM) == (D("0.010"), D("50005.2"))


def test_market_sell_fills_at_bid_minus_slippage_rounded_down_to_the_tick():
    p = Paper()
    p.book(bid=50000.3, ask=50000.4)
    up = fill_of(p.order(OrderSide.SELL, "0.010"))
    # 50000.3 * 0.9999 = 49995.29997: down to the tick is 49995.2 (nearest would be 49995.3)
    assert up.last_fill_price == D("49995.2")
    assert p.ex.position(SYM) == (D("-0.010"), D("49995.2"))


def test_book_wins_over_last_trade_price():
    p = Paper(slippage=D(0))
    p.tick(40000.0)
    p.book(bid=50000.0, ask=50000.1)
    assert fill_of(p.order(OrderSide.BUY, "0.001")).last_fill_price == D("50000.1")


@pytest.mark.parametrize(("side", "expected"), [(OrderSide.BUY, "50005.2"),
                                                 (OrderSide.SELL, "49995.2")])
def test_without_book_ticker_fills_from_last_trade_price(side, expected):
    p = Paper()
    p.tick(50000.1 if side is OrderSide.BUY else 50000.3)
    assert fill_of(p.order(side, "0.010")).last_fill_price == D(expected)


def test_fee_is_quantity_times_price_times_taker_fee_exactly():
    p = Paper()
    p.book(bid=50000.0, ask=50000.1)
    up = fill_of(p.order(OrderSide.BUY, "0.010"))
    assert up.commission == D("0.010") * D("50005.2") * TAKER == D("0.250026")
    assert p.ex.wallet == p.initial - D("0.250026")
    (bal,) = p.of(BalanceUpdate)
    assert bal.change == -D("0.250026") and bal.reason == "ORDER"


def test_fill_publishes_new_then_balance_then_position_then_filled():
    p = Paper()
    p.book(bid=50000.0, ask=50000.1)
    events = p.order(OrderSide.BUY, "0.010")
    shape = [(type(e).__name__, getattr(e, "status", None)) for e in events]
    assert shape == [
        ("OrderUpdate", OrderStatus.NEW),
        ("BalanceUpdate", None),
        ("PositionUpdate", None),
        ("OrderUpdate", OrderStatus.FILLED),
    ]
    new, bal, pos, filled = events
    assert new.client_order_id == filled.client_order_id and new.order_id == filled.order_id
    assert new.last_fill_qty == 0 and filled.last_fill_qty == D("0.010")
    assert filled.filled_qty == D("0.010") and filled.trade_id > 0
    assert bal.wallet_balance == p.ex.wallet
    assert pos.quantity == D("0.010") and pos.entry_price == D("50005.2")
    assert pos.leverage == 10 and pos.isolated_margin == D("0.010") * D("50005.2") / 10


def test_submitting_from_inside_a_handler_keeps_the_same_order():
    p = Paper()
    p.book(bid=50000.0, ask=50000.1)

    def buy_on_tick(_ev: MarketTick) -> None:
        p.ex.submit_order(OrderRequest(symbol=SYM, side=OrderSide.BUY,
                                       order_type=OrderType.MARKET, quantity=D("0.010"),
                                       client_order_id="in-handler", ts_ms=2_000))

    p.bus.subscribe(MarketTick, buy_on_tick)
    p.tick(50000.1, ts=2_000)
    shape = [(type(e).__name__, getattr(e, "status", None)) for e in p.events[2:]]
    assert shape == [("OrderUpdate", OrderStatus.NEW), ("BalanceUpdate", None),
                     ("PositionUpdate", None), ("OrderUpdate", OrderStatus.FILLED)]


def test_open_and_close_move_the_wallet_by_realized_minus_fees_exactly():
    p = Paper()
    p.book(bid=50000.0, ask=50000.1)
    entry = fill_of(p.order(OrderSide.BUY, "0.010"))
    p.book(bid=51000.0, ask=51000.1, ts=2_000)
    exit_ = fill_of(p.order(OrderSide.SELL, "0.010", reduce_only=True, ts=2_000))

    assert exit_.last_fill_price == D("50994.9")  # 51000.0 * 0.9999, down to the tick
    assert exit_.realized_pnl == (D("50994.9") - D("50005.2")) * D("0.010") == D("9.897")
    assert exit_.commission == D("0.010") * D("50994.9") * TAKER
    assert entry.realized_pnl == 0
    assert p.ex.wallet == p.initial + exit_.realized_pnl - entry.commission - exit_.commission
    assert p.ex.position(SYM) == (0, 0)
    assert p.ex.margin_in_use() == 0 and p.ex.available() == p.ex.wallet
    assert p.of(PositionUpdate)[-1].quantity == 0
    assert sum(b.change for b in p.of(BalanceUpdate)) == p.ex.wallet - p.initial


# --------------------------------------------------------------------------- rejections


def _open_long(p: Paper) -> None:
    p.order(OrderSide.BUY, "0.010")


REJECTIONS = {
    "limit order": (None, dict(side=OrderSide.BUY, qty="0.010", order_type=OrderType.LIMIT,
                               price=D("49000"))),
    "reduce-only without position": (None, dict(side=OrderSide.SELL, qty="0.010",
                                                reduce_only=True)),
    "reduce-only on the wrong side": (_open_long, dict(side=OrderSide.BUY, qty="0.010",
                                                       reduce_only=True)),
    "reduce-only exceeding position": (_open_long, dict(side=OrderSide.SELL, qty="0.011",
                                                        reduce_only=True)),
    "reversal in one order": (_open_long, dict(side=OrderSide.SELL, qty="0.020")),
    # 0.2 BTC at 50005.2 with leverage 10 needs 1000.104 margin + fee; 1000 - fee held
    "insufficient margin": (None, dict(side=OrderSide.BUY, qty="0.200")),
    "quantity off the step grid": (None, dict(side=OrderSide.BUY, qty="0.0015")),
    "zero quantity": (None, dict(side=OrderSide.BUY, qty="0")),
    "unknown symbol": (None, dict(side=OrderSide.BUY, qty="1", symbol="FOOUSDT")),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejected_orders_change_nothing(case):
    setup, kw = REJECTIONS[case]
    p = Paper(balance="1000" if case == "insufficient margin" else "10000")
    p.book(bid=50000.0, ask=50000.1)
    if setup:
        setup(p)
    before = (p.ex.wallet, p.ex.position(SYM), p.ex.available(), p.ex.margin_in_use())
    side, qty = kw.pop("side"), kw.pop("qty")

    events = p.order(side, qty, **kw)

    assert len(events) == 1
    (rej,) = events
    assert type(rej) is OrderUpdate and rej.status is OrderStatus.REJECTED
    assert rej.reason and rej.last_fill_qty == 0 and rej.commission == 0
    assert (p.ex.wallet, p.ex.position(SYM), p.ex.available(), p.ex.margin_in_use()) == before


def test_order_just_within_margin_is_accepted():
    """The margin check is not over-strict: margin + fee == available is enough."""
    p = Paper(balance="50.255", leverage=10, slippage=D(0))
    p.tick(50000.0)
    # 0.010 * 50000 / 10 = 50 margin, + 0.25 fee = 50.25 <= 50.255
    assert fill_of(p.order(OrderSide.BUY, "0.010")).last_fill_qty == D("0.010")


def test_no_market_price_yet_is_rejected():
    p = Paper()
    p.book(bid=3000.0, ask=3000.1, symbol="ETHUSDT")  # a price, but for another symbol
    (rej,) = p.order(OrderSide.BUY, "0.010")
    assert rej.status is OrderStatus.REJECTED and "price" in rej.reason
    assert p.ex.wallet == p.initial and p.ex.position(SYM) == (0, 0)


def test_unknown_symbol_reason_names_the_symbol():
    p = Paper()
    (rej,) = p.order(OrderSide.BUY, "1", symbol="FOOUSDT")
    assert "FOOUSDT" in rej.reason


# --------------------------------------------------------------------------- funding

H8 = 8 * 3_600_000


def _funding_run(side: OrderSide, rate: float) -> Paper:
    p = Paper(slippage=D(0))
    p.mark(50000.0, ts=1_000, rate=0.0001, next_funding=H8)
    p.tick(50000.0, ts=1_000)
    p.order(side, "0.010", ts=1_000)
    # last update before the settlement: its mark and rate are the ones charged
    p.mark(50100.0, ts=H8 - 1_000, rate=rate, next_funding=H8)
    p.mark(50500.0, ts=H8 + 1_000, rate=0.0003, next_funding=2 * H8)
    return p


def _funding_updates(p: Paper) -> list[BalanceUpdate]:
    return [b for b in p.of(BalanceUpdate) if b.reason == "FUNDING_FEE"]


def test_long_pays_positive_funding_at_last_mark_and_rate_before_settlement():
    p = _funding_run(OrderSide.BUY, 0.0002)
    (fee,) = _funding_updates(p)
    expected = -(D("0.010") * D("50100.0") * D("0.0002"))  # -0.1002
    assert fee.change == expected == D("-0.1002")
    assert fee.symbol == SYM and fee.asset == "USDT"
    assert fee.ts_ms == H8
    entry_fee = D("0.010") * D("50000.0") * TAKER
    assert p.ex.wallet == p.initial - entry_fee + expected == fee.wallet_balance


def test_short_receives_positive_funding():
    p = _funding_run(OrderSide.SELL, 0.0002)
    (fee,) = _funding_updates(p)
    assert fee.change == D("0.1002")
    assert p.ex.wallet == p.initial - D("0.010") * D("50000.0") * TAKER + D("0.1002")


def test_long_receives_negative_funding():
    p = _funding_run(OrderSide.BUY, -0.0002)
    (fee,) = _funding_updates(p)
    assert fee.change == D("0.1002")


def test_funding_settles_once_per_settlement():
    p = _funding_run(OrderSide.BUY, 0.0002)
    p.mark(50600.0, ts=H8 + 2_000, rate=0.0003, next_funding=2 * H8)
    p.mark(50700.0, ts=H8 + 3_000, rate=0.0003, next_funding=2 * H8)
    assert len(_funding_updates(p)) == 1
    p.mark(50800.0, ts=2 * H8 + 1_000, rate=0.0001, next_funding=3 * H8)
    second = _funding_updates(p)[1]
    assert second.change == -(D("0.010") * D("50700.0") * D("0.0003"))


def test_position_opened_after_the_settlement_time_does_not_pay_it():
    """The update that reveals a settlement can arrive after it; a position opened in between
    was not held at the settlement and owes nothing."""
    p = Paper(slippage=D(0))
    p.mark(50000.0, ts=H8 - 1_000, rate=0.0001, next_funding=H8)
    p.tick(50000.0, ts=H8 + 500)
    p.order(OrderSide.BUY, "0.010", ts=H8 + 500)
    p.mark(50000.0, ts=H8 + 1_000, rate=0.0001, next_funding=2 * H8)
    assert _funding_updates(p) == []


def test_position_closed_after_the_settlement_time_still_pays_it():
    """Closed after the settlement but before the update that reveals it: it was held at the
    settlement, so the fill settles the funding first."""
    p = Paper(slippage=D(0))
    p.mark(50000.0, ts=1_000, rate=0.0001, next_funding=H8)
    p.tick(50000.0, ts=1_000)
    p.order(OrderSide.BUY, "0.010", ts=1_000)
    p.tick(50000.0, ts=H8 + 200)
    p.order(OrderSide.SELL, "0.010", reduce_only=True, ts=H8 + 200)
    p.mark(50000.0, ts=H8 + 1_000, rate=0.0001, next_funding=2 * H8)
    (fee,) = _funding_updates(p)
    assert fee.change == -(D("0.010") * D("50000.0") * D("0.0001")) and fee.ts_ms == H8
    fee_events = [i for i, e in enumerate(p.events) if e is fee]
    exit_fill = [i for i, e in enumerate(p.events) if type(e) is OrderUpdate
                 and e.status is OrderStatus.FILLED and e.side is OrderSide.SELL]
    assert fee_events[0] < exit_fill[0]  # settled before the position went away


def test_no_funding_without_a_position():
    p = Paper()
    p.mark(50000.0, ts=1_000, rate=0.0001, next_funding=H8)
    p.mark(50100.0, ts=H8 - 1_000, rate=0.0002, next_funding=H8)
    p.mark(50500.0, ts=H8 + 1_000, rate=0.0003, next_funding=2 * H8)
    assert _funding_updates(p) == [] and p.ex.wallet == p.initial


def test_funding_rate_event_settles_at_the_last_price():
    p = Paper(slippage=D(0))
    p.tick(50000.0, ts=1_000)
    p.order(OrderSide.BUY, "0.010")
    p.tick(51000.0, ts=2_000)
    wallet = p.ex.wallet
    p.bus.publish(FundingRate(SYM, H8, 0.0001))
    (fee,) = _funding_updates(p)
    assert fee.change == -(D("0.010") * D("51000.0") * D("0.0001")) == D("-0.051")
    assert fee.symbol == SYM and p.ex.wallet == wallet - D("0.051")


def test_funding_rate_event_without_position_changes_nothing():
    p = Paper()
    p.tick(50000.0)
    p.bus.publish(FundingRate(SYM, H8, 0.0001))
    assert _funding_updates(p) == [] and p.ex.wallet == p.initial


# --------------------------------------------------------------------------- liquidation

MMR = D("0.004")


def _liq_formula(pos: PositionUpdate) -> Decimal:
    """One bracket of MMR, cum 0; on the 0.10 tick grid, up for a long, down for a short."""
    q, ep, m = abs(pos.quantity), pos.entry_price, pos.isolated_margin
    if pos.quantity > 0:
        return ceil_to_step((q * ep - m) / (q * (1 - MMR)), D("0.10"))
    return floor_to_step((q * ep + m) / (q * (1 + MMR)), D("0.10"))


def _opened(side: OrderSide, *, with_mark: bool) -> tuple[Paper, PositionUpdate, OrderUpdate]:
    p = Paper(leverage=20, slippage=D(0), mmr=MMR)
    if with_mark:
        p.mark(50000.0, ts=1_000)
    p.tick(50000.0)
    entry = fill_of(p.order(side, "0.100"))
    return p, p.of(PositionUpdate)[-1], entry


@pytest.mark.parametrize("side", [OrderSide.BUY, OrderSide.SELL])
def test_liquidation_price_follows_the_documented_formula(side):
    _, pos, _ = _opened(side, with_mark=False)
    assert pos.isolated_margin == D("0.100") * D("50000.0") / 20 == D("250")
    assert pos.liquidation_price == _liq_formula(pos)
    if side is OrderSide.BUY:
        assert pos.liquidation_price == D("47690.8")  # 4750 / 0.0996 = 47690.76..., up
    else:
        assert pos.liquidation_price == D("52290.8")  # 5250 / 0.1004 = 52290.83..., down


@pytest.mark.parametrize("side", [OrderSide.BUY, OrderSide.SELL])
@pytest.mark.parametrize("with_mark", [True, False], ids=["mark", "last-price"])
def test_liquidation_closes_the_position_and_loses_exactly_the_margin(side, with_mark):
    p, pos, entry = _opened(side, with_mark=with_mark)
    liq = float(pos.liquidation_price)
    near = liq + 5 if side is OrderSide.BUY else liq - 5

    def move(price: float, ts: int) -> None:
        if with_mark:
            p.mark(price, ts=ts)
        else:
            p.tick(price, ts=ts)

    move(near, 2_000)
    assert p.ex.position(SYM)[0] == pos.quantity  # not yet
    start = len(p.events)
    move(liq, 3_000)
    after = p.events[start:]

    (liq_fill,) = [e for e in after if type(e) is OrderUpdate]
    assert liq_fill.order_type is OrderType.LIQUIDATION
    assert liq_fill.status is OrderStatus.FILLED
    assert liq_fill.client_order_id.startswith("autoclose-")
    assert liq_fill.side is (OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY)
    assert liq_fill.last_fill_qty == D("0.100") and liq_fill.reduce_only
    (flat,) = [e for e in after if type(e) is PositionUpdate]
    assert flat.quantity == 0 and flat.isolated_margin == 0
    assert p.ex.position(SYM) == (0, 0) and p.ex.margin_in_use() == 0
    assert p.ex.wallet == p.initial - entry.commission - pos.isolated_margin
    (bal,) = [e for e in after if type(e) is BalanceUpdate]
    assert bal.change == -pos.isolated_margin
    # what the fill reports adds up to the same loss (the ledger relies on it)
    assert liq_fill.realized_pnl - liq_fill.commission == -pos.isolated_margin


def test_with_a_mark_price_trades_through_the_liquidation_price_do_not_liquidate():
    p, pos, _ = _opened(OrderSide.BUY, with_mark=True)
    p.tick(float(pos.liquidation_price) - 100, ts=2_000)
    assert p.ex.position(SYM)[0] == D("0.100")
    assert not [e for e in p.events if getattr(e, "order_type", None) is OrderType.LIQUIDATION]


def test_liquidation_of_one_symbol_leaves_the_other_open():
    p = Paper(leverage=20, slippage=D(0), mmr=MMR)
    p.tick(50000.0)
    p.tick(3000.0, symbol="ETHUSDT")
    p.order(OrderSide.BUY, "0.100")
    p.order(OrderSide.BUY, "1.000", symbol="ETHUSDT")
    p.tick(40000.0, ts=2_000)
    assert p.ex.position(SYM) == (0, 0)
    assert p.ex.position("ETHUSDT") == (D("1.000"), D("3000.0"))


# --------------------------------------------------------------------------- snapshot, BarTick


def test_snapshot_restore_round_trip_reproduces_the_account():
    p = Paper(leverage=20, slippage=D(0), mmr=MMR)
    p.tick(50000.0)
    p.tick(3000.0, symbol="ETHUSDT")
    p.order(OrderSide.BUY, "0.100")
    p.order(OrderSide.SELL, "1.000", symbol="ETHUSDT")
    snap = json.loads(json.dumps(p.ex.snapshot()))

    q = Paper(balance="1", leverage=20, slippage=D(0), mmr=MMR)
    q.ex.restore(snap)

    assert q.ex.wallet == p.ex.wallet
    for sym in (SYM, "ETHUSDT"):
        assert q.ex.position(sym) == p.ex.position(sym)
    assert q.ex.margin_in_use() == p.ex.margin_in_use() and q.ex.available() == p.ex.available()

    p.ex.publish_positions(5_000)
    q.ex.publish_positions(5_000)
    key = lambda u: (u.symbol, u.quantity, u.entry_price, u.isolated_margin,  # noqa: E731
                     u.liquidation_price, u.leverage)
    assert sorted(map(key, q.of(PositionUpdate))) == sorted(
        map(key, p.of(PositionUpdate)[-2:]))

    # the restored account behaves the same: identical close, identical wallet, fresh ids
    for x in (p, q):
        x.tick(50500.0, ts=6_000)
    a = fill_of(p.order(OrderSide.SELL, "0.100", reduce_only=True, ts=6_000))
    b = fill_of(q.order(OrderSide.SELL, "0.100", reduce_only=True, ts=6_000))
    assert (b.last_fill_price, b.realized_pnl, b.commission) == (
        a.last_fill_price, a.realized_pnl, a.commission)
    assert b.order_id == a.order_id and b.trade_id == a.trade_id
    assert q.ex.wallet == p.ex.wallet


def test_restore_replaces_previous_positions():
    p = Paper()
    p.tick(50000.0)
    snap = p.ex.snapshot()  # flat
    p.order(OrderSide.BUY, "0.010")
    p.ex.restore(snap)
    assert p.ex.position(SYM) == (0, 0) and p.ex.wallet == p.initial


def test_bar_tick_moves_the_last_price_like_a_market_tick():
    p = Paper()
    p.tick(50000.1, cls=BarTick)
    assert p.ex.last_price(SYM) == 50000.1
    assert p.ex.reference_price(SYM) == D("50000.1")
    assert fill_of(p.order(OrderSide.BUY, "0.010")).last_fill_price == D("50005.2")


def test_bar_tick_can_liquidate():
    p = Paper(leverage=20, slippage=D(0), mmr=MMR)
    p.tick(50000.0, cls=BarTick)
    p.order(OrderSide.BUY, "0.100")
    p.tick(47000.0, ts=2_000, cls=BarTick)
    assert p.ex.position(SYM) == (0, 0)
    assert [e.order_type for e in p.of(OrderUpdate)][-1] is OrderType.LIQUIDATION


def test_no_handler_failed_on_the_bus():
    p, _, _ = _opened(OrderSide.BUY, with_mark=True)
    p.mark(30000.0, ts=2_000, rate=0.0001, next_funding=H8)
    assert p.bus.errors == 0
