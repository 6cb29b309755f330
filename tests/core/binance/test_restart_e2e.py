"""Restart mid-position: the next run adopts the position and its exchange-side stops (or
re-places missing ones, or cancels orphans) before it trades, and resolves the previous run's
orders whose fate it never saw."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from core.events import (
    ExitReason,
    OrderUpdate,
    PositionAdopted,
    PositionOpened,
    PositionPhase,
    Side,
)
from core.state import EngineState, TrackedOrder
from tests.conftest import eventually
from tests.fakes.binance import FakeBinance
from tests.fakes.live_harness import LiveBot

D = Decimal


async def first_run_opens(fake: FakeBinance, data_dir: Path) -> None:
    async with LiveBot(fake, data_dir, persist=True) as bot:
        bot.signal(Side.LONG, "0.010", sl="67000", tp="69000")
        await eventually(lambda: bot.phase == "OPEN" and bot.protected())
    assert len(fake.account.open_algos(None)) == 2  # stopping leaves the stops in place


async def test_restart_adopts_position_and_stops(fake: FakeBinance, tmp_path: Path) -> None:
    await first_run_opens(fake, tmp_path)
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        assert bot.phase == "OPEN" and bot.engine.state.quantity == D("0.010")
        adopted = bot.of(PositionAdopted)
        assert len(adopted) == 1 and adopted[0].stops == "adopted"
        assert (adopted[0].stop_loss, adopted[0].take_profit) == (D("67000.00"), D("69000.00"))
        assert len(fake.calls("algoOrder.place")) == 2  # nothing placed twice
        fake.set_price("BTCUSDT", "69000")
        await eventually(bot.closed)
        assert fake.position("BTCUSDT").amount == 0


async def test_fresh_state_adopts_the_exchange_position(fake: FakeBinance,
                                                        tmp_path: Path) -> None:
    await first_run_opens(fake, tmp_path / "a")
    async with LiveBot(fake, tmp_path / "b", persist=True) as bot:
        assert bot.phase == "OPEN" and bot.engine.state.side is Side.LONG
        assert bot.engine.state.entry_price == D("68000")
        assert bot.of(PositionAdopted)[0].stops == "adopted"
        assert len(fake.calls("algoOrder.place")) == 2
        fake.set_price("BTCUSDT", "66000")
        await eventually(bot.closed)


async def test_missing_stops_are_replaced_from_the_saved_levels(fake: FakeBinance,
                                                                tmp_path: Path) -> None:
    await first_run_opens(fake, tmp_path)
    for algo in list(fake.account.open_algos(None)):  # e.g. cancelled by hand while down
        fake.exchange.cancel_algo({"clientAlgoId": algo.client_algo_id})
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        assert bot.of(PositionAdopted)[0].stops == "placed"
        placed = fake.calls("algoOrder.place")[2:]
        assert sorted(p["triggerPrice"] for p in placed) == ["67000.00", "69000.00"]
        assert len(bot.open_algos()) == 2


async def test_orphan_stops_are_cancelled_when_the_position_is_gone(fake: FakeBinance,
                                                                    tmp_path: Path) -> None:
    await first_run_opens(fake, tmp_path)
    fake.exchange.place_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                               "quantity": "0.010", "reduceOnly": "true"})  # closed by hand
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        assert bot.phase == "FLAT"
        await eventually(lambda: not bot.open_algos())
        assert not bot.of(PositionAdopted)


async def test_entry_filled_while_down_is_recovered(fake: FakeBinance, tmp_path: Path) -> None:
    cid = "d5E1700000000000-7"
    state = EngineState(phase=PositionPhase.ENTERING, symbol="BTCUSDT", side=Side.LONG,
                        stop_loss=D("67000"), take_profit=D("69000"), seq=7)
    state.orders[cid] = TrackedOrder(client_order_id=cid, symbol="BTCUSDT", side="BUY",
                                     quantity=D("0.010"), intent="ENTRY", reduce_only=False,
                                     submitted_ms=1_700_000_000_000)
    (tmp_path / "state.json").write_text(json.dumps(state.to_dict()))  # an older version's
    fake.exchange.place_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                               "quantity": "0.010", "newClientOrderId": cid})
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        assert bot.phase == "OPEN" and bot.engine.state.quantity == D("0.010")
        fill = [u for u in bot.of(OrderUpdate) if u.is_fill]
        assert len(fill) == 1 and fill[0].client_order_id == cid
        assert fill[0].commission == D("0.34000000")
        assert bot.of(PositionOpened)
        await eventually(bot.protected)
        assert len(fake.calls("order.place")) == 0  # resolved, never resent
        assert not bot.of(PositionAdopted)  # ORDERING's own entry, not a stranger
        assert bot.engine.close_position(ExitReason.MANUAL)
        await eventually(bot.closed)


async def test_entry_never_placed_is_rejected_at_restart(fake: FakeBinance,
                                                         tmp_path: Path) -> None:
    cid = "d5E1700000000000-3"
    state = EngineState(phase=PositionPhase.ENTERING, symbol="BTCUSDT", side=Side.LONG, seq=3)
    state.orders[cid] = TrackedOrder(client_order_id=cid, symbol="BTCUSDT", side="BUY",
                                     quantity=D("0.010"), intent="ENTRY", reduce_only=False,
                                     submitted_ms=1_700_000_000_000)
    (tmp_path / "state.json").write_text(json.dumps(state.to_dict()))  # an older version's
    async with LiveBot(fake, tmp_path, persist=True) as bot:
        assert bot.phase == "FLAT"
        assert fake.calls("order.status") and not fake.calls("order.place")
