"""``run --replay`` after a restart resumes after the last processed exchange time and never
feeds older prices into an open position (issue 10)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from core.store import read_document
from main import main
from tests.conftest import shared_file
from tests.kill_harness import books
from tests.test_run_paper import DEMO_ENV, SPLIT_MS, split_capture


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_IDS", "TRADING_MODE", "SYMBOLS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in DEMO_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def trades(data):
    with closing(sqlite3.connect(data / "journal.sqlite3")) as db:
        return db.execute("SELECT entry_ts_ms, exit_ts_ms FROM trades").fetchall()


def test_the_same_files_again_replay_nothing_twice(env, capsys):
    capture = str(shared_file("btcusdt_20240808.gz"))
    assert main(["run", "--replay", capture, "--speed", "0"]) == 0
    first = trades(env)
    cursor = read_document(env / "journal.sqlite3", "replay_cursor")
    assert cursor["events"] > 80_000
    capsys.readouterr()
    assert main(["run", "--replay", capture, "--speed", "0"]) == 0
    assert "feed ended: 0 events" in capsys.readouterr().out
    assert trades(env) == first
    books(env)


def test_older_prices_never_reach_an_open_position(env, tmp_path, capsys):
    part1, part2 = split_capture(tmp_path)
    assert main(["run", "--replay", str(part1), "--speed", "0"]) == 0
    state = read_document(env / "journal.sqlite3", "engine_state")
    assert state["phase"] == "OPEN" and state["opened_ms"] < SPLIT_MS
    capsys.readouterr()
    assert main(["run", "--replay", str(part1), "--speed", "0"]) == 0  # older data again
    assert "feed ended: 0 events" in capsys.readouterr().out
    assert read_document(env / "journal.sqlite3", "engine_state") == state
    assert main(["run", "--replay", str(part2), "--speed", "0"]) == 0  # newer data resumes
    (trade,) = trades(env)
    assert trade[0] < SPLIT_MS <= trade[1]
    books(env)
