"""``main.py run`` in paper mode on replayed real data: journal, state, restart mid-position."""

from __future__ import annotations

import gzip
import sqlite3
from decimal import Decimal

import pytest

from core.store import read_document
from main import main
from tests.conftest import shared_file

DEMO_ENV = {"TIMEFRAME": "5s", "EMA_FAST": "5", "EMA_SLOW": "13", "ADX_PERIOD": "7",
            "ADX_MIN": "15", "LOG_LEVEL": "WARNING"}
SPLIT_MS = 1723161550000  # 2024-08-08 23:59:10 UTC: inside the capture's first trade


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_IDS", "TRADING_MODE", "SYMBOLS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in DEMO_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def split_capture(tmp_path) -> tuple:
    """The 2024 BTCUSDT capture cut in two at SPLIT_MS (exchange time of each line)."""
    first, second = [], []
    with gzip.open(shared_file("btcusdt_20240808.gz"), "rb") as f:
        for line in f:
            at = line.find(b'"E":')
            ts = int(line[at + 4:at + 17]) if at > 0 else 0
            (first if ts < SPLIT_MS else second).append(line)
    a, b = tmp_path / "part1.gz", tmp_path / "part2.gz"
    a.write_bytes(gzip.compress(b"".join(first)))
    b.write_bytes(gzip.compress(b"".join(second)))
    return a, b


def journal(data_dir) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "journal.sqlite3")


def test_paper_run_journals_trades_and_the_wallet_adds_up(env, capsys):
    assert main(["run", "--replay", str(shared_file("btcusdt_20240808.gz")), "--speed", "0"]) == 0
    db = journal(env)
    nets = [Decimal(n) for (n,) in db.execute("SELECT net_pnl FROM trades")]
    assert len(nets) >= 1
    assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] >= 2 * len(nets)
    account = read_document(env / "journal.sqlite3", "paper_account")
    state = read_document(env / "journal.sqlite3", "engine_state")
    if state["phase"] == "FLAT":
        assert Decimal(account["wallet"]) == Decimal("1000") + sum(nets)
    assert "ENTRY" in capsys.readouterr().out  # headless: alerts go to the console
    snapshots = db.execute("SELECT ts_ms, equity FROM equity ORDER BY ts_ms").fetchall()
    exits = {ts for (ts,) in db.execute("SELECT exit_ts_ms FROM trades")}
    assert exits <= {ts for ts, _ in snapshots}  # equity recorded the moment a trade closes
    periodic = [ts for ts, _ in snapshots if ts not in exits]
    assert len(periodic) >= 5  # one per exchange minute of the 5m44s capture
    minutes = [ts // 60_000 for ts in periodic]
    assert len(set(minutes)) == len(minutes)  # at most one per minute


def test_restart_mid_position_resumes_and_closes_it(env, tmp_path):
    part1, part2 = split_capture(tmp_path)
    assert main(["run", "--replay", str(part1), "--speed", "0"]) == 0
    state = read_document(env / "journal.sqlite3", "engine_state")
    assert state["phase"] == "OPEN" and state["mode"] == "ARMED"
    account = read_document(env / "journal.sqlite3", "paper_account")
    assert list(account["positions"]) == ["BTCUSDT"]
    held = Decimal(account["positions"]["BTCUSDT"]["qty"])

    assert main(["run", "--replay", str(part2), "--speed", "0"]) == 0  # a new process, same data
    db = journal(env)
    trades = db.execute("SELECT quantity, entry_ts_ms, exit_ts_ms, net_pnl FROM trades "
                        "ORDER BY exit_ts_ms").fetchall()
    assert trades, "the adopted position was never closed"
    qty, entry_ts, exit_ts, _ = trades[0]
    assert Decimal(qty) == abs(held) and entry_ts < SPLIT_MS <= exit_ts
    starts = [t[1] for t in trades]
    ends = [t[2] for t in trades]
    assert all(ends[i] <= starts[i + 1] for i in range(len(trades) - 1))  # never two at once
    final = read_document(env / "journal.sqlite3", "paper_account")
    state = read_document(env / "journal.sqlite3", "engine_state")
    if state["phase"] == "FLAT":
        total = sum(Decimal(t[3]) for t in trades)
        assert Decimal(final["wallet"]) == Decimal("1000") + total


def test_run_with_a_corrupt_file_exits_2(env, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("what,is,this\n1,2,3\n")
    assert main(["run", "--replay", str(bad), "--speed", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.csv" in err and "\n" not in err


def test_a_corrupt_state_file_stops_with_one_line(env, capsys):
    env.mkdir(parents=True)
    (env / "state.json").write_text("{not json")
    assert main(["run", "--replay", str(shared_file("btcusdt_20240808.gz")), "--speed", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "state.json" in err and "\n" not in err


PG_PASSWORD = "Sup3r-Secret-Passw0rd"


def test_paper_run_journals_into_postgresql_under_its_account(env, monkeypatch, postgres_dsn):
    import psycopg

    monkeypatch.setenv("JOURNAL_URL", postgres_dsn)
    monkeypatch.setenv("ACCOUNT", "futures-1")
    assert main(["run", "--replay", str(shared_file("btcusdt_20240808.gz")), "--speed", "0"]) == 0
    assert not (env / "journal.sqlite3").exists() or not journal(env).execute(
        "SELECT name FROM sqlite_master WHERE name = 'trades'").fetchall()
    with psycopg.connect(postgres_dsn) as conn:
        trades = conn.execute("SELECT account, net_pnl FROM trades").fetchall()
        fills = conn.execute("SELECT COUNT(*) FROM fills WHERE account = 'futures-1'").fetchone()
        kinds = conn.execute("SELECT DISTINCT account FROM events").fetchall()
    assert len(trades) >= 1 and {a for a, _ in trades} == {"futures-1"}
    assert fills is not None and fills[0] >= 2 * len(trades)
    assert kinds == [("futures-1",)]


@pytest.mark.parametrize("url", [
    f"postgresql://bot:{PG_PASSWORD}@127.0.0.1:1/journal",  # nothing listens there
    f"postgresql://bot:{PG_PASSWORD}@127.0.0.1:port/journal",  # malformed
    f"mysql://bot:{PG_PASSWORD}@127.0.0.1/journal",  # not PostgreSQL
])
def test_a_bad_journal_url_stops_with_one_line_without_the_password(env, monkeypatch, capsys,
                                                                    caplog, url):
    monkeypatch.setenv("JOURNAL_URL", url)
    assert main(["run", "--replay", str(shared_file("btcusdt_20240808.gz")), "--speed", "0"]) == 2
    out = capsys.readouterr()
    err = out.err.strip()
    assert "JOURNAL_URL" in err and "\n" not in err
    assert PG_PASSWORD not in out.err + out.out + caplog.text
