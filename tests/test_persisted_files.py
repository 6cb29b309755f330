"""Every persisted file and field is validated on load: a bad one stops ``main.py run`` with one
line naming the file and the field, exit status 2, the file left untouched (issue 10). Legacy
JSON files are migrated into the store of record on first start, a running position kept."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from core.store import Store, read_document
from main import main
from tests.conftest import restored_logging, shared_file

DATA = "BTCUSDT-1m-2023-04-15.csv"

GOOD_STATE = {"version": 1, "mode": "ARMED", "phase": "OPEN", "symbol": "BTCUSDT",
              "side": "LONG", "quantity": "0.010", "entry_price": "30000",
              "stop_loss": "29700", "take_profit": "30600", "opened_ms": 1681516800000,
              "close_pending": "", "exit_attempts": 0, "orders": {}, "seq": 4}
GOOD_PAPER = {"version": 1, "wallet": "999.85", "order_seq": 1, "trade_seq": 1,
              "positions": {"BTCUSDT": {"qty": "0.010", "entry": "30000", "margin": "60",
                                        "leverage": 5, "opened_ms": 1681516800000}}}
GOOD_LEDGER = {"version": 1, "intents": {},
               "open": {"BTCUSDT": {"side": "LONG", "entry_ts": 1681516800000, "qty": "0.010",
                                    "entry_cost": "300.00", "entry_qty": "0.010",
                                    "exit_value": "0", "exit_qty": "0", "gross": "0",
                                    "fees": "0.15", "funding": "0"}}}


def with_field(doc: dict, path: str, value) -> dict:
    out = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()

# (document, dotted field, bad value) -> the error names that field
BAD_FIELDS = [
    ("engine_state", "mode", "SLEEPY"),
    ("engine_state", "phase", DELETE),
    ("engine_state", "symbol", 123),
    ("engine_state", "side", "UP"),
    ("engine_state", "quantity", "NaN"),
    ("engine_state", "quantity", "-0.010"),
    ("engine_state", "entry_price", "Infinity"),
    ("engine_state", "opened_ms", "yesterday"),
    ("engine_state", "exit_attempts", -1),
    ("engine_state", "seq", "7"),
    ("engine_state", "orders", []),
    ("engine_state", "version", 99),
    ("engine_state", "risk", {"day_realized": "NaN"}),  # the RISK guardian's checkpoint
    ("engine_state", "risk", {"entries": [1681516800000, "soon"]}),
    ("engine_state", "risk", {"loss_streek": 2}),
    ("paper_account", "wallet", "-5"),
    ("paper_account", "wallet", "NaN"),
    ("paper_account", "positions", []),
    ("paper_account", "positions.BTCUSDT.leverage", 0),
    ("paper_account", "positions.BTCUSDT.qty", "1e999999"),
    ("paper_account", "positions.BTCUSDT.margin", "-1"),
    ("paper_account", "version", 2),
    ("ledger", "open.BTCUSDT.side", "UP"),
    ("ledger", "open.BTCUSDT.fees", "NaN"),
    ("ledger", "open.BTCUSDT.entry_ts", -5),
    ("ledger", "intents", [1]),
    ("ledger", "version", 7),
    ("replay_cursor", "ts_ms", "soon"),
    ("replay_cursor", "ts_ms", -1),
    ("replay_cursor", "events", 1.5),
    ("replay_cursor", "events", DELETE),
    ("replay_cursor", "source", "BTCUSDT-1m-2023-04-15.csv"),
    ("replay_cursor", "source", [3]),
    ("replay_cursor", "version", 2),
]
GOOD_CURSOR = {"version": 1, "ts_ms": 1681516800000, "events": 10, "source": ["x.csv:1"]}
GOOD = {"engine_state": GOOD_STATE, "paper_account": GOOD_PAPER, "ledger": GOOD_LEDGER,
        "replay_cursor": GOOD_CURSOR}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_IDS", "TRADING_MODE", "SYMBOLS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_store(db: Path, docs: dict) -> None:
    store = Store.open(db)
    store.write(docs)
    store.close()
    with closing(sqlite3.connect(db)) as conn:  # checkpoint: the main file holds everything
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def run(capsys) -> tuple[int, str]:
    code = main(["run", "--replay", str(shared_file(DATA)), "--speed", "0"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(("key", "field", "value"), BAD_FIELDS,
                         ids=[f"{k}.{f}={v!r}" for k, f, v in BAD_FIELDS])
def test_a_bad_stored_field_stops_with_one_line_naming_it(env, capsys, key, field, value):
    db = env / "journal.sqlite3"
    write_store(db, GOOD | {key: with_field(GOOD[key], field, value)})
    before = digest(db)
    code, err = run(capsys)
    assert code == 2 and "\n" not in err and "Traceback" not in err
    name = field.split(".")[0] if key != "paper_account" or "." not in field else field
    assert str(db) in err and f"[{key}]" in err and name in err, err
    assert digest(db) == before


@pytest.mark.parametrize(("name", "content", "field"), [
    ("state.json", "{not json", "(document)"),
    ("state.json", json.dumps(GOOD_STATE | {"quantity": "NaN"}), "quantity"),
    ("paper_account.json", json.dumps({"wallet": "1000", "positions": []}), "positions"),
    ("paper_account.json", json.dumps({"wallet": 5.5}), "wallet"),
    ("ledger.json", json.dumps({"open": {"BTCUSDT": {"side": "UP"}}}), "open.BTCUSDT.side"),
    ("ledger.json", "[]", "(document)"),
])
def test_a_bad_legacy_file_stops_with_one_line_and_nothing_moves(env, capsys, name, content,
                                                                  field):
    path = env / name
    path.write_text(content)
    code, err = run(capsys)
    assert code == 2 and "\n" not in err
    assert str(path) in err and field in err, err
    assert path.read_text() == content and not (env / f"{name}.migrated").exists()
    assert read_document(env / "journal.sqlite3", "engine_state") is None


def test_a_damaged_journal_database_stops_with_one_line(env, capsys):
    db = env / "journal.sqlite3"
    db.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    before = digest(db)
    code, err = run(capsys)
    assert code == 2 and "\n" not in err and str(db) in err
    assert digest(db) == before


def test_legacy_files_with_a_running_position_are_migrated_and_it_is_kept(env, capsys):
    for name, doc in (("state.json", GOOD_STATE), ("paper_account.json", GOOD_PAPER),
                      ("ledger.json", GOOD_LEDGER)):
        legacy = {k: v for k, v in doc.items() if k != "version" or name == "state.json"}
        (env / name).write_text(json.dumps(legacy))
    code, err = run(capsys)
    assert code == 0, err
    for name in ("state.json", "paper_account.json", "ledger.json"):
        assert not (env / name).exists() and (env / f"{name}.migrated").exists()
    db = env / "journal.sqlite3"
    state = read_document(db, "engine_state")
    # the migrated LONG was managed by this run: still open, or closed as one round trip
    with closing(sqlite3.connect(db)) as conn:
        trades = conn.execute("SELECT entry_ts_ms, quantity FROM trades").fetchall()
    if state["phase"] == "OPEN":
        assert state["symbol"] == "BTCUSDT"
        assert read_document(db, "paper_account")["positions"]["BTCUSDT"]["qty"]
    else:
        assert trades[0] == (GOOD_LEDGER["open"]["BTCUSDT"]["entry_ts"], "0.010")


# (file in DATA_DIR, content, field named) -> the files beside the store, validated the same way
BAD_SIDE_FILES = [
    ("strategy.json", "{not json", "(document)"),
    ("strategy.json", '{"strategy": "gone_plugin", "params": {}}', "strategy"),
    ("strategy.json", '{"strategy": 7}', "strategy"),
    ("strategy.json", '{"strategy": "macd", "params": {"fast": Infinity}}', "params.fast"),
    ("strategy.json", '{"strategy": "macd", "params": {"fast": -3}}', "params"),
    ("strategy.json", '{"strategy": "macd", "params": {"nope": 1}}', "params"),
    ("strategy.json", '{"strategy": "macd", "parms": {}}', "parms"),
    ("strategy.json", '{"version": 9, "strategy": "macd"}', "version"),
    ("watchlist.json", "", "(document)"),
    ("watchlist.json", '{"symbols": {"ETHUSDT": 1}}', "symbols"),
    ("watchlist.json", '{"symbols": ["ETHUSDT", 5]}', "symbols.1"),
    ("watchlist.json", '{"symbols": ["ETH USDT"]}', "symbols.0"),
    ("watchlist.json", '{"symbols": [], "watch": []}', "watch"),
    ("watchlist.json", '{"version": "1", "symbols": []}', "version"),
    ("watchlist.json", '{"version": 2, "symbols": []}', "version"),
]


@pytest.mark.parametrize(("name", "content", "field"), BAD_SIDE_FILES,
                         ids=[f"{n}:{f}:{c[:30]}" for n, c, f in BAD_SIDE_FILES])
def test_a_bad_file_beside_the_store_stops_with_one_line_naming_it(env, capsys, name, content,
                                                                   field):
    path = env / name
    path.write_text(content)
    before = digest(path)
    code, err = run(capsys)
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert str(path) in err and f"field '{field}'" in err, err
    assert digest(path) == before


def test_files_beside_the_store_that_are_valid_or_missing_start_the_bot(env, capsys):
    (env / "strategy.json").write_text('{"strategy": "macd", "params": {"fast": 8}}')
    (env / "watchlist.json").write_text('{"version": 1, "symbols": ["ETHUSDT"]}')
    assert run(capsys)[0] == 0
    for name in ("strategy.json", "watchlist.json"):
        (env / name).unlink()
    assert run(capsys)[0] == 0


TOKEN = "6100200300:AAFt3stT0ken_abcdefghijklmnopqrstuvw"
# read when Telegram hosts the bot: before anything is sent, so no Bot API server is needed
BAD_TELEGRAM_FILES = [
    ("notify.json", b"{not json", "(document)"),
    ("notify.json", b'{"version": 1, "modes": {"entries": "loud"}}', "modes.entries"),
    ("notify.json", b'{"version": 1, "modes": {"fills": "off"}}', "modes.fills"),
    ("notify.json", b'{"version": 1, "modes": {"exits": NaN}}', "modes.exits"),
    ("notify.json", b'{"version": 1, "modes": []}', "modes"),
    ("notify.json", b'{"version": 1, "modes": {}, "muted": true}', "muted"),
    ("notify.json", b'{"version": 5, "modes": {}}', "version"),
    ("outbox.sqlite3", b"SQLite format 3\x00" + bytes(range(256)) * 40, "(database)"),
    ("outbox.sqlite3", b"queued alerts\n" * 300, "(database)"),
]


def outbox_with(path: Path, assignment: str) -> None:
    """An outbox file holding one queued alert, one field then damaged by ``assignment``."""
    from handlers.outbox_store import OutboxStore, OutMessage

    store = OutboxStore(path)
    store.add(OutMessage(0, 1, "text", "<b>queued alert</b>", priority=0))
    store.close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"UPDATE outbox SET {assignment}")
        conn.commit()


@pytest.fixture
def hosted(env, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", "1")
    return env


@pytest.mark.parametrize(("name", "content", "field"), BAD_TELEGRAM_FILES,
                         ids=[f"{n}:{f}:{c[:24]!r}" for n, c, f in BAD_TELEGRAM_FILES])
def test_a_bad_telegram_file_stops_with_one_line_naming_it(hosted, capsys, name, content, field):
    path = hosted / name
    path.write_bytes(content)
    code, err = run(capsys)
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert str(path) in err and f"field '{field}'" in err and TOKEN not in err, err
    assert path.read_bytes() == content


@pytest.mark.parametrize(("assignment", "field"), [
    ("kind = 'sticker'", "kind"), ("priority = 7", "priority"), ("chat_id = 'admin'", "chat_id"),
    ("markup = 'not json'", "markup"), ("size = -1", "size"),
])
def test_a_bad_outbox_row_stops_and_the_queued_alert_stays(hosted, capsys, assignment, field):
    path = hosted / "outbox.sqlite3"
    outbox_with(path, assignment)
    before = digest(path)
    code, err = run(capsys)
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert str(path) in err and "[outbox seq 1]" in err and f"field '{field}'" in err, err
    assert digest(path) == before


# ------------------------------------------------ journal rows RISK restores its history from

LATER = 1_681_603_200_000  # 2023-04-16, after every round trip of the first run
GOOD_TRADE = {"account": "main", "symbol": "BTCUSDT", "side": "LONG", "entry_ts_ms": LATER - 60_000,
              "exit_ts_ms": LATER, "entry_price": "30000.0", "exit_price": "30010.0",
              "quantity": "0.016", "gross_pnl": "0.16", "fees": "0.48", "funding": "0",
              "net_pnl": "-0.32", "exit_reason": "TP"}
BAD_ROWS = [
    ("trades", {"net_pnl": "NaN"}, "net_pnl"),
    ("trades", {"quantity": "-0.016"}, "quantity"),
    ("trades", {"side": "UP"}, "side"),
    ("trades", {"symbol": "btc/usdt"}, "symbol"),
    ("trades", {"exit_reason": "LUCK"}, "exit_reason"),
    ("trades", {"entry_ts_ms": "yesterday"}, "entry_ts_ms"),
    ("trades", {"entry_ts_ms": LATER + 1}, "exit_ts_ms"),
    ("trades", {"fees": "0,48"}, "fees"),
    ("equity", {"equity": "1e999"}, "equity"),  # the highest: the peak RISK reads
    ("equity", {"equity": "NaN"}, "equity"),  # in today's curve
]


@pytest.fixture(scope="module")
def journal_with_history(tmp_path_factory) -> Path:
    """A data folder after one persisted replay: 25 round trips, RISK's book in the store."""
    root = tmp_path_factory.mktemp("history")
    with pytest.MonkeyPatch.context() as mp, restored_logging():
        mp.chdir(root)
        for k in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_IDS", "TRADING_MODE", "SYMBOLS"):
            mp.delenv(k, raising=False)
        mp.setenv("LOG_LEVEL", "ERROR")
        mp.setenv("DATA_DIR", str(root / "data"))
        assert main(["run", "--replay", str(shared_file(DATA)), "--speed", "0"]) == 0
    return root / "data"


