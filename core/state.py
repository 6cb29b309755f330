"""Engine state: mode (ARMED / DISARMED / HALTED), ORDERING's phase and position, open orders.

One object, owned by ORDERING for the phase/position part and by the engine facade for the
mode. Persisted in the store of record (``core/store.py``, document ``engine_state``) with the
transition that changed it, so a restart resumes in the same state; backtests run it in memory
(``store=None``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.events import EngineMode, OrderSide, PositionPhase, Side
from core.persisted import Fields, PersistError
from core.risk.book import check_checkpoint

if TYPE_CHECKING:
    from core.store import Store

logger = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_KEY = "engine_state"


class StateError(PersistError):
    """The persisted state is invalid; the message names the file and the field."""


@dataclass(slots=True)
class TrackedOrder:
    """An order ORDERING submitted and has not yet seen reach a final status.

    ``intent`` is ``"ENTRY"`` or an ExitReason value.
    """

    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    intent: str
    reduce_only: bool
    submitted_ms: int
    filled_qty: Decimal = Decimal(0)
    status: str = "SUBMITTED"


@dataclass(slots=True)
class EngineState:
    """Everything the engine must remember across a restart.

    ``quantity`` is the unsigned open position size in base asset; ``side`` its direction.
    ``stop_loss``/``take_profit`` are absolute prices (quote asset) of the open position.
    ``halt_reason``/``halted_ms`` say why and when (exchange time, ms) the engine was HALTED
    (empty/0 otherwise); ``risk`` is RISK's checkpoint (core/risk/book.py, plain JSON types).
    """

    mode: EngineMode = EngineMode.DISARMED
    phase: PositionPhase = PositionPhase.FLAT
    symbol: str = ""
    side: Side | None = None
    quantity: Decimal = Decimal(0)
    entry_price: Decimal = Decimal(0)
    stop_loss: Decimal = Decimal(0)
    take_profit: Decimal = Decimal(0)
    opened_ms: int = 0
    close_pending: str = ""
    exit_attempts: int = 0
    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    seq: int = 0
    halt_reason: str = ""
    halted_ms: int = 0
    risk: dict[str, Any] = field(default_factory=dict)
    store: Store | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ persistence

    @classmethod
    def load(cls, store: Store | None, *, default_mode: EngineMode) -> EngineState:
        """The state kept in ``store`` (document ``engine_state``), or a fresh one in
        ``default_mode`` when there is none (or no store: backtests, in memory).

        Raises:
            PersistError: the stored document is invalid (names the field).
        """
        if store is None:
            return cls(mode=default_mode)
        doc = store.get(STATE_KEY)
        if doc is None:
            return cls(mode=default_mode, store=store)
        state = cls.from_doc(doc, f"{store.path} [{STATE_KEY}]")
        state.store = store
        return state

    @classmethod
    def from_doc(cls, doc: Any, where: str) -> EngineState:
        """Validate and build from a ``to_dict()`` document.

        Raises:
            StateError: a field has the wrong type, is not finite or is out of range, the
                version is unknown, or the fields contradict each other (``where`` names it).
        """
        try:
            f = Fields(doc, where)
            f.version(STATE_VERSION)
            orders: dict[str, TrackedOrder] = {}
            for cid in f.obj("orders"):
                o = f.sub("orders", cid)
                orders[cid] = TrackedOrder(
                    client_order_id=o.str_("client_order_id", max_len=36),
                    symbol=o.symbol("symbol"),
                    side=o.enum("side", OrderSide).value, quantity=o.dec("quantity"),
                    intent=o.str_("intent", max_len=40), reduce_only=o.bool_("reduce_only"),
                    submitted_ms=o.ts("submitted_ms"), filled_qty=o.dec("filled_qty", default="0"),
                    status=o.str_("status", default="SUBMITTED", max_len=40),
                )
            side_raw = f.str_("side", default="")
            state = cls(
                mode=f.enum("mode", EngineMode), phase=f.enum("phase", PositionPhase),
                symbol=f.symbol("symbol", default=""),
                side=f.enum("side", Side) if side_raw else None,
                quantity=f.dec("quantity", default="0"),
                entry_price=f.dec("entry_price", default="0"),
                stop_loss=f.dec("stop_loss", default="0"),
                take_profit=f.dec("take_profit", default="0"),
                opened_ms=f.ts("opened_ms", default=0),
                close_pending=f.str_("close_pending", default="", max_len=40),
                exit_attempts=f.int_("exit_attempts", default=0, maximum=1000),
                orders=orders, seq=f.int_("seq", default=0),
                halt_reason=f.str_("halt_reason", default="", max_len=500),
                halted_ms=f.ts("halted_ms", default=0),
                risk=check_checkpoint(Fields(f.obj("risk"), where, "risk.")),
            )
            if state.phase is PositionPhase.FLAT:
                if state.quantity:
                    f.fail("quantity", f"is {state.quantity} while the phase is FLAT")
            elif not state.symbol or state.side is None:
                f.fail("symbol", f"and side are required in phase {state.phase.value}")
            elif state.phase is PositionPhase.OPEN and state.quantity <= 0:
                f.fail("quantity", "must be > 0 in phase OPEN")
            return state
        except PersistError as exc:
            raise StateError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "mode": self.mode.value,
            "phase": self.phase.value,
            "symbol": self.symbol,
            "side": self.side.value if self.side else "",
            "quantity": str(self.quantity),
            "entry_price": str(self.entry_price),
            "stop_loss": str(self.stop_loss),
            "take_profit": str(self.take_profit),
            "opened_ms": self.opened_ms,
            "close_pending": self.close_pending,
            "exit_attempts": self.exit_attempts,
            "orders": {
                k: {**asdict(o), "quantity": str(o.quantity), "filled_qty": str(o.filled_qty)}
                for k, o in self.orders.items()
            },
            "seq": self.seq,
            "halt_reason": self.halt_reason,
            "halted_ms": self.halted_ms,
            "risk": self.risk,
        }

    def save(self) -> None:
        """Stage the state in the store of record: written with the current transition (at
        once outside one). A failed write is the store's to report; the in-memory state stays
        authoritative and the next commit retries."""
        if self.store is not None:
            self.store.stage(STATE_KEY, self.to_dict)

    # ------------------------------------------------------------------ helpers

    def next_client_order_id(self, kind: str, ts_ms: int) -> str:
        """A unique client order id, ``d5<kind><ts_ms>-<seq>`` (<= 36 chars, Binance's
        ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``). The sequence is persisted, so ids never repeat
        across restarts."""
        self.seq += 1
        return f"d5{kind}{ts_ms}-{self.seq}"

    def clear_position(self) -> None:
        self.symbol = ""
        self.side = None
        self.quantity = Decimal(0)
        self.entry_price = Decimal(0)
        self.stop_loss = Decimal(0)
        self.take_profit = Decimal(0)
        self.opened_ms = 0
        self.close_pending = ""
        self.exit_attempts = 0
