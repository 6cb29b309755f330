"""The outbox: order, persistence, flood control, failure handling and splitting.

Most tests drive it with a scripted bot (a fake at the Bot API port: it records calls and raises
the PTB exceptions a real bot raises) and a fake clock, so waits are measured, not slept. The
last tests use the real PTB ``Bot`` against the fake Bot API server (429 with retry_after, HTTP
500 outage).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections import deque
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from core.persisted import PersistError
from handlers.outbox import MAX_CAPTION, MAX_TEXT, Outbox, split_html
from tests.conftest import eventually
from tests.fakes.telegram import FakeTelegram, _balanced_html

TOKEN = "6100200300:AAFt3stT0ken_abcdefghijklmnopqrstuvw"

# PTB itself reads RetryAfter.retry_after as an int while building the exception (v22 migration)
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")




class FakeTime:
    """A clock and the matching sleep: sleeping moves the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class ScriptedBot:
    """Records delivered calls; raises the queued exceptions first, one per call."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = deque(errors)
        self.delivered: list[tuple[str, int, str]] = []
        self.calls = 0
        self.kwargs: list[dict] = []

    async def _call(self, method: str, chat_id: int, text: str, **kwargs) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.errors:
            raise self.errors.popleft()
        self.delivered.append((method, chat_id, text))
        self.kwargs.append(kwargs)

    async def send_message(self, *, chat_id, text, **kw):
        await self._call("text", chat_id, text, **kw)

    async def send_photo(self, *, chat_id, photo, caption=None, **kw):
        await self._call("photo", chat_id, caption or "", photo=photo, **kw)

    async def send_document(self, *, chat_id, document, caption=None, **kw):
        await self._call("document", chat_id, caption or "", document=document, **kw)

    async def edit_message_text(self, *, text, chat_id, message_id, **kw):
        await self._call("edit", chat_id, text, message_id=message_id, **kw)


def make(bot, path: Path | None = None, time: FakeTime | None = None, **kw) -> Outbox:
    time = time or FakeTime()
    kw.setdefault("per_chat_rate", 1000)
    kw.setdefault("per_chat_burst", 1000)
    return Outbox(bot, path, clock=time.clock, sleep=time.sleep, **kw)


async def run_until_sent(outbox: Outbox) -> None:
    await outbox.start()
    try:
        assert await outbox.drain(3.0)
    finally:
        await outbox.stop()


async def test_messages_go_out_in_order_across_chats():
    bot = ScriptedBot()
    outbox = make(bot)
    for i in range(10):
        outbox.send_text(100 + i % 3, f"m{i}")
    await run_until_sent(outbox)
    assert [text for _, _, text in bot.delivered] == [f"m{i}" for i in range(10)]
    assert [chat for _, chat, _ in bot.delivered] == [100 + i % 3 for i in range(10)]
    assert outbox.sent == 10 and outbox.pending == 0


async def test_retry_after_pauses_for_the_given_time_then_resends_the_same_message():
    time = FakeTime()
    bot = ScriptedBot(RetryAfter(7))
    outbox = make(bot, time=time)
    outbox.send_text(1, "first")
    outbox.send_text(1, "second")
    await run_until_sent(outbox)
    assert 7.0 in time.sleeps
    assert [t for _, _, t in bot.delivered] == ["first", "second"]
    assert bot.calls == 3 and outbox.retries == 1 and outbox.dropped == 0


async def test_network_failures_back_off_exponentially_and_lose_nothing():
    time = FakeTime()
    errors = [NetworkError("down"), TimedOut(), NetworkError("down"), NetworkError("down"),
              NetworkError("down"), NetworkError("down")]
    bot = ScriptedBot(*errors)
    outbox = make(bot, time=time, backoff_initial_s=0.5, backoff_max_s=4.0)
    for i in range(3):
        outbox.send_text(5, f"alert {i}")
    await run_until_sent(outbox)
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # doubling, capped
    assert [t for _, _, t in bot.delivered] == ["alert 0", "alert 1", "alert 2"]


async def test_bad_request_and_forbidden_set_aside_only_that_message():
    bot = ScriptedBot(BadRequest("Chat not found"), Forbidden("bot was blocked"))
    dead: list[tuple[int, str]] = []
    outbox = make(bot, on_dead_letter=lambda msg, why: dead.append((msg.chat_id, why)))
    for text in ("lost chat", "blocked", "fine"):
        outbox.send_text(9, text)
    await run_until_sent(outbox)
    assert [t for _, _, t in bot.delivered] == ["fine"]
    assert outbox.dropped == 2 and outbox.sent == 1 and outbox.pending == 0
    assert [why.split(":")[0] for _, why in dead] == ["BadRequest", "Forbidden"]


async def test_unparsable_html_is_resent_as_plain_text():
    bot = ScriptedBot(BadRequest("Can't parse entities: unsupported start tag"))
    outbox = make(bot)
    outbox.send_text(9, "<b>PnL &amp; fees</b> <x>")
    await run_until_sent(outbox)
    assert [t for _, _, t in bot.delivered] == ["PnL & fees "]
    assert "parse_mode" not in bot.kwargs[0]
    assert outbox.dropped == 0


async def test_message_is_not_modified_counts_as_delivered():
    bot = ScriptedBot(BadRequest("Message is not modified"))
    outbox = make(bot)
    outbox.edit_text(9, 5, "same")
    outbox.send_text(9, "next")
    await run_until_sent(outbox)
    assert [t for _, _, t in bot.delivered] == ["next"]
    assert outbox.dropped == 0 and outbox.sent == 2


class GatedBot(ScriptedBot):
    """Holds the first send until ``gate`` is set, so a test can queue more meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = False

    async def _call(self, method: str, chat_id: int, text: str, **kwargs) -> None:
        if not self.gate.is_set():
            self.waiting = True
            await self.gate.wait()
        await super()._call(method, chat_id, text, **kwargs)


