"""Start-up: heavy libraries load only on the paths that need them (matplotlib for charts,
NumPy and TA-Lib for /ta, python-telegram-bot with a token, aiohttp for network paths)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, shared_file

HEAVY = ("matplotlib", "telegram", "talib", "aiohttp", "websockets", "optuna", "psycopg")

PROBE = """
import sys
sys.path.insert(0, {root!r})
sys.argv = ["main.py", *{argv!r}]
import main
try:
    status = main.main(sys.argv[1:])
except SystemExit as exc:  # --help
    status = exc.code
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print("LOADED", ",".join(loaded), "STATUS", status)
"""


def loaded_by(argv: list[str], cwd) -> tuple[list[str], int]:
    code = PROBE.format(root=str(ROOT), argv=argv, heavy=HEAVY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "HTTP_"))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("LOADED"))
    _, loaded, _, status = line.split(" ")
    return [m for m in loaded.split(",") if m], int(status)


@pytest.mark.realdata
def test_backtest_imports_no_chart_telegram_talib_or_network_library(tmp_path):
    data = shared_file("BTCUSDT-1m-2023-04-15.csv")
    assert loaded_by(["backtest", str(data)], tmp_path) == ([], 0)


def test_help_imports_nothing_heavy(tmp_path):
    assert loaded_by(["--help"], tmp_path) == ([], 0)


@pytest.mark.realdata
def test_backtest_plot_loads_matplotlib_only_then(tmp_path):
    data = shared_file("BTCUSDT-1m-2023-04-15.csv")
    loaded, status = loaded_by(["backtest", str(data), "--plot", str(tmp_path / "c.png")],
                               tmp_path)
    assert (loaded, status) == (["matplotlib"], 0) and (tmp_path / "c.png").exists()
