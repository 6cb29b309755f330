"""The JOURNAL in PostgreSQL (``JOURNAL_URL=postgresql://user:password@host:5432/db``).

psycopg 3, one async connection per bot process, autocommit with an explicit transaction per
batch. Same tables and behaviour as SQLite (``core/journal_backend.py``); several bots (one per
account) share one database, each row carrying its ``account``. The schema is created under a
transaction-level advisory lock, so bots starting together do not race on ``CREATE TABLE``.

A lost connection (server restart, network) fails that write or query with ``JournalError``;
the next call connects again, so the journal's pending rows are written once the server is
back. No message, log line or exception text carries the password: ``describe()`` masks it
and driver messages are scrubbed of it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg

from core.journal_backend import (
    POSTGRES,
    SCHEMA_VERSION,
    JournalError,
    newer_schema,
)

_SCHEMA_LOCK = 0x64_6F_72_74_35  # pg_advisory_xact_lock key ("dort5")
CONNECT_TIMEOUT_S = 5


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")
        user = f"{parts.username}:***" if parts.username else ":***"
        return parts._replace(netloc=f"{user}@{netloc[2]}").geturl()
    except ValueError:
        return "(unparsable URL)"


class PostgresBackend:
    """The journal's tables in the PostgreSQL database at ``url``; rows tagged ``account``."""

    dialect = POSTGRES

    def __init__(self, url: str, account: str) -> None:
        self._url = url
        self._account = account
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._opened = False
        try:
            password = urlsplit(url).password or ""
        except ValueError:
            password = ""
        self._secrets = tuple(s for s in {password, unquote(password), quote(password)} if s)

    def describe(self) -> str:
        return f"JOURNAL_URL={masked_url(self._url)}"

    async def open(self) -> None:
        try:
            conn = await self._connect()
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version"
                                   " (version INTEGER NOT NULL)")
                cur = await conn.execute("SELECT MAX(version) FROM schema_version")
                row = await cur.fetchone()
                version = row[0] if row else None
                if version is not None and version > SCHEMA_VERSION:
                    raise newer_schema(self.describe(), version)
                await conn.execute(POSTGRES.schema())
                if version is None:
                    await conn.execute("INSERT INTO schema_version (version) VALUES (%s)",
                                       (SCHEMA_VERSION,))
            self._opened = True
        except JournalError:
            await self.close()
            raise
        except (psycopg.Error, OSError) as exc:
            await self.close()
            raise JournalError(
                f"cannot open journal {self.describe()}: {self._scrub(exc)}") from None

    async def execute_many(self, batch: dict[str, list[tuple]]) -> None:
        if not self._opened:
            raise JournalError(f"journal {self.describe()} is not open")
        account = self._account
        try:
            conn = await self._connect()
            async with conn.transaction(), conn.cursor() as cur:
                for table, rows in batch.items():
                    await cur.executemany(POSTGRES.insert(table), [(account, *r) for r in rows])
        except (psycopg.Error, OSError) as exc:
            await self._drop_if_broken()
            raise JournalError(self._scrub(exc)) from None

    async def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if not self._opened:
            raise JournalError(f"journal {self.describe()} is not open")
        try:
            conn = await self._connect()
            cur = await conn.execute(POSTGRES.sql(sql), params)
            return [tuple(row) for row in await cur.fetchall()]
        except (psycopg.Error, OSError) as exc:
            await self._drop_if_broken()
            raise JournalError(
                f"journal {self.describe()} query failed: {self._scrub(exc)}") from None

    async def close(self) -> None:
        self._opened = False
        await self._disconnect()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        """The open connection, connecting (again) when there is none or it was lost."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        return self._conn

    async def _drop_if_broken(self) -> None:
        conn = self._conn
        if conn is not None and (conn.broken or conn.closed):
            await self._disconnect()

    def _scrub(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}".strip()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())  # one line

