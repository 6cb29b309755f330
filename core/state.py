"""Engine state: mode (ARMED / DISARMED / HALTED), ORDERING's phase and position, open orders.

One object, owned by ORDERING for the phase/position part and by the engine facade for the
mode. Persisted as JSON (atomic replace) after every change when a path is given, so a restart
resumes in the same state; backtests run it in memory (``path=None``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.events import EngineMode, PositionPhase, Side
from utils.files import write_json_atomic

logger = logging.getLogger(__name__)

STATE_VERSION = 1


class StateError(ValueError):
    """The state file exists but cannot be read; the message names the file."""


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
    path: Path | None = None

    # ------------------------------------------------------------------ persistence

    @classmethod
    def load(cls, path: Path | None, *, default_mode: EngineMode) -> EngineState:
        """Read the state file, or start fresh in ``default_mode`` when there is none.

        Raises:
            StateError: the file exists but is not a valid state file.
        """
        if path is None or not path.exists():
            return cls(mode=default_mode, path=path)
        try:
            raw = json.loads(path.read_text("utf-8"))
            orders = {
                k: TrackedOrder(**{**v, "quantity": Decimal(v["quantity"]),
                                   "filled_qty": Decimal(v["filled_qty"])})
                for k, v in raw.get("orders", {}).items()
            }
            return cls(
                mode=EngineMode(raw["mode"]),
                phase=PositionPhase(raw["phase"]),
                symbol=raw.get("symbol", ""),
                side=Side(raw["side"]) if raw.get("side") else None,
                quantity=Decimal(raw.get("quantity", "0")),
                entry_price=Decimal(raw.get("entry_price", "0")),
                stop_loss=Decimal(raw.get("stop_loss", "0")),
                take_profit=Decimal(raw.get("take_profit", "0")),
                opened_ms=int(raw.get("opened_ms", 0)),
                close_pending=raw.get("close_pending", ""),
                exit_attempts=int(raw.get("exit_attempts", 0)),
                orders=orders,
                seq=int(raw.get("seq", 0)),
                halt_reason=str(raw.get("halt_reason", "")),
                halted_ms=int(raw.get("halted_ms", 0)),
                risk=dict(raw.get("risk") or {}),
                path=path,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            raise StateError(
                f"state file {path} is unreadable ({type(exc).__name__}); "
                "fix or move it away, then restart"
            ) from None

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
        """Write atomically (temp file + rename). A failure is logged, never raised: the
        in-memory state stays authoritative and the next change retries the write."""
        if self.path is None:
            return
        try:
            write_json_atomic(self.path, self.to_dict(), indent=1)
        except OSError as exc:
            logger.error("could not save state to %s: %s", self.path, exc)

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
