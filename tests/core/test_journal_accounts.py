"""JOURNAL across accounts and databases: several bots (one per account) sharing one PostgreSQL
database each see only their own rows; a version 1 SQLite journal (no account column) is
migrated on open; a bad JOURNAL_URL or an unreachable server fails start-up with one line naming
JOURNAL_URL and never the password; a lost PostgreSQL connection keeps rows pending until the
server answers again."""

from __future__ import annotations

import logging
import sqlite3
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from core.event_bus import EventBus
from core.events import (
    EngineError,
    EquitySnapshot,
    OrderRequest,
    OrderSide,
    OrderType,
    TradeClosed,
)
from core.journal import SCHEMA_VERSION, Journal, JournalError
from tests.core.test_journal import LOSS, T0, TRADE, fill

PASSWORD = "Sup3r-Secret-Passw0rd"


def equity(value: str, ts: int) -> EquitySnapshot:
    return EquitySnapshot(equity=Decimal(value), wallet_balance=Decimal(value),
                          unrealized_pnl=Decimal(0), ts_ms=ts)


async def test_accounts_sharing_one_database_see_only_their_own_rows(postgres_dsn: str):
    bus_a, bus_b = EventBus(), EventBus()
    a = Journal(bus_a, None, url=postgres_dsn, account="alice", flush_interval_s=3600)
    b = Journal(bus_b, None, url=postgres_dsn, account="bob", flush_interval_s=3600)
    await a.start()
    await b.start()
    try:
        bus_a.publish(TradeClosed(trade=TRADE, ts_ms=TRADE.exit_ts_ms))
        bus_a.publish(equity("1000.5", T0 + 1))
        bus_a.publish(fill("e-1", 777, "0.010", "56000"))
        bus_b.publish(TradeClosed(trade=LOSS, ts_ms=LOSS.exit_ts_ms))
        bus_b.publish(equity("998.9", T0 + 2))
        bus_b.publish(fill("e-1", 777, "0.010", "56000"))  # same ids, other account: kept
        assert await a.flush() and await b.flush()

        assert await a.trades() == [TRADE]
        assert await b.trades() == [LOSS]
        assert await a.equity_curve() == [(T0 + 1, Decimal("1000.5"))]
        assert await b.equity_curve() == [(T0 + 2, Decimal("998.9"))]
        assert (await a.pnl_summary())["net_pnl"] == TRADE.net_pnl
        assert (await b.pnl_summary())["net_pnl"] == LOSS.net_pnl
        assert [e["kind"] for e in await b.recent_events(10)] == [
            "TradeClosed", "EquitySnapshot", "OrderUpdate"]
        assert all(e["payload"].get("equity", "998.9") == "998.9"
                   for e in await b.recent_events(10))
    finally:
        await a.stop()
        await b.stop()
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT account, COUNT(*) FROM fills GROUP BY account"
                            " ORDER BY account").fetchall()
    assert rows == [("alice", 1), ("bob", 1)]


async def test_a_version_1_sqlite_journal_gets_the_account_column(tmp_path: Path):
    db = tmp_path / "journal.sqlite3"
    with sqlite3.connect(db) as conn:  # the schema as version 1 created it, with a trade
        conn.executescript("""
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE events (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,
                kind TEXT NOT NULL, symbol TEXT, payload TEXT NOT NULL);
            CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL,
                side TEXT NOT NULL, entry_ts_ms INTEGER NOT NULL, exit_ts_ms INTEGER NOT NULL,
                entry_price TEXT NOT NULL, exit_price TEXT NOT NULL, quantity TEXT NOT NULL,
                gross_pnl TEXT NOT NULL, fees TEXT NOT NULL, funding TEXT NOT NULL,
                net_pnl TEXT NOT NULL, exit_reason TEXT NOT NULL);
            CREATE TABLE fills (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,
                symbol TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER NOT NULL,
                trade_id INTEGER, side TEXT NOT NULL, qty TEXT NOT NULL, price TEXT NOT NULL,
                commission TEXT NOT NULL, commission_asset TEXT NOT NULL,
                realized_pnl TEXT NOT NULL, UNIQUE (symbol, trade_id, client_order_id));
            CREATE TABLE equity (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,
                equity TEXT NOT NULL, wallet_balance TEXT NOT NULL,
                unrealized_pnl TEXT NOT NULL);
        """)
        conn.execute(
            "INSERT INTO trades (symbol, side, entry_ts_ms, exit_ts_ms, entry_price, exit_price,"
            " quantity, gross_pnl, fees, funding, net_pnl, exit_reason)"
            " VALUES ('BTCUSDT', 'LONG', ?, ?, '56019.20', '56300.10', '0.010', '2.80900',"
            " '0.05616', '-0.00112', '2.75172', 'TP')", (T0 + 2, T0 + 60_000))
        conn.execute("INSERT INTO equity (ts_ms, equity, wallet_balance, unrealized_pnl)"
                     " VALUES (?, '1000.5', '1000', '0.5')", (T0 + 1,))

    bus = EventBus()
    journal = Journal(bus, db, account="acct-2")
    await journal.start()
    try:
        bus.publish(TradeClosed(trade=LOSS, ts_ms=LOSS.exit_ts_ms))
        assert await journal.trades() == [TRADE, LOSS]
        assert await journal.equity_curve() == [(T0 + 1, Decimal("1000.5"))]
    finally:
        await journal.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT account FROM trades").fetchall() == [("acct-2",)]
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]
    again = Journal(EventBus(), db, account="other")  # another account: none of these rows
    await again.start()
    try:
        assert await again.trades() == [] and await again.equity_curve() == []
    finally:
        await again.stop()


