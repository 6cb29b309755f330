"""Kill harness: run ``main.py run --replay`` in a child process that SIGKILLs itself at a named
crash point (``DORT5BOT_CRASH_AT``, core/crashpoints.py), then read back what it left on disk.

``books(data_dir)`` reads the store of record and checks that everything in it agrees:
engine phase vs the paper account's position, the ledger's running trades vs that position,
wallet = initial balance + Σ journal net PnL of closed round trips + the running trade's
realized part, and round trips that never overlap or exit before they enter.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.store import read_document

ROOT = Path(__file__).resolve().parents[1]
DEMO_ENV = {"TIMEFRAME": "5s", "EMA_FAST": "5", "EMA_SLOW": "13", "ADX_PERIOD": "7",
            "ADX_MIN": "15", "LOG_LEVEL": "WARNING", "LOG_JSON": "false",
            "INITIAL_BALANCE": "1000", "TRADING_MODE": "paper", "SYMBOLS": "BTCUSDT"}
KILLED = -signal.SIGKILL


def run_bot(data_dir: Path, files: list[Path], *, crash: str | None = None,
            timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``main.py run --replay FILES --speed 0`` in a child process; its CompletedProcess."""
    child = {k: v for k, v in os.environ.items()
             if not k.startswith(("TELEGRAM_", "BINANCE_", "DORT5BOT_"))}
    child |= DEMO_ENV | {"DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)} | env
    if crash:
        child["DORT5BOT_CRASH_AT"] = crash
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", "--replay", *map(str, files),
         "--speed", "0"],
        env=child, cwd=data_dir.parent, capture_output=True, text=True, timeout=timeout)


@dataclass
class Books:
    state: dict[str, Any]
    paper: dict[str, Any]
    ledger: dict[str, Any]
    trades: list[tuple]
    fills: int


def books(data_dir: Path) -> Books:
    """Read the store of record and assert that it agrees with itself (see module doc)."""
    db = data_dir / "journal.sqlite3"
    state = read_document(db, "engine_state") or {"phase": "FLAT", "quantity": "0"}
    paper = read_document(db, "paper_account") or {"wallet": "1000", "positions": {}}
    ledger = read_document(db, "ledger") or {"open": {}, "intents": {}}
    with closing(sqlite3.connect(db)) as conn:
        trades = conn.execute("SELECT entry_ts_ms, exit_ts_ms, net_pnl, quantity FROM trades"
                              " ORDER BY exit_ts_ms, id").fetchall()
        (fills,) = conn.execute("SELECT COUNT(*) FROM fills").fetchone()
    b = Books(state, paper, ledger, trades, fills)
    positions = {s: Decimal(p["qty"]) for s, p in paper["positions"].items()}
    # the phase matches the position (ENTERING/EXITING are never left behind in paper)
    assert state["phase"] in ("FLAT", "OPEN"), state
    if state["phase"] == "FLAT":
        assert not positions, (state, positions)
    else:
        signed = Decimal(state["quantity"]) * (1 if state["side"] == "LONG" else -1)
        assert positions == {state["symbol"]: signed}, (state, positions)
    # the ledger's running trades are the positions
    running = {s: Decimal(t["qty"]) * (1 if t["side"] == "LONG" else -1)
               for s, t in ledger["open"].items()}
    assert running == positions, (running, positions)
    # the wallet adds up: closed round trips + what the running trade realized so far
    realized = sum((Decimal(t["gross"]) - Decimal(t["fees"]) + Decimal(t["funding"])
                    for t in ledger["open"].values()), Decimal(0))
    net = sum((Decimal(t[2]) for t in trades), Decimal(0))
    assert Decimal(paper["wallet"]) == Decimal("1000") + net + realized, (paper, net, realized)
    # no trade exits before it enters; one at a time
    for i, (entry, exit_, _, _) in enumerate(trades):
        assert entry <= exit_
        if i:
            assert trades[i - 1][1] <= entry
    assert fills >= 2 * len(trades)
    return b
