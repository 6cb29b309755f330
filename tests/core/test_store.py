"""The store of record (core/store.py): one transaction per engine transition, save failures
(disk full, too many open files) alerted, /healthz failing and new entries refused until it can
save again, and the replay resuming after the last processed event."""

from __future__ import annotations

import errno
import sqlite3
from decimal import Decimal

import pytest

from core.events import EngineError, EngineMode, MarketTick, Side, SignalRejected, TradeSignal
from core.services import Services
from core.store import Store, read_document
from utils.settings import load_settings

D = Decimal
T0 = 1_723_161_540_000


class FailingConnection:
    """Delegates to a sqlite3 connection; ``fail`` makes every transaction start raise it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fail: BaseException | None = None

    def execute(self, sql, *args):
        if self.fail is not None and sql.startswith("BEGIN"):
            raise self.fail
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def services(tmp_path) -> Services:
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", symbols="BTCUSDT",
                             max_notional=D("5000"), log_json=False)
    svc = Services(settings, feed=None)
    svc.paper.publish_balance(T0, "SNAPSHOT")  # what start() does
    return svc


def signal(ts: int) -> TradeSignal:
    return TradeSignal(symbol="BTCUSDT", side=Side.LONG, entry_price=D("60000"),
                       quantity=D("0.010"), stop_loss=D("59000"), take_profit=D("61000"),
                       leverage=5, reason="test", ts_ms=ts)


def test_one_event_is_one_transaction(tmp_path):
    svc = services(tmp_path)
    engine, store = svc.engine, svc.engine.store
    engine.publish(MarketTick("BTCUSDT", T0, T0, 60_000.0, 1.0, False))
    commits = store.commits
    engine.publish(signal(T0 + 1))  # ENTERING, order, paper fill, ledger, OPEN
    assert store.commits == commits + 1
    db = tmp_path / "data" / "journal.sqlite3"
    assert read_document(db, "engine_state")["phase"] == "OPEN"
    assert list(read_document(db, "paper_account")["positions"]) == ["BTCUSDT"]
    assert list(read_document(db, "ledger")["open"]) == ["BTCUSDT"]
    store.close()


@pytest.mark.parametrize("failure", [
    sqlite3.OperationalError("database or disk is full"),
    OSError(errno.EMFILE, "Too many open files"),
], ids=["disk full", "EMFILE"])
def test_a_failing_save_alerts_fails_healthz_and_refuses_entries(tmp_path, failure):
    svc = services(tmp_path)
    engine, store = svc.engine, svc.engine.store
    assert engine.state.mode is EngineMode.ARMED
    seen: list = []
    engine.bus.subscribe_all(seen.append)
    conn = store._conn = FailingConnection(store._conn)  # type: ignore[assignment]
    engine.publish(MarketTick("BTCUSDT", T0, T0, 60_000.0, 1.0, False))
    assert svc.health_check()[0]
    conn.fail = failure
    engine.disarm(T0 + 1)  # a change that must be saved, and cannot
    engine.arm(T0 + 2)
    assert store.failing and store.write_errors >= 1
    alerts = [e for e in seen if isinstance(e, EngineError) and e.source == "store"]
    assert len(alerts) == 1  # once per failure streak
    healthy, details = svc.health_check()
    assert not healthy and details["store_failing"]
    assert any(m.name == "dort5bot_store_failing" and m.value == 1 for m in svc.metrics())
    engine.publish(signal(T0 + 3))
    (rejected,) = [e for e in seen if isinstance(e, SignalRejected)]
    assert "cannot be saved" in rejected.reason
    assert engine.state.phase.value == "FLAT"
    conn.fail = None  # space freed: the next transition saves what was kept
    engine.publish(MarketTick("BTCUSDT", T0 + 4, T0 + 4, 60_001.0, 1.0, False))
    engine.disarm(T0 + 5)
    assert not store.failing and svc.health_check()[0]
    doc = read_document(tmp_path / "data" / "journal.sqlite3", "engine_state")
    assert doc["mode"] == "DISARMED"
    store.close()


def test_open_refuses_a_newer_journal_schema_and_non_databases(tmp_path):
    db = tmp_path / "x.sqlite3"
    db.write_text("hello, not a database" * 100)
    with pytest.raises(Exception, match="not a usable SQLite database"):
        Store.open(db)