async def test_alerts_go_before_queued_replies():
    bot = GatedBot()
    outbox = make(bot)
    for i in range(30):
        outbox.send_text(1, f"reply {i}")
    await outbox.start()
    await eventually(lambda: bot.waiting)       # reply 0 is in flight
    outbox.broadcast([1, 2], "ENTRY filled")
    bot.gate.set()
    assert await outbox.drain(3.0)
    await outbox.stop()
    texts = [t for _, _, t in bot.delivered]
    assert texts[:3] == ["reply 0", "ENTRY filled", "ENTRY filled"]
    assert [t for t in texts if t.startswith("reply")] == [f"reply {i}" for i in range(30)]


async def test_file_bytes_wait_on_disk_not_in_memory(tmp_path):
    outbox = make(ScriptedBot(), tmp_path / "outbox.sqlite3")
    outbox.send_document(1, b"x" * 100_000, "big.txt")
    outbox.send_photo(1, b"\x89PNG" * 1000, "chart")
    assert [m.data for m in outbox.pending_messages()] == [None, None]
    assert [m.size for m in outbox.pending_messages()] == [100_000, 4000]
    await outbox.stop()


async def test_queue_is_bounded_and_sets_aside_the_oldest_reply_first():
    dead: list[str] = []
    outbox = make(ScriptedBot(), max_pending=3,
                  on_dead_letter=lambda msg, why: dead.append(msg.text))
    outbox.broadcast([1], "alert")
    for i in range(4):
        outbox.send_text(1, f"reply {i}")
    assert outbox.pending == 3
    assert dead == ["reply 0", "reply 1"]
    assert [m.text for m in outbox.pending_messages()] == ["alert", "reply 2", "reply 3"]


async def test_per_chat_flood_limit_spaces_messages_after_the_burst():
    time = FakeTime()
    bot = ScriptedBot()
    outbox = make(bot, time=time, per_chat_rate=1.0, per_chat_burst=2.0)
    for i in range(5):
        outbox.send_text(3, f"m{i}")
    await run_until_sent(outbox)
    assert len(bot.delivered) == 5
    assert abs(time.now - 3.0) < 1e-6  # 2 at once, then one a second


