"""Every field of every document in the store of record is validated on load.

For each leaf of a complete, valid document (engine state with an order and the RISK
checkpoint, paper account, ledger with a running trade and an order intent, replay cursor) and
for each container, values of the wrong type, not finite or out of range are refused with a
``PersistError`` naming that field. The end-to-end side (one line, exit 2, the file untouched) is
tests/test_persisted_files.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest

from core.event_bus import EventBus
from core.ledger import Ledger
from core.paper_account import validate_paper_account
from core.persisted import PersistError
from core.replay.feed import read_cursor
from core.state import EngineState

T0 = 1_681_516_800_000
RISK = {"day_start_ms": T0, "day_start_equity": "1000", "day_realized": "-1.25", "day_trades": 2,
        "equity": "998.75", "peak_equity": "1001", "loss_streak": 1, "cooldown_until_ms": 0,
        "last_trade_ms": T0 + 60_000, "daily_ack_ms": 0, "peak_since_ms": T0,
        "entries": [T0, T0 + 30_000], "orders": [T0 + 30_000]}
STATE = {"version": 1, "mode": "ARMED", "phase": "OPEN", "symbol": "BTCUSDT", "side": "LONG",
         "quantity": "0.010", "entry_price": "30000", "stop_loss": "29700",
         "take_profit": "30600", "opened_ms": T0, "close_pending": "", "exit_attempts": 0,
         "orders": {"d5-e-7": {"client_order_id": "d5-e-7", "symbol": "BTCUSDT", "side": "BUY",
                               "quantity": "0.010", "intent": "ENTRY", "reduce_only": False,
                               "submitted_ms": T0, "filled_qty": "0.010", "status": "FILLED"}},
         "seq": 7, "halt_reason": "", "halted_ms": 0, "risk": RISK}
PAPER = {"version": 1, "wallet": "999.85", "order_seq": 3, "trade_seq": 2,
         "positions": {"BTCUSDT": {"qty": "0.010", "entry": "30000", "margin": "60",
                                   "leverage": 5, "opened_ms": T0}}}
LEDGER = {"version": 1, "intents": {"d5-x-8": "EXIT"},
          "open": {"BTCUSDT": {"side": "LONG", "entry_ts": T0, "qty": "0.010",
                               "entry_cost": "300.00", "entry_qty": "0.010", "exit_value": "0",
                               "exit_qty": "0", "gross": "0", "fees": "0.15", "funding": "0"}}}
CURSOR = {"version": 1, "ts_ms": T0, "events": 10, "source": ["BTCUSDT-1m-2023-04-15.csv:9"]}


class _Store:
    path = "journal.sqlite3"

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def get(self, _key: str) -> Any:
        return self.doc


LOADERS: dict[str, tuple[dict, Callable[[Any], Any]]] = {
    "engine_state": (STATE, lambda d: EngineState.from_doc(d, "w")),
    "paper_account": (PAPER, lambda d: validate_paper_account(d, "w")),
    "ledger": (LEDGER, lambda d: Ledger(EventBus()).restore(d, "w")),
    "replay_cursor": (CURSOR, lambda d: read_cursor(_Store(d))),
}


def _is_decimal(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


def _bad_values(value: Any) -> list[Any]:
    """Values of the wrong type, not finite or out of range for a leaf holding ``value``."""
    if isinstance(value, bool):
        return ["yes", 1]
    if isinstance(value, int):
        return [str(value), -1, 1.5]
    if isinstance(value, str):
        # an exact JSON integer is a valid amount; a float (inexact) is not
        return ["NaN", "Infinity", "abc", 0.1] if _is_decimal(value) else [123, None]
    if value is None:  # an optional amount
        return ["NaN", 5]
    return []


def _cases(doc: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, bad value) for every leaf and container of ``doc``."""
    if isinstance(doc, dict):
        if path:
            yield path, []
        for key, value in doc.items():
            yield from _cases(value, f"{path}.{key}" if path else key)
    elif isinstance(doc, list):
        yield path, "x"
        for i, value in enumerate(doc):
            yield from _cases(value, f"{path}[{i}]")
    else:
        for bad in _bad_values(doc):
            yield path, bad


def _with(doc: dict, path: str, value: Any) -> dict:
    out = json.loads(json.dumps(doc))
    keys = path.replace("[", ".[").split(".")
    node: Any = out
    for key in keys[:-1]:
        node = node[int(key[1:-1])] if key.startswith("[") else node[key]
    last = keys[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    return out


CASES = [(name, path, bad) for name, (doc, _) in LOADERS.items() for path, bad in _cases(doc)]


@pytest.mark.parametrize("name", LOADERS)
def test_the_complete_documents_are_valid(name: str) -> None:
    doc, load = LOADERS[name]
    load(json.loads(json.dumps(doc)))


@pytest.mark.parametrize(("name", "path", "bad"), CASES,
                         ids=[f"{n}:{p}={b!r}" for n, p, b in CASES])
def test_every_field_is_validated_and_named(name: str, path: str, bad: Any) -> None:
    doc, load = LOADERS[name]
    with pytest.raises(PersistError) as err:
        load(_with(doc, path, bad))
    message = str(err.value)
    # a list of names is checked as a whole: the error names the list
    named = path if name != "replay_cursor" else path.split("[")[0]
    assert f"'{named}" in message, message
    assert "\n" not in message


def test_the_cases_cover_every_field() -> None:
    paths = {path for name, path, _ in CASES}
    assert len(CASES) > 150
    assert {"risk.entries[1]", "risk.equity", "orders.d5-e-7.reduce_only",
            "positions.BTCUSDT.leverage", "open.BTCUSDT.funding", "intents.d5-x-8",
            "source[0]"} <= paths
