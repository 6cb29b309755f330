"""The outbox's SQLite file: pending messages (with their file bytes) and the dead letters.

* Pending rows are ordered by ``(priority, seq)``; the file bytes of a photo or document stay
  on disk (``data`` column) and are read back only when that message is sent, so the queue in
  memory holds metadata only.
* ``secure_delete`` is on and the WAL is truncated after a row with a file is deleted, so a
  delivered document (e.g. /dar's source export) leaves no readable copy in the database or its
  ``-wal`` file.
* Dead letters keep what was refused, why and when; not the file bytes (a refused document is
  usually too large to keep, and a chat message says it was skipped).

Every operation degrades to memory-only on a disk error (logged once per failure); the outbox
goes on sending.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, chat_id INTEGER NOT NULL, kind TEXT NOT NULL,
    text TEXT NOT NULL, data BLOB, filename TEXT NOT NULL, message_id INTEGER NOT NULL,
    markup TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    filename TEXT NOT NULL, size INTEGER NOT NULL, error TEXT NOT NULL,
    failed_ms INTEGER NOT NULL);
"""
_ADDED_COLUMNS = (  # schema 2: priority classes, notices, sizes, silent alerts
    ("priority", "INTEGER NOT NULL DEFAULT 1"),
    ("notice", "INTEGER NOT NULL DEFAULT 0"),
    ("size", "INTEGER NOT NULL DEFAULT 0"),
    ("silent", "INTEGER NOT NULL DEFAULT 0"),
)
_COLUMNS = ("seq, chat_id, kind, text, filename, message_id, markup, priority, notice, size, "
            "silent")


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One queued Bot API call.

    ``kind``: text | plain | photo | document | edit (``plain`` is a text sent without a parse
    mode). ``text`` is HTML (the caption for photo/document); ``data`` the file bytes, None
    while they are on disk; ``markup`` an inline keyboard as JSON or "". ``priority`` 0 =
    alert, 1 = reply (alerts go first). ``notice``: a message about the outbox itself (never
    triggers another notice). ``size``: file bytes. ``silent``: delivered without a sound
    (``disable_notification``; /notify's "silent").
    """

    seq: int
    chat_id: int
    kind: str
    text: str
    data: bytes | None = None
    filename: str = ""
    message_id: int = 0
    markup: str = ""
    priority: int = 1
    notice: bool = False
    size: int = 0
    silent: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message Telegram refused for good."""

    seq: int
    chat_id: int
    kind: str
    text: str
    filename: str
    size: int
    error: str
    failed_ms: int


class OutboxStore:
    """Pending rows and dead letters on disk; ``path`` None keeps nothing on disk."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA secure_delete=ON")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            for name, ddl in _ADDED_COLUMNS:
                if name not in columns:
                    db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {ddl}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db = db
        except (OSError, sqlite3.Error) as exc:
            logger.error("outbox %s cannot be opened (%s); pending messages are kept in memory "
                         "only", path, exc)

    @property
    def on_disk(self) -> bool:
        return self._db is not None

    def load(self) -> list[OutMessage]:
        """Pending messages in sending order, file bytes left on disk."""
        if self._db is None:
            return []
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox ORDER BY priority, seq").fetchall()
        return [OutMessage(seq, chat, kind, text, None, filename, mid, markup, prio,
                           bool(notice), size, bool(silent))
                for seq, chat, kind, text, filename, mid, markup, prio, notice, size, silent
                in rows]

    def add(self, msg: OutMessage) -> int | None:
        """The new row's seq, or None when the disk is unavailable."""
        if self._db is None:
            return None
        try:
            cur = self._db.execute(
                "INSERT INTO outbox (chat_id, kind, text, data, filename, message_id, markup,"
                " created_ms, priority, notice, size, silent)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (msg.chat_id, msg.kind, msg.text, msg.data, msg.filename, msg.message_id,
                 msg.markup, int(time.time() * 1000), msg.priority, int(msg.notice), msg.size,
                 int(msg.silent)))
            return cur.lastrowid
        except sqlite3.Error as exc:
            logger.error("outbox write failed (%s); message kept in memory only", exc)
            return None

    def data(self, seq: int) -> bytes | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT data FROM outbox WHERE seq = ?", (seq,)).fetchone()
        except sqlite3.Error as exc:
            logger.error("outbox read failed (%s)", exc)
            return None
        return None if row is None else row[0]

    def replace(self, seq: int, *, kind: str, data: bytes | None, filename: str,
                size: int) -> None:
        """Rewrite a pending row in place (a document shrunk into a zip, a photo re-sent as a
        document)."""
        if self._db is None:
            return
        try:
            self._db.execute("UPDATE outbox SET kind = ?, data = ?, filename = ?, size = ?"
                             " WHERE seq = ?", (kind, data, filename, size, seq))
        except sqlite3.Error as exc:
            logger.error("outbox update failed (%s)", exc)

    def delete(self, seq: int, *, had_data: bool = False) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            if had_data:  # leave no copy of the file in the WAL either
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logger.error("outbox delete failed (%s); the message may be sent again", exc)

    def bury(self, msg: OutMessage, error: str) -> None:
        """Move a pending row to the dead letters (without its file bytes)."""
        if self._db is None:
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute(
                    "INSERT OR REPLACE INTO dead_letter (seq, chat_id, kind, text, filename,"
                    " size, error, failed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (msg.seq, msg.chat_id, msg.kind, msg.text, msg.filename, msg.size, error,
                     int(time.time() * 1000)))
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (msg.seq,))
            if msg.size:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logger.error("outbox dead-letter write failed (%s)", exc)

    def dead_letters(self, limit: int = 20) -> list[DeadLetter]:
        """The newest dead letters, newest first."""
        if self._db is None:
            return []
        rows = self._db.execute(
            "SELECT seq, chat_id, kind, text, filename, size, error, failed_ms FROM dead_letter"
            " ORDER BY failed_ms DESC, seq DESC LIMIT ?", (limit,)).fetchall()
        return [DeadLetter(*row) for row in rows]

    def dead_count(self) -> int:
        if self._db is None:
            return 0
        return int(self._db.execute("SELECT COUNT(*) FROM dead_letter").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
