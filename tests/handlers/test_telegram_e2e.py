"""End to end: the real PTB Application against the fake Bot API server, hosting the paper engine
on replayed real market data (../shared). Commands arrive as updates through getUpdates; we
assert on what the fake received, the engine's state and the journal, never on log text.

The replay (btcusdt_20240808.gz, 5 s candles, EMA 5/13, ADX 7 >= 15) opens a LONG that its
stop loss closes, then opens a SHORT that is still open when the data ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import sqlite3
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.alerts import ALERT_EVENTS, alert_text
from core.events import EngineMode, PositionPhase
from core.services import Services, replay_feed
from core.store import read_document
from handlers.alert_texts import render
from handlers.common import DEPS_KEY
from handlers.host import HostOptions, build_application, serve
from handlers.i18n import Texts
from handlers.registry import collect, discover
from jobs.daily_report import daily_report
from tests.conftest import eventually
from tests.fakes.telegram import FakeTelegram, Sent
from utils.log_setup import setup_logging
from utils.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.realdata

TOKEN = "6100200300:AAFt3stT0ken_abcdefghijklmnopqrstuvw"
BINANCE_SECRET = "binance-api-secret-do-not-leak-4242"
ADMIN, ADMIN2, STRANGER = 111_111, 222_222, 999_999
REPLAY = "btcusdt_20240808.gz"




class Clock:
    """Monotonic seconds the test moves by hand (confirmation expiry)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Bot:
    fake: FakeTelegram
    services: Services
    app: object
    clock: Clock
    stop: asyncio.Event
    task: asyncio.Task

    @property
    def engine(self):
        return self.services.engine

    async def command(self, text: str, *, user: int = ADMIN, expect: int = 1,
                      timeout: float = 5.0) -> list[Sent]:
        """Send ``text`` as ``user``; wait for ``expect`` new messages to that chat (edits of
        earlier messages, e.g. a button's result arriving late, are not counted)."""
        def new() -> list[Sent]:
            return [m for m in self.fake.sent_to(user)[before:] if m.method != "editMessageText"]

        before = len(self.fake.sent_to(user))
        await self.fake.push_command(user, text)
        await eventually(lambda: len(new()) >= expect, timeout)
        return new()

    async def command_all(self, text: str, *, user: int = ADMIN) -> list[Sent]:
        """Send ``text``, then /health as a barrier (updates are handled in order and the
        outbox is FIFO); every message in between, however many parts the reply has."""
        before = len(self.fake.sent_to(user))
        await self.fake.push_command(user, text)
        await self.fake.push_command(user, "/health")
        await eventually(lambda: any(m.text.startswith("<b>Health</b>")
                                     for m in self.fake.sent_to(user)[before:]))
        sent = self.fake.sent_to(user)[before:]
        return sent[:next(i for i, m in enumerate(sent) if m.text.startswith("<b>Health</b>"))]

    async def press(self, data: str, message_id: int, *, user: int = ADMIN,
                    chat: int | None = None) -> str:
        """Press an inline button; wait for its answerCallbackQuery; return the answer text."""
        query_id = await self.fake.push_callback(user, data, message_id, chat_id=chat)
        await eventually(lambda: any(a.get("callback_query_id") == query_id
                                     for a in self.fake.callback_answers))
        return next(a.get("text", "") for a in self.fake.callback_answers
                    if a.get("callback_query_id") == query_id)

    async def replay_done(self) -> None:
        """The replay is over and every message it caused (the last: "feed finished") is out."""
        await asyncio.wait_for(self.services.feed_done.wait(), 20)
        host = self.app.bot_data["_host"]
        outbox = self.app.bot_data[DEPS_KEY].outbox
        await eventually(lambda: host.watcher.done() and outbox.pending == 0)


