"""The Telegram outbox: every message the bot sends, in order, through one sender task.

* Order: one FIFO queue across all chats; a message is retried until it is delivered or
  dropped before the next one is tried, so alerts arrive in the order they happened.
* Persistence: every queued message is a row in ``DATA_DIR/outbox.sqlite3`` (stdlib sqlite3,
  WAL) until Telegram accepted it, so a Telegram outage or a restart delays messages but loses
  none. A row is a few tens of microseconds to write and alerts come a handful per trade, never
  per tick, so the write happens inline.
* Flood limits: a token bucket per chat (about one message a second, short bursts allowed) and
  one for the whole bot (about 30 a second), see shared/telegram/NOTES.md. A 429 answer
  (``RetryAfter``) pauses the queue for ``retry_after`` seconds, then the same message is
  retried.
* Failures: ``NetworkError``/``TimedOut`` (Telegram or the network is down) back off
  exponentially and retry the same message; a timed-out send may have arrived, so after an
  outage a message can show up twice, never zero times. ``BadRequest`` (unparsable HTML,
  "message is not modified", ...) and ``Forbidden`` (the user blocked the bot) drop that one
  message, log it and continue.
* Sizes: texts over 4096 characters are split at line breaks, closing and reopening HTML tags
  around each cut; captions over 1024 characters go out as a separate text.

Callers build HTML with every interpolated value escaped (``handlers.i18n.Texts`` does it).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import sqlite3
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from telegram import InlineKeyboardMarkup, InputFile
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from utils.aio import cancel_and_wait
from utils.log_setup import redact

logger = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)[^>]*>")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, chat_id INTEGER NOT NULL, kind TEXT NOT NULL,
    text TEXT NOT NULL, data BLOB, filename TEXT NOT NULL, message_id INTEGER NOT NULL,
    markup TEXT NOT NULL, created_ms INTEGER NOT NULL);
"""
_COLUMNS = "seq, chat_id, kind, text, data, filename, message_id, markup"


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One queued Bot API call. ``kind``: text | photo | document | edit.

    ``text`` is HTML (the caption for photo/document); ``data`` the file bytes; ``markup`` an
    inline keyboard as JSON (``InlineKeyboardMarkup.to_json()``) or "".
    """

    seq: int
    chat_id: int
    kind: str
    text: str
    data: bytes | None = None
    filename: str = ""
    message_id: int = 0
    markup: str = ""


def split_html(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split HTML text into parts of at most ``limit`` characters.

    Cuts at line breaks where possible, else inside a line but never inside a tag or an
    ``&entity;``. Tags open at a cut are closed at the end of the part and reopened at the start
    of the next one, so every part is valid Telegram HTML on its own.
    """
    if len(text) <= limit:
        return [text]
    reserve = 200  # room for the closing and reopening tags
    budget = max(limit - reserve, 100)
    parts: list[str] = []
    opened: list[tuple[str, str]] = []  # (name, full opening tag) still open at the cut
    rest = text
    while rest:
        prefix = "".join(tag for _, tag in opened)
        room = budget - len(prefix)
        if len(rest) <= room:
            chunk, rest = rest, ""
        else:
            cut = rest.rfind("\n", 0, room)
            if cut <= 0:
                cut = _safe_cut(rest, room)
            else:
                cut += 1  # keep the newline with the first part
            chunk, rest = rest[:cut], rest[cut:]
        stack = list(opened)
        for m in _TAG.finditer(chunk):
            name = m.group(2).lower()
            if m.group(1):
                for i in range(len(stack) - 1, -1, -1):
                    if stack[i][0] == name:
                        del stack[i]
                        break
            else:
                stack.append((name, m.group(0)))
        closing = "".join(f"</{name}>" for name, _ in reversed(stack))
        body = (prefix + chunk).rstrip("\n") if not stack else prefix + chunk
        parts.append(body + closing)
        opened = stack
    return [p for p in parts if p.strip()]


def _safe_cut(text: str, room: int) -> int:
    """An index <= room that is not inside a tag or an entity (at least 1)."""
    cut = room
    lt, gt = text.rfind("<", 0, cut), text.rfind(">", 0, cut)
    if lt > gt:
        cut = lt
    amp, semi = text.rfind("&", 0, cut), text.rfind(";", 0, cut)
    if amp > semi and cut - amp <= 10:
        cut = amp
    return max(cut, 1)


