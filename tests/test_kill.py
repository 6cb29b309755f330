"""Crash consistency: the bot killed (SIGKILL) at named points restarts consistent with itself.

Each case runs ``main.py run --replay`` in a child process that kills itself at one crash point
(core/crashpoints.py), checks what it left (tests/kill_harness.py ``books``: phase vs position,
ledger vs position, wallet = initial + Σ journal net PnL + the running trade's realized part,
no trade exits before it enters), restarts it on the same data (the replay resumes after the
last processed exchange time) and checks again. Before the store of record, each of these
left the books apart (issue 10).
"""

from __future__ import annotations

import pytest

from tests.conftest import shared_file
from tests.kill_harness import KILLED, books, run_bot

CAPTURE = "btcusdt_20240808.gz"  # one round trip with the demo parameters (entry 23:59:00)

# crash point -> (what it reproduces, round trips after the restart). A kill before the entry
# was committed loses the signal's indicator warm-up (the replay resumes after the last commit,
# and TRENDING's indicators are not persisted), so that restart may trade differently (0 or 1
# round trips, possibly a position still open at the end: ``books`` checks it either way).
CASES = {
    # a round trip committed; the journal's batch (event log) not yet flushed
    "committed:trades@1": ("round trip closed < 0.5 s before the kill", {1}),
    # the phase is ENTERING in memory, the entry order not yet handed to the exchange
    "ordering:submit@1": ("ENTERING before the order was recorded", {0, 1}),
    # the phase is EXITING, the exit order not yet handed to the exchange
    "ordering:submit@2": ("EXITING before the order was recorded", {1}),
    # the paper account's fill written, the transaction with the engine's reaction not committed
    "commit:paper_account@2": ("paper fill stored before the engine processed it", {0, 1}),
    # FLAT and the ledger's exit booking in one transaction, killed before it commits
    "commit:trades@1": ("FLAT saved before the ledger booked the exit", {1}),
    # the journal's batched event log
    "journal:flush@1": ("before the journal's first batched commit", {0, 1}),
}


@pytest.mark.parametrize("crash", list(CASES), ids=[c[0] for c in CASES.values()])
def test_killed_at_a_crash_point_restarts_consistent(tmp_path, crash):
    data = tmp_path / "data"
    first = run_bot(data, [shared_file(CAPTURE)], crash=crash)
    assert first.returncode == KILLED, first.stderr[-2000:]  # the point was reached
    books(data)
    second = run_bot(data, [shared_file(CAPTURE)])
    assert second.returncode == 0, second.stderr[-2000:]
    after = books(data)
    assert len(after.trades) in CASES[crash][1]  # the one trade at most once, never doubled
