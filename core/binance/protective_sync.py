"""Reconciliation of our protective orders with the exchange's open algo orders.

* ``adopt``: take over our open stops of a position found on the exchange. A stop of ours that
  belongs to an earlier position (its ``owner`` generation), a duplicate of a stop already
  standing, or a stop on the wrong side is cancelled (once).
* ``cancel_orphans``: cancel our open stops on symbols with no position, so no
  ``closePosition`` stop outlives its position and closes the next one.

Algo orders the bot did not place (another client id prefix) are left alone.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from core.binance.models import AlgoUpdate
from core.binance.protective import Protection, ProtectiveOrders
from core.binance.stops import SL, TP, Stop, StopStatus, is_ours, status_of
from core.events import Side

logger = logging.getLogger(__name__)


def _stray(prot: ProtectiveOrders, au: AlgoUpdate, kind: str, why: str) -> None:
    stop = prot.known(au.client_algo_id)
    if stop is None:
        stop = Stop(kind, au.symbol, au.client_algo_id, au.trigger_price, owner=-1,
                    algo_id=au.algo_id, status=StopStatus.NEW)
        prot.remember(stop)
    elif stop.status in (StopStatus.PLACING, StopStatus.UNKNOWN):
        stop.move(StopStatus.NEW)
    logger.warning("%s %s %s: cancelling (%s)", au.symbol, kind, au.client_algo_id, why)
    prot.cancel(stop, why)


def adopt(prot: ProtectiveOrders, symbol: str, quantity: Decimal,
          algos: list[AlgoUpdate]) -> str:
    """Take over our open stops of ``symbol``'s position (``quantity`` signed). Returns
    "adopted" when SL and TP both stand, "partial" for one, "none"."""
    side = Side.LONG if quantity > 0 else Side.SHORT
    p: Protection = prot.protection(symbol, side, quantity)
    for au in algos:
        kind = is_ours(au.client_algo_id)
        if not kind or au.symbol != symbol or au.status.is_final:
            continue
        known = prot.known(au.client_algo_id)
        if known is not None and known.owner != p.gen:
            _stray(prot, au, kind, "stop of an earlier position")
            continue
        current = p.stops.get(kind)
        if au.side is not side.exit_order_side:
            _stray(prot, au, kind, "stop on the wrong side")
            continue
        if current is not None and current.open and current.client_algo_id != au.client_algo_id:
            _stray(prot, au, kind, "duplicate stop")
            continue
        stop = known or Stop(kind, symbol, au.client_algo_id, au.trigger_price,
                             status=StopStatus.NEW)
        if stop.status in (StopStatus.PLACING, StopStatus.UNKNOWN):
            stop.move(StopStatus.NEW)
        if stop.status is StopStatus.PENDING_CANCEL:
            continue  # our cancel is on its way
        stop.move(status_of(au.status, au.executed_qty, qty_known=False))
        stop.algo_id, stop.trigger = au.algo_id, au.trigger_price
        prot.attach(p, stop)
    have = [k for k in (SL, TP) if k in p.stops and p.stops[k].open]
    return "adopted" if len(have) == 2 else "partial" if have else "none"


def cancel_orphans(prot: ProtectiveOrders, algos: list[AlgoUpdate], open_symbols: set[str],
                   skip: set[str]) -> int:
    """Cancel our open stops on symbols without a position (``open_symbols``) and without a
    protection of this run; ``skip``: symbols whose position changed during the pass. Returns
    how many cancels were started."""
    n = 0
    for au in algos:
        kind = is_ours(au.client_algo_id)
        if (kind and au.symbol not in open_symbols and au.symbol not in prot.positions
                and au.symbol not in skip and not au.status.is_final):
            known = prot.known(au.client_algo_id)
            if known is not None and known.status is StopStatus.PENDING_CANCEL:
                continue
            _stray(prot, au, kind, "no position")
            n += 1
    return n

