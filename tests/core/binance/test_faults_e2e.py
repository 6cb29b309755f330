"""Every fault of the fake Binance against the real engine + BinanceConnection: no order is ever
sent twice to the matching engine and no fill is lost or counted twice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.binance.errors import IpBanned
from core.events import (
    CloseRequest,
    EngineError,
    ExitReason,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    PositionOpened,
    ProtectiveOrderUpdate,
    RateLimitBackoff,
    Side,
)
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot

D = Decimal


async def open_long(bot: LiveBot, qty: str = "0.010") -> None:
    bot.signal(Side.LONG, qty, sl="67000", tp="69000")
    # the bot's own state: OPEN and both stops acknowledged to it (the fake holds them first)
    await eventually(lambda: bot.phase == "OPEN" and bot.protected())


async def test_dropped_sockets_reconnect_and_trade_on(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        await open_long(bot)
        assert await fake.drop_all_sockets() >= 2
        await eventually(lambda: bot.conn.user.connects == 2 and bot.conn.ready)
        assert bot.conn.reconciler.runs == 2 and bot.phase == "OPEN"
        fake.set_price("BTCUSDT", "69000")
        await eventually(bot.closed)
        await eventually(lambda: len(bot.engine.ledger.trades) == 1)
        assert bot.engine.ledger.trades[0].exit_reason is ExitReason.TP
        assert len(fake.calls("algoOrder.place")) == 2  # adopted after the reconnect
        assert bot.placed_orders() == 1


async def test_fill_lost_while_disconnected_is_recovered(fake: FakeBinance,
                                                         tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        await open_long(bot)
        await fake.drop_all_sockets()
        fake.set_price("BTCUSDT", "69000")  # the TP fills while nobody listens
        await eventually(lambda: bot.conn.user.connects == 2 and bot.conn.ready)
        await eventually(bot.closed)
        await eventually(lambda: len(bot.engine.ledger.trades) == 1)
        trade = bot.engine.ledger.trades[0]
        assert trade.exit_reason is ExitReason.TP and trade.exit_price == D("69000")
        assert trade.fees == D("0.685") and trade.gross_pnl == D("10.000")
        fills = [u for u in bot.of(OrderUpdate) if u.is_fill]
        assert len(fills) == 2 == len({u.trade_id for u in fills})


async def test_silent_ws_api_is_unknown_and_resolved_without_resending(
        fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, unknown_timeout_s=1.5) as bot:
        connects = bot.conn.api.connects
        fake.go_silent()
        bot.signal()
        await eventually(lambda: bot.conn.api.connects > connects, timeout=3)
        fake.resume()
        await eventually(lambda: len(fake.calls("order.status")) >= 2, timeout=3)
        assert bot.phase == "ENTERING"  # "not found" is not proof yet: still pending
        await eventually(lambda: bot.phase == "FLAT", timeout=5)
        rejected = [u for u in bot.of(OrderUpdate) if u.status is OrderStatus.REJECTED]
        assert len(rejected) == 1 and "never placed" in rejected[0].reason
        assert fake.calls("order.place") == [] and bot.placed_orders() == 0
        await eventually(lambda: bot.conn.ready)
        await open_long(bot)
        assert bot.placed_orders() == 1


async def test_429_backs_off_for_retry_after_then_sends(fake: FakeBinance,
                                                        tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        fake.throttle_next(1, status=429, retry_after_s=0.2)
        bot.signal()
        await eventually(lambda: bot.phase == "OPEN")
        backoffs = bot.of(RateLimitBackoff)
        assert backoffs and backoffs[0].pool == "IP" and not backoffs[0].banned
        assert 0.1 <= backoffs[0].retry_after_s <= 0.25
        assert len(fake.calls("order.place")) == 2 and bot.placed_orders() == 1


async def test_418_ban_refuses_everything_until_it_lifts(fake: FakeBinance,
                                                         tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        fake.throttle_next(1, status=418, retry_after_s=0.6)
        bot.signal()
        await eventually(lambda: bot.phase == "FLAT" and bot.of(EngineError))
        assert bot.of(RateLimitBackoff)[0].banned
        sent = len(fake.requests)
        with pytest.raises(IpBanned):
            await bot.conn.api.call("v2/account.balance", weight=5)
        assert len(fake.requests) == sent  # refused before sending
        await eventually(lambda: not bot.conn.limiter.blocked, timeout=2)
        await open_long(bot)


async def test_clock_skew_resyncs_and_retries_once(fake: FakeBinance, tmp_path: Path) -> None:
    fake.clock_offset_ms = 4_000  # the local clock is 4 s behind: startup sync absorbs it
    async with LiveBot(fake, tmp_path) as bot:
        assert 3_900 <= bot.conn.clock.offset_ms <= 4_100
        syncs = len(fake.calls("GET /fapi/v1/time"))
        fake.skew_next(1)
        await open_long(bot)
        assert len(fake.calls("GET /fapi/v1/time")) == syncs + 1
        assert len(fake.calls("order.place")) == 2 and bot.placed_orders() == 1


async def test_503_unknown_after_executing_is_resolved_by_status(fake: FakeBinance,
                                                                 tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        fake.unknown_error_next_order(1)
        await open_long(bot)
        assert len(fake.calls("order.place")) == 1 and bot.placed_orders() == 1
        assert bot.engine.state.quantity == D("0.010")
        fills = [u for u in bot.of(OrderUpdate) if u.is_fill]
        assert len(fills) == 1


async def test_503_unknown_with_the_fill_lost_is_recovered_from_status(
        fake: FakeBinance, tmp_path: Path) -> None:
    def cut_user_stream(_req: object) -> None:
        for conn in list(fake.conns):
            if conn.kind == "user":
                conn.abort()

    async with LiveBot(fake, tmp_path) as bot:
        fake.unknown_error_next_order(1)
        bot.bus.subscribe(OrderRequest, cut_user_stream)
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "OPEN")
        bot.bus.unsubscribe(OrderRequest, cut_user_stream)
        await eventually(lambda: bot.protected() and bot.conn.ready)
        assert len(fake.calls("order.place")) == 1 and bot.placed_orders() == 1
        assert fake.calls("order.status") and fake.calls("GET /fapi/v1/userTrades")
        fills = [u for u in bot.of(OrderUpdate) if u.is_fill]
        assert len(fills) == 1 and fills[0].commission == D("0.34000000")
        assert fills[0].trade_id == fake.account.trades[0]["id"]


async def test_503_unknown_on_a_stop_is_resolved_not_duplicated(fake: FakeBinance,
                                                                tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        bot.bus.subscribe(PositionOpened, lambda ev: fake.unknown_error_next_order(1))
        await open_long(bot)
        stops = bot.conn.protective.positions["BTCUSDT"].stops
        await eventually(lambda: {k: s.status for k, s in stops.items()} == {"SL": "NEW",
                                                                             "TP": "NEW"})
        # settled by the user stream's ALGO_UPDATE or one query, never placed twice
        assert len(fake.calls("GET /fapi/v1/algoOrder")) <= 1
        assert len(fake.calls("algoOrder.place")) == 2 and len(fake.account.algos) == 2


@pytest.mark.parametrize(("code", "words"), [(-2019, "Margin is insufficient"),
                                             (-4164, "notional")])
async def test_entry_rejected(fake: FakeBinance, tmp_path: Path, code: int, words: str) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        fake.reject_next_order(code)
        bot.signal()
        await eventually(lambda: bot.phase == "FLAT" and bot.of(EngineError))
        up = [u for u in bot.of(OrderUpdate) if u.status is OrderStatus.REJECTED][0]
        assert str(code) in up.reason and words in up.reason
        assert bot.placed_orders() == 0 and len(fake.calls("order.place")) == 1
        await open_long(bot)  # the next signal trades normally


async def test_stop_that_would_trigger_immediately_closes_at_market(fake: FakeBinance,
                                                                    tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        bot.bus.subscribe(PositionOpened, lambda ev: fake.reject_next_order(-2021))
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: len(bot.engine.ledger.trades) == 1)
        await eventually(bot.closed)
        assert bot.engine.ledger.trades[0].exit_reason is ExitReason.SL
        closes = bot.of(CloseRequest)
        assert closes[0].reason is ExitReason.SL and "-2021" in closes[0].detail
        failed = [p for p in bot.of(ProtectiveOrderUpdate) if p.status == "PLACE_FAILED"]
        assert [p.kind for p in failed] == ["SL"]
        assert fake.position("BTCUSDT").amount == 0


async def test_listen_key_expired_gets_a_new_key(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        await open_long(bot)
        first = fake.listen_key
        fake.expire_listen_key()
        await eventually(lambda: bot.conn.user.connects == 2 and bot.conn.ready)
        assert fake.listen_key != first and bot.conn.user.renewals == 1
        fake.set_price("BTCUSDT", "69000")
        await eventually(lambda: bot.phase == "FLAT" and len(bot.engine.ledger.trades) == 1)


async def test_keepalive_minus_1125_gets_a_new_key(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, keepalive_s=0.05) as bot:
        await eventually(lambda: len(fake.calls("userDataStream.ping")) >= 1)
        fake.stop_listen_key()  # the key vanishes without a listenKeyExpired event
        await eventually(lambda: bot.conn.user.renewals == 1 and bot.conn.user.connects == 2)
        await eventually(lambda: bot.conn.ready)
        await open_long(bot)


async def test_partial_fills_count_once(fake: FakeBinance, tmp_path: Path) -> None:
    fake.fills_per_order = 3
    async with LiveBot(fake, tmp_path) as bot:
        await open_long(bot, "0.030")
        opened = bot.of(PositionOpened)[0]
        assert opened.quantity == D("0.030")
        fills = [u for u in bot.of(OrderUpdate) if u.is_fill]
        assert [u.filled_qty for u in fills] == [D("0.010"), D("0.020"), D("0.030")]
        assert bot.conn.trade_lites == 3
        fake.set_price("BTCUSDT", "69000")
        await eventually(lambda: len(bot.engine.ledger.trades) == 1)
        trade = bot.engine.ledger.trades[0]
        assert trade.quantity == D("0.030") and trade.gross_pnl == D("30.000")
        assert bot.engine.balance.wallet("USDT") == fake.wallet_balance
