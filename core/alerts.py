"""Alerts: which engine events a trader is told about, and the text they get.

``alert_text`` turns an event into a short plain-text line (None for events that are not
alerts). Front-ends decide where it goes: ``ConsoleNotifier`` prints it (headless), the Telegram
outbox sends it to every admin.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from core.event_bus import EventBus
from core.events import (
    ConnectionStatus,
    EngineError,
    MarginCall,
    PositionAdopted,
    PositionOpened,
    ProtectiveOrderUpdate,
    RateLimitBackoff,
    RiskRejected,
    SignalRejected,
    StateChanged,
    TradeClosed,
)

ALERT_EVENTS = (PositionOpened, TradeClosed, SignalRejected, RiskRejected, EngineError,
                StateChanged, ConnectionStatus, ProtectiveOrderUpdate, PositionAdopted, MarginCall,
                RateLimitBackoff)
#: Protective-order states worth a message: placed (NEW), or failed; cancels are routine.
PROTECTIVE_ALERTS = ("NEW", "PLACE_FAILED", "REJECTED", "EXPIRED")


def _utc(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ms / 1000))


def alert_text(ev: Any) -> str | None:
    """The alert line for ``ev``, or None when the event is not worth a message."""
    if isinstance(ev, PositionOpened):
        return (f"ENTRY {ev.side.value} {ev.quantity} {ev.symbol} @ {ev.entry_price} "
                f"(SL {ev.stop_loss}, TP {ev.take_profit})"
                + (f" [{ev.reason}]" if ev.reason else ""))
    if isinstance(ev, TradeClosed):
        t = ev.trade
        return (f"EXIT {t.side.value} {t.quantity} {t.symbol} @ {t.exit_price:.2f} "
                f"[{t.exit_reason.value}] net {t.net_pnl:+.4f} USDT "
                f"(fees {t.fees:.4f}, funding {t.funding:+.4f})")
    if isinstance(ev, SignalRejected):
        s = ev.signal
        if ev.reason.startswith("a position is already"):
            return None  # routine while a position is open
        return f"signal {s.side.value} {s.symbol} rejected: {ev.reason}"
    if isinstance(ev, RiskRejected):
        if not ev.alert:
            return None  # RISK alerts once per limit and period
        s = ev.signal
        return (f"signal {s.side.value} {s.symbol} refused by RISK: {ev.limit} {ev.value} / "
                f"{ev.threshold} {ev.unit}" + (f" ({ev.detail})" if ev.detail else "")
                + " (further refusals by this limit in this period are not alerted)")
    if isinstance(ev, EngineError):
        return f"ERROR [{ev.source}] {ev.message}"
    if isinstance(ev, StateChanged) and ev.what == "mode":
        return f"engine {ev.old} -> {ev.new}" + (f" ({ev.reason})" if ev.reason else "")
    if isinstance(ev, ConnectionStatus) and not ev.up:
        return f"connection {ev.stream} down: {ev.detail}"
    if isinstance(ev, ProtectiveOrderUpdate) and ev.status in PROTECTIVE_ALERTS:
        status = "placed on the exchange" if ev.status == "NEW" else ev.status
        return (f"{ev.kind} of {ev.symbol} at {ev.trigger_price}: {status}"
                + (f" ({ev.detail})" if ev.detail else ""))
    if isinstance(ev, PositionAdopted):
        return (f"ADOPTED {ev.quantity} {ev.symbol} @ {ev.entry_price} from the exchange "
                f"(stops {ev.stops}; SL {ev.stop_loss}, TP {ev.take_profit})")
    if isinstance(ev, MarginCall):
        return (f"MARGIN CALL on {', '.join(ev.symbols)}: maintenance margin "
                f"{ev.maintenance_margin} USDT")
    if isinstance(ev, RateLimitBackoff):
        what = "IP banned" if ev.banned else f"{ev.detail or 'holding requests'}"
        used = f" at {ev.used}/{ev.limit}" if ev.limit else ""
        return f"rate limit {ev.pool}{used}: {what}, {ev.retry_after_s:.1f}s"
    return None


class ConsoleNotifier:
    """Prints alerts to a stream (stdout) with a UTC timestamp of the event."""

    def __init__(self, bus: EventBus, out: TextIO | None = None,
                 sink: Callable[[str], None] | None = None) -> None:
        self._out = out or sys.stdout
        self._sink = sink
        self._down: set[str] = set()
        for t in ALERT_EVENTS:
            bus.subscribe(t, self._on_event)

    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, ConnectionStatus):  # one line per outage, not one per retry
            if ev.up:
                if ev.stream in self._down:
                    self._down.discard(ev.stream)
                    self.notify(f"{_utc(ev.ts_ms)} connection {ev.stream} restored")
                return
            if ev.stream in self._down:
                return
            self._down.add(ev.stream)
        text = alert_text(ev)
        if text is not None:
            self.notify(f"{_utc(ev.ts_ms)} {text}")

    def notify(self, text: str) -> None:
        if self._sink is not None:
            self._sink(text)
            return
        try:
            print(text, file=self._out, flush=True)
        except (OSError, ValueError):
            pass