def make_settings(tmp_path: Path, fake: FakeTelegram, **overrides) -> Settings:
    values = {
        "data_dir": tmp_path / "data", "telegram_bot_token": TOKEN,
        "telegram_admin_ids": f"{ADMIN},{ADMIN2}", "telegram_api_base_url": fake.base_url,
        "timeframe": "5s", "ema_fast": 5, "ema_slow": 13, "adx_period": 7, "adx_min": 15,
        "binance_api_secret": BINANCE_SECRET, "symbols": "BTCUSDT",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def assert_no_secret(fake: FakeTelegram) -> None:
    """Neither the bot token nor any other secret is in any request body the fake received."""
    for request in fake.requests:
        body = request.raw.decode("latin-1")
        assert TOKEN not in body, request.method
        assert TOKEN.split(":", 1)[1] not in body, request.method
        assert BINANCE_SECRET not in body, request.method
        for name, (_, content) in request.files.items():
            assert TOKEN.encode() not in content, name


@contextlib.asynccontextmanager
async def running_bot(tmp_path: Path, data_dir: Path, *, autostart_feed: bool = True,
                      project_root: Path | None = None, **overrides) -> AsyncIterator[Bot]:
    fake = FakeTelegram(TOKEN)
    await fake.start()
    settings = make_settings(tmp_path, fake, **overrides)
    feed = replay_feed([data_dir / REPLAY], speed=0, reorder_ms=settings.replay_reorder_ms)
    services = Services(settings, feed=feed)
    clock = Clock()
    options = HostOptions(
        clock=clock, project_root=project_root or tmp_path, poll_timeout_s=1.0,
        autostart_feed=autostart_feed, install_signal_handlers=False, drain_timeout_s=5.0,
        outbox={"per_chat_rate": 1000, "per_chat_burst": 1000, "total_rate": 1000,
                "total_burst": 1000, "backoff_initial_s": 0.05, "backoff_max_s": 0.2},
    )
    app = build_application(settings, services, options)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop=stop))
    bot = Bot(fake, services, app, clock, stop, task)
    try:
        await eventually(lambda: task.done() or (
            fake.commands and fake.calls("getUpdates")
            and all(fake.sent_to(a) for a in (ADMIN, ADMIN2))))  # the hello message
        if task.done():
            task.result()
        if autostart_feed:  # alerts of the replay are all queued before the test talks
            await bot.replay_done()
        yield bot
    finally:
        stop.set()
        try:
            assert await asyncio.wait_for(task, 15) == 0
        finally:
            await fake.close()
    assert_no_secret(fake)


