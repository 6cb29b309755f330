"""The command registry, the catalog (gettext, English and Turkish), confirmations, the alert
relay's folding, /dar's file selection and the Telegram settings: the parts of the Telegram
adapter that need no server."""

from __future__ import annotations

import ast
import gettext
import io
import re
import string
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from core.event_bus import EventBus
from core.events import (
    ConnectionStatus,
    PositionOpened,
    Side,
    SignalRejected,
    TradeSignal,
)
from handlers.alerts import AlertRelay
from handlers.cmd_dar import build_export, excluded, list_files
from handlers.cmd_strategy import PATTERN as STRATEGY_PATTERN
from handlers.cmd_trading import needs_confirmation
from handlers.confirm import MAX_CALLBACK_DATA, PATTERN, Confirmations, Outcome
from handlers.host import error_summary
from handlers.i18n import Texts, compile_mo, parse_po, po_path
from handlers.outbox import Outbox
from handlers.registry import (
    Access,
    Command,
    UsageError,
    bot_commands,
    check_commands,
    collect,
    discover,
)
from utils.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "6100200300:AAFt3stT0ken_abcdefghijklmnopqrstuvw"
REQUIRED = {"start", "help", "status", "pnl", "trades", "balance", "arm", "disarm", "close",
            "flat", "ta", "health", "logs", "settings", "dar"}


async def noop(update, context) -> None:
    return None


# ---------------------------------------------------------------------- layering