@pytest.mark.parametrize(("table", "change", "field"), BAD_ROWS,
                         ids=[f"{t}.{f}={next(iter(c.values()))!r}" for t, c, f in BAD_ROWS])
def test_a_bad_journal_row_of_the_risk_history_stops_with_one_line(
        env, capsys, journal_with_history, table, change, field):
    for src in journal_with_history.iterdir():
        (env / src.name).write_bytes(src.read_bytes())
    db = env / "journal.sqlite3"
    with closing(sqlite3.connect(db)) as conn:
        n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert n > 0
        if table == "trades":
            row = GOOD_TRADE | change
        else:
            row = {"account": "main", "ts_ms": 1_681_560_000_000, "wallet_balance": "990",
                   "unrealized_pnl": "0"} | change
        cols = ", ".join(row)
        conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})",
                     tuple(row.values()))
        conn.commit()
        new_id = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    before = digest(db)
    code, err = run(capsys)
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert str(db) in err and f"[{table} row {new_id}]" in err and f"field '{field}'" in err, err
    assert digest(db) == before


def test_a_valid_journal_history_restarts(env, capsys, journal_with_history):
    for src in journal_with_history.iterdir():
        (env / src.name).write_bytes(src.read_bytes())
    with closing(sqlite3.connect(env / "journal.sqlite3")) as conn:
        conn.execute(f"INSERT INTO trades ({', '.join(GOOD_TRADE)}) VALUES"
                     f" ({', '.join('?' * len(GOOD_TRADE))})", tuple(GOOD_TRADE.values()))
        conn.commit()
    assert run(capsys)[0] == 0
