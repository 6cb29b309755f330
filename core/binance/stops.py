"""The protective-order state machine: one ``Stop`` per SL/TP algo order we placed or adopted.

Binance's algo orders have in-between states a bot must model (shared/binance/PROTOCOL.md
§3.4, §10; STYLE.md §5): a placement whose answer is lost is UNKNOWN until a query or the user
stream settles it; a cancel that was sent is PENDING_CANCEL until answered; ALGO_UPDATE
``TRIGGERING``/``TRIGGERED`` are not outcomes (the stop was forwarded to / placed in the
matching engine and can still fail); ``FINISHED`` means filled *or* cancelled in the matching
engine (``aq`` tells which); ``REJECTED``/``EXPIRED`` end it unfilled.

``NEXT`` is the only door: ``Stop.move`` refuses anything it does not list (a stale or
out-of-order exchange update is ignored, a final state never changes again).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from core.binance.models import AlgoStatus
from core.events import ExitReason, OrderType

SL, TP = "SL", "TP"
ALGO_TYPE = {SL: "STOP_MARKET", TP: "TAKE_PROFIT_MARKET"}
ORDER_TYPE = {SL: OrderType.STOP_MARKET, TP: OrderType.TAKE_PROFIT_MARKET}
EXIT_REASON = {SL: ExitReason.SL, TP: ExitReason.TP}


def is_ours(client_algo_id: str) -> str:
    """"SL"/"TP" when ``client_algo_id`` is one of our protective orders, else ""."""
    kind = client_algo_id[2:4]
    return kind if client_algo_id.startswith("d5") and kind in (SL, TP) else ""


def other(kind: str) -> str:
    """The sibling kind: TP for SL and SL for TP."""
    return TP if kind == SL else SL


class StopStatus(str, Enum):
    PLACING = "PLACING"                # algoOrder.place sent, no answer yet
    UNKNOWN = "UNKNOWN"                # placement outcome unknown: being resolved
    NEW = "NEW"                        # working on the exchange
    TRIGGERING = "TRIGGERING"          # forwarded to the matching engine (not an outcome)
    TRIGGERED = "TRIGGERED"            # placed in the matching engine (not an outcome)
    PENDING_CANCEL = "PENDING_CANCEL"  # algoOrder.cancel sent, not answered yet
    FILLED = "FILLED"                  # FINISHED with an executed quantity
    CANCELED = "CANCELED"
    FAILED = "FAILED"                  # REJECTED, EXPIRED or FINISHED with aq = 0: unfilled
    PLACE_FAILED = "PLACE_FAILED"      # never placed

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def protecting(self) -> bool:
        """The stop is (or may be) standing or firing: do not place another of its kind."""
        return self in (StopStatus.PLACING, StopStatus.UNKNOWN, StopStatus.NEW,
                        StopStatus.TRIGGERING, StopStatus.TRIGGERED)

    @property
    def may_exist(self) -> bool:
        """The stop may be resting on the exchange (must be cancelled with its position)."""
        return self in (StopStatus.PLACING, StopStatus.UNKNOWN, StopStatus.NEW,
                        StopStatus.PENDING_CANCEL)


S = StopStatus
_FINAL = frozenset({S.FILLED, S.CANCELED, S.FAILED, S.PLACE_FAILED})
_FIRED = frozenset({S.TRIGGERING, S.TRIGGERED, S.FILLED, S.FAILED, S.CANCELED})

#: status -> the statuses it may move to. Final statuses move nowhere.
NEXT: dict[StopStatus, frozenset[StopStatus]] = {
    S.PLACING: frozenset({S.UNKNOWN, S.NEW, S.PLACE_FAILED}) | _FIRED,
    S.UNKNOWN: frozenset({S.NEW, S.PLACE_FAILED}) | _FIRED,
    S.NEW: frozenset({S.PENDING_CANCEL}) | _FIRED,
    S.TRIGGERING: frozenset({S.TRIGGERED, S.FILLED, S.FAILED, S.CANCELED}),
    S.TRIGGERED: frozenset({S.FILLED, S.FAILED, S.CANCELED}),
    S.PENDING_CANCEL: frozenset({S.NEW}) | _FIRED,
    **{s: frozenset() for s in _FINAL},
}


def status_of(au_status: AlgoStatus, executed_qty: Decimal, *, qty_known: bool) -> StopStatus:
    """An algo order's exchange status -> ours. ``FINISHED`` is FILLED when ``aq`` > 0, FAILED
    when ``aq`` = 0 on the user stream; a REST read (``qty_known=False``: the algo endpoints do
    not report ``aq``) counts it FILLED, and the position snapshot decides what follows."""
    if au_status is AlgoStatus.FINISHED:
        return S.FILLED if executed_qty > 0 or not qty_known else S.FAILED
    if au_status in (AlgoStatus.REJECTED, AlgoStatus.EXPIRED):
        return S.FAILED
    return StopStatus(au_status.value)


@dataclass(slots=True)
class Stop:
    """One protective algo order. ``owner`` is the generation of the ``Protection`` (position)
    it belongs to; a stop outliving its owner is cancelled as soon as it is seen."""

    kind: str                       # "SL" | "TP"
    symbol: str
    client_algo_id: str
    trigger: Decimal
    owner: int = 0
    algo_id: int = 0
    status: StopStatus = S.PLACING
    me_order_id: int | None = None
    cancel_wanted: bool = False     # cancel as soon as the placement outcome is known
    cancels_sent: int = 0

    def move(self, to: StopStatus) -> bool:
        """Take ``to`` if the table allows it; False (nothing changes) otherwise."""
        if to is self.status:
            return False
        if to not in NEXT[self.status]:
            return False
        self.status = to
        return True

    @property
    def open(self) -> bool:
        return self.status.protecting