async def test_pending_messages_survive_a_restart_in_order(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    first = make(ScriptedBot(), path)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="cf:close:abc")]])
    first.send_text(1, "<b>one</b>", markup=markup)
    first.send_photo(2, b"\x89PNG-bytes", "chart")
    first.send_document(1, b"PK\x03\x04zip", "src.zip", "zip")
    first.edit_text(1, 77, "edited")
    await first.stop()  # never started: Telegram was unreachable the whole time

    bot = ScriptedBot()
    second = make(bot, path)
    assert second.pending == 4
    await run_until_sent(second)
    assert [(m, c, t) for m, c, t in bot.delivered] == [
        ("text", 1, "<b>one</b>"), ("photo", 2, "chart"), ("document", 1, "zip"),
        ("edit", 1, "edited")]
    assert bot.kwargs[0]["reply_markup"].inline_keyboard[0][0].callback_data == "cf:close:abc"
    assert bot.kwargs[1]["photo"].input_file_content == b"\x89PNG-bytes"
    assert bot.kwargs[2]["document"].filename == "src.zip"
    assert bot.kwargs[3]["message_id"] == 77
    assert make(ScriptedBot(), path).pending == 0  # delivered rows are gone from disk


async def test_long_text_is_split_and_keyboard_rides_on_the_last_part():
    bot = ScriptedBot()
    outbox = make(bot)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="x")]])
    body = "\n".join(f"line {i} &lt;tag&gt;" for i in range(1200))
    outbox.send_text(1, f"<b>Logs</b>\n<pre>{body}</pre>", markup=markup)
    await run_until_sent(outbox)
    parts = [t for _, _, t in bot.delivered]
    assert len(parts) > 1
    assert all(len(p) <= MAX_TEXT and _balanced_html(p) for p in parts)
    assert [k.get("reply_markup") is not None for k in bot.kwargs] == [False] * (
        len(parts) - 1) + [True]


async def test_a_long_caption_goes_out_as_text_before_the_photo():
    bot = ScriptedBot()
    outbox = make(bot)
    outbox.send_photo(1, b"png", "c" * (MAX_CAPTION + 1))
    await run_until_sent(outbox)
    assert [(m, len(t)) for m, _, t in bot.delivered] == [("text", MAX_CAPTION + 1),
                                                         ("photo", 0)]


_words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=60)


def _strip(html: str) -> str:
    return re.sub(r"\s+", "", re.sub(r"<[^>]+>", "", html))


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_words, min_size=1, max_size=400),
       wrap=st.sampled_from(["", "pre", "b", "code"]), limit=st.integers(300, 4096))
def test_split_html_parts_are_valid_and_keep_every_character(lines, wrap, limit):
    import html as htmlmod

    body = "\n".join(htmlmod.escape(x, quote=False) for x in lines)
    text = f"<{wrap}>{body}</{wrap}>" if wrap else body
    if not text.strip():
        return
    parts = split_html(text, limit)
    assert all(len(p) <= limit for p in parts)
    assert all(_balanced_html(p) for p in parts if "<" in p or "&" in p)
    assert "".join(_strip(p) for p in parts) == _strip(text)


async def test_real_bot_honours_429_retry_after_from_the_server():
    fake = FakeTelegram(TOKEN)
    await fake.start()
    try:
        bot = Bot(TOKEN, base_url=fake.base_url)
        async with bot:
            fake.flood("sendMessage", times=1, retry_after=1)
            outbox = Outbox(bot, None, per_chat_rate=1000, per_chat_burst=1000)
            outbox.send_text(42, "a &amp; b")
            outbox.send_text(42, "second")
            loop = asyncio.get_running_loop()
            started = loop.time()
            await run_until_sent(outbox)
            assert loop.time() - started >= 1.0
        statuses = [r.status for r in fake.calls("sendMessage")]
        assert statuses == [429, 200, 200]
        assert fake.texts_to(42) == ["a &amp; b", "second"]
    finally:
        await fake.close()


