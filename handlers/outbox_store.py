"""The outbox's SQLite file: pending messages (with their file bytes) and the dead letters.

* Pending rows are ordered by ``(priority, seq)``; the file bytes of a photo or document stay
  on disk (``data`` column) and are read back only when that message is sent, so the queue in
  memory holds metadata only.
* ``secure_delete`` is on and the WAL is truncated after a row with a file is deleted, so a
  delivered document (e.g. /dar's source export) leaves no readable copy in the database or its
  ``-wal`` file.
* Dead letters keep what was refused, why and when; not the file bytes (a refused document is
  usually too large to keep, and a chat message says it was skipped).

Opening validates the file like the store of record: a file that is not a usable SQLite
database, a newer schema (``user_version``) or a pending or dead-letter row with an invalid
field (unknown kind, priority not 0/1, a photo without its bytes, markup that is not a JSON
object, ...) stops the start with ``PersistError`` naming the file, the row and the field, and
the file is left as it is: a queued alert is never dropped because its file could not be read.
Once open, every operation degrades to memory-only on a disk error (disk full, I/O error;
logged once per failure) and the outbox goes on sending: stopping a running bot over an alert
would be worse than the alert living in memory until it is sent.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.persisted import Fields, PersistError

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
_DEAD_COLUMNS = "seq, chat_id, kind, text, filename, size, error, failed_ms"
KINDS = ("text", "plain", "photo", "document", "edit")
_FILE_KINDS = ("photo", "document")
_MAX_TEXT = 1_000_000  # far above Telegram's 4,096 characters: only a damaged row is longer
_MIN_CHAT = -(2**63)


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
        """Open (or create) the file and validate every row in it.

        Raises:
            core.persisted.PersistError: the file cannot be opened, is not a usable SQLite
                database, has a newer schema or an invalid row (names file, row and field;
                nothing was changed).
        """
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(path, exc) from None
        try:
            _open(db, path)
        except BaseException:
            db.close()
            raise
        self._db = db

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
                in rows]  # validated when the file was opened

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


def _unusable(path: Path, exc: BaseException) -> PersistError:
    return PersistError(f"{path}: field '(database)' is not a usable SQLite database ({exc});"
                        " fix it or move the file aside, then restart (nothing was changed)")


def _open(db: sqlite3.Connection, path: Path) -> None:
    """Check the schema version, create or migrate the tables and validate every row, in one
    transaction (rolled back when a row is invalid)."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise _unusable(path, exc) from None
    if version > SCHEMA_VERSION:
        Fields({}, str(path)).fail("user_version", f"is {version}, newer than this bot's"
                                                   f" {SCHEMA_VERSION}: upgrade the bot")
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA secure_delete=ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            for name, ddl in _ADDED_COLUMNS:
                if name not in columns:
                    db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {ddl}")
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            _validate(db, path)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise _unusable(path, exc) from None


def _validate(db: sqlite3.Connection, path: Path) -> None:
    """Every pending row and dead letter has fields of the right type and range.

    Raises:
        core.persisted.PersistError: names the file, the table, the row's seq and the field.
    """
    names = [*_COLUMNS.split(", "), "has_data"]
    for row in db.execute(f"SELECT {_COLUMNS}, data IS NOT NULL FROM outbox"):
        doc = dict(zip(names, row, strict=True))
        f = Fields(doc, f"{path} [outbox seq {doc['seq']}]")
        kind = _common(f)
        f.int_("message_id", maximum=2**63 - 1)
        if kind == "edit" and not doc["message_id"]:
            f.fail("message_id", "is 0 for an edit")
        f.int_("priority", maximum=1)
        f.int_("notice", maximum=1)
        f.int_("silent", maximum=1)
        if kind in _FILE_KINDS and not doc["has_data"]:
            f.fail("data", f"is missing for a {kind}")
        markup = f.str_("markup", max_len=_MAX_TEXT)
        if markup and not isinstance(_json_or_none(markup), dict):
            f.fail("markup", "is not a JSON object (an inline keyboard)")
    dead_names = _DEAD_COLUMNS.split(", ")
    for row in db.execute(f"SELECT {_DEAD_COLUMNS} FROM dead_letter"):
        doc = dict(zip(dead_names, row, strict=True))
        f = Fields(doc, f"{path} [dead_letter seq {doc['seq']}]")
        _common(f)
        f.str_("error", max_len=_MAX_TEXT)
        f.int_("failed_ms", maximum=2**63 - 1)


def _common(f: Fields) -> str:
    """The fields both tables share; the message kind."""
    f.int_("seq", minimum=1, maximum=2**63 - 1)
    chat = f.int_("chat_id", minimum=_MIN_CHAT, maximum=2**63 - 1)
    if not chat:
        f.fail("chat_id", "is 0")
    kind = f.str_("kind")
    if kind not in KINDS:
        f.fail("kind", f"is {kind[:20]!r}, not one of {', '.join(KINDS)}")
    f.str_("text", max_len=_MAX_TEXT)
    f.str_("filename", max_len=_MAX_TEXT)
    f.int_("size", maximum=2**63 - 1)
    return kind


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
