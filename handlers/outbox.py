"""The Telegram outbox: every message the bot sends, through one sender task.

* Order: two classes, alerts before replies (an entry alert never waits behind a burst of
  command replies); first in, first out within a class. A message is retried until it is
  delivered or set aside before the next one of its class is tried.
* Persistence: every queued message is a row in ``DATA_DIR/outbox.sqlite3`` (stdlib sqlite3,
  WAL; ``handlers/outbox_store.py``) until Telegram accepted it, so an outage or a restart
  delays messages but loses none. File bytes stay on disk until sent: the queue in memory holds
  metadata only and is bounded (``max_pending``). The file is validated when the outbox opens:
  a damaged one raises ``PersistError`` (the start stops, the file and its queue are kept).
* Flood limits: a token bucket per chat (about one message a second, short bursts allowed) and
  one for the whole bot (about 30 a second), see shared/telegram/NOTES.md. A 429 answer
  (``RetryAfter``) pauses the queue for ``retry_after`` seconds, then the same message is
  retried.
* Transient failures (``NetworkError``/``TimedOut``, HTTP 5xx, an invalid-token answer while
  Telegram is confused) back off exponentially and retry the same message; a timed-out send
  may have arrived, so after an outage a message can show up twice, never zero times.
* Permanent failures never block the queue. A document or photo too large for Telegram (HTTP
  413, "file is too big") is zipped, or a photo re-sent as a document, and tried once more;
  HTML Telegram cannot parse is re-sent as plain text; "message is not modified" counts as
  delivered. Anything else refused for good (400, 403, a migrated chat, or a file still too
  large) goes to the dead letters (kept on disk, counted in /health), the chat gets a one-line
  note for a skipped file, the admins get an alert, and the queue goes on.
* Sizes: texts over 4096 characters are split at line breaks, closing and reopening HTML tags
  around each cut; captions over 1024 characters go out as a separate text.

Callers build HTML with every interpolated value escaped (``handlers.i18n.Texts`` does it).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import warnings
import zipfile
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from enum import IntEnum
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
)
from telegram.warnings import PTBDeprecationWarning

from handlers.outbox_html import MAX_CAPTION, MAX_TEXT, escape, split_html, to_plain
from handlers.outbox_store import DeadLetter, OutboxStore, OutMessage
from utils.aio import cancel_and_wait
from utils.log_setup import redact

__all__ = ["MAX_CAPTION", "MAX_TEXT", "DeadLetter", "OutMessage", "Outbox", "Priority", "escape",
           "split_html"]

logger = logging.getLogger(__name__)

MAX_PENDING = 2000  # messages queued in memory before the oldest replies are set aside

_TOO_LARGE = ("too large", "too big", "(413)")
_UNPARSABLE = ("can't parse", "can't find end", "unsupported start tag", "unclosed start tag",
               "unexpected end tag")


class Priority(IntEnum):
    """Sending class: lower goes first."""

    ALERT = 0
    REPLY = 1


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
        # a hair under one token is one token: the float sum of refills can stop 1e-16 short,
        # and a wait of 1e-17 s would not move a clock of a few seconds
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


def _message_of(exc: BaseException) -> str:
    return str(getattr(exc, "message", "") or exc).lower()


def _too_large(exc: BaseException) -> bool:
    return isinstance(exc, (BadRequest, NetworkError)) and any(
        marker in _message_of(exc) for marker in _TOO_LARGE)


def _zip_one(filename: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(filename, data)
    return buf.getvalue()


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
        max_pending: messages queued at most; past it the oldest reply (else the oldest alert)
            goes to the dead letters.
        on_dead_letter: called with each message set aside and the reason (the host alerts the
            admins); never for a notice about the outbox itself.
        skipped_note: ``(filename, megabytes) -> HTML`` told to a chat whose file was too large
            to send (the host passes the translated text).
        clock / sleep: monotonic seconds and the matching sleep (tests pass fakes).

    Raises:
        core.persisted.PersistError: ``path`` is not a usable outbox file (names file, row and
            field; nothing was changed).
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
        max_pending: int = MAX_PENDING,
        on_dead_letter: Callable[[OutMessage, str], None] | None = None,
        skipped_note: Callable[[str, str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._bot = bot
        self._store = OutboxStore(path)
        self._queues: tuple[deque[OutMessage], deque[OutMessage]] = (deque(), deque())
        for msg in self._store.load():
            self._queues[min(msg.priority, Priority.REPLY)].append(msg)
        self._seq = max((m.seq for q in self._queues for m in q), default=0)
        self._rate = (per_chat_rate, per_chat_burst)
        self._total = _Bucket(total_rate, total_burst, clock())
        self._chats: dict[int, _Bucket] = {}
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._max_pending = max(int(max_pending), 1)
        self.on_dead_letter = on_dead_letter
        self._skipped_note = skipped_note or (
            lambda name, mb: f"{escape(name)} ({mb} MB) is too large for Telegram and was not "
                             "sent.")
        self._clock = clock
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.sent = 0
        self.dropped = 0  # set aside (dead letters) since start
        self.retries = 0
        self.last_error = ""
        self._dead_before = self._store.dead_count()
        if self.pending:
            logger.info("outbox: %d messages pending from before", self.pending)

    # ------------------------------------------------------------------ queueing (sync)

    @property
    def pending(self) -> int:
        return len(self._queues[0]) + len(self._queues[1])

    @property
    def dead_letters(self) -> int:
        """Messages set aside for good, this run and before (on disk)."""
        return self._dead_before + self.dropped if self._store.on_disk else self.dropped

    def recent_dead_letters(self, limit: int = 5) -> list[DeadLetter]:
        return self._store.dead_letters(limit)

    def pending_messages(self) -> list[OutMessage]:
        """Pending messages in sending order."""
        return [*self._queues[0], *self._queues[1]]

    def _put(self, chat_id: int, kind: str, text: str, *, priority: Priority = Priority.REPLY,
             notice: bool = False, silent: bool = False, **fields: Any) -> None:
        data = fields.get("data")
        msg = OutMessage(0, int(chat_id), kind, text, priority=int(priority), notice=notice,
                         size=len(data) if data else 0, silent=silent, **fields)
        seq = self._store.add(msg)
        if seq is None:  # memory only: the bytes stay with the message
            self._seq += 1
            queued = replace(msg, seq=self._seq)
        else:  # on disk until sent
            self._seq = max(self._seq, seq)
            queued = replace(msg, seq=seq, data=None)
        self._queues[min(int(priority), Priority.REPLY)].append(queued)
        if self.pending > self._max_pending:
            victim_queue = self._queues[Priority.REPLY] or self._queues[Priority.ALERT]
            self._set_aside(victim_queue.popleft(), "outbox full")
        self._idle.clear()
        self._wake.set()

    def send_text(self, chat_id: int, text: str, *,
                  markup: InlineKeyboardMarkup | None = None,
                  priority: Priority = Priority.REPLY, silent: bool = False) -> None:
        """Queue an HTML text (split when longer than 4096); the keyboard goes on the last
        part."""
        if not text.strip():
            return  # Telegram refuses empty messages
        parts = split_html(text)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            self._put(chat_id, "text", part, priority=priority, silent=silent,
                      markup=markup.to_json() if markup is not None and last else "")

    def broadcast(self, chat_ids: Iterable[int], text: str, *,
                  priority: Priority = Priority.ALERT, notice: bool = False,
                  silent: bool = False) -> None:
        """The same alert to every chat (alerts go before replies); ``silent`` ones make no
        sound on the phone."""
        for chat_id in chat_ids:
            for part in split_html(text) if text.strip() else ():
                self._put(chat_id, "text", part, priority=priority, notice=notice, silent=silent)

    def send_photo(self, chat_id: int, png: bytes, caption: str = "", *,
                   filename: str = "chart.png", priority: Priority = Priority.REPLY,
                   silent: bool = False) -> None:
        if len(caption) > MAX_CAPTION:
            self.send_text(chat_id, caption, priority=priority, silent=silent)
            caption = ""
        self._put(chat_id, "photo", caption, data=png, filename=filename, priority=priority,
                  silent=silent)

    def send_document(self, chat_id: int, data: bytes, filename: str, caption: str = "", *,
                      priority: Priority = Priority.REPLY) -> None:
        if len(caption) > MAX_CAPTION:
            self.send_text(chat_id, caption, priority=priority)
            caption = ""
        self._put(chat_id, "document", caption, data=data, filename=filename, priority=priority)

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
        """Wait until everything queued so far is sent or set aside; False on timeout."""
        if not self.pending:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return not self.pending
        return True

    async def stop(self) -> None:
        """Stop the sender; what is still pending stays in the database for the next start."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self.pending:
            logger.warning("outbox stopped with %d messages pending", self.pending)
        self._store.close()

    # ------------------------------------------------------------------ sending

    def _head(self) -> tuple[deque[OutMessage], OutMessage] | None:
        for queue in self._queues:
            if queue:
                return queue, queue[0]
        return None

    async def _run(self) -> None:
        failures = 0
        while True:
            head = self._head()
            if head is None:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            queue, msg = head
            await self._throttle(msg.chat_id)
            if not queue or queue[0] is not msg:
                continue  # set aside while we waited (outbox full)
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
            except Exception as exc:  # noqa: BLE001  classified below; a bug never blocks
                if self._transient(exc):
                    failures += 1
                    self.retries += 1
                    self.last_error = type(exc).__name__
                    initial, most = self._backoff
                    wait = min(most, initial * 2 ** (failures - 1))
                    log = logger.warning if failures == 1 else logger.debug
                    log("telegram send failed (%s), retrying in %.1f s, %d pending",
                        redact(f"{type(exc).__name__}: {exc}"), wait, self.pending)
                    await self._sleep(wait)
                    continue
                if self._recover(queue, msg, exc):
                    continue
                self._set_aside(queue.popleft(), f"{type(exc).__name__}: {exc}")
                continue
            if failures:
                logger.info("telegram reachable again after %d failed attempts", failures)
            failures = 0
            self.sent += 1
            queue.popleft()
            self._store.delete(msg.seq, had_data=bool(msg.size))

    @staticmethod
    def _transient(exc: Exception) -> bool:
        """Network trouble, 5xx and the like: retry the same message later."""
        if isinstance(exc, (BadRequest, Forbidden, ChatMigrated)) or _too_large(exc):
            return False
        return isinstance(exc, (NetworkError, InvalidToken))  # TimedOut is a NetworkError

    def _recover(self, queue: deque[OutMessage], msg: OutMessage, exc: Exception) -> bool:
        """Turn a permanently refused message into one Telegram may accept; True when the
        queue head was replaced (or the message counts as delivered)."""
        text = _message_of(exc)
        if isinstance(exc, BadRequest) and "message is not modified" in text:
            queue.popleft()
            self._store.delete(msg.seq)
            self.sent += 1
            return True
        if msg.kind in ("text", "edit") and isinstance(exc, BadRequest) and any(
                marker in text for marker in _UNPARSABLE):
            logger.warning("telegram could not parse message %d; re-sending it as plain text",
                           msg.seq)
            queue[0] = OutMessage(msg.seq, msg.chat_id, "plain", to_plain(msg.text),
                                  priority=msg.priority, notice=msg.notice, silent=msg.silent)
            self._store.replace(msg.seq, kind="plain", data=None, filename="", size=0)
            return True
        if msg.kind in ("photo", "document") and _too_large(exc):
            data = self._data(msg)
            if msg.kind == "photo" and data is not None:
                kind, filename = "document", msg.filename
            elif data is not None and not msg.filename.lower().endswith(".zip"):
                kind, filename, data = "document", msg.filename + ".zip", _zip_one(
                    msg.filename or "file", data)
            else:
                self._note_skipped(msg)
                return False
            logger.warning("telegram refused %s %d as too large (%d bytes); trying %s (%d bytes)",
                           msg.kind, msg.seq, msg.size, filename, len(data))
            in_memory = not self._store.on_disk
            queue[0] = OutMessage(msg.seq, msg.chat_id, kind, msg.text,
                                  data if in_memory else None, filename, priority=msg.priority,
                                  size=len(data))
            self._store.replace(msg.seq, kind=kind, data=data, filename=filename,
                                size=len(data))
            return True
        return False

    def _note_skipped(self, msg: OutMessage) -> None:
        megabytes = f"{msg.size / 1_000_000:.1f}"
        self._put(msg.chat_id, "text", self._skipped_note(msg.filename or msg.kind, megabytes),
                  priority=Priority(min(msg.priority, 1)), notice=True)

    def _set_aside(self, msg: OutMessage, reason: str) -> None:
        self.dropped += 1
        self.last_error = reason.split(":", 1)[0]
        logger.error("telegram message %d to chat %d set aside: %s", msg.seq, msg.chat_id,
                     redact(reason))
        self._store.bury(msg, redact(reason)[:500])
        if self.on_dead_letter is not None and not msg.notice:
            try:
                self.on_dead_letter(msg, redact(reason))
            except Exception:  # noqa: BLE001  a notice must never stop the sender
                logger.exception("dead-letter notice failed")

    def _data(self, msg: OutMessage) -> bytes | None:
        return msg.data if msg.data is not None else self._store.data(msg.seq)

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
        quiet = {"disable_notification": True} if msg.silent else {}
        if msg.kind == "text":
            await bot.send_message(chat_id=msg.chat_id, text=msg.text, parse_mode=ParseMode.HTML,
                                   reply_markup=markup, **quiet)
        elif msg.kind == "plain":
            await bot.send_message(chat_id=msg.chat_id, text=msg.text, reply_markup=markup,
                                   **quiet)
        elif msg.kind == "photo":
            await bot.send_photo(chat_id=msg.chat_id,
                                 photo=InputFile(self._data(msg) or b"", filename=msg.filename),
                                 caption=msg.text or None, parse_mode=ParseMode.HTML, **quiet)
        elif msg.kind == "document":
            await bot.send_document(chat_id=msg.chat_id,
                                    document=InputFile(self._data(msg) or b"",
                                                       filename=msg.filename),
                                    caption=msg.text or None, parse_mode=ParseMode.HTML)
        elif msg.kind == "edit":
            await bot.edit_message_text(text=msg.text, chat_id=msg.chat_id,
                                        message_id=msg.message_id, parse_mode=ParseMode.HTML,
                                        reply_markup=markup)
        else:
            raise ValueError(f"unknown outbox message kind {msg.kind!r}")
