"""Where the JOURNAL's rows go: one small interface, two databases.

``JournalBackend`` is what ``core/journal.py`` needs from a database: ``open`` (create or check
the schema), ``execute_many`` (one transaction of batched rows), ``query`` and ``close``. Two
implementations: ``SqliteBackend`` here (aiosqlite, WAL; a file under DATA_DIR or in memory)
and ``PostgresBackend`` in ``core/journal_pg.py`` (psycopg 3; ``JOURNAL_URL``).

Both hold the same tables and columns (``schema``), and every row carries the ``account`` it
belongs to (setting ``ACCOUNT``): several bots, one per account, can share one PostgreSQL
database, and every query filters by the account. The SQL dialect differences live here and
only here: placeholders (``?`` vs ``%s``), the row id (``INTEGER PRIMARY KEY`` vs an identity
column), integer width (SQLite integers are 64-bit; PostgreSQL needs ``BIGINT`` for ms
timestamps and exchange ids), and "insert unless duplicate" (``INSERT OR IGNORE`` vs
``ON CONFLICT DO NOTHING``). No journal column is binary, so BLOB vs bytea does not arise.

Schema versions: 1 had no ``account`` column; 2 adds it. A version 1 SQLite journal is
migrated on open: its rows get the configured account.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosqlite

from core.events import ClosedTrade


class JournalError(Exception):
    """The journal database cannot be opened, written or read; the message names the file or
    ``JOURNAL_URL`` (never its password)."""


SCHEMA_VERSION = 2
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # safe as an SQL literal (migration default)

TRADE_FIELDS = tuple(f.name for f in dataclasses.fields(ClosedTrade))  # = trades columns
#: Columns each table's rows carry, in order (``account`` is added by the backend).
COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("ts_ms", "kind", "symbol", "payload"),
    "fills": ("ts_ms", "symbol", "client_order_id", "order_id", "trade_id", "side", "qty",
              "price", "commission", "commission_asset", "realized_pnl"),
    "trades": TRADE_FIELDS,
    "equity": ("ts_ms", "equity", "wallet_balance", "unrealized_pnl"),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id {id}, account TEXT NOT NULL, ts_ms {int} NOT NULL, kind TEXT NOT NULL, symbol TEXT,
    payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_account_id ON events (account, id);
CREATE TABLE IF NOT EXISTS trades (
    id {id}, account TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    entry_ts_ms {int} NOT NULL, exit_ts_ms {int} NOT NULL, entry_price TEXT NOT NULL,
    exit_price TEXT NOT NULL, quantity TEXT NOT NULL, gross_pnl TEXT NOT NULL, fees TEXT NOT NULL,
    funding TEXT NOT NULL, net_pnl TEXT NOT NULL, exit_reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS trades_account_exit_ts ON trades (account, exit_ts_ms);
CREATE TABLE IF NOT EXISTS fills (
    id {id}, account TEXT NOT NULL, ts_ms {int} NOT NULL, symbol TEXT NOT NULL,
    client_order_id TEXT NOT NULL, order_id {int} NOT NULL, trade_id {int},
    side TEXT NOT NULL, qty TEXT NOT NULL, price TEXT NOT NULL, commission TEXT NOT NULL,
    commission_asset TEXT NOT NULL, realized_pnl TEXT NOT NULL,
    UNIQUE (account, symbol, trade_id, client_order_id));
CREATE TABLE IF NOT EXISTS equity (
    id {id}, account TEXT NOT NULL, ts_ms {int} NOT NULL, equity TEXT NOT NULL,
    wallet_balance TEXT NOT NULL, unrealized_pnl TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS equity_account_ts ON equity (account, ts_ms);
"""


