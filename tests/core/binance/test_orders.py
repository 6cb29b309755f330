"""OrderTracker: every fill published once, whichever path (stream, replayed stream, recovery
by order.status + userTrades) delivers it first."""

from __future__ import annotations

from decimal import Decimal

from core.binance.orders import OrderTracker
from core.events import OrderRequest, OrderSide, OrderStatus, OrderType, OrderUpdate

D = Decimal


def req(cid: str = "d5E1-1") -> OrderRequest:
    return OrderRequest(symbol="BTCUSDT", side=OrderSide.BUY, order_type=OrderType.MARKET,
                        quantity=D("0.030"), client_order_id=cid, ts_ms=1)


def fill(trade_id: int, qty: str, cum: str, status: OrderStatus = OrderStatus.PARTIALLY_FILLED,
         cid: str = "d5E1-1", order_id: int = 7, otype: OrderType = OrderType.MARKET
         ) -> OrderUpdate:
    return OrderUpdate(symbol="BTCUSDT", client_order_id=cid, order_id=order_id,
                       side=OrderSide.BUY, order_type=otype, status=status,
                       quantity=D("0.030"), filled_qty=D(cum), last_fill_qty=D(qty),
                       last_fill_price=D("68000"), trade_id=trade_id, ts_ms=2)


def status(executed: str, st: str = "FILLED", order_id: int = 7, cid: str = "d5E1-1") -> dict:
    return {"orderId": order_id, "symbol": "BTCUSDT", "status": st, "clientOrderId": cid,
            "price": "0", "avgPrice": "68000.00000", "origQty": "0.030",
            "executedQty": executed, "type": "MARKET", "side": "BUY", "updateTime": 3}


def trade(trade_id: int, qty: str, order_id: int = 7) -> dict:
    return {"id": trade_id, "orderId": order_id, "symbol": "BTCUSDT", "price": "68000.00",
            "qty": qty, "commission": "0.34", "commissionAsset": "USDT", "realizedPnl": "0",
            "time": 4}


def test_a_replayed_stream_fill_is_dropped() -> None:
    t = OrderTracker()
    t.track(req())
    assert t.on_stream_update(fill(1, "0.010", "0.010")) is not None
    assert t.on_stream_update(fill(1, "0.010", "0.010")) is None
    assert t.duplicates == 1


def test_recovered_fills_then_late_stream_fills() -> None:
    t = OrderTracker()
    tr = t.track(req())
    assert t.on_stream_update(fill(1, "0.010", "0.010")) is not None
    out = t.resolve(tr, status("0.030"), [trade(1, "0.010"), trade(2, "0.010"),
                                          trade(3, "0.010")], now_ms=5)
    assert [(u.trade_id, u.filled_qty, u.status) for u in out] == [
        (2, D("0.020"), OrderStatus.PARTIALLY_FILLED), (3, D("0.030"), OrderStatus.FILLED)]
    assert out[0].commission == D("0.34")
    assert t.on_stream_update(fill(2, "0.010", "0.020")) is None  # late: already published
    assert t.on_stream_update(fill(3, "0.010", "0.030", OrderStatus.FILLED)) is None
    stale = fill(0, "0", "0.010", OrderStatus.NEW)
    assert t.on_stream_update(stale) is None  # a NEW after the final state


def test_recovery_without_trades_uses_the_average_price() -> None:
    t = OrderTracker()
    tr = t.track(req())
    out = t.resolve(tr, status("0.030"), None, now_ms=5)
    assert len(out) == 1 and out[0].last_fill_qty == D("0.030")
    assert out[0].last_fill_price == D("68000.00000") and out[0].status is OrderStatus.FILLED
    assert "fee and PnL unknown" in out[0].reason


def test_cancelled_without_fill_publishes_the_final_state_once() -> None:
    t = OrderTracker()
    tr = t.track(req())
    out = t.resolve(tr, status("0.000", "CANCELED"), [], now_ms=5)
    assert [u.status for u in out] == [OrderStatus.CANCELED] and tr.final
    assert t.resolve(tr, status("0.000", "CANCELED"), [], now_ms=6) == []


def test_triggered_stop_fills_keep_the_stop_type() -> None:
    t = OrderTracker()
    t.track_stop("BTCUSDT", "d5TP1-2", OrderSide.SELL, OrderType.TAKE_PROFIT_MARKET)
    by_ot = t.on_stream_update(fill(9, "0.010", "0.010", cid="d5TP1-2"), "TAKE_PROFIT_MARKET")
    assert by_ot is not None and by_ot.order_type is OrderType.TAKE_PROFIT_MARKET
    t.track_stop("BTCUSDT", "d5SL1-1", OrderSide.SELL, OrderType.STOP_MARKET)
    t.link_order_id(99, "d5SL1-1")  # ALGO_UPDATE ai: the ME order may carry another client id
    by_id = t.on_stream_update(fill(10, "0.010", "0.010", cid="x-system", order_id=99))
    assert by_id is not None and by_id.order_type is OrderType.STOP_MARKET
