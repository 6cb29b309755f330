"""UNKNOWN order outcomes that settle late, and an account that is not dedicated to the bot
(issue 9; PROTOCOL.md §10), against the real engine + BinanceConnection and the fake Binance."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from core.events import (
    EngineError,
    OrderStatus,
    OrderUpdate,
    PositionAdopted,
    PositionOpened,
    Side,
)
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot

D = Decimal


async def test_unknown_entry_stays_pending_then_executes_late_as_ours(
        fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        fake.faults.late_next_order(1)  # 503 "Unknown error", then -2013 for a while
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: len(fake.calls("order.status")) >= 5, timeout=3)
        assert bot.phase == "ENTERING"  # five "not found" answers prove nothing
        assert bot.conn.filters("BTCUSDT").status == "UNSETTLED"
        assert not [u for u in bot.of(OrderUpdate) if u.status is OrderStatus.REJECTED]
        fake.faults.release_late()  # it was executed after all, with our client order id
        await eventually(lambda: bot.phase == "OPEN" and bot.protected())
        opened = bot.of(PositionOpened)
        assert len(opened) == 1 and opened[0].quantity == D("0.010")
        assert not bot.of(PositionAdopted)  # ORDERING's own entry
        fills = [u for u in bot.of(OrderUpdate) if u.is_fill]
        assert len(fills) == 1 and fills[0].client_order_id == bot.of(
            OrderUpdate)[0].client_order_id
        assert sorted(a.trigger for a in bot.open_algos()) == [D("67000.00"), D("69000.00")]
        assert len(fake.calls("order.place")) == 1  # never resent
        await eventually(lambda: bot.conn.ready)
        fake.set_price("BTCUSDT", "69000")
        await eventually(lambda: len(bot.engine.ledger.trades) == 1)


async def test_late_execution_after_the_horizon_is_adopted_with_a_stop(
        fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, unknown_timeout_s=0.3) as bot:
        fake.faults.late_next_order(1)
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "FLAT" and [
            u for u in bot.of(OrderUpdate) if u.status is OrderStatus.REJECTED], timeout=3)
        fake.faults.release_late()  # executes after it was given up
        await eventually(lambda: bot.phase == "OPEN")
        # the bot's own view (its alert), not only the fake's algo orders
        await eventually(lambda: len(bot.open_algos()) >= 1 and any(
            "had no exchange-side" in e.message for e in bot.of(EngineError)))
        sl = [a for a in bot.open_algos() if a.type == "STOP_MARKET"]
        assert len(sl) == 1 and sl[0].close_position and sl[0].trigger == D("65960.00")


async def test_foreign_symbols_are_never_adopted_closed_or_counted(
        fake: FakeBinance, tmp_path: Path) -> None:
    fake.exchange.place_order({"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                               "quantity": "0.100", "newClientOrderId": "web_eth_1"})
    fake.exchange.place_algo({"algoType": "CONDITIONAL", "symbol": "ETHUSDT", "side": "SELL",
                              "type": "STOP_MARKET", "triggerPrice": "2400.00",
                              "closePosition": "true", "clientAlgoId": "web_eth_sl"})
    fake.exchange.place_order({"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT",
                               "timeInForce": "GTC", "quantity": "0.100", "price": "2450.00",
                               "newClientOrderId": "web_eth_2"})
    fake.faults.extra_open_algos.append({  # an algo order with an odd value: skipped, logged
        "algoId": 7, "clientAlgoId": "odd_1", "algoType": "CONDITIONAL",
        "orderType": "TRAILING_STOP_MARKET", "symbol": "BTCUSDT", "side": "SIDEWAYS",
        "algoStatus": "PAUSED", "triggerPrice": "", "updateTime": 1})
    async with LiveBot(fake, tmp_path) as bot:
        assert bot.phase == "FLAT" and not bot.of(PositionAdopted)
        reports = [e for e in bot.of(EngineError) if "ETHUSDT" in e.message]
        assert len(reports) == 1
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")  # not blocked by ETH
        await eventually(lambda: bot.phase == "OPEN" and bot.engine.state.symbol == "BTCUSDT")
        fake.exchange.place_order({"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                                   "quantity": "0.100"})  # the stream reports it: ignored
        bot.conn.reconcile.request("test")
        await eventually(lambda: bot.conn.reconciler.runs >= 2 and not bot.conn.busy)
        assert bot.engine.state.symbol == "BTCUSDT" and bot.engine.state.quantity == D("0.010")
        assert fake.position("ETHUSDT").amount == D("0.200")
        eth_algos = [a for a in fake.account.algos.values() if a.symbol == "ETHUSDT"]
        assert [a.status for a in eth_algos] == ["NEW"]  # never cancelled
        assert len([e for e in bot.of(EngineError) if "ETHUSDT" in e.message]) == 1