@pytest.mark.parametrize("url", [
    f"postgresql://bot:{PASSWORD}@127.0.0.1:1/journal",  # nothing listens: refused
    f"postgresql://bot:{PASSWORD}@127.0.0.1:notaport/journal",  # malformed
    f"postgresql://bot:{PASSWORD}@127.0.0.1/journal?nosuchoption=1",  # unknown option
])
async def test_a_bad_url_or_unreachable_server_fails_naming_journal_url_not_the_password(
        url: str, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    journal = Journal(EventBus(), None, url=url)
    with pytest.raises(JournalError) as info:
        await journal.start()
    text = str(info.value)
    assert "JOURNAL_URL=" in text and "\n" not in text
    assert PASSWORD not in text and PASSWORD not in repr(info.value.__cause__)
    assert PASSWORD not in caplog.text
    with pytest.raises(JournalError, match="not open"):
        await journal.trades()


async def test_a_lost_connection_keeps_rows_pending_until_the_server_answers(postgres_dsn: str):
    bus, errors = EventBus(), []
    bus.subscribe(EngineError, errors.append)
    journal = Journal(bus, None, url=postgres_dsn, flush_interval_s=3600)
    await journal.start()
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        bus.publish(TradeClosed(trade=TRADE, ts_ms=TRADE.exit_ts_ms))
        assert await journal.flush() is False  # the write met the dead connection
        assert journal.pending_count >= 2 and journal.write_errors == 1
        assert len(errors) == 1 and errors[0].source == "journal"
        assert await journal.flush() is True  # connected again, everything written
        assert await journal.trades() == [TRADE]
    finally:
        await journal.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """Journal arguments two accounts share: one SQLite file or one PostgreSQL database."""
    if request.param == "sqlite":
        return {"db_path": tmp_path / "journal.sqlite3"}
    return {"db_path": None, "url": request.getfixturevalue("postgres_dsn")}


async def test_risk_history_queries_read_only_their_own_account(shared: dict):
    buses = {"alice": EventBus(), "bob": EventBus()}
    journals = {name: Journal(bus, shared["db_path"], url=shared.get("url", ""), account=name,
                              flush_interval_s=3600) for name, bus in buses.items()}
    for journal in journals.values():
        await journal.start()
    try:
        for i, (name, bus) in enumerate(buses.items()):
            bus.publish(OrderRequest(symbol="BTCUSDT", side=OrderSide.BUY,
                                     order_type=OrderType.MARKET, quantity=Decimal("0.010"),
                                     client_order_id=f"e-{name}", ts_ms=T0 + i))
            bus.publish(OrderRequest(symbol="BTCUSDT", side=OrderSide.SELL,
                                     order_type=OrderType.MARKET, quantity=Decimal("0.010"),
                                     client_order_id=f"x-{name}", intent="TP", ts_ms=T0 + 10))
            bus.publish(equity("999.5" if i else "1000.5", T0 + 20))
            bus.publish(equity("999.25" if i else "1000.25", T0 + 30))
            await journals[name].flush()
        alice, bob = journals["alice"], journals["bob"]
        assert await alice.entry_times(0) == [T0] and await bob.entry_times(0) == [T0 + 1]
        assert await bob.entry_times(T0 + 2) == []
        assert await alice.peak_equity() == Decimal("1000.5")
        assert await bob.peak_equity() == Decimal("999.5")
        assert await bob.peak_equity(T0 + 25) == Decimal("999.25")
    finally:
        for journal in journals.values():
            await journal.stop()