def _retry_after_s(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class _Bucket:
    """Token bucket: ``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def wait_s(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class _Store:
    """The pending rows on disk; every operation degrades to memory-only on a disk error."""

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
            db.executescript(_SCHEMA)
            self._db = db
        except (OSError, sqlite3.Error) as exc:
            logger.error("outbox %s cannot be opened (%s); pending messages are kept in memory "
                         "only", path, exc)

    def load(self) -> list[OutMessage]:
        if self._db is None:
            return []
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY seq").fetchall()
        return [OutMessage(*row) for row in rows]

    def add(self, msg: OutMessage) -> int | None:
        if self._db is None:
            return None
        try:
            cur = self._db.execute(
                "INSERT INTO outbox (chat_id, kind, text, data, filename, message_id, markup,"
                " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (msg.chat_id, msg.kind, msg.text, msg.data, msg.filename, msg.message_id,
                 msg.markup, int(time.time() * 1000)))
            return cur.lastrowid
        except sqlite3.Error as exc:
            logger.error("outbox write failed (%s); message kept in memory only", exc)
            return None

    def delete(self, seq: int) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        except sqlite3.Error as exc:
            logger.error("outbox delete failed (%s); the message may be sent again", exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class Outbox:
    """Ordered, persistent, rate-limited sending through a PTB ``Bot``.

    Args:
        bot: a ``telegram.Bot`` (or anything with its send_message / send_photo /
            send_document / edit_message_text coroutines).
        path: SQLite file for pending messages; None keeps them in memory only.
        per_chat_rate / per_chat_burst: messages a second per chat, and the burst allowed.
        total_rate / total_burst: the same for the whole bot.
        backoff_initial_s / backoff_max_s: waits between retries after network errors
            (doubling).
        clock / sleep: monotonic seconds and the matching sleep (tests pass fakes).
    """

    def __init__(
        self,
        bot: Any,
        path: Path | None,
        *,
        per_chat_rate: float = 1.0,
        per_chat_burst: float = 5.0,
        total_rate: float = 25.0,
        total_burst: float = 25.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._bot = bot
        self._store = _Store(path)
        self._queue: deque[OutMessage] = deque(self._store.load())
        self._seq = max((m.seq for m in self._queue), default=0)
        self._rate = (per_chat_rate, per_chat_burst)
        self._total = _Bucket(total_rate, total_burst, clock())
        self._chats: dict[int, _Bucket] = {}
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._clock = clock
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.sent = 0
        self.dropped = 0
        self.retries = 0
        self.last_error = ""
        if self._queue:
            logger.info("outbox: %d messages pending from before", len(self._queue))

    # ------------------------------------------------------------------ queueing (sync)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def pending_messages(self) -> list[OutMessage]:
        return list(self._queue)

    def _put(self, chat_id: int, kind: str, text: str, **fields: Any) -> None:
        msg = OutMessage(0, int(chat_id), kind, text, **fields)
        seq = self._store.add(msg)
        if seq is None:
            self._seq += 1
            seq = self._seq
        else:
            self._seq = max(self._seq, seq)
        self._queue.append(OutMessage(seq, msg.chat_id, kind, text, **fields))
        self._idle.clear()
        self._wake.set()

    def send_text(self, chat_id: int, text: str, *,
                  markup: InlineKeyboardMarkup | None = None) -> None:
        """Queue an HTML text (split when longer than 4096); the keyboard goes on the last
        part."""
        if not text.strip():
            return  # Telegram refuses empty messages
        parts = split_html(text)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            self._put(chat_id, "text", part,
                      markup=markup.to_json() if markup is not None and last else "")

    def broadcast(self, chat_ids: Iterable[int], text: str) -> None:
        for chat_id in chat_ids:
            self.send_text(chat_id, text)

    def send_photo(self, chat_id: int, png: bytes, caption: str = "", *,
                   filename: str = "chart.png") -> None:
        if len(caption) > MAX_CAPTION:
            self.send_text(chat_id, caption)
            caption = ""
        self._put(chat_id, "photo", caption, data=png, filename=filename)

    def send_document(self, chat_id: int, data: bytes, filename: str, caption: str = "") -> None:
        if len(caption) > MAX_CAPTION:
            self.send_text(chat_id, caption)
            caption = ""
        self._put(chat_id, "document", caption, data=data, filename=filename)

    def edit_text(self, chat_id: int, message_id: int, text: str, *,
                  markup: InlineKeyboardMarkup | None = None) -> None:
        """Queue an edit of a message the bot sent (e.g. a confirmation prompt)."""
        self._put(chat_id, "edit", split_html(text)[0], message_id=int(message_id),
                  markup=markup.to_json() if markup is not None else "")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="telegram-outbox")

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far is sent or dropped; False on timeout."""
        if not self._queue:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return not self._queue
        return True

    async def stop(self) -> None:
        """Stop the sender; what is still pending stays in the database for the next start."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._queue:
            logger.warning("outbox stopped with %d messages pending", len(self._queue))
        self._store.close()

    # ------------------------------------------------------------------ sending

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            msg = self._queue[0]
            await self._throttle(msg.chat_id)
            try:
                await self._deliver(msg)
            except RetryAfter as exc:
                wait = _retry_after_s(exc)
                self.retries += 1
                self.last_error = "RetryAfter"
                logger.warning("telegram flood control: waiting %.1f s", wait)
                bucket = self._chats.get(msg.chat_id)
                if bucket is not None:
                    bucket.tokens = 0
                await self._sleep(wait)
                continue
            except (BadRequest, Forbidden, ChatMigrated) as exc:
                self._drop(msg, exc)
            except (NetworkError, InvalidToken) as exc:  # TimedOut is a NetworkError
                failures += 1
                self.retries += 1
                self.last_error = type(exc).__name__
                initial, most = self._backoff
                wait = min(most, initial * 2 ** (failures - 1))
                log = logger.warning if failures == 1 else logger.debug
                log("telegram send failed (%s), retrying in %.1f s, %d pending",
                    redact(f"{type(exc).__name__}: {exc}"), wait, len(self._queue))
                await self._sleep(wait)
                continue
            except TelegramError as exc:
                self._drop(msg, exc)
            except Exception as exc:  # a bug in a message; never block the queue on it
                logger.exception("outbox could not send message %d", msg.seq)
                self._drop(msg, exc)
            else:
                if failures:
                    logger.info("telegram reachable again after %d failed attempts", failures)
                failures = 0
                self.sent += 1
            self._queue.popleft()
            self._store.delete(msg.seq)

    def _drop(self, msg: OutMessage, exc: Exception) -> None:
        self.dropped += 1
        self.last_error = type(exc).__name__
        logger.error("telegram refused message %d to chat %d, dropped: %s", msg.seq, msg.chat_id,
                     redact(f"{type(exc).__name__}: {exc}"))

    async def _throttle(self, chat_id: int) -> None:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            bucket = self._chats[chat_id] = _Bucket(*self._rate, self._clock())
        while True:
            now = self._clock()
            wait = max(bucket.wait_s(now), self._total.wait_s(now))
            if wait <= 0:
                break
            await self._sleep(wait)
        bucket.take()
        self._total.take()

    async def _deliver(self, msg: OutMessage) -> None:
        bot = self._bot
        markup = (InlineKeyboardMarkup.de_json(json.loads(msg.markup), None)
                  if msg.markup else None)
        if msg.kind == "text":
            await bot.send_message(chat_id=msg.chat_id, text=msg.text, parse_mode=ParseMode.HTML,
                                   reply_markup=markup)
        elif msg.kind == "photo":
            await bot.send_photo(chat_id=msg.chat_id, photo=InputFile(msg.data or b"",
                                                                      filename=msg.filename),
                                 caption=msg.text or None, parse_mode=ParseMode.HTML)
        elif msg.kind == "document":
            await bot.send_document(chat_id=msg.chat_id,
                                    document=InputFile(msg.data or b"", filename=msg.filename),
                                    caption=msg.text or None, parse_mode=ParseMode.HTML)
        elif msg.kind == "edit":
            await bot.edit_message_text(text=msg.text, chat_id=msg.chat_id,
                                        message_id=msg.message_id, parse_mode=ParseMode.HTML,
                                        reply_markup=markup)
        else:
            raise ValueError(f"unknown outbox message kind {msg.kind!r}")


def escape(value: Any) -> str:
    """``html.escape`` for Telegram's HTML parse mode (quotes left alone)."""
    return html.escape(str(value), quote=False)