@pytest.fixture
def log_capture():
    """Real logging (as main.py sets it up) into a buffer; the root logger is restored."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    setup_logging("INFO", json_lines=False, stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def only_line(messages: list[Sent]) -> str:
    assert len(messages) == 1
    text = messages[0].text
    assert "\n" not in text and "Traceback" not in text
    return text


# ---------------------------------------------------------------------- commands


async def test_commands_menu_help_and_start_come_from_the_registry(tmp_path, data_dir):
    commands, _ = collect(discover())
    async with running_bot(tmp_path, data_dir) as bot:
        menu = {c["command"]: c["description"] for c in bot.fake.commands}
        assert set(menu) == {c.name for c in commands}
        assert {"start", "help", "status", "pnl", "trades", "balance", "arm", "disarm", "close",
                "flat", "ta", "health", "logs", "settings", "dar"} <= set(menu)
        assert all(1 <= len(d) <= 256 for d in menu.values())

        (help_msg,) = await bot.command("/help")
        for c in commands:
            assert c.usage.replace("<", "&lt;") in help_msg.text
            assert menu[c.name] in help_msg.text
        (start_msg,) = await bot.command("/start")
        assert "paper" in start_msg.text and "ARMED" in start_msg.text
        unknown = await bot.command("/nosuchcommand")
        assert "/help" in only_line(unknown)


async def test_alerts_for_a_replayed_trade_reach_every_admin_in_order(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        (trade,) = bot.engine.ledger.trades
        assert trade.exit_reason.value == "SL"
        for admin in (ADMIN, ADMIN2):
            texts = bot.fake.texts_to(admin)
            entries = [i for i, x in enumerate(texts) if "<b>Entry filled</b>" in x]
            exits = [i for i, x in enumerate(texts) if "<b>Exit filled" in x]
            assert len(entries) == 2 and len(exits) == 1
            assert entries[0] < exits[0] < entries[1]
            assert "Entry filled</b>: LONG" in texts[entries[0]]
            assert "Entry filled</b>: SHORT" in texts[entries[1]]
            assert "leverage 5x" in texts[entries[0]] and "Notional " in texts[entries[0]]
            exit_text = texts[exits[0]]
            icon = "✅" if trade.net_pnl > 0 else "❌"
            assert exit_text.startswith(icon) and "stop loss" in exit_text
            assert f"<b>{trade.net_pnl:+.4f}</b> USDT" in exit_text and "held " in exit_text
            assert texts[-1].startswith("Market feed finished")
        assert all(m.method == "sendMessage" for m in bot.fake.sent)
        # equity is journaled the moment the trade closes, so /pnl shows it at once
        await bot.services.journal.flush()
        curve = dict(await bot.services.journal.equity_curve())
        assert trade.exit_ts_ms in curve


async def test_status_balance_trades_and_pnl_with_chart(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        st = bot.engine.state
        assert st.phase is PositionPhase.OPEN and st.side.value == "SHORT"

        (status,) = await bot.command("/status")
        text = status.text
        assert "ARMED" in text and "paper" in text
        assert f"<b>SHORT</b> {st.quantity} BTCUSDT" in text
        assert f"Entry {st.entry_price}" in text
        liq = bot.services.liquidation_price("BTCUSDT")
        assert liq is not None and f"Liquidation {liq}" in text
        assert f"SL {st.stop_loss}" in text and f"TP {st.take_profit}" in text
        assert "unrealized PnL" in text and "Balance: wallet" in text and "Uptime" in text
        assert "market feed finished" in text

        (balance,) = await bot.command("/balance")
        wallet = bot.engine.balance.wallet("USDT")
        assert f"{wallet:,.4f}" in balance.text and "Equity" in balance.text

        (trades,) = await bot.command("/trades")
        assert "stop loss" in trades.text and "LONG" in trades.text and "held " in trades.text
        (one,) = await bot.command("/trades 1")
        assert one.text.count("stop loss") == 1

        text_msg, photo = await bot.command("/pnl all", expect=2)
        assert text_msg.method == "sendMessage" and photo.method == "sendPhoto"
        net = bot.engine.ledger.trades[0].net_pnl
        assert f"{net:+,.4f}" in text_msg.text
        assert "Trades: 1 (0 won, 1 lost)" in text_msg.text
        assert photo.content.startswith(b"\x89PNG\r\n\x1a\n")

        # "today" is the replay's last day (2024-08-09 UTC): the trade closed the day before
        text_msg, photo = await bot.command("/pnl", expect=2)
        assert "Trades: 0" in text_msg.text and photo.content.startswith(b"\x89PNG")


async def test_wrong_arguments_get_a_one_line_usage(tmp_path, data_dir):
    cases = {
        "/pnl yesterday": "/pnl [today|7d|30d|all]",
        "/pnl 7d all": "/pnl [today|7d|30d|all]",
        "/trades abc": "/trades [N]",
        "/trades 0": "/trades [N]",
        "/logs 100000": "/logs [N]",
        "/ta": "/ta SYMBOL [tf]",
        "/ta BTC-USDT": "/ta SYMBOL [tf]",
        "/ta BTCUSDT 5x": "/ta SYMBOL [tf]",
        "/status now": "/status",
        "/close please": "/close",
        "/flat 1": "/flat",
    }
    async with running_bot(tmp_path, data_dir) as bot:
        for command, usage in cases.items():
            line = only_line(await bot.command(command))
            assert line == f"Usage: {usage}", command
        assert bot.engine.state.mode is EngineMode.ARMED


async def test_arm_and_disarm_in_paper_mode_act_at_once(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        # reply plus the mode-change alert
        replies = await bot.command("/disarm", expect=2)
        assert bot.engine.state.mode is EngineMode.DISARMED
        assert any("<b>Engine DISARMED</b> (was ARMED)" in m.text for m in replies)
        assert any(m.text.startswith("Engine <b>DISARMED</b>") for m in replies)
        await eventually(lambda: any("<b>Engine DISARMED</b> (was ARMED)" in x
                                     for x in bot.fake.texts_to(ADMIN2)))
        replies = await bot.command("/arm", expect=2)
        assert bot.engine.state.mode is EngineMode.ARMED
        assert not any(m.reply_markup for m in replies)  # paper: no confirmation


def buttons(message: Sent) -> list[tuple[str, str]]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def test_close_asks_then_closes_once_and_stays_armed(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        (prompt,) = await bot.command("/close")
        (yes, yes_data), (_, no_data) = buttons(prompt)
        assert yes == "Yes, /close"
        assert len(yes_data.encode()) <= 64 and len(no_data.encode()) <= 64
        assert bot.engine.state.phase is PositionPhase.OPEN  # nothing happens before the press

        answer = await bot.press(yes_data, prompt.message_id)
        assert answer == "Done"
        await eventually(lambda: len(bot.engine.ledger.trades) == 2)
        assert bot.engine.ledger.trades[-1].exit_reason.value == "MANUAL"
        assert bot.engine.state.phase is PositionPhase.FLAT
        assert bot.engine.state.mode is EngineMode.ARMED
        await eventually(lambda: any(m.method == "editMessageText"
                                     and m.message_id == prompt.message_id
                                     for m in bot.fake.sent_to(ADMIN)))
        for admin in (ADMIN, ADMIN2):
            await eventually(lambda a=admin: any("manual close" in x
                                                 for x in bot.fake.texts_to(a)))

        edits = len(bot.fake.sent_to(ADMIN, "editMessageText"))
        answer = await bot.press(yes_data, prompt.message_id)  # replayed press
        assert answer == "This button is no longer valid."
        assert len(bot.engine.ledger.trades) == 2
        await bot.command("/health")  # updates are handled in order: the press is done
        assert len(bot.fake.sent_to(ADMIN, "editMessageText")) == edits

        (reply,) = await bot.command("/close")
        assert reply.text == "No open position." and not reply.reply_markup


async def test_flat_confirmation_expires_cancels_and_confirms(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        (prompt,) = await bot.command("/flat")
        (_, yes_data), _ = buttons(prompt)
        bot.clock.advance(61)
        answer = await bot.press(yes_data, prompt.message_id)
        assert answer == "Expired; send /flat again."
        assert bot.engine.state.mode is EngineMode.ARMED
        assert bot.engine.state.phase is PositionPhase.OPEN
        await eventually(lambda: any("expired" in m.text for m in
                                     bot.fake.sent_to(ADMIN, "editMessageText")))

        (prompt,) = await bot.command("/flat")
        _, (_, no_data) = buttons(prompt)
        assert await bot.press(no_data, prompt.message_id) == "Cancelled"
        assert bot.engine.state.phase is PositionPhase.OPEN
        await eventually(lambda: any(m.text.startswith("Cancelled") for m in
                                     bot.fake.sent_to(ADMIN, "editMessageText")))

        (prompt,) = await bot.command("/flat")
        (_, yes_data), _ = buttons(prompt)
        bot.clock.advance(59)  # still inside the 60 s
        assert await bot.press(yes_data, prompt.message_id) == "Done"
        assert bot.engine.state.mode is EngineMode.DISARMED
        await eventually(lambda: bot.engine.state.phase is PositionPhase.FLAT)
        assert bot.engine.ledger.trades[-1].exit_reason.value == "FLAT"


async def test_unauthorized_user_gets_no_answer_at_all(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        (prompt,) = await bot.command("/close")
        (_, yes_data), _ = buttons(prompt)
        for text in ("/start", "/status", "/close", "/flat", "/dar", "/settings", "hello"):
            await bot.fake.push_command(STRANGER, text)
        stranger_query = await bot.fake.push_callback(STRANGER, yes_data, prompt.message_id)
        await bot.command("/health")  # handled after everything the stranger sent
        assert bot.fake.sent_to(STRANGER) == []
        assert not any(a.get("callback_query_id") == stranger_query
                       for a in bot.fake.callback_answers)
        assert not any(r.chat_id == STRANGER for r in bot.fake.requests)
        assert bot.engine.state.phase is PositionPhase.OPEN
        assert bot.engine.state.mode is EngineMode.ARMED
        # the admin's button still works: the stranger's press did not consume it
        assert await bot.press(yes_data, prompt.message_id) == "Done"


async def test_commands_in_a_group_are_answered_privately(tmp_path, data_dir):
    group = -100_555
    async with running_bot(tmp_path, data_dir) as bot:
        before = len(bot.fake.sent_to(ADMIN))
        await bot.fake.push_command(ADMIN, "/status", chat_id=group)
        await eventually(lambda: any(m.text.startswith("<b>Status</b>")
                                     for m in bot.fake.sent_to(ADMIN)[before:]))
        await bot.fake.push_command(ADMIN, "/close", chat_id=group)
        await eventually(lambda: any(m.reply_markup for m in bot.fake.sent_to(ADMIN)[before:]))
        assert bot.fake.sent_to(group) == []


async def test_a_confirmation_works_only_for_the_admin_who_asked(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        (prompt,) = await bot.command("/flat")
        (_, yes_data), _ = buttons(prompt)
        answer = await bot.press(yes_data, prompt.message_id, user=ADMIN2, chat=ADMIN)
        assert answer == "This button is no longer valid."
        assert bot.engine.state.mode is EngineMode.ARMED
        assert await bot.press(yes_data, prompt.message_id) == "Done"  # still the owner's
        assert bot.engine.state.mode is EngineMode.DISARMED


async def test_ta_in_a_replay_reads_the_engine_candles_with_the_same_verdict(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir) as bot:
        verdict = bot.engine.trending.verdict("BTCUSDT")
        # /ta analyses in a spawned worker process; wait until the bot's worker is up (it
        # imports NumPy, TA-Lib and matplotlib: seconds on a loaded machine) before timing it.
        await asyncio.wrap_future(bot.services.market.analyser.executor.submit(int))
        text, photo = await bot.command("/ta btcusdt", expect=2)
        assert text.text.startswith(f"<b>BTCUSDT 5s</b>: {verdict.bias} (")
        assert "<pre>tf" in text.text and "RSI" in text.text
        assert photo.method == "sendPhoto" and photo.content.startswith(b"\x89PNG")
        (msg,) = await bot.command("/ta BTCUSDT 1h")
        assert msg.text == ("No analysis for BTCUSDT: no 1h candles for BTCUSDT; "
                            "available: 5s")
        (msg,) = await bot.command("/ta ETHUSDT")
        assert msg.text == "No data for ETHUSDT in this replay; it has BTCUSDT."
        (msg,) = await bot.command("/watch add ETHUSDT")
        assert "needs live market data" in msg.text


async def test_health_logs_and_settings_hide_secrets(tmp_path, data_dir, log_capture):
    async with running_bot(tmp_path, data_dir) as bot:
        logging.getLogger("core.e2e").warning("leaking %s and %s on purpose", TOKEN,
                                              BINANCE_SECRET)
        logging.getLogger("apscheduler.e2e").warning("library chatter")  # not the bot's own
        (health,) = await bot.command("/health")
        assert "Market feed: finished (87402 events" in health.text
        assert "Telegram outbox" in health.text and "Journal" in health.text

        parts = await bot.command_all("/logs 200")
        assert parts[0].text.startswith("<b>Last ")
        assert all(p.text.count("<pre>") == p.text.count("</pre>") == 1 for p in parts)
        assert all(len(p.text) <= 4096 for p in parts)
        assert any("leaking *** and *** on purpose" in p.text for p in parts)
        assert not any("library chatter" in p.text for p in parts)
        assert not any(str(ROOT) in p.text for p in parts)

        (settings_msg,) = await bot.command("/settings")
        text = settings_msg.text
        assert "<code>telegram_bot_token</code> (set)" in text
        assert "<code>binance_api_secret</code> (set)" in text
        assert f"<code>telegram_admin_ids</code> {ADMIN},{ADMIN2}" in text
        assert "<b>Telegram</b>" in text and "<b>Binance</b>" in text  # grouped
        assert str(tmp_path) not in text and str(ROOT) not in text  # no machine paths
        assert TOKEN not in text and BINANCE_SECRET not in text
    output = log_capture.getvalue()
    assert output  # logging really ran
    assert TOKEN not in output and BINANCE_SECRET not in output


async def test_dar_exports_source_without_secrets(tmp_path, data_dir):
    root = tmp_path / "proj"
    (root / "core").mkdir(parents=True)
    (root / "core" / "engine.py").write_text("ENGINE = 1\n")
    (root / "main.py").write_text(f"TOKEN = '{TOKEN}'  # pasted by mistake\n")
    (root / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\n")
    (root / ".env.local").write_text("X=1\n")
    (root / ".env.example").write_text("TELEGRAM_BOT_TOKEN=\n")
    (root / "data").mkdir()
    (root / "data" / "journal.sqlite3").write_bytes(b"SQLite format 3\0")
    (root / "certs").mkdir()
    (root / "certs" / "client.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (root / "api.key").write_text("k")
    (root / "big.bin").write_bytes(b"x" * 1_100_000)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    async with running_bot(tmp_path, data_dir, project_root=root) as bot:
        tree, zipped, txt = await bot.command("/dar", expect=3)
        assert tree.method == "sendMessage" and "engine.py" in tree.text
        assert zipped.method == "sendDocument" and zipped.filename == "proj.zip"
        assert txt.method == "sendDocument" and txt.filename == "proj.txt"
        names = set(zipfile.ZipFile(io.BytesIO(zipped.content)).namelist())
        assert names == {"proj/core/engine.py", "proj/main.py", "proj/.env.example"}
        text = txt.content.decode()
        assert "===== core/engine.py =====" in text and "ENGINE = 1" in text
        assert "TOKEN = '***'" in text
        for forbidden in (".env.local", "journal", "PRIVATE KEY", "big.bin", ".pyc"):
            assert forbidden not in text and forbidden not in tree.text
    outbox_files = [f for f in tmp_path.rglob("outbox.sqlite3*") if f.is_file()]
    assert outbox_files  # the outbox really persisted on disk
    for f in outbox_files:  # the sent export left no readable copy behind
        assert b"ENGINE = 1" not in f.read_bytes(), f.name


async def test_daily_report_job_sends_summary_and_chart_to_every_admin(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir, daily_report_hour=7) as bot:
        jobs = {j.name: j for j in bot.app.job_queue.jobs()}
        assert {"daily_report", "balance_refresh"} <= set(jobs)
        assert jobs["daily_report"].next_t.hour == 7
        before = {a: len(bot.fake.sent_to(a)) for a in (ADMIN, ADMIN2)}
        bot.app.job_queue.run_once(daily_report, 0)
        for admin in (ADMIN, ADMIN2):
            await eventually(lambda a=admin: len(bot.fake.sent_to(a)) >= before[a] + 2)
            text, photo = bot.fake.sent_to(admin)[before[admin]:before[admin] + 2]
            assert text.text.startswith("<b>Daily summary</b>")
            assert "Trades: 1" in text.text
            assert photo.method == "sendPhoto"


#: Every command once, with arguments where it needs them; confirmations are only asked.
EVERY_COMMAND = ("/start", "/help", "/status", "/balance", "/trades", "/pnl all", "/daily",
                 "/weekly 2", "/monthly", "/performance", "/stats", "/health", "/logs 5",
                 "/settings", "/version", "/notify", "/notify exits silent", "/close", "/flat",
                 "/arm", "/disarm", "/ta ETHUSDT", "/watch list", "/risk", "/halt test",
                 "/strategy", "/strategy list", "/trades x", "/nosuchcommand")


async def test_every_reply_and_alert_is_translated_to_turkish(tmp_path, data_dir):
    """The replay's alerts plus every command's reply, rendered in Turkish: no message id may
    miss the catalog (``Texts.missing`` records each one asked for and not found)."""
    async with running_bot(tmp_path, data_dir, bot_language="tr") as bot:
        texts = bot.app.bot_data[DEPS_KEY].texts
        registered = {c.name for c in bot.app.bot_data[DEPS_KEY].commands}
        for command in EVERY_COMMAND:
            if command.split()[0][1:] in registered or command == "/nosuchcommand":
                await bot.command(command)
        assert texts.missing == set()
        assert any("Giriş gerçekleşti" in x for x in bot.fake.texts_to(ADMIN))
        assert any("AKTİF" in x for x in bot.fake.texts_to(ADMIN))


def test_every_alert_template_is_translated_to_turkish():
    from decimal import Decimal as D

    from core.events import (
        ClosedTrade,
        ConnectionStatus,
        EngineError,
        ExitReason,
        MarginCall,
        PositionAdopted,
        PositionOpened,
        ProtectiveOrderUpdate,
        RateLimitBackoff,
        Side,
        SignalRejected,
        StateChanged,
        TradeClosed,
        TradeSignal,
    )

    t = Texts("tr")
    trade = ClosedTrade(symbol="BTCUSDT", side=Side.SHORT, entry_ts_ms=0, exit_ts_ms=90_000,
                        entry_price=D(100), exit_price=D(99), quantity=D(1), gross_pnl=D(1),
                        fees=D("0.1"), funding=D(0), net_pnl=D("0.9"),
                        exit_reason=ExitReason.TRAILING)
    signal = TradeSignal(symbol="BTCUSDT", side=Side.LONG, entry_price=D(100), quantity=D(1),
                         stop_loss=D(99), take_profit=D(102), leverage=5, reason="x", ts_ms=1)
    events = [
        PositionOpened(symbol="BTCUSDT", side=Side.LONG, quantity=D(1), entry_price=D(100),
                       stop_loss=D(99), take_profit=D(102), ts_ms=1, reason="ema"),
        TradeClosed(trade=trade, ts_ms=2),
        SignalRejected(signal=signal, reason="x", ts_ms=3),
        EngineError(source="ordering", message="x", ts_ms=4),
        StateChanged(what="mode", old="ARMED", new="DISARMED", ts_ms=5),
        StateChanged(what="mode", old="ARMED", new="HALTED", reason="x", ts_ms=5),
        ConnectionStatus(stream="market", up=False, detail="x", ts_ms=6),
        ProtectiveOrderUpdate(symbol="BTCUSDT", kind="SL", client_algo_id="a", status="NEW",
                              trigger_price=D(99), ts_ms=7),
        PositionAdopted(symbol="BTCUSDT", quantity=D(1), entry_price=D(100), ts_ms=8),
        MarginCall(symbols=("BTCUSDT",), maintenance_margin=D(5), ts_ms=9),
        RateLimitBackoff(pool="orders", used=10, limit=10, retry_after_s=1.0, ts_ms=10),
        RateLimitBackoff(pool="ip", used=0, limit=0, retry_after_s=60.0, banned=True, ts_ms=11),
    ]
    for ev in events:
        html = render(t, ev, leverage=5, asset="USDT", fallback="x")
        assert html and "<b>" in html
    assert t.missing == set()


async def test_turkish_catalog(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir, bot_language="tr") as bot:
        (help_msg,) = await bot.command("/help")
        assert help_msg.text.startswith("<b>Komutlar</b>")
        assert only_line(await bot.command("/trades x")) == "Kullanım: /trades [N]"
        menu = {c["command"]: c["description"] for c in bot.fake.commands}
        assert menu["help"] == "Komutları listele"


# ---------------------------------------------------------------------- delivery


async def test_outage_during_alerts_delays_but_loses_nothing(tmp_path, data_dir):
    async with running_bot(tmp_path, data_dir, autostart_feed=False) as bot:
        expected: list[str] = []
        relay_texts = Texts("en")

        def collect_alert(ev) -> None:
            text = alert_text(ev)
            if text is not None:
                expected.append(render(relay_texts, ev, leverage=5, asset="USDT",
                                       fallback=text))

        for event_type in ALERT_EVENTS:
            bot.engine.bus.subscribe(event_type, collect_alert)
        outbox = bot.app.bot_data[DEPS_KEY].outbox
        before = {a: len(bot.fake.sent_to(a)) for a in (ADMIN, ADMIN2)}

        await bot.fake.go_down("refuse")
        bot.services.start_feed()
        await asyncio.wait_for(bot.services.feed_done.wait(), 20)
        await eventually(lambda: outbox.pending >= 2 * (len(expected) + 1))
        assert len(expected) == 3
        # pending alerts are on disk, not only in memory
        db = sqlite3.connect(tmp_path / "data" / "outbox.sqlite3")
        try:
            (rows,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        finally:
            db.close()
        assert rows >= 2 * (len(expected) + 1)
        assert all(len(bot.fake.sent_to(a)) == before[a] for a in (ADMIN, ADMIN2))

        await eventually(lambda: outbox.retries > 0)  # it keeps trying through the outage
        await bot.fake.come_up()
        await eventually(lambda: outbox.pending == 0, timeout=10)
        for admin in (ADMIN, ADMIN2):
            delivered = bot.fake.texts_to(admin)[before[admin]:]
            alerts = [x for x in delivered if not x.startswith("Market feed")]
            assert len(alerts) == len(expected)
            for got, want in zip(alerts, expected, strict=False):
                assert got == want
            assert delivered[-1].startswith("Market feed finished")


async def test_sigterm_stops_cleanly_with_goodbye_and_position_left_open(tmp_path, data_dir):
    fake = FakeTelegram(TOKEN)
    await fake.start()
    try:
        settings = make_settings(tmp_path, fake)
        services = Services(settings, feed=replay_feed([data_dir / REPLAY], speed=0,
                                                       reorder_ms=settings.replay_reorder_ms))
        options = HostOptions(poll_timeout_s=1.0, install_signal_handlers=True,
                              outbox={"per_chat_rate": 1000, "per_chat_burst": 1000})
        task = asyncio.create_task(serve(build_application(settings, services, options)))
        await eventually(lambda: any("finished" in x for x in fake.texts_to(ADMIN2)), 20)
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 15) == 0
        for admin in (ADMIN, ADMIN2):
            goodbye = fake.texts_to(admin)[-1]
            assert "goodbye" in goodbye and "stays open with its protective stops" in goodbye
        state = read_document(tmp_path / "data" / "journal.sqlite3", "engine_state")
        assert state["phase"] == "OPEN" and state["side"] == "SHORT"
        db = sqlite3.connect(tmp_path / "data" / "journal.sqlite3")
        try:
            (trades,) = db.execute("SELECT COUNT(*) FROM trades").fetchone()
            (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        finally:
            db.close()
        assert trades == 1 and events > 0  # flushed at stop
    finally:
        await fake.close()
    assert_no_secret(fake)


async def test_a_second_poller_conflict_stops_the_bot_with_status_1(tmp_path, data_dir):
    fake = FakeTelegram(TOKEN)
    fake.conflict = True
    await fake.start()
    try:
        settings = make_settings(tmp_path, fake)
        services = Services(settings, feed=None)
        options = HostOptions(poll_timeout_s=1.0, install_signal_handlers=False)
        status = await asyncio.wait_for(
            serve(build_application(settings, services, options)), 15)
        assert status == 1
        assert fake.calls("getUpdates")[0].status == 409
    finally:
        await fake.close()
    assert_no_secret(fake)