@dataclass(frozen=True)
class Dialect:
    """The SQL differences between the two databases."""

    name: str
    placeholder: str  # "?" or "%s"
    id_column: str  # the row id: rowid alias vs identity
    integer: str  # 64-bit integer type
    ignore_prefix: str  # INSERT ... that skips a duplicate (with ignore_suffix)
    ignore_suffix: str
    json_text: str  # {col}, {key}: a top-level field of a JSON text column, as text
    number: str  # {col}: a Decimal-string column as a number (for ordering)

    def schema(self) -> str:
        """The tables (``CREATE ... IF NOT EXISTS``; schema_version apart)."""
        return _SCHEMA.format(id=self.id_column, int=self.integer)

    def insert(self, table: str) -> str:
        """The INSERT of one ``table`` row: ``account`` first, then ``COLUMNS[table]``."""
        cols = ("account", *COLUMNS[table])
        head = self.ignore_prefix if table == "fills" else "INSERT INTO"
        tail = self.ignore_suffix if table == "fills" else ""
        marks = ", ".join([self.placeholder] * len(cols))
        return f"{head} {table} ({', '.join(cols)}) VALUES ({marks}){tail}"

    def sql(self, text: str) -> str:
        """A query written with ``?`` placeholders, in this dialect."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect("sqlite", "?", "INTEGER PRIMARY KEY", "INTEGER", "INSERT OR IGNORE INTO", "",
                 "json_extract({col}, '$.{key}')", "CAST({col} AS REAL)")
POSTGRES = Dialect("postgresql", "%s", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                   "BIGINT", "INSERT INTO", " ON CONFLICT DO NOTHING",
                   "(CAST({col} AS jsonb) ->> '{key}')", "CAST({col} AS NUMERIC)")


def newer_schema(where: str, version: int) -> JournalError:
    return JournalError(
        f"journal {where} has schema version {version}, newer than this bot's {SCHEMA_VERSION};"
        " upgrade the bot or use another journal"
    )


class JournalBackend(Protocol):
    """A journal database. Every method raises ``JournalError`` (naming the database) on a
    database failure; ``execute_many`` leaves nothing half-written."""

    dialect: Dialect

    def describe(self) -> str:
        """The database for messages: a path, ``(in memory)`` or the URL without password."""
        ...

    async def open(self) -> None:
        """Connect, create the tables or check and migrate them."""
        ...

    async def execute_many(self, batch: dict[str, list[tuple]]) -> None:
        """Insert ``COLUMNS[table]`` rows of each table (account added) in one transaction."""
        ...

    async def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of ``sql`` (written with ``?`` placeholders)."""
        ...

    async def close(self) -> None:
        """Close; idempotent."""
        ...


class SqliteBackend:
    """The journal in one SQLite file (WAL, ``synchronous=NORMAL``), or in memory (``path``
    None: backtests). ``busy_timeout_s``: how long a write waits for another connection's
    lock before failing."""

    dialect = SQLITE

    def __init__(self, path: Path | None, account: str, *, busy_timeout_s: float = 2.0) -> None:
        self._path = path
        self._account = account
        self._busy_timeout_s = busy_timeout_s
        self._conn: aiosqlite.Connection | None = None

    def describe(self) -> str:
        return "(in memory)" if self._path is None else str(self._path)

    async def open(self) -> None:
        target = ":memory:" if self._path is None else str(self._path)
        try:
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(target, timeout=self._busy_timeout_s,
                                           isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {self.describe()}: {exc}") from exc
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version"
                               " (version INTEGER NOT NULL)")
            rows = list(await conn.execute_fetchall("SELECT MAX(version) FROM schema_version"))
            version = rows[0][0]
            if version is not None and version > SCHEMA_VERSION:
                raise newer_schema(self.describe(), version)
            await conn.execute("BEGIN IMMEDIATE")
            if version == 1:  # no account column yet: the rows are this account's
                for table in COLUMNS:
                    await conn.execute(f"ALTER TABLE {table} ADD COLUMN account TEXT NOT NULL"
                                       f" DEFAULT '{self._account}'")
                await conn.execute("DELETE FROM schema_version")
            for statement in filter(str.strip, SQLITE.schema().split(";")):
                await conn.execute(statement)
            if version != SCHEMA_VERSION:
                await conn.execute("INSERT INTO schema_version (version) VALUES (?)",
                                   (SCHEMA_VERSION,))
            await conn.execute("COMMIT")
        except JournalError:
            await conn.close()
            raise
        except sqlite3.Error as exc:
            await conn.close()
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise JournalError(
                    f"journal {self.describe()} is not a valid SQLite database ({exc}); move"
                    " the file aside to start a new journal"
                ) from exc
            raise JournalError(f"cannot open journal {self.describe()}: {exc}") from exc
        self._conn = conn

    async def execute_many(self, batch: dict[str, list[tuple]]) -> None:
        conn = self._connection()
        account = self._account
        try:
            await conn.execute("BEGIN IMMEDIATE")
            for table, rows in batch.items():
                await conn.executemany(SQLITE.insert(table), [(account, *r) for r in rows])
            await conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            try:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the transaction is already gone; nothing was committed
            raise JournalError(f"{type(exc).__name__}: {exc}") from exc

    async def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self._connection()
        try:
            return [tuple(row) for row in await conn.execute_fetchall(sql, params)]
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.describe()} query failed: {exc}") from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.describe()} is not open")
        return self._conn
