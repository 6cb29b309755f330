"""End to end: the real engine and BinanceConnection against the fake Binance.

signal -> order.place -> fill on the user stream -> SL/TP algo orders -> TP fills -> the SL is
cancelled -> ledger, journal and balance agree with the exchange.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from core.binance.signing import Ed25519Signer
from core.events import (
    ConnectionStatus,
    ExitReason,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionOpened,
    ProtectiveOrderUpdate,
    Side,
    SignalRejected,
)
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot

D = Decimal


async def test_full_trade_long_tp(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, journal=True) as bot:
        assert bot.engine.balance.available("USDT") == D("10000")
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "OPEN")
        await eventually(bot.protected)
        place = fake.calls("order.place")
        assert len(place) == 1 and place[0]["type"] == "MARKET" and place[0]["quantity"] == "0.010"
        assert place[0]["newClientOrderId"] == bot.of(OrderRequest)[0].client_order_id
        algos = {a["type"]: a for a in fake.calls("algoOrder.place")}
        assert algos["STOP_MARKET"]["triggerPrice"] == "67000.00"
        assert algos["TAKE_PROFIT_MARKET"]["triggerPrice"] == "69000.00"
        for a in algos.values():
            assert a["algoType"] == "CONDITIONAL" and a["closePosition"] == "true"
            assert a["side"] == "SELL" and a["workingType"] == "MARK_PRICE"
        opened = bot.of(PositionOpened)[0]
        assert (opened.quantity, opened.entry_price) == (D("0.010"), D("68000.00"))

        fake.set_price("BTCUSDT", "69000")

        def kinds() -> set[tuple[str, str]]:
            return {(p.kind, p.status) for p in bot.of(ProtectiveOrderUpdate)}

        # Wait on the bot's own state (its phase, ledger, balance and the protective orders'
        # updates it received), not on the fake's: the fake cancels the SL first and the bot
        # hears of it a few milliseconds later.
        await eventually(lambda: bot.phase == "FLAT" and len(bot.engine.ledger.trades) == 1
                         and {("SL", "CANCELED"), ("TP", "FILLED")} <= kinds()
                         and bot.engine.balance.wallet("USDT") == D("10009.315"))
        trade = bot.engine.ledger.trades[0]
        assert trade.exit_reason is ExitReason.TP and trade.side is Side.LONG
        assert trade.gross_pnl == D("10.000") and trade.fees == D("0.685")
        assert bot.engine.balance.wallet("USDT") == fake.wallet_balance == D("10009.315")
        assert not bot.open_algos()
        assert fake.account.algos and all(a.status != "NEW" for a in fake.account.algos.values())
        assert bot.placed_orders() == 1
        assert bot.journal is not None and await bot.journal.flush()
        assert [t.exit_reason for t in await bot.journal.trades()] == [ExitReason.TP]


async def test_short_closed_by_signal_cancels_both_stops(fake: FakeBinance, tmp_path: Path
                                                         ) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        bot.signal(Side.SHORT, "0.020", sl="69000", tp="67000")
        await eventually(lambda: bot.phase == "OPEN" and bot.protected())
        assert bot.engine.close_position(ExitReason.MANUAL)
        await eventually(bot.closed)
        await eventually(lambda: len(bot.engine.ledger.trades) == 1)
        assert bot.engine.ledger.trades[0].exit_reason is ExitReason.MANUAL
        assert fake.position("BTCUSDT").amount == 0
        exits = [c for c in fake.calls("order.place") if c.get("reduceOnly") == "true"]
        assert len(exits) == 1 and exits[0]["side"] == "BUY"


async def test_stop_loss_fills_on_the_exchange(fake: FakeBinance, tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path) as bot:
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(bot.protected)
        fake.set_price("BTCUSDT", "66900")
        await eventually(bot.closed)
        await eventually(lambda: len(bot.engine.ledger.trades) == 1)
        trade = bot.engine.ledger.trades[0]
        assert trade.exit_reason is ExitReason.SL and trade.exit_price == D("66900")
        sl_fill = [u for u in bot.of(OrderUpdate) if u.order_type is OrderType.STOP_MARKET
                   and u.is_fill]
        assert len(sl_fill) == 1 and sl_fill[0].status is OrderStatus.FILLED


async def test_trading_gate_refuses_signals_until_reconciled(fake: FakeBinance,
                                                             tmp_path: Path) -> None:
    async with LiveBot(fake, tmp_path, wait_ready=False) as bot:
        bot.engine.arm(reason="test")
        bot.signal()
        rejected = bot.of(SignalRejected)
        assert rejected and "not trading" in rejected[0].reason
        await eventually(lambda: bot.conn.ready, timeout=5)
        trading = [e for e in bot.of(ConnectionStatus) if e.stream == "trading"]
        assert trading[-1].up
        bot.signal()
        await eventually(lambda: bot.phase == "OPEN")
    assert fake.calls("order.place")[0]["newClientOrderId"].startswith("d5E")


async def test_ed25519_session_logon(fake: FakeBinance, tmp_path: Path) -> None:
    key = tmp_path / "ed25519.pem"
    from cryptography.hazmat.primitives import serialization

    key.write_bytes(fake.ed25519_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    from tests.fakes.live_harness import settings_for

    settings = settings_for(fake, tmp_path, binance_api_key=fake.ed25519_api_key,
                            binance_api_secret=None, binance_private_key_path=key)
    async with LiveBot(fake, tmp_path, settings=settings) as bot:
        assert isinstance(bot.conn.config.signer, Ed25519Signer)
        bot.signal()
        await eventually(lambda: bot.phase == "OPEN" and bot.protected())
    assert len(fake.calls("session.logon")) == 1
    place = fake.calls("order.place")[0]
    assert "signature" not in place and "apiKey" not in place and "timestamp" in place
