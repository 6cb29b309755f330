"""Startup recovery: check every derived view against the store of record and the account.

With one transaction per engine transition (``core/store.py``) the stored engine state,
ledger and paper account always agree with each other. What can still disagree at a start is
the world: the exchange moved while the bot was away, or a migrated JSON file came from a
version that wrote them separately. So, before the engine sees any event:

* paper: the paper account is the exchange. Orders recorded as in flight are dropped (paper
  orders fill at once, none can still be open); ENTERING/EXITING (or OPEN) goes to OPEN with the
  account's position, or FLAT when it has none; a position the engine does not know is adopted;
  each running trade of the ledger is checked against the account's position (dropped when
  there is none, started when missing, resized when different).
* live/testnet: the exchange is read after the connection starts (core/binance/reconcile.py):
  orders in flight are resolved by client order id, then the position snapshots drive ORDERING
  (ENTERING/EXITING with no order in flight goes to where the exchange says) and the ledger
  (``Ledger.reconcile``), the same rules as here.

Every correction is logged and returned as a one-line note (the services publish them as an
alert once the journal is open).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from core.events import PositionPhase, Side
from core.ledger import Ledger
from core.paper import PaperExchange
from core.state import EngineState

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


def recover_paper(state: EngineState, ledger: Ledger, paper: PaperExchange,
                  ts_ms: int) -> list[str]:
    """Make ``state`` and ``ledger`` agree with the paper account (see the module docstring).

    Returns:
        One note per correction; empty when everything agreed.
    """
    notes: list[str] = []
    if state.orders:
        notes.append(f"dropped {len(state.orders)} order(s) recorded in flight: paper orders"
                     " fill at once")
        state.orders.clear()
    held = [s for s, d in paper.snapshot()["positions"].items() if Decimal(d["qty"])]
    symbol = state.symbol or (held[0] if held else "")
    qty, entry = paper.position(symbol) if symbol else (ZERO, ZERO)
    phase = state.phase
    if not qty and phase is not PositionPhase.FLAT:
        notes.append(f"{phase.value} {symbol} with no position on the paper account: FLAT")
        state.phase = PositionPhase.FLAT
        state.clear_position()
    elif qty:
        side = Side.LONG if qty > 0 else Side.SHORT
        if (phase is not PositionPhase.OPEN or state.symbol != symbol or state.side is not side
                or state.quantity != abs(qty)):
            notes.append(f"{phase.value} {state.quantity} {state.symbol or '-'}: OPEN"
                         f" {side.value} {abs(qty)} {symbol} as the paper account holds")
            if state.symbol != symbol or state.side is not side:
                state.stop_loss = state.take_profit = ZERO
                state.opened_ms = 0
            state.phase = PositionPhase.OPEN
            state.symbol, state.side, state.quantity = symbol, side, abs(qty)
            state.entry_price = entry
            state.close_pending, state.exit_attempts = "", 0
    for other in held:
        if other != symbol:
            notes.append(f"paper account also holds {other}; only {symbol} is managed")
    for sym in sorted(set(ledger.open_symbols) | set(held)):
        q, e = paper.position(sym)
        note = ledger.reconcile(sym, q, e, state.opened_ms or ts_ms)
        if note:
            notes.append(note)
    if notes:
        for note in notes:
            logger.warning("recovery: %s", note)
        state.save()
    return notes