async def test_real_bot_outage_with_http_500_then_recovery_delivers_in_order():
    fake = FakeTelegram(TOKEN)
    await fake.start()
    try:
        bot = Bot(TOKEN, base_url=fake.base_url)
        async with bot:
            outbox = Outbox(bot, None, per_chat_rate=1000, per_chat_burst=1000,
                            backoff_initial_s=0.02, backoff_max_s=0.05)
            await fake.go_down("500")
            await outbox.start()
            for i in range(5):
                outbox.send_text(7, f"alert {i}")
            await eventually(lambda: len(fake.calls("sendMessage")) >= 3)
            assert fake.sent == []
            await fake.come_up()
            assert await outbox.drain(3.0)
            await outbox.stop()
        assert fake.texts_to(7) == [f"alert {i}" for i in range(5)]
        assert outbox.retries >= 3 and outbox.dropped == 0
    finally:
        await fake.close()


async def test_a_file_telegram_refuses_as_too_large_never_blocks_the_queue(tmp_path):
    """413 Request Entity Too Large: zipped and retried once, then set aside with a note; the
    messages behind it go out, an admin hears of it, and a restart does not bring it back."""
    fake = FakeTelegram(TOKEN, max_upload_bytes=50_000)
    await fake.start()
    path = tmp_path / "outbox.sqlite3"
    try:
        bot = Bot(TOKEN, base_url=fake.base_url)
        async with bot:
            dead: list[str] = []
            outbox = Outbox(bot, path, per_chat_rate=1000, per_chat_burst=1000,
                            on_dead_letter=lambda msg, why: dead.append(why))
            compressible = b"line of source code\n" * 20_000           # 400 kB, zips small
            random_bytes = os.urandom(400_000)                # does not zip below 50 kB
            outbox.send_document(42, compressible, "src.txt", "source")
            outbox.send_document(42, random_bytes, "blob.bin", "blob")
            outbox.send_text(42, "after the files")
            await outbox.start()
            assert await outbox.drain(5.0)
            await outbox.stop()
        docs = fake.sent_to(42, "sendDocument")
        assert [d.filename for d in docs] == ["src.txt.zip"]
        assert [m.text for m in fake.sent_to(42, "sendMessage")] == [
            "after the files", "blob.bin.zip (0.4 MB) is too large for Telegram and was not sent."]
        assert len(dead) == 1 and "Too Large" in dead[0]
        again = Outbox(ScriptedBot(), path)
        assert again.pending == 0 and again.dead_letters == 1
        assert again.recent_dead_letters()[0].filename == "blob.bin.zip"
        await again.stop()
    finally:
        await fake.close()


