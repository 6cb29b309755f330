"""Every recorded payload in shared/binance/samples/ (and samples/unattributed/) goes through the
production parsers, with asserted values. Malformed input: test_binance_parse_errors.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.binance.models import AlgoStatus, AlgoUpdate, TradeLite
from core.binance.parse import (
    parse_account_update,
    parse_algo_order_result,
    parse_algo_update,
    parse_market_event,
    parse_order_result,
    parse_order_trade_update,
    parse_rate_limits,
    parse_user_event,
    parse_ws_api_response,
)
from core.events import (
    BalanceUpdate,
    BookTicker,
    Candle,
    MarketTick,
    MarkPrice,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionUpdate,
)
from core.filters import parse_exchange_info

pytestmark = pytest.mark.realdata
D = Decimal


def load(samples_dir: Path, name: str) -> Any:
    return json.loads((samples_dir / name).read_text())


# --------------------------------------------------------------------------- user data stream


def check_trailing_new(msg: Any) -> None:
    u = parse_user_event(msg)
    assert isinstance(u, OrderUpdate)
    trailing = getattr(OrderType, "TRAILING_STOP_MARKET", OrderType.STOP_MARKET)
    assert (u.symbol, u.client_order_id, u.order_id) == ("BTCUSDT", "TEST", 8886774)
    assert (u.side, u.order_type, u.status) == (OrderSide.BUY, trailing, OrderStatus.NEW)
    assert (u.quantity, u.filled_qty, u.last_fill_qty) == (D("0.001"), 0, 0)
    assert not u.is_fill and u.trade_id == 0 and u.commission_asset == "USDT"
    assert u.ts_ms == 1568879465651
    if trailing is OrderType.STOP_MARKET:        # enum lacks the type: kept in reason
        assert "TRAILING_STOP_MARKET" in u.reason


def check_partial_fill(msg: Any) -> None:
    u = parse_order_trade_update(msg)
    assert (u.status, u.order_type, u.side) == (
        OrderStatus.PARTIALLY_FILLED, OrderType.LIMIT, OrderSide.BUY)
    assert (u.quantity, u.filled_qty) == (D("0.002"), D("0.001"))
    assert (u.last_fill_qty, u.last_fill_price, u.avg_price) == (
        D("0.001"), D("7100.50"), D("7100.50"))
    assert (u.commission, u.commission_asset, u.realized_pnl) == (D("0.01"), "USDT", D("12.34"))
    assert u.trade_id == 12345678 and u.is_fill and not u.reduce_only


def check_market_filled(msg: Any) -> None:
    u = parse_order_trade_update(msg)
    assert (u.symbol, u.client_order_id, u.order_id) == (
        "BTCUSDT", "KWsJ1UBaWM1C0IhvgdXxZb", 4129479931)
    assert (u.status, u.order_type) == (OrderStatus.FILLED, OrderType.MARKET)
    assert (u.last_fill_qty, u.last_fill_price, u.avg_price) == (
        D("0.100"), D("84146.50"), D("84146.5"))
    assert (u.commission, u.realized_pnl, u.trade_id) == (D("3.36586"), 0, 310194316)
    assert u.ts_ms == 1742585119596 and u.reason == ""


def check_limit_new(msg: Any) -> None:
    u = parse_order_trade_update(msg)
    assert (u.order_id, u.order_type, u.status, u.quantity) == (
        4129466756, OrderType.LIMIT, OrderStatus.NEW, D("1"))
    assert u.client_order_id == "BG1gnPa6hrGgKVYZFOAvAu" and u.ts_ms == 1742584483137


def check_limit_canceled(msg: Any) -> None:
    u = parse_order_trade_update(msg)
    assert (u.order_id, u.status, u.filled_qty) == (238950797096, OrderStatus.CANCELED, 0)
    assert u.client_order_id == "web_w4Sot5R1ym9ChzWfGdAm" and u.quantity == D("0.010")


def check_market_new_2026(msg: Any) -> None:
    u = parse_order_trade_update(msg)
    assert (u.symbol, u.order_id, u.status, u.order_type) == (
        "SOLUSDT", 199033476993, OrderStatus.NEW, OrderType.MARKET)
    assert u.client_order_id == "SOLUSDT_BOTH_1771856732181_1"
    assert u.reason == ""                        # er "0" is not a reason


def check_account_hedge(msg: Any) -> None:
    balances, positions = parse_account_update(msg)
    assert balances == [BalanceUpdate(asset="USDT", wallet_balance=D("122624.12345678"),
                                      change=D("50.12345678"), reason="ORDER",
                                      ts_ms=1564745798939)]
    assert [(p.symbol, p.quantity, p.entry_price) for p in positions] == [
        ("BTCUSDT", 0, 0), ("BTCUSDT", 20, D("6563.6")), ("BTCUSDT", -10, D("6563.8"))]
    assert positions[1].unrealized_pnl == D("2850.212")
    assert positions[2].isolated_margin == D("6570.42511771")
    assert all(p.reason == "ORDER" for p in positions)


def check_account_bnfcr(msg: Any) -> None:
    balances, positions = parse_account_update(msg)
    assert positions == []
    assert [(b.asset, b.wallet_balance, b.change) for b in balances] == [
        ("BNFCR", D("5001.28983031"), 0)]


def check_account_btc_2025(msg: Any) -> None:
    balances, positions = parse_account_update(msg)
    assert balances[0].wallet_balance == D("15237.42937172")
    assert positions == [PositionUpdate(symbol="BTCUSDT", quantity=D("0.100"),
                                        entry_price=D("84146.5"),
                                        unrealized_pnl=D("0.40867555"), isolated_margin=0,
                                        reason="ORDER", ts_ms=1742585119596)]


def check_account_sol_2026(msg: Any) -> None:
    (balance,), (position,) = parse_user_event(msg)
    assert (balance.asset, balance.wallet_balance, balance.reason) == (
        "USDT", D("1.73744723"), "ORDER")
    assert (position.symbol, position.quantity, position.entry_price) == (
        "SOLUSDT", D("0.1"), D("80.19"))


def check_trade_lite_eth(msg: Any) -> None:
    t = parse_user_event(msg)
    assert t == TradeLite(symbol="ETHUSDT", client_order_id="O-20240930-081155-001-000-29",
                          order_id=8389765739703625592, side=OrderSide.BUY,
                          quantity=D("0.037"), price=D("2631.90"), last_fill_qty=D("0.037"),
                          last_fill_price=D("2631.90"), trade_id=4467432841, maker=False,
                          trade_ms=1727683915920, ts_ms=1727683915920)
    assert t.order_id > 2**53


def check_trade_lite_sol(msg: Any) -> None:
    t = parse_user_event(msg)
    assert isinstance(t, TradeLite)
    assert (t.price, t.last_fill_price, t.last_fill_qty, t.trade_id) == (
        0, D("80.19"), D("0.1"), 3181138052)


def _algo_common(a: Any) -> None:
    assert isinstance(a, AlgoUpdate)
    assert (a.client_algo_id, a.algo_id, a.algo_type) == (
        "O-20251211-053131-TEST-000-1", 1000000033225453, "CONDITIONAL")
    assert (a.order_type, a.symbol, a.side, a.position_side) == (
        "STOP_MARKET", "DOGEUSDT", OrderSide.BUY, "BOTH")
    assert (a.trigger_price, a.quantity, a.price) == (D("0.13855"), D("38"), 0)
    assert not a.close_position and not a.reduce_only
    assert (a.working_type, a.trigger_ms) == ("CONTRACT_PRICE", 1765431097019)


def check_algo_triggering(msg: Any) -> None:
    a = parse_user_event(msg)                    # {"stream": "test", "data": ...} envelope
    _algo_common(a)
    assert (a.status, a.me_order_id, a.executed_qty) == (AlgoStatus.TRIGGERING, None, 0)
    assert a.ts_ms == 1765431097020


def check_algo_triggered(msg: Any) -> None:
    a = parse_algo_update(msg)
    _algo_common(a)
    assert (a.status, a.me_order_id, a.avg_price) == (AlgoStatus.TRIGGERED, 88937381063, 0)


def check_algo_finished(msg: Any) -> None:
    a = parse_algo_update(msg)
    _algo_common(a)
    assert (a.status, a.me_order_id) == (AlgoStatus.FINISHED, 88937381063)
    assert (a.avg_price, a.executed_qty) == (D("0.13856"), D("38")) and a.status.is_final


# --------------------------------------------------------------------------- market streams


def check_agg_trade_docs(msg: Any) -> None:
    assert parse_market_event(msg) == MarketTick("BTCUSDT", 123456789, 123456785, 0.001, 100.0,
                                                 True)


def check_agg_trade_2026(msg: Any) -> None:
    assert parse_market_event(msg) == MarketTick("BTCUSDT", 1771263510195, 1771263510041,
                                                 68005.0, 2.695, True)


def check_book_ticker_docs(msg: Any) -> None:
    assert parse_market_event(msg) == BookTicker("BNBUSDT", 1568014460893, 25.3519, 31.21,
                                                 25.3652, 40.66)


def check_book_ticker_2026(msg: Any) -> None:
    assert parse_market_event(msg) == BookTicker("BTCUSDT", 1771263510337, 68005.0, 2.394,
                                                 68005.1, 0.857)


def check_mark_price_docs(msg: Any) -> None:
    assert parse_market_event(msg) == MarkPrice("BTCUSDT", 1562305380000, 11794.15,
                                                11784.62659091, 0.00038167, 1562306400000)


def check_mark_price_2026(msg: Any) -> None:
    assert parse_market_event(msg) == MarkPrice("BTCUSDT", 1771263510000, 68005.80802899,
                                                68035.14043478, -0.00004435, 1771286400000)


def check_kline(msg: Any) -> None:
    assert parse_market_event(msg) == Candle("BTCUSDT", 1638747660000, 60_000, 1638747660000,
                                             0.001, 0.0025, 0.0015, 0.002, 1000.0, False)


def check_depth(msg: Any) -> None:
    data = msg.get("data", msg)
    assert data["e"] == "depthUpdate"
    assert parse_market_event(msg) is None       # order-book diffs are not engine events


# --------------------------------------------------------------------------- WS API and REST


def check_ws_order_place(msg: Any) -> None:
    r = parse_ws_api_response(json.dumps(msg))
    assert r.ok and r.id == "3f7df6e3-2df4-44b9-9919-d2f38f90a99a" and r.exception() is None
    assert [(x.rate_limit_type, x.interval_s, x.limit, x.count) for x in r.rate_limits] == [
        ("ORDERS", 10, 300, 1), ("ORDERS", 60, 1200, 1), ("REQUEST_WEIGHT", 60, 2400, 1)]
    u = parse_order_result(r.result)
    assert (u.order_id, u.client_order_id, u.status, u.order_type, u.side) == (
        325078477, "iCXL1BywlBaf2sesNUrVl3", OrderStatus.NEW, OrderType.LIMIT, OrderSide.BUY)
    assert (u.quantity, u.filled_qty, u.ts_ms) == (D("0.1"), 0, 1702555534435)


def check_ws_error(msg: Any) -> None:
    r = parse_ws_api_response(msg)
    assert not r.ok and (r.status, r.error_code) == (400, -1102)
    assert "quantity" in r.error_msg and len(r.rate_limits) == 3
    exc = r.exception()
    assert exc is not None and exc.code == -1102 and exc.http_status == 400


def check_ws_logon(msg: Any) -> None:
    r = parse_ws_api_response(msg)
    assert r.ok and r.rate_limits == ()
    assert (r.result["authorizedSince"], r.result["serverTime"]) == (1649729878532,
                                                                     1649729878630)


def check_ws_algo_place(msg: Any) -> None:
    r = parse_ws_api_response(msg)
    a = parse_algo_order_result(r.result)
    assert (a.algo_id, a.client_algo_id, a.order_type, a.status) == (
        3000000000003505, "0Xkl1p621E4EryvufmYre1", "TAKE_PROFIT", AlgoStatus.NEW)
    assert (a.trigger_price, a.price, a.quantity, a.side) == (
        D("120000"), D("160000"), D("1"), OrderSide.SELL)
    assert (a.me_order_id, a.ts_ms, a.position_side) == (None, 1762507264143, "SHORT")


def check_rest_batch_orders(msg: Any) -> None:
    (u,) = [parse_order_result(o) for o in msg]
    assert (u.order_id, u.status, u.side, u.quantity, u.avg_price) == (
        4087922044, OrderStatus.NEW, OrderSide.SELL, D("0.2"), 0)
    assert u.client_order_id == "x-xcKtGhcu04075babaeb34c55af79ba"


def check_rest_exchange_info(msg: Any) -> None:
    filters = parse_exchange_info(msg)
    btc = filters["BTCUSDT"]
    assert (btc.tick_size, btc.step_size, btc.min_notional) == (D("0.10"), D("0.001"), 10)
    assert (btc.market_max_qty, btc.min_price) == (1000, 402)
    assert filters["ETHUSDT"].tick_size == D("0.01")
    limits = parse_rate_limits(msg["rateLimits"])
    assert [(x.rate_limit_type, x.limit, x.count) for x in limits] == [
        ("REQUEST_WEIGHT", 6000, None), ("ORDERS", 1200, None), ("ORDERS", 300, None)]


CHECKS: dict[str, Callable[[Any], None]] = {
    "rest_batchOrders_response_BTCUSDT_LIMIT_NEW_capture.json": check_rest_batch_orders,
    "rest_exchangeInfo_2022_capture_BTCUSDT_ETHUSDT_BTCUSDT_220325.json": check_rest_exchange_info,
    "ws_api_algoOrder_place_response_TAKE_PROFIT_docs_example.json": check_ws_algo_place,
    "ws_api_error_response_-1102_docs_example.json": check_ws_error,
    "ws_api_order_place_response_LIMIT_NEW_docs_example.json": check_ws_order_place,
    "ws_api_session_logon_response_docs_example.json": check_ws_logon,
    "ws_market_aggTrade_docs_example.json": check_agg_trade_docs,
    "ws_market_bookTicker_docs_example.json": check_book_ticker_docs,
    "ws_market_depthUpdate_docs_example.json": check_depth,
    "ws_market_kline_1m_open_docs_example.json": check_kline,
    "ws_market_markPriceUpdate_docs_example.json": check_mark_price_docs,
    "ws_user_ACCOUNT_UPDATE_BNFCR_demo_capture.json": check_account_bnfcr,
    "ws_user_ACCOUNT_UPDATE_ORDER_hedge_docs_example.json": check_account_hedge,
    "ws_user_ALGO_UPDATE_FINISHED_filled_STOP_MARKET_DOGEUSDT_capture.json": check_algo_finished,
    "ws_user_ALGO_UPDATE_TRIGGERED_STOP_MARKET_DOGEUSDT_capture.json": check_algo_triggered,
    "ws_user_ALGO_UPDATE_TRIGGERING_STOP_MARKET_DOGEUSDT_capture.json": check_algo_triggering,
    "ws_user_ORDER_TRADE_UPDATE_NEW_TRAILING_STOP_MARKET_docs_example.json": check_trailing_new,
    "ws_user_ORDER_TRADE_UPDATE_TRADE_PARTIALLY_FILLED_docs_derived.json": check_partial_fill,
    "ws_user_TRADE_LITE_ETHUSDT_capture.json": check_trade_lite_eth,
    "unattributed/uat_2024-01_ws_user_ORDER_TRADE_UPDATE_CANCELED_LIMIT_BTCUSDT.json":
        check_limit_canceled,
    "unattributed/uat_2025-03_ws_user_ACCOUNT_UPDATE_ORDER_BTCUSDT.json": check_account_btc_2025,
    "unattributed/uat_2025-03_ws_user_ORDER_TRADE_UPDATE_NEW_LIMIT_BTCUSDT.json": check_limit_new,
    "unattributed/uat_2025-03_ws_user_ORDER_TRADE_UPDATE_TRADE_FILLED_MARKET_BTCUSDT.json":
        check_market_filled,
    "unattributed/uat_2026-02_ws_market_combined_aggTrade_BTCUSDT.json": check_agg_trade_2026,
    "unattributed/uat_2026-02_ws_market_combined_bookTicker_BTCUSDT.json": check_book_ticker_2026,
    "unattributed/uat_2026-02_ws_market_combined_depth5_100ms_BTCUSDT.json": check_depth,
    "unattributed/uat_2026-02_ws_market_combined_markPrice1s_BTCUSDT.json": check_mark_price_2026,
    "unattributed/uat_2026-02_ws_user_ACCOUNT_UPDATE_ORDER_SOLUSDT.json": check_account_sol_2026,
    "unattributed/uat_2026-02_ws_user_ORDER_TRADE_UPDATE_NEW_MARKET_SOLUSDT.json":
        check_market_new_2026,
    "unattributed/uat_2026-02_ws_user_TRADE_LITE_MARKET_SOLUSDT.json": check_trade_lite_sol,
}


def test_every_sample_file_has_a_check(samples_dir: Path) -> None:
    files = {p.relative_to(samples_dir).as_posix() for p in samples_dir.rglob("*.json")}
    assert files == set(CHECKS), "a sample without a parser check (or a check without a file)"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_sample_parses_with_expected_values(samples_dir: Path, name: str) -> None:
    CHECKS[name](load(samples_dir, name))
