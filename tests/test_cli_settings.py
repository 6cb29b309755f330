"""Settings are validated the same way for every command: a bad environment variable stops
any command with exit status 2 and one line naming the variable, before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from main import main
from tests.conftest import ROOT

COMMANDS = [
    ["backtest", "data.csv"],
    ["run"],
    ["record", "--out", "out.gz", "--duration", "1"],
    ["strategies"],
    ["secrets", "show"],
]
BAD = [
    ("TRADING_MODE", "yolo", "TRADING_MODE"),
    ("STRATEGY", "nope", "STRATEGY"),
    ("STRATEGY_PARAMS", "no_such_param=1", "STRATEGY_PARAMS"),
    ("LEVERAGE", "abc", "LEVERAGE"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(("var", "value", "named"), BAD, ids=lambda v: str(v))
def test_bad_setting_stops_every_command_with_one_line(command, var, value, named, tmp_path,
                                                       monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(var, value)
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: invalid settings: {named}: ")
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()  # nothing ran


def test_the_process_exits_2_on_trading_mode_yolo_for_a_backtest(tmp_path):
    env = dict(os.environ, TRADING_MODE="yolo", DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "backtest", "x.csv"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: invalid settings: TRADING_MODE: Input should be 'paper', 'testnet' or 'live'"]