def test_core_never_imports_telegram():
    """The engine, the services and the headless runner load without python-telegram-bot."""
    code = ("import sys, pkgutil, importlib, core\n"
            "for m in pkgutil.iter_modules(core.__path__):\n"
            "    importlib.import_module('core.' + m.name)\n"
            "bad = sorted(n for n in sys.modules if n == 'telegram' or n.startswith('telegram.')"
            " or n.startswith('handlers'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ---------------------------------------------------------------------- registry


def test_every_command_module_is_discovered_and_valid():
    modules = discover()
    assert all(m.__name__.startswith("handlers.cmd_") for m in modules)
    commands, callbacks = collect(modules)
    names = [c.name for c in commands]
    assert REQUIRED <= set(names) and len(names) == len(set(names))
    for c in commands:
        assert c.usage.startswith(f"/{c.name}") and callable(c.callback)
    # /strategy's buttons come first: the generic confirmation pattern would also match them
    assert [p for p, _ in callbacks] == [STRATEGY_PATTERN, PATTERN]
    admin_only = {c.name for c in commands if c.admin_only}
    assert {"arm", "disarm", "close", "flat", "dar", "logs", "settings"} <= admin_only


def test_menu_and_help_come_from_the_same_list():
    commands, _ = collect(discover())
    texts = Texts("en")
    menu = bot_commands(commands, texts.plain)
    assert [m.command for m in menu] == [c.name for c in commands]
    assert [m.description for m in menu] == [c.help for c in commands]


@pytest.mark.parametrize("bad, message", [
    (Command("Bad-Name", "x", "/Bad-Name", False, noop), "a-z"),
    (Command("x" * 33, "x", "/" + "x" * 33, False, noop), "a-z"),
    (Command("ok", "", "/ok", False, noop), "help"),
    (Command("ok", "h" * 257, "/ok", False, noop), "help"),
    (Command("ok", "help", "/other", False, noop), "usage"),
])
def test_invalid_commands_are_refused_at_load(bad, message):
    with pytest.raises(ValueError, match=message):
        check_commands([bad])


def test_duplicate_and_too_many_commands_are_refused():
    c = Command("same", "h", "/same", False, noop)
    with pytest.raises(ValueError, match="twice"):
        check_commands([c, c])
    many = [Command(f"c{i}", "h", f"/c{i}", False, noop) for i in range(101)]
    with pytest.raises(ValueError, match="100"):
        check_commands(many)


def test_access_denies_by_default():
    access = Access(admins=frozenset({1}), users=frozenset({1, 2}))
    assert access.allowed(1, admin_only=True) and access.allowed(1)
    assert access.allowed(2) and not access.allowed(2, admin_only=True)
    assert not access.allowed(3) and not access.allowed(None)


# ---------------------------------------------------------------------- catalog


def _catalog_ids() -> dict[str, str]:
    """Every string handed to the catalog in handlers/ and jobs/ (t(...), t.plain(...),
    d.texts(...), N_(...)) plus every command's help, with where it was found."""
    ids: dict[str, str] = {}
    for base in ("handlers", "jobs"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                f = node.func
                marked = ((isinstance(f, ast.Name) and f.id in ("t", "N_"))
                          or (isinstance(f, ast.Attribute) and f.attr in ("plain", "texts")))
                arg = node.args[0]
                if marked and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    ids.setdefault(arg.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    commands, _ = collect(discover())
    for c in commands:
        ids.setdefault(c.help, f"/{c.name} help")
    from web.dashboard import page_msgids  # the dashboard page shares the catalog

    for msgid in page_msgids():
        ids.setdefault(msgid, "web/static (dashboard page)")
    return ids


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _tags(template: str) -> list[str]:
    return re.findall(r"</?[a-z]+>", template)


def test_turkish_catalog_is_complete_with_the_same_placeholders_and_tags():
    ids = _catalog_ids()
    assert len(ids) > 50
    tr = parse_po(po_path("tr").read_text("utf-8"))
    missing = [f"{loc}: {msgid!r}" for msgid, loc in ids.items() if msgid not in tr]
    assert not missing, "untranslated:\n" + "\n".join(missing)
    for msgid in ids:
        assert _fields(tr[msgid]) == _fields(msgid), msgid
        assert sorted(_tags(tr[msgid])) == sorted(_tags(msgid)), msgid
    stale = set(tr) - set(ids) - {""}
    assert not stale, f"translations nobody uses: {sorted(stale)}"


def test_texts_escape_values_but_not_templates():
    t = Texts("en")
    assert t("Usage: {usage}", usage="/x <a&b>") == "Usage: /x &lt;a&amp;b&gt;"
    assert t.plain("Yes, /{action}", action="<close>") == "Yes, /<close>"
    assert Texts("tr")("Usage: {usage}", usage="<x>") == "Kullanım: &lt;x&gt;"
    assert Texts("tr")("not in the catalog") == "not in the catalog"


def test_msgfmt_equivalent_round_trips_through_stdlib_gettext():
    po = r'''
msgid ""
msgstr "Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

# a comment
msgid "Hello {name}"
msgstr "Merhaba "
"{name}"

#, fuzzy
msgid "Fuzzy"
msgstr "Bulanık"

msgid "Tab\there \"quoted\""
msgstr "Sekme\tburada \"tırnak\""

msgid "one file"
msgid_plural "{n} files"
msgstr[0] "bir dosya"
msgstr[1] "{n} dosya"

msgctxt "menu"
msgid "Close"
msgstr "Kapat"

msgid "Untranslated"
msgstr ""
'''
    messages = parse_po(po)
    tr = gettext.GNUTranslations(io.BytesIO(compile_mo(messages)))
    assert tr.gettext("Hello {name}") == "Merhaba {name}"
    assert tr.gettext("Fuzzy") == "Fuzzy"  # fuzzy entries are not used, as with msgfmt
    assert tr.gettext('Tab\there "quoted"') == 'Sekme\tburada "tırnak"'
    assert tr.ngettext("one file", "{n} files", 1) == "bir dosya"
    assert tr.ngettext("one file", "{n} files", 3) == "{n} dosya"
    assert tr.pgettext("menu", "Close") == "Kapat"
    assert tr.gettext("Untranslated") == "Untranslated"


# ---------------------------------------------------------------------- confirmations


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_confirmation_nonce_is_single_use_short_and_expires():
    clock = Clock()
    c = Confirmations(60, clock)
    yes, no = c.issue("close", chat_id=5, user_id=5)
    assert re.match(PATTERN, yes) and re.match(PATTERN, no)
    assert len(yes.encode()) <= MAX_CALLBACK_DATA
    assert c.take(yes, chat_id=6, user_id=5) == (Outcome.UNKNOWN, "close", False)  # other chat
    assert c.take(yes, chat_id=5, user_id=7) == (Outcome.UNKNOWN, "close", False)  # other admin
    clock.now += 60
    assert c.take(yes, chat_id=5, user_id=5) == (Outcome.OK, "close", True)  # at 60 s: valid
    assert c.take(yes, chat_id=5, user_id=5) == (Outcome.UNKNOWN, "close", False)  # replayed

    yes, no = c.issue("flat", 5, 5)
    clock.now += 60.001
    assert c.take(yes, 5, 5) == (Outcome.EXPIRED, "flat", False)
    assert c.take(no, 5, 5)[0] is Outcome.UNKNOWN  # the pair shares its nonce

    yes, no = c.issue("flat", 5, 5)
    assert c.take(no, 5, 5) == (Outcome.OK, "flat", False)  # cancel
    assert c.take(yes.replace("flat", "arm"), 5, 5)[0] is Outcome.UNKNOWN
    assert c.take("garbage", 5, 5)[0] is Outcome.UNKNOWN


def test_which_actions_ask_first():
    assert not needs_confirmation("arm", "paper")
    assert needs_confirmation("arm", "live") and needs_confirmation("arm", "testnet")
    for mode in ("paper", "live"):
        assert needs_confirmation("close", mode) and needs_confirmation("flat", mode)
        assert not needs_confirmation("disarm", mode)


# ---------------------------------------------------------------------- alerts


def _signal(ts: int) -> TradeSignal:
    return TradeSignal(symbol="BTCUSDT", side=Side.LONG, entry_price=Decimal(60000),
                       quantity=Decimal("0.01"), stop_loss=Decimal(59000),
                       take_profit=Decimal(62000), leverage=5, reason="x", ts_ms=ts)


def test_alert_relay_escapes_broadcasts_and_folds_storms():
    bus = EventBus()
    outbox = Outbox(None, None)
    AlertRelay(bus, outbox, [1, 2], Texts("en"))
    bus.publish(PositionOpened(symbol="BTCUSDT", side=Side.LONG, quantity=Decimal("0.01"),
                               entry_price=Decimal(60000), stop_loss=Decimal(59000),
                               take_profit=Decimal(62000), ts_ms=1))
    for i in range(5):  # a reconnect storm within a minute
        bus.publish(ConnectionStatus(stream="market", up=False, detail="1006 <abnormal>",
                                     ts_ms=10_000 + i * 1000))
    bus.publish(ConnectionStatus(stream="market", up=False, detail="1006", ts_ms=80_000))
    for ts in (1, 2, 3):
        bus.publish(SignalRejected(signal=_signal(ts), reason="engine is DISARMED", ts_ms=ts))
    texts = [m.text for m in outbox.pending_messages() if m.chat_id == 1]
    assert [m.chat_id for m in outbox.pending_messages()].count(2) == len(texts)
    assert len(texts) == 4
    assert texts[0].startswith("🟢 <b>Entry filled</b>: LONG 0.01 BTCUSDT @ 60000\n"
                               "Notional 600.00 USDT")
    assert "1006 &lt;abnormal&gt;" in texts[1]
    assert "(+4 more like this)" in texts[2]
    assert texts[3] == "⛔ <b>Signal rejected</b>: LONG BTCUSDT: engine is DISARMED"


def test_alerts_follow_notify_preferences_and_a_halt_always_rings(tmp_path):
    from core.events import StateChanged
    from handlers.notify import NotifyPrefs

    bus = EventBus()
    outbox = Outbox(None, None)
    prefs = NotifyPrefs(tmp_path / "notify.json")
    prefs.set("connection", "off")
    prefs.set("mode", "silent")
    AlertRelay(bus, outbox, [1], Texts("en"), prefs=NotifyPrefs(tmp_path / "notify.json"))
    bus.publish(ConnectionStatus(stream="market", up=False, detail="x", ts_ms=1))
    bus.publish(StateChanged(what="mode", old="ARMED", new="DISARMED", ts_ms=2))
    bus.publish(StateChanged(what="mode", old="DISARMED", new="HALTED", reason="daily loss",
                             ts_ms=3))
    sent = outbox.pending_messages()
    assert [m.silent for m in sent] == [True, False]  # connection off; the halt rings anyway
    assert "HALTED" in sent[1].text and "daily loss" in sent[1].text


@pytest.mark.parametrize(("content", "field"), [
    ("{not json", "(document)"),
    ('{"version": 1, "modes": []}', "modes"),
    ('{"version": 1, "modes": {"entries": "loud"}}', "modes.entries"),
    ('{"version": 1, "modes": {"exits": NaN}}', "modes.exits"),
    ('{"version": 1, "modes": {"nope": "off"}}', "modes.nope"),
    ('{"version": 1, "modes": {}, "sound": true}', "sound"),
    ('{"version": 2, "modes": {}}', "version"),
])
def test_a_bad_notify_file_stops_naming_the_field_and_is_kept(tmp_path, content, field):
    from core.persisted import PersistError
    from handlers.notify import NotifyPrefs

    path = tmp_path / "notify.json"
    path.write_text(content)
    with pytest.raises(PersistError) as err:
        NotifyPrefs(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"field '{field}'" in msg, msg
    assert path.read_text() == content


def test_notify_prefs_read_back_and_a_missing_file_means_every_alert_on(tmp_path):
    from handlers.notify import NotifyPrefs

    path = tmp_path / "notify.json"
    assert set(NotifyPrefs(path).all().values()) == {"on"} and not path.exists()
    NotifyPrefs(path).set("daily", "off")
    assert NotifyPrefs(path).mode("daily") == "off" and NotifyPrefs(path).mode("exits") == "on"


# ---------------------------------------------------------------------- /dar and errors


@pytest.mark.parametrize("path, out", [
    (".env", True), (".env.production", True), (".env.example", False),
    ("data/journal.sqlite3", True), ("core/data/x.py", True), (".venv/lib/x.py", True),
    ("core/__pycache__/x.pyc", True), ("certs/tls.pem", True), ("id_rsa", True),
    ("deploy/api.key", True), ("core/engine.py", False), ("README.md", False),
    ("core/keys.py", False), ("prod.env", True), ("notes/credentials.txt", True),
    ("data.sqlite3-wal", True), ("journal.sqlite3-shm", True), ("id_ecdsa", True),
])
def test_dar_exclusions(path, out):
    assert excluded(path) is out


def test_dar_walks_a_directory_without_git(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(f"x = '{TOKEN}'\n")
    (tmp_path / ".env").write_text("SECRET=1\n")
    (tmp_path / "huge.txt").write_bytes(b"y" * 1_000_001)
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\0\0binary")
    assert list_files(tmp_path) == ["pkg/a.py"]  # without git: source-looking files only
    export = build_export(tmp_path)
    assert TOKEN.encode() not in export.zip_bytes and TOKEN.encode() not in export.txt_bytes
    assert export.tree == "pkg/\n  a.py"


def test_dar_exports_only_tracked_files_and_never_the_data_dir_or_keys(tmp_path):
    """Untracked files, DATA_DIR inside the project (state, ledger, SQLite WAL files), an
    extensionless private key and a committed .env never leave, even when tracked."""
    import subprocess

    root = tmp_path / "proj"
    (root / "core").mkdir(parents=True)
    (root / "core" / "engine.py").write_text("ENGINE = 1\n")
    (root / "README.md").write_text("# bot\n")
    (root / ".env.production").write_text("BINANCE_API_SECRET=committed-by-mistake\n")
    (root / "deploy_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n")
    state = root / "state"
    state.mkdir()
    for name in ("state.json", "ledger.json", "journal.sqlite3-wal", "outbox.sqlite3-shm"):
        (state / name).write_text("secret state")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=root, check=True)
    (root / "prod.env").write_text("BINANCE_API_SECRET=live\n")        # untracked
    (root / "notes").mkdir()
    (root / "notes" / "credentials.txt").write_text("api secret: live\n")  # untracked
    (root / "core" / "new.py").write_text("UNTRACKED = 1\n")            # untracked source
    assert list_files(root, data_dir=state) == ["README.md", "core/engine.py"]
    export = build_export(root, data_dir=state)
    for leaked in (b"committed-by-mistake", b"PRIVATE KEY", b"secret state", b"live"):
        assert leaked not in export.zip_bytes and leaked not in export.txt_bytes


def test_error_summary_redacts_the_token_in_urls():
    from utils.log_setup import add_secret

    add_secret(TOKEN)
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")
    except RuntimeError as exc:
        text = error_summary(exc)
    assert TOKEN not in text and "RuntimeError" in text and "***" in text


# ---------------------------------------------------------------------- settings


def test_telegram_settings_parse_and_fail_with_one_readable_line(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", " 123, 456 ,123")
    monkeypatch.setenv("BOT_LANGUAGE", "tr")
    monkeypatch.setenv("DAILY_REPORT_HOUR", "21")
    s = load_settings(_env_file=None)
    assert s.telegram_admin_ids == (123, 456) and s.bot_language == "tr"
    assert s.daily_report_hour == 21
    view = s.public_view()
    assert view["telegram_admin_ids"] == "123,456" and view["telegram_bot_token"] == "(set)"
    assert TOKEN not in str(view)

    for name, value, needle in [("TELEGRAM_ADMIN_IDS", "123,@bob", "TELEGRAM_ADMIN_IDS"),
                                ("TELEGRAM_ADMIN_IDS", "", "TELEGRAM_ADMIN_IDS is required"),
                                ("BOT_LANGUAGE", "de", "BOT_LANGUAGE"),
                                ("DAILY_REPORT_HOUR", "24", "DAILY_REPORT_HOUR"),
                                ("TELEGRAM_API_BASE_URL", "127.0.0.1:8081", "http")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError) as err:
            load_settings(_env_file=None)
        assert needle in str(err.value) and "\n" not in str(err.value)
        assert TOKEN not in str(err.value)
        monkeypatch.setenv("TELEGRAM_ADMIN_IDS", "123")
        monkeypatch.setenv("BOT_LANGUAGE", "en")
        monkeypatch.setenv("DAILY_REPORT_HOUR", "0")
        monkeypatch.delenv("TELEGRAM_API_BASE_URL", raising=False)


@pytest.mark.parametrize("arg", ["9" * 10_000, "²", "١٢", "1e3", "", "-", "0x10", "51"])
def test_numeric_arguments_are_bounded_and_ascii(arg):
    from handlers.common import int_arg

    with pytest.raises(UsageError) as exc:
        int_arg([arg], 0, 10, 1, 50)
    assert len(str(exc.value)) <= 20


def test_numeric_arguments_in_range_are_read():
    from handlers.common import int_arg

    assert int_arg(["7"], 0, 10, 1, 50) == 7
    assert int_arg([], 0, 10, 1, 50) == 10
