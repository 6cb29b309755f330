"""Leverage brackets, exchangeInfo refresh and the smaller protocol corrections of issue 9
(PROTOCOL.md §10), against the fake Binance and with recorded-shape payloads."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from core.binance.adapter import SetupError
from core.binance.errors import IpBanned, Rejected, RetryLater, classify
from core.binance.orders import OrderTracker
from core.binance.parse import parse_order_trade_update
from core.brackets import parse_leverage_brackets
from core.events import (
    EngineError,
    MarkPrice,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionUpdate,
    Side,
)
from tests.conftest import SHARED, _need, eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot, settings_for

D = Decimal


def small_brackets(fake: FakeBinance, top: int = 125) -> None:
    """BTCUSDT: up to ``top``x below 300 USDT, 5x up to 600 USDT, 1x up to 1000 USDT."""
    fake.exchange.brackets["BTCUSDT"] = [
        {"bracket": 1, "initialLeverage": top, "notionalCap": 300.0, "notionalFloor": 0.0,
         "maintMarginRatio": 0.004, "cum": 0.0},
        {"bracket": 2, "initialLeverage": 5, "notionalCap": 600.0, "notionalFloor": 300.0,
         "maintMarginRatio": 0.01, "cum": 1.8},
        {"bracket": 3, "initialLeverage": 1, "notionalCap": 1000.0, "notionalFloor": 600.0,
         "maintMarginRatio": 0.5, "cum": 295.8}]


async def test_leverage_above_the_bracket_maximum_stops_startup(fake: FakeBinance,
                                                                tmp_path: Path) -> None:
    small_brackets(fake, top=20)
    bot = LiveBot(fake, tmp_path, settings=settings_for(fake, tmp_path, leverage=25))
    with pytest.raises(SetupError, match=r"LEVERAGE=25 is above BTCUSDT's maximum of 20x"):
        await bot.__aenter__()
    await bot.__aexit__(None, None, None)
    assert not fake.calls("POST /fapi/v1/leverage")  # refused before asking


async def test_minus_4028_is_one_clear_startup_line(fake: FakeBinance, tmp_path: Path) -> None:
    small_brackets(fake, top=20)
    fake.faults.brackets_payload = []  # the brackets are unknown: Binance answers -4028
    bot = LiveBot(fake, tmp_path, settings=settings_for(fake, tmp_path, leverage=25))
    with pytest.raises(SetupError, match=r"LEVERAGE=25 is not accepted for BTCUSDT .*-4028"):
        await bot.__aenter__()
    await bot.__aexit__(None, None, None)


async def test_entry_above_the_bracket_cap_is_refused_before_sending(fake: FakeBinance,
                                                                     tmp_path: Path) -> None:
    small_brackets(fake)  # at 5x a position may reach 600 USDT
    async with LiveBot(fake, tmp_path) as bot:
        assert bot.conn.rules.max_notional("BTCUSDT") == D("600")
        bot.bus.publish(MarkPrice("BTCUSDT", 1, 68000.0, 68000.0, 0.0001, 2))
        bot.signal(Side.LONG, "0.010")  # 680 USDT
        await eventually(lambda: bot.phase == "FLAT" and bot.of(EngineError))
        rejected = [u for u in bot.of(OrderUpdate) if u.status is OrderStatus.REJECTED]
        assert len(rejected) == 1 and "-2027" in rejected[0].reason
        assert fake.calls("order.place") == []
        bot.signal(Side.LONG, "0.008")  # 544 USDT
        await eventually(lambda: bot.phase == "OPEN")


async def test_exchange_info_is_refreshed_after_a_filter_rejection(fake: FakeBinance,
                                                                   tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        assert bot.conn.rules.refreshes == 0
        fake.reject_next_order(-4164)
        bot.signal()
        await eventually(lambda: bot.conn.rules.refreshes == 1)
        assert len(fake.calls("GET /fapi/v1/exchangeInfo")) == 2


async def test_exchange_info_is_refreshed_periodically(fake: FakeBinance,
                                                       tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, exchange_info_refresh_s=0.1) as bot:
        await eventually(lambda: bot.conn.rules.refreshes >= 1)
        assert bot.conn.filters("BTCUSDT").tick_size == D("0.10")


async def test_account_update_keeps_the_known_liquidation_price(fake: FakeBinance,
                                                                tmp_path: Path) -> None:
    fake.exchange.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                               "quantity": "0.010"})
    fake.account.liquidation["BTCUSDT"] = "55123.40"
    async with LiveBot(fake, tmp_path) as bot:
        fake.exchange.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                   "quantity": "0.002"})  # ACCOUNT_UPDATE, no liquidation price
        await eventually(lambda: any(p.reason == "ORDER" for p in bot.of(PositionUpdate)))
        last = [p for p in bot.of(PositionUpdate) if p.symbol == "BTCUSDT"][-1]
        assert last.quantity == D("0.012") and last.liquidation_price == D("55123.40")


def test_missing_commission_means_zero_and_the_fill_is_kept() -> None:
    msg = {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {
        "s": "BTCUSDT", "c": "d5E1-1", "S": "BUY", "o": "MARKET", "f": "GTC", "q": "0.010",
        "p": "0", "ap": "68000", "sp": "0", "x": "TRADE", "X": "FILLED", "i": 1, "l": "0.010",
        "z": "0.010", "L": "68000", "T": 1, "t": 7, "m": False, "R": False, "rp": "0"}}
    up = parse_order_trade_update(msg)
    assert up.is_fill and up.commission == 0 and up.last_fill_qty == D("0.010")


def test_recovered_fills_book_the_absolute_commission() -> None:
    tracker = OrderTracker()
    t = tracker.track(OrderRequest(symbol="BTCUSDT", side=OrderSide.BUY,
                                   order_type=OrderType.MARKET, quantity=D("0.010"),
                                   client_order_id="d5E1-1", ts_ms=1))
    status = {"orderId": 5, "symbol": "BTCUSDT", "status": "FILLED", "clientOrderId": "d5E1-1",
              "price": "0", "avgPrice": "68000", "origQty": "0.010", "executedQty": "0.010",
              "type": "MARKET", "side": "BUY", "updateTime": 2}
    trades = [{"id": 9, "orderId": 5, "price": "68000", "qty": "0.010",
               "commission": "-0.34000000", "commissionAsset": "USDT", "realizedPnl": "0",
               "time": 2}]
    (fill,) = tracker.resolve(t, status, trades, 3)
    assert fill.commission == D("0.34")


def test_minus_1004_is_not_retryable() -> None:
    err = classify(-1004, "This IP is already on the white list", 400)
    assert isinstance(err, Rejected) and not isinstance(err, RetryLater)


def test_418_without_retry_after_waits_until_the_ban_ends() -> None:
    until = int(time.time() * 1000) + 120_000
    err = classify(-1003, f"Way too many requests; IP(127.0.0.1) banned until {until}. Please "
                          "use WebSocket Streams for live updates to avoid bans.", 418)
    assert isinstance(err, IpBanned)
    assert err.retry_after_s is not None and 115 <= err.retry_after_s <= 120


def test_the_shared_bracket_snapshot_gives_the_caps() -> None:
    path = _need(SHARED / "binance" / "leverage_brackets_2024-10.json")
    brackets = parse_leverage_brackets(json.loads(path.read_text()))
    btc = brackets["BTCUSDT"]
    assert max(b.initial_leverage for b in btc.brackets) == 125
    assert btc.max_notional(125) == D("50000") and btc.max_notional(20) == D("100000000")
