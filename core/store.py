"""The store of record: one SQLite database (WAL) holding everything that must agree.

What a restart needs and cannot rebuild lives here, written in **one transaction per engine
transition**: the engine state (mode, phase, position, orders in flight), the ledger's running
trades and order intents, the paper account, and the journal rows nobody can recompute (fills,
closed round trips). A transition is everything one top-level ``publish`` causes on the
synchronous bus (a signal, its order, the paper fill, the ledger booking, OPEN): owners
``stage`` what changed while the bus dispatches, and the store commits once the bus is idle,
before control returns to the event loop, so before any order leaves (the live adapter sends
from a task). A kill at any instant leaves the state before or after a transition, never half
of one. The journal's other rows (event log, equity snapshots) stay batched: they are a witness,
not a source of truth.

The database is the journal's file (``DATA_DIR/journal.sqlite3``); ``synchronous=NORMAL`` in
WAL mode survives a process crash at every commit (a power loss may drop the newest commits,
never leave half of one). A commit costs tens of microseconds on the event loop.

Documents (key -> JSON object with its own ``version``), for other modules too:

* ``get(key)`` / ``put(key, doc)``: read / write a document in the current transition
  (``put`` commits at once when the bus is idle);
* ``stage(key, producer)``: ``producer()`` builds the document at commit time (cheap to call
  many times per transition).

A failed commit (disk full, too many open files, database locked) keeps everything staged for
the next commit, counts ``write_errors``, sets ``failing`` (the bot refuses new entries and
``/healthz`` fails) and publishes one ``EngineError`` per failure streak.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from core.crashpoints import crash_point
from core.event_bus import EventBus
from core.events import EngineError, OrderUpdate, TradeClosed
from core.journal import fill_row, trade_row
from core.journal_backend import COLUMNS, SCHEMA_VERSION, SQLITE
from core.persisted import PersistError

logger = logging.getLogger(__name__)

STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS store (
    key TEXT PRIMARY KEY, body TEXT NOT NULL);
"""
_UPSERT = ("INSERT INTO store (key, body) VALUES (?, ?)"
           " ON CONFLICT (key) DO UPDATE SET body = excluded.body")
RETRY_S = 1.0  # after a failed commit, the next transitions retry at most this often
_ROW_SQL = {table: SQLITE.insert(table) for table in COLUMNS}  # account first, then the row


def _create_schema(conn: sqlite3.Connection, account: str, path: Path) -> None:
    """The journal's tables (schema of core/journal_backend.py, a version 1 journal migrated as
    its SQLite backend does) and the store's, in one transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(f"{path} has journal schema version {version}, newer than this bot's"
                         f" {SCHEMA_VERSION}; upgrade the bot or use another DATA_DIR")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version == 1:  # no account column yet: the rows are this account's
            for table in COLUMNS:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN account TEXT NOT NULL"
                             f" DEFAULT '{account}'")
            conn.execute("DELETE FROM schema_version")
        for statement in filter(str.strip, (SQLITE.schema() + STORE_SCHEMA).split(";")):
            conn.execute(statement)
        if version != SCHEMA_VERSION:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _constant(doc: Any) -> Callable[[], Any]:
    return lambda: doc


class StoreError(PersistError):
    """The store's database cannot be opened or read; the message names the file."""


