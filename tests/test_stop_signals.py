"""Ctrl-C and SIGTERM stop the bot without a traceback, also with the /ta analysis process
running: Ctrl-C in a terminal signals the whole foreground process group."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[1]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once we return: connections are refused


@pytest.mark.timeout(360)  # three bounded waits on a child process, loaded CI machine
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_stopping_with_the_analysis_process_running_prints_no_traceback(tmp_path, sig):
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the analysis process")
    port = _closed_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BINANCE_", "TELEGRAM_", "SECRETS_", "HTTP_"))}
    env.update(DATA_DIR=str(tmp_path / "data"), TRADING_MODE="paper", LOG_JSON="false",
               BINANCE_REST_URL=f"http://127.0.0.1:{port}",
               BINANCE_STREAM_URL=f"ws://127.0.0.1:{port}",
               BINANCE_WS_API_URL=f"ws://127.0.0.1:{port}/ws-fapi/v1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        assert first.startswith("dort5bot paper mode"), first  # the bot is up
        # the /ta worker process is spawned at start
        await eventually(lambda: _children(proc.pid) or proc.returncode is not None, timeout=60)
        assert proc.returncode is None
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # what Ctrl-C does: the whole process group
        else:
            proc.send_signal(sig)  # what a platform does: the main process
        _, raw_err = await asyncio.wait_for(proc.communicate(), 120)
        err = raw_err.decode(errors="replace")
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
