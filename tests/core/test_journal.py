"""JOURNAL: a real EventBus, a real SQLite file or a real PostgreSQL database (``postgres_dsn``:
the behaviour tests run against both), a second real connection as the "other writer" that locks
the database. Results are read back through a fresh Journal or a plain connection."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    ClosedTrade,
    CloseRequest,
    ConnectionStatus,
    EngineError,
    EquitySnapshot,
    ExitReason,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionOpened,
    PositionUpdate,
    Side,
    SignalRejected,
    StateChanged,
    TradeClosed,
    TradeSignal,
)
from core.journal import Journal, JournalError, to_jsonable
from tests.conftest import eventually

SYM = "BTCUSDT"
T0 = 1_723_100_000_000




def fill(cid: str, trade_id: int, qty: str, price: str, *, status=OrderStatus.FILLED,
         side=OrderSide.BUY, filled: str | None = None, rp: str = "0", ts: int = T0) -> OrderUpdate:
    return OrderUpdate(
        symbol=SYM, client_order_id=cid, order_id=1000 + len(cid), side=side,
        order_type=OrderType.MARKET, status=status, quantity=Decimal("0.010"),
        filled_qty=Decimal(filled or qty), last_fill_qty=Decimal(qty),
        last_fill_price=Decimal(price), avg_price=Decimal(price),
        commission=Decimal("0.02800960"), realized_pnl=Decimal(rp), trade_id=trade_id, ts_ms=ts,
    )


TRADE = ClosedTrade(
    symbol=SYM, side=Side.LONG, entry_ts_ms=T0 + 2, exit_ts_ms=T0 + 60_000,
    entry_price=Decimal("56019.20"), exit_price=Decimal("56300.10"), quantity=Decimal("0.010"),
    gross_pnl=Decimal("2.80900"), fees=Decimal("0.05616"), funding=Decimal("-0.00112"),
    net_pnl=Decimal("2.75172"), exit_reason=ExitReason.TP,
)
LOSS = ClosedTrade(
    symbol=SYM, side=Side.SHORT, entry_ts_ms=T0 + 100_000, exit_ts_ms=T0 + 160_000,
    entry_price=Decimal("56000"), exit_price=Decimal("56100"), quantity=Decimal("0.010"),
    gross_pnl=Decimal("-1.000"), fees=Decimal("0.0561"), funding=Decimal("0"),
    net_pnl=Decimal("-1.0561"), exit_reason=ExitReason.SL,
)


def round_trip() -> list:
    """A realistic LONG entry (two partial fills) and TP exit, as the engine would publish it."""
    signal = TradeSignal(
        symbol=SYM, side=Side.LONG, entry_price=Decimal("56019.2"), quantity=Decimal("0.0107"),
        stop_loss=Decimal("55800"), take_profit=Decimal("56300.1"), leverage=5,
        reason="ema_cross 9/21, adx 31.2", ts_ms=T0,
    )
    return [
        signal,
        StateChanged(what="phase", old="FLAT", new="ENTERING", symbol=SYM, ts_ms=T0),
        OrderRequest(symbol=SYM, side=OrderSide.BUY, order_type=OrderType.MARKET,
                     quantity=Decimal("0.010"), client_order_id="e-1", ts_ms=T0),
        OrderUpdate(symbol=SYM, client_order_id="e-1", order_id=1003, side=OrderSide.BUY,
                    order_type=OrderType.MARKET, status=OrderStatus.NEW,
                    quantity=Decimal("0.010"), filled_qty=Decimal(0), ts_ms=T0 + 1),
        fill("e-1", 501, "0.004", "56019.10", status=OrderStatus.PARTIALLY_FILLED, ts=T0 + 2),
        fill("e-1", 502, "0.006", "56019.30", filled="0.010", ts=T0 + 2),
        PositionUpdate(symbol=SYM, quantity=Decimal("0.010"), entry_price=Decimal("56019.22"),
                       leverage=5, reason="ORDER", ts_ms=T0 + 2),
        BalanceUpdate(asset="USDT", wallet_balance=Decimal("999.94399040"),
                      change=Decimal("-0.05600960"), reason="ORDER", ts_ms=T0 + 2),
        StateChanged(what="phase", old="ENTERING", new="OPEN", symbol=SYM, ts_ms=T0 + 2),
        PositionOpened(symbol=SYM, side=Side.LONG, quantity=Decimal("0.010"),
                       entry_price=Decimal("56019.22"), stop_loss=Decimal("55800.02"),
                       take_profit=Decimal("56300.12"), ts_ms=T0 + 2),
        EquitySnapshot(equity=Decimal("1000.5"), wallet_balance=Decimal("999.94399040"),
                       unrealized_pnl=Decimal("0.55600960"), ts_ms=T0 + 30_000),
        CloseRequest(symbol=SYM, reason=ExitReason.TP, detail="tp hit", ts_ms=T0 + 60_000),
        fill("x-1", 503, "0.010", "56300.10", side=OrderSide.SELL, rp="2.80900",
             ts=T0 + 60_000),
        TradeClosed(trade=TRADE, ts_ms=T0 + 60_000),
        StateChanged(what="phase", old="EXITING", new="FLAT", symbol=SYM, ts_ms=T0 + 60_000),
        ConnectionStatus(stream="market", up=False, detail="1006 abnormal", ts_ms=T0 + 61_000),
        SignalRejected(signal=signal, reason="not ARMED", ts_ms=T0 + 62_000),
        EngineError(source="ordering", message="test", details={"code": -2019},
                    ts_ms=T0 + 63_000),
    ]


def read(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "journal.sqlite3"


@dataclass
class Target:
    """One journal database: builds journals on it and reads it back with a plain connection."""

    path: Path
    url: str = ""

    def journal(self, bus: EventBus, **kw: Any) -> Journal:
        return Journal(bus, self.path, url=self.url, **kw)

    def read(self, sql: str) -> list[tuple]:
        if not self.url:
            return read(self.path, sql)
        import psycopg

        with psycopg.connect(self.url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, db: Path) -> Target:
    if request.param == "sqlite":
        return Target(db)
    return Target(db, request.getfixturevalue("postgres_dsn"))


async def test_round_trip_survives_restart(target: Target):
    bus = EventBus()
    journal = target.journal(bus, flush_interval_s=3600)
    await journal.start()
    events = round_trip()
    for event in events:
        bus.publish(event)
    assert await journal.flush() is True
    await journal.stop()

    again = target.journal(EventBus())
    await again.start()
    try:
        assert await again.trades() == [TRADE]
        assert await again.equity_curve() == [(T0 + 30_000, Decimal("1000.5"))]
        recent = await again.recent_events(100)
        assert [e["kind"] for e in recent] == [type(e).__name__ for e in events]
        assert recent[-1]["payload"]["details"] == {"code": -2019}
        signal = recent[0]["payload"]
        assert signal["side"] == "LONG" and Decimal(signal["quantity"]) == Decimal("0.0107")
        rejected = next(e for e in recent if e["kind"] == "SignalRejected")
        assert rejected["symbol"] == SYM and rejected["payload"]["signal"]["leverage"] == 5
        summary = await again.pnl_summary()
        assert summary["net_pnl"] == Decimal("2.75172") and summary["trades"] == 1
        assert summary["fees"] == Decimal("0.05616") and summary["funding"] == Decimal("-0.00112")
        assert summary["win_rate"] == 1.0
    finally:
        await again.stop()

    fills = target.read(
        "SELECT trade_id, qty, price, commission, realized_pnl FROM fills ORDER BY id")
    assert fills == [
        (501, "0.004", "56019.10", "0.02800960", "0"),
        (502, "0.006", "56019.30", "0.02800960", "0"),
        (503, "0.010", "56300.10", "0.02800960", "2.80900"),
    ]
    types = target.read("SELECT entry_price, net_pnl FROM trades")
    assert types == [("56019.20", "2.75172")]  # text, exactly as the Decimal was


async def test_restart_continues_and_queries_filter(target: Target):
    for trade in (TRADE, LOSS):
        bus = EventBus()
        journal = target.journal(bus)
        await journal.start()
        bus.publish(TradeClosed(trade=trade, ts_ms=trade.exit_ts_ms))
        await journal.stop()

    journal = target.journal(EventBus())
    await journal.start()
    try:
        assert await journal.trades() == [TRADE, LOSS]
        assert await journal.trades(limit=1) == [LOSS]
        assert await journal.trades(since_ms=LOSS.exit_ts_ms) == [LOSS]
        summary = await journal.pnl_summary()
        assert summary["trades"] == 2 and summary["wins"] == 1 and summary["losses"] == 1
        assert summary["win_rate"] == 0.5
        assert summary["net_pnl"] == TRADE.net_pnl + LOSS.net_pnl
        assert summary["gross_pnl"] == Decimal("1.80900")
        assert (await journal.pnl_summary(since_ms=T0 + 10**9))["net_pnl"] == Decimal(0)
    finally:
        await journal.stop()
    assert target.read("SELECT id FROM events ORDER BY id") == [(1,), (2,)]
    assert target.read("SELECT DISTINCT account FROM trades") == [("main",)]


async def test_queries_include_pending_rows(target: Target):
    bus = EventBus()
    journal = target.journal(bus, flush_interval_s=3600)
    await journal.start()
    try:
        bus.publish(TradeClosed(trade=TRADE, ts_ms=TRADE.exit_ts_ms))
        assert journal.pending_count == 2  # events + trades
        assert await journal.trades() == [TRADE]
        assert journal.pending_count == 0
    finally:
        await journal.stop()


async def test_duplicate_fill_is_stored_once(target: Target):
    bus = EventBus()
    journal = target.journal(bus)
    await journal.start()
    first = fill("e-1", 777, "0.010", "56000")
    bus.publish(first)
    await journal.flush()
    bus.publish(first)  # redelivered after a user-stream reconnect
    bus.publish(fill("e-2", 777, "0.010", "56000"))  # same trade id, other order: kept
    await journal.stop()
    assert target.read("SELECT client_order_id, trade_id FROM fills ORDER BY id") == [
        ("e-1", 777), ("e-2", 777)
    ]
    assert target.read("SELECT COUNT(*) FROM events WHERE kind = 'OrderUpdate'") == [(3,)]


async def test_fills_without_trade_id_are_not_collapsed(target: Target):
    bus = EventBus()
    journal = target.journal(bus)
    await journal.start()
    bus.publish(fill("p-1", 0, "0.004", "56000"))
    bus.publish(fill("p-1", 0, "0.006", "56001"))
    await journal.stop()
    assert target.read("SELECT qty, trade_id FROM fills ORDER BY id") == [
        ("0.004", None), ("0.006", None)
    ]


async def test_locked_database_keeps_rows_pending_then_writes_them(db: Path):
    bus, errors = EventBus(), []
    bus.subscribe(EngineError, errors.append)
    journal = Journal(bus, db, flush_interval_s=3600, busy_timeout_s=0)
    await journal.start()
    other = sqlite3.connect(db, isolation_level=None)  # another process holding the write lock
    try:
        other.execute("BEGIN IMMEDIATE")
        bus.publish(TradeClosed(trade=TRADE, ts_ms=TRADE.exit_ts_ms))
        assert await journal.flush() is False
        assert await journal.flush() is False
        assert journal.pending_count >= 2 and journal.write_errors == 2
        assert len(errors) == 1 and errors[0].source == "journal"  # once per failure streak
        other.execute("ROLLBACK")
        assert await journal.flush() is True
        assert journal.pending_count == 0
    finally:
        other.close()
        await journal.stop()
    assert read(db, "SELECT net_pnl FROM trades") == [("2.75172",)]
    assert read(db, "SELECT kind FROM events ORDER BY id") == [("TradeClosed",), ("EngineError",)]


async def test_background_task_flushes(target: Target):
    bus = EventBus()
    journal = target.journal(bus, flush_interval_s=0.01)
    await journal.start()
    try:
        bus.publish(ConnectionStatus(stream="user", up=True, ts_ms=T0))
        await eventually(lambda: journal.pending_count == 0)
        assert target.read("SELECT kind FROM events") == [("ConnectionStatus",)]
    finally:
        await journal.stop()


async def test_events_before_start_are_kept_and_stop_writes_everything(target: Target):
    bus = EventBus()
    journal = target.journal(bus, flush_interval_s=3600)
    bus.publish(StateChanged(what="mode", old="DISARMED", new="ARMED", ts_ms=T0))
    await journal.start()
    bus.publish(EquitySnapshot(equity=Decimal("1"), wallet_balance=Decimal("1"),
                               unrealized_pnl=Decimal("0"), ts_ms=T0 + 1))
    await journal.stop()
    assert target.read("SELECT kind FROM events ORDER BY id") == [
        ("StateChanged",), ("EquitySnapshot",)
    ]
    assert target.read("SELECT equity, wallet_balance, unrealized_pnl FROM equity") == [
        ("1", "1", "0")
    ]


async def test_wal_mode(db: Path):
    journal = Journal(EventBus(), db)
    await journal.start()
    try:
        assert read(db, "PRAGMA journal_mode") == [("wal",)]
    finally:
        await journal.stop()


async def test_corrupt_file_raises_and_is_left_alone(db: Path):
    db.parent.mkdir(parents=True)
    garbage = b"this is not sqlite \x00\xff" * 300
    db.write_bytes(garbage)
    journal = Journal(EventBus(), db)
    with pytest.raises(JournalError, match="journal.sqlite3"):
        await journal.start()
    assert db.read_bytes() == garbage


async def test_newer_schema_is_refused(target: Target):
    journal = target.journal(EventBus())
    await journal.start()
    await journal.stop()
    if target.url:
        import psycopg

        with psycopg.connect(target.url) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    else:
        with sqlite3.connect(target.path) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(JournalError, match="schema version 99"):
        await target.journal(EventBus()).start()


async def test_in_memory_journal_answers_queries():
    bus = EventBus()
    journal = Journal(bus, None)
    await journal.start()
    try:
        bus.publish(TradeClosed(trade=LOSS, ts_ms=LOSS.exit_ts_ms))
        assert await journal.trades() == [LOSS]
    finally:
        await journal.stop()


async def test_queries_on_a_closed_journal_raise(target: Target):
    with pytest.raises(JournalError, match="not open"):
        await target.journal(EventBus()).trades()


async def test_unserializable_details_never_reach_the_bus(target: Target):
    bus = EventBus()
    journal = target.journal(bus)
    await journal.start()
    bus.publish(EngineError(source="x", message="odd", details={"n": 2**70, "o": object()},
                            ts_ms=T0))
    await journal.stop()
    assert bus.errors == 0
    (payload,) = target.read("SELECT payload FROM events")[0]
    assert isinstance(orjson.loads(payload), dict)


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=8,
                       min_value=Decimal("-1e9"), max_value=Decimal("1e9"))


@given(qty=decimals, price=decimals, rp=decimals)
def test_payload_decimals_round_trip_exactly(qty: Decimal, price: Decimal, rp: Decimal):
    update = OrderUpdate(
        symbol=SYM, client_order_id="c", order_id=1, side=OrderSide.SELL,
        order_type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=qty, filled_qty=qty,
        last_fill_qty=qty, last_fill_price=price, realized_pnl=rp, ts_ms=T0,
    )
    data = orjson.loads(orjson.dumps(to_jsonable(update)))
    assert Decimal(data["last_fill_qty"]) == qty and Decimal(data["last_fill_price"]) == price
    assert Decimal(data["realized_pnl"]) == rp
    assert data["side"] == "SELL" and data["status"] == "FILLED"


async def test_live_adapter_events_are_journaled():
    from core.events import (
        AccountConfigChanged,
        MarginCall,
        PositionAdopted,
        ProtectiveOrderUpdate,
        RateLimitBackoff,
    )
    from core.journal import JOURNALED_EVENTS

    bus = EventBus()
    journal = Journal(bus, None)
    await journal.start()
    try:
        bus.publish(ProtectiveOrderUpdate(symbol=SYM, kind="SL", client_algo_id="d5S1",
                                          status="PLACE_FAILED", trigger_price=Decimal("55800.0"),
                                          detail="-2021", ts_ms=T0))
        bus.publish(PositionAdopted(symbol=SYM, quantity=Decimal("0.01"),
                                    entry_price=Decimal("56000"), stops="adopted", ts_ms=T0 + 1))
        bus.publish(MarginCall(symbols=(SYM,), maintenance_margin=Decimal("1.5"), ts_ms=T0 + 2))
        bus.publish(AccountConfigChanged(symbol=SYM, leverage=10, ts_ms=T0 + 3))
        rows = await journal.recent_events(10)
        kinds = [r["kind"] for r in rows]
        assert kinds == ["ProtectiveOrderUpdate", "PositionAdopted", "MarginCall",
                         "AccountConfigChanged"]
        assert rows[0]["payload"]["trigger_price"] == "55800.0"
        assert rows[2]["payload"]["symbols"] == [SYM]
        assert RateLimitBackoff in JOURNALED_EVENTS
    finally:
        await journal.stop()