async def test_a_sent_document_leaves_no_copy_in_the_outbox_files(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    bot = ScriptedBot()
    outbox = make(bot, path)
    marker = b"BINANCE_API_SECRET_LOOKALIKE_" + b"q" * 64
    outbox.send_document(1, marker * 50, "export.txt")
    outbox.send_text(1, "keeps the database open and busy")
    await outbox.start()
    assert await outbox.drain(3.0)
    assert bot.kwargs[0]["document"].input_file_content == marker * 50
    for file in tmp_path.iterdir():  # while the bot runs: database and WAL
        assert marker not in file.read_bytes(), file.name
    await outbox.stop()
    for file in tmp_path.iterdir():
        assert marker not in file.read_bytes(), file.name


# ---------------------------------------------------------------------- a damaged file


async def queued_file(path: Path) -> None:
    """An outbox file with one of each kind pending and one dead letter, checkpointed so that
    the main file holds everything (its digest is the whole state)."""
    first = make(ScriptedBot(), path)
    first.send_text(1, "<b>one</b>")
    first.send_photo(2, b"\x89PNG-bytes", "chart")
    first.edit_text(1, 77, "edited")
    await first.stop()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO dead_letter VALUES (9, 1, 'text', 'x', '', 0, 'Forbidden', 5)")
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# (table, SQL assignment, field named)
BAD_OUTBOX_ROWS = [
    ("outbox", "kind = 'sticker'", "kind"),
    ("outbox", "kind = 3", "kind"),
    ("outbox", "chat_id = 'me'", "chat_id"),
    ("outbox", "chat_id = 0", "chat_id"),
    ("outbox", "text = x'4142'", "text"),
    ("outbox", "priority = 5", "priority"),
    ("outbox", "notice = -1", "notice"),
    ("outbox", "silent = 2", "silent"),
    ("outbox", "size = -3", "size"),
    ("outbox", "size = 1.5", "size"),
    ("outbox", "message_id = -1", "message_id"),
    ("outbox", "markup = '[1]' WHERE kind = 'text'", "markup"),
    ("outbox", "markup = '{oops' WHERE kind = 'text'", "markup"),
    ("outbox", "data = NULL WHERE kind = 'photo'", "data"),
    ("outbox", "message_id = 0 WHERE kind = 'edit'", "message_id"),
    ("outbox", "filename = x'00ff'", "filename"),
    ("dead_letter", "kind = 'voice'", "kind"),
    ("dead_letter", "failed_ms = 'soon'", "failed_ms"),
    ("dead_letter", "error = x'00'", "error"),
]


@pytest.mark.parametrize(("table", "assignment", "field"), BAD_OUTBOX_ROWS,
                         ids=[f"{t}.{a}" for t, a, _ in BAD_OUTBOX_ROWS])
async def test_an_invalid_outbox_row_stops_naming_it_and_keeps_the_file(tmp_path, table,
                                                                         assignment, field):
    path = tmp_path / "outbox.sqlite3"
    await queued_file(path)
    where = "" if " WHERE " in assignment else f" WHERE seq = (SELECT MIN(seq) FROM {table})"
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"UPDATE {table} SET {assignment}{where}")
        db.commit()
    before = path.read_bytes()
    with pytest.raises(PersistError) as err:
        make(ScriptedBot(), path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"[{table} seq " in msg, msg
    assert f"field '{field}'" in msg, msg
    assert path.read_bytes() == before


@pytest.mark.parametrize(("content", "field"), [
    (b"SQLite format 3\x00" + bytes(range(256)) * 40, "(database)"),
    (b"this is not a database, it is a note" * 100, "(database)"),
])
async def test_a_damaged_outbox_database_stops_with_one_line(tmp_path, content, field):
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(content)
    with pytest.raises(PersistError) as err:
        make(ScriptedBot(), path)
    assert "\n" not in str(err.value) and f"field '{field}'" in str(err.value)
    assert path.read_bytes() == content


async def test_a_newer_outbox_schema_stops_and_an_older_one_is_migrated(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    await queued_file(path)
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 3")
    before = path.read_bytes()
    with pytest.raises(PersistError, match="field 'user_version' is 3"):
        make(ScriptedBot(), path)
    assert path.read_bytes() == before

    old = tmp_path / "v1.sqlite3"  # schema 1: no priority, notice, size or silent columns
    with closing(sqlite3.connect(old)) as db:
        db.executescript(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, chat_id INTEGER NOT"
            " NULL, kind TEXT NOT NULL, text TEXT NOT NULL, data BLOB, filename TEXT NOT NULL,"
            " message_id INTEGER NOT NULL, markup TEXT NOT NULL, created_ms INTEGER NOT NULL);"
            "INSERT INTO outbox (chat_id, kind, text, filename, message_id, markup, created_ms)"
            " VALUES (5, 'text', 'kept', '', 0, '', 1);")
    bot = ScriptedBot()
    outbox = make(bot, old)
    assert outbox.pending == 1
    await run_until_sent(outbox)
    assert bot.delivered == [("text", 5, "kept")]


async def test_a_valid_outbox_file_keeps_every_queued_message(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    await queued_file(path)
    outbox = make(ScriptedBot(), path)
    assert outbox.pending == 3 and outbox.dead_letters == 1
    await outbox.stop()
