"""Never naked: faults of Binance's protective (algo) orders against the real engine +
BinanceConnection and the fake Binance (issue 9; PROTOCOL.md §10)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from core.binance.adopt import AdoptPolicy
from core.events import (
    CloseRequest,
    EngineError,
    ExitReason,
    PositionAdopted,
    PositionOpened,
    ProtectiveOrderUpdate,
    Side,
)
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot

D = Decimal


async def open_long(bot: LiveBot, qty: str = "0.010") -> None:
    bot.signal(Side.LONG, qty, sl="67000", tp="69000")
    await eventually(lambda: bot.phase == "OPEN" and len(bot.open_algos()) == 2)
    await eventually(lambda: not bot.conn.busy)


def statuses(bot: LiveBot, kind: str) -> list[str]:
    return [p.status for p in bot.of(ProtectiveOrderUpdate) if p.kind == kind]


async def test_sibling_is_cancelled_exactly_once(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        await open_long(bot)
        fake.set_price("BTCUSDT", "69000")  # TP: TRIGGERING, TRIGGERED, fill, FINISHED
        await eventually(lambda: bot.phase == "FLAT" and "CANCELED" in statuses(bot, "SL"))
        await eventually(lambda: not bot.conn.busy)
        assert len(fake.calls("algoOrder.cancel")) == 1
        assert statuses(bot, "TP")[-1] == "FILLED"
        assert not [e for e in bot.of(EngineError) if e.source == "protective"]


async def test_triggering_is_not_an_outcome(fake: FakeBinance, tmp_path: Path) -> None:
    """The SL triggers and is rejected by the matching engine: the TP must still stand, and
    the stop is re-placed (here the trigger is crossed: -2021 closes at market)."""
    async with LiveBot(fake, tmp_path) as bot:
        await open_long(bot)
        tp_at_failure: list[str] = []

        def on_update(ev: ProtectiveOrderUpdate) -> None:
            if ev.kind == "SL" and ev.status == "FAILED":
                tp_at_failure.extend(a.status for a in fake.account.algos.values()
                                     if a.type == "TAKE_PROFIT_MARKET")
        bot.bus.subscribe(ProtectiveOrderUpdate, on_update)
        fake.exchange.fail_next_trigger("REJECTED", "Margin is insufficient")
        fake.set_price("BTCUSDT", "66990")
        await eventually(lambda: tp_at_failure)
        assert tp_at_failure == ["NEW"]  # TRIGGERING/TRIGGERED cancelled nothing
        await eventually(lambda: bot.phase == "FLAT" and len(bot.engine.ledger.trades) == 1)
        assert bot.engine.ledger.trades[0].exit_reason is ExitReason.SL
        assert fake.position("BTCUSDT").amount == 0
        assert any("ended unfilled" in e.message for e in bot.of(EngineError))
        await eventually(lambda: not bot.open_algos() and not bot.conn.busy)


async def test_rejected_stop_is_replaced_while_the_position_is_open(fake: FakeBinance,
                                                                    tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        await open_long(bot)
        fake.exchange.fail_next_trigger("EXPIRED", "")
        fake.set_price("BTCUSDT", "66990")
        fake.set_price("BTCUSDT", "67500")  # the price comes back before we react
        await eventually(lambda: "FAILED" in statuses(bot, "SL"))
        await eventually(lambda: len(bot.open_algos()) == 2 and not bot.conn.busy)
        assert bot.phase == "OPEN"
        sl = [a for a in bot.open_algos() if a.type == "STOP_MARKET"]
        assert len(sl) == 1 and sl[0].trigger == D("67000.00")
        assert len(fake.calls("algoOrder.place")) == 3


async def test_finished_with_nothing_executed_closes_at_market(fake: FakeBinance,
                                                               tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, stop_failure_action="close") as bot:
        await open_long(bot)
        fake.exchange.fail_next_trigger("FINISHED")  # TRIGGERED, its order expired, aq = 0
        fake.set_price("BTCUSDT", "69000")
        await eventually(lambda: bot.phase == "FLAT" and len(bot.engine.ledger.trades) == 1)
        assert bot.engine.ledger.trades[0].exit_reason is ExitReason.TP
        assert "FAILED" in statuses(bot, "TP") and "FILLED" not in statuses(bot, "TP")
        closes = bot.of(CloseRequest)
        assert closes and closes[0].reason is ExitReason.TP and "failed" in closes[0].detail
        await eventually(lambda: not bot.open_algos() and not bot.conn.busy)
        assert len(fake.calls("algoOrder.cancel")) == 1  # the SL, once flat


async def test_adopted_position_without_stop_gets_one(fake: FakeBinance,
                                                      tmp_path: Path) -> None:
    fake.exchange.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                               "quantity": "0.010", "newClientOrderId": "web_manual_1"})
    policy = AdoptPolicy(sl_pct=D("3"), tp_pct=D("2"))
    async with LiveBot(fake, tmp_path, adopt_policy=policy) as bot:
        assert bot.phase == "OPEN"
        await eventually(lambda: len(bot.open_algos()) == 2)
        algos = {a.type: a for a in bot.open_algos()}
        assert algos["STOP_MARKET"].trigger == D("65960.00")  # 68000 - 3 %
        assert algos["TAKE_PROFIT_MARKET"].trigger == D("69360.00")  # 68000 + 2 %
        assert all(a.close_position and a.side == "SELL" for a in algos.values())
        adopted = bot.of(PositionAdopted)
        assert adopted[0].stops == "placed" and adopted[0].stop_loss == D("65960.00")
        assert any("had no exchange-side" in e.message for e in bot.of(EngineError))


async def test_adoption_stop_from_the_atr_of_recent_klines(fake: FakeBinance,
                                                           tmp_path: Path) -> None:
    fake.exchange.place_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                               "quantity": "0.010", "newClientOrderId": "web_manual_2"})
    start = fake.now_ms() - 20 * 900_000
    fake.faults.klines["BTCUSDT"] = [  # every 15m bar 100 USDT high-low, closes unchanged
        [start + i * 900_000, "68000", "68050", "67950", "68000", "10",
         start + (i + 1) * 900_000 - 1, "0", 1, "0", "0", "0"] for i in range(16)]
    policy = AdoptPolicy(sl_pct=D("3"), sl_atr=D("2"), atr_interval="15m", atr_period=14)
    async with LiveBot(fake, tmp_path, adopt_policy=policy) as bot:
        await eventually(lambda: len(bot.open_algos()) == 1)
        sl = bot.open_algos()[0]
        assert sl.type == "STOP_MARKET" and sl.side == "BUY"
        assert sl.trigger == D("68200.00")  # short: 68000 + 2 x ATR 100
        assert fake.calls("GET /fapi/v1/klines")[0]["interval"] == "15m"


async def test_fill_during_reconciliation_keeps_its_stops(fake: FakeBinance,
                                                          tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        fake.exchange.hold_market = True  # the entry rests until the pass is reading
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "ENTERING" and fake.account.open_orders(None))

        async def fill_now() -> None:
            fake.exchange.release_market()
            await eventually(lambda: bot.of(PositionOpened))
        fake.faults.before("GET /fapi/v1/openAlgoOrders", fill_now)
        bot.conn._on_user_connected()  # a pass, as after a reconnect
        await eventually(lambda: bot.phase == "OPEN" and bot.conn.ready)
        await eventually(lambda: len(bot.open_algos()) == 2 and not bot.conn.busy)
        stops = bot.conn.protective.positions["BTCUSDT"].stops
        assert {k: s.status.value for k, s in stops.items()} == {"SL": "NEW", "TP": "NEW"}
        assert len(fake.calls("algoOrder.place")) == 2


async def test_protective_error_reconciles_at_once(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        runs = bot.conn.reconciler.runs
        bot.bus.subscribe(PositionOpened, lambda ev: fake.reject_next_order(
            -4045, "Reach max stop order limit."))
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: any(e.source == "protective" for e in bot.of(EngineError)))
        await eventually(lambda: len(bot.open_algos()) == 2 and not bot.conn.busy)
        assert bot.conn.reconciler.runs > runs
        assert sorted(a.type for a in bot.open_algos()) == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]


async def test_periodic_reconciliation_restores_a_vanished_stop(fake: FakeBinance,
                                                                tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, reconcile_interval_s=0.2) as bot:
        await open_long(bot)
        sl = next(a for a in bot.open_algos() if a.type == "STOP_MARKET")
        del fake.account.algos[sl.algo_id]  # gone without any event (e.g. lost while down)
        await eventually(lambda: len(bot.open_algos()) == 2, timeout=3)
        assert bot.conn.reconcile.requests.count("periodic") >= 1


async def test_no_closeposition_stop_outlives_its_position(fake: FakeBinance,
                                                           tmp_path: Path) -> None:
    """Stops whose placement answers are lost (503, not found for a while) while the position
    is closed by hand are cancelled as soon as they appear: they must not close the next
    position."""
    async with LiveBot(fake, tmp_path) as bot:
        def hold_stops(ev: PositionOpened) -> None:
            fake.faults.late_next_order(100)
        bot.bus.subscribe(PositionOpened, hold_stops)
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "OPEN" and "UNKNOWN" in statuses(bot, "SL"))
        fake.exchange.place_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                   "quantity": "0.010", "reduceOnly": "true"})
        await eventually(lambda: bot.phase == "FLAT")
        bot.bus.unsubscribe(PositionOpened, hold_stops)
        fake.faults.late_next_order(-fake.faults._late)
        fake.faults.release_late()  # the stops reach the exchange after all
        await eventually(lambda: "CANCELED" in statuses(bot, "SL")
                         and "CANCELED" in statuses(bot, "TP"), timeout=3)
        await eventually(lambda: not bot.open_algos() and not bot.conn.busy, timeout=5)
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")  # the next position is safe
        await eventually(lambda: bot.phase == "OPEN" and len(bot.open_algos()) == 2)
