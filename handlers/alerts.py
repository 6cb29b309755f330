"""Alerts to every admin: the engine's alert events (core/alerts.py) through the outbox.

The line itself is ``core.alerts.alert_text`` (the same words the console prints); a translated
title says what kind of alert it is. Bursts of the same thing are folded: drops of one
connection (and rate-limit back-offs of one pool) at most once a minute, with the count of the
folded ones; the same rejected signal reason at most once in ten minutes (exchange time). So a
reconnect storm or a disarmed engine does not flood the chat. Runs on the bus (synchronous): it
only formats and queues.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.alerts import ALERT_EVENTS, alert_text
from core.event_bus import EventBus
from core.events import SignalRejected, StateChanged
from handlers.i18n import N_, Texts
from handlers.outbox import Outbox, escape

STORM_FOLD_MS = 60_000
REJECTION_FOLD_MS = 600_000
#: Event kinds that come in storms, and the field that says which connection or limit.
STORMS = {"ConnectionStatus": "stream", "RateLimitBackoff": "pool"}

#: Titles by event class name, so events the exchange adapter adds to ALERT_EVENTS later get
#: their title without this module importing them; anything unknown is an "Alert".
TITLES: dict[str, str] = {
    "PositionOpened": N_("Entry filled"),
    "TradeClosed": N_("Exit filled"),
    "SignalRejected": N_("Signal rejected by a risk check"),
    "EngineError": N_("Error"),
    "StateChanged": N_("Engine mode changed"),
    "ConnectionStatus": N_("Connection down"),
    "ProtectiveOrderUpdate": N_("Protective stop"),
    "PositionAdopted": N_("Position adopted from the exchange"),
    "MarginCall": N_("Margin call"),
    "RateLimitBackoff": N_("Rate limit back-off"),
}
ICONS: dict[str, str] = {"PositionOpened": "🟢", "TradeClosed": "🏁", "SignalRejected": "⛔",
                         "EngineError": "⚠️", "StateChanged": "⚙️", "ConnectionStatus": "📡",
                         "ProtectiveOrderUpdate": "🛡️", "PositionAdopted": "📥",
                         "MarginCall": "🚨", "RateLimitBackoff": "⏳"}


class AlertRelay:
    """Subscribes to the alert events and queues one message per admin for each."""

    def __init__(self, bus: EventBus, outbox: Outbox, admins: Iterable[int], texts: Texts) -> None:
        self._outbox = outbox
        self._admins = tuple(admins)
        self._t = texts
        self._storms: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (last ts, folded)
        self._last_reject: dict[tuple[str, str], int] = {}
        self.sent = 0
        for event_type in ALERT_EVENTS:
            bus.subscribe(event_type, self.on_event)

    def on_event(self, ev: Any) -> None:
        text = alert_text(ev)
        if text is None or self._fold(ev):
            return
        key = self._storm_key(ev)
        if key is not None:
            folded = self._storms.get(key, (0, 0))[1]
            self._storms[key] = (ev.ts_ms, 0)
            if folded:
                text += " " + self._t.plain("(+{count} more like this)", count=folded)
        kind = type(ev).__name__
        title = TITLES.get(kind, N_("Alert"))
        if isinstance(ev, StateChanged) and ev.new == "HALTED":
            title = N_("Engine HALTED: needs a human")
        icon = ICONS.get(kind, "")
        self._outbox.broadcast(self._admins,
                               f"{icon} <b>{self._t(title)}</b>\n{escape(text)}".lstrip())
        self.sent += 1

    def send(self, html: str) -> None:
        """Queue an HTML message for every admin (startup, goodbye, daily report)."""
        self._outbox.broadcast(self._admins, html)

    @staticmethod
    def _storm_key(ev: Any) -> tuple[str, str] | None:
        kind = type(ev).__name__
        field = STORMS.get(kind)
        return None if field is None else (kind, str(getattr(ev, field, "")))

    def _fold(self, ev: Any) -> bool:
        key = self._storm_key(ev)
        if key is not None:
            last = self._storms.get(key)
            if last is not None and ev.ts_ms - last[0] < STORM_FOLD_MS:
                self._storms[key] = (last[0], last[1] + 1)
                return True
            return False
        if isinstance(ev, SignalRejected):
            rkey = (ev.signal.symbol, ev.reason)
            last_ts = self._last_reject.get(rkey)
            if last_ts is not None and ev.ts_ms - last_ts < REJECTION_FOLD_MS:
                return True
            self._last_reject[rkey] = ev.ts_ms
        return False
