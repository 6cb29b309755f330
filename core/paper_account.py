"""The paper account in the store of record: validated on load, staged with every fill.

The account (``PaperExchange.snapshot()``: wallet, open positions, id counters) is the
document ``paper_account``. It is staged on every ``BalanceUpdate`` and ``PositionUpdate`` the
paper exchange publishes, so a fill, the engine's reaction to it and the ledger's booking are
committed together.
"""

from __future__ import annotations

from typing import Any

from core.event_bus import EventBus
from core.events import BalanceUpdate, PositionUpdate
from core.paper import PaperExchange
from core.persisted import MAX_LEVERAGE, SYMBOL_RE, Fields
from core.store import Store

PAPER_KEY = "paper_account"
PAPER_VERSION = 1


def validate_paper_account(doc: Any, where: str) -> dict[str, Any]:
    """Check a paper account document; returns it (with its version) for ``restore``.

    Raises:
        PersistError: wrong type, not finite, out of range (wallet >= 0, margin >= 0,
            leverage 1..125) or unknown version; the message names ``where`` and the field.
    """
    f = Fields(doc, where)
    f.version(PAPER_VERSION)
    f.dec("wallet")
    f.int_("order_seq", default=0)
    f.int_("trade_seq", default=0)
    for sym in f.obj("positions"):
        p = f.sub("positions", sym)
        if not SYMBOL_RE.match(sym):
            p.fail("", "is not a symbol")
        if not p.dec("qty", minimum=None):
            p.fail("qty", "is 0 (a flat position is not stored)")
        p.dec("entry")
        p.dec("margin")
        p.int_("leverage", minimum=1, maximum=MAX_LEVERAGE)
        p.ts("opened_ms", default=0)
    return doc


def attach_paper_account(paper: PaperExchange, store: Store, bus: EventBus) -> bool:
    """Restore the account from ``store`` (if it holds one) and stage it on every change the
    paper exchange publishes on ``bus``.

    Returns:
        True when an account was restored.

    Raises:
        PersistError: the stored account is invalid.
    """
    doc = store.get(PAPER_KEY)
    if doc is not None:
        paper.restore(validate_paper_account(doc, f"{store.path} [{PAPER_KEY}]"))

    def snapshot() -> dict[str, Any]:
        return {"version": PAPER_VERSION, **paper.snapshot()}

    def stage(_ev: object) -> None:
        store.stage(PAPER_KEY, snapshot)

    bus.subscribe(BalanceUpdate, stage)
    bus.subscribe(PositionUpdate, stage)
    if doc is None:
        store.stage(PAPER_KEY, snapshot)
    return doc is not None