class Store:
    """One SQLite connection (stdlib ``sqlite3``, autocommit, WAL) owned by the event loop.

    Build with ``Store.open(path)``; ``bind(bus)`` makes it commit after every transition.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, account: str = "main") -> None:
        self._conn = conn
        self.path = path
        self.account = account
        self.journal = True  # the journal's tables are in this file (fills, trades written here)
        self._bus: EventBus | None = None
        self._docs: dict[str, Any] = {}  # committed (or staged) documents, decoded
        self._staged: dict[str, Callable[[], Any]] = {}
        self._rows: dict[str, list[tuple]] = {}
        self._every: dict[str, Callable[[], Any]] = {}  # re-staged at every commit
        self.failing = False
        self.write_errors = 0
        self.last_error = ""
        self.commits = 0
        self._closed = False
        self._retry_at = 0.0
        for key, body in conn.execute("SELECT key, body FROM store"):
            try:
                self._docs[key] = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise StoreError(f"{path} [{key}]: field '(document)' is not JSON; fix it or"
                                 " move the file aside, then restart (nothing was changed)"
                                 ) from None

    @classmethod
    def open(cls, path: Path, *, account: str = "main", journal: bool = True,
             busy_timeout_s: float = 5.0) -> Store:
        """Open (or create) the database and its tables.

        Raises:
            StoreError: not a SQLite database, unreadable, or a newer journal schema.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {path}: {exc.strerror}") from None
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check}")
            if journal:
                _create_schema(conn, account, path)
            else:  # the journal lives elsewhere (PostgreSQL): documents only
                conn.executescript(STORE_SCHEMA)
            store = cls(conn, path, account)
            store.journal = journal
            return store
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"{path} is not a usable SQLite database ({exc}); move it aside"
                             " to start afresh, then restart (nothing was changed)") from None
        except StoreError:
            if conn is not None:
                conn.close()
            raise

    def bind(self, bus: EventBus) -> None:
        """Commit after each transition of ``bus``; journal fills and round trips here."""
        self._bus = bus
        if self.journal:
            bus.subscribe(OrderUpdate, self._on_order_update)
            bus.subscribe(TradeClosed, self._on_trade_closed)

    def close(self) -> None:
        """Commit what is staged (best effort) and close the database."""
        self.commit()
        if self._bus is not None:
            self._bus.on_idle = None
        self._closed = True
        self._conn.close()

    def abandon(self) -> None:
        """Close without committing (tests: what a kill leaves behind)."""
        if self._bus is not None:
            self._bus.on_idle = None
        self._closed = True
        self._conn.close()

    # ------------------------------------------------------------------ documents

    def get(self, key: str) -> Any:
        """The document under ``key`` as last staged or committed (decoded JSON), or None."""
        producer = self._staged.get(key)
        return producer() if producer is not None else self._docs.get(key)

    def put(self, key: str, doc: Any) -> None:
        """Write ``doc`` (JSON-ready) in the current transition."""
        self.stage(key, _constant(doc))

    def stage(self, key: str, producer: Callable[[], Any]) -> None:
        """``producer()`` is written under ``key`` at the end of the current transition (at
        once when no transition is running)."""
        self._staged[key] = producer
        bus = self._bus
        if bus is None or not bus.dispatching:
            self.commit()
        else:
            bus.on_idle = self._commit_idle  # the bus calls it once, when the event is done

    def write(self, docs: dict[str, Any]) -> bool:
        """Write several documents in one transaction now; True when committed."""
        for key, doc in docs.items():
            self._staged[key] = _constant(doc)
        return self.commit()

    def stage_every_commit(self, key: str, producer: Callable[[], Any]) -> None:
        """Write ``producer()`` with every commit (e.g. the replay position), never alone."""
        self._every[key] = producer

    @property
    def keys(self) -> list[str]:
        return sorted(set(self._docs) | set(self._staged))

    # ------------------------------------------------------------------ journal rows

    def add_rows(self, batch: dict[str, list[tuple]]) -> bool:
        """Write the journal's batched rows (table -> rows) now, or with the current
        transition; kept for the next commit when the write fails."""
        for table, rows in batch.items():
            self._rows.setdefault(table, []).extend(rows)
        bus = self._bus
        if bus is None or not bus.dispatching:
            return self.commit()
        bus.on_idle = self._commit_idle
        return True

    def _on_order_update(self, up: OrderUpdate) -> None:
        if up.last_fill_qty > 0:
            self._rows.setdefault("fills", []).append(fill_row(up))
            self._bus.on_idle = self._commit_idle  # type: ignore[union-attr]

    def _on_trade_closed(self, ev: TradeClosed) -> None:
        self._rows.setdefault("trades", []).append(trade_row(ev.trade))
        self._bus.on_idle = self._commit_idle  # type: ignore[union-attr]

    # ------------------------------------------------------------------ commit

    def _commit_idle(self) -> None:
        """The bus's ``on_idle`` while something is staged: commit, then disarm; after a
        failure, retry at most every RETRY_S (each event would otherwise hit the disk)."""
        if self.failing and time.monotonic() < self._retry_at:
            return
        if self.commit() and self._bus is not None:
            self._bus.on_idle = None

    def commit(self) -> bool:
        """Write everything staged in one transaction. Never raises for a write error.

        Returns:
            True when nothing is left to write.
        """
        if self._closed:
            return False
        if not self._staged and not self._rows:
            return True
        staged = dict(self._staged)
        for key, producer in self._every.items():
            staged.setdefault(key, producer)
        docs = {key: producer() for key, producer in staged.items()}
        rows = self._rows
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, [(k, orjson.dumps(d)) for k, d in docs.items()])
                account = self.account
                for table, batch in rows.items():
                    conn.executemany(_ROW_SQL[table], [(account, *r) for r in batch])
                for name in (*docs, *rows):
                    crash_point(f"commit:{name}")
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # gone with the connection
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            self._on_failure(exc)
            return False
        self.commits += 1
        self._docs.update(docs)
        for key in staged:
            if self._staged.get(key) is staged[key]:
                del self._staged[key]
        self._rows = {}
        for name in (*docs, *rows):
            crash_point(f"committed:{name}")
        if self.failing:
            self.failing = False
            logger.warning("store writes recovered: %s", self.path)
        return True

    def _on_failure(self, exc: BaseException) -> None:
        self.write_errors += 1
        self._retry_at = time.monotonic() + RETRY_S
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failing:
            return
        self.failing = True
        message = (f"cannot save to {self.path} ({self.last_error}); new entries are refused"
                   " until it can")
        logger.error("%s", message)
        if self._bus is not None:
            self._bus.publish(EngineError(source="store", message=message, ts_ms=0))



def read_document(path: Path, key: str) -> Any:
    """One document of the store at ``path``, read-only (tools, tests); None when absent."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT body FROM store WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    return None if row is None else orjson.loads(row[0])
