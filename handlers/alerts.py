"""Alerts to every admin: the engine's alert events (core/alerts.py) through the outbox.

``core.alerts.alert_text`` decides what is an alert; ``handlers.alert_texts.render`` writes it in
the admin's language. /notify preferences (``handlers.notify``) mute a type or make it silent;
an engine HALT always rings. Bursts of the same thing are folded: drops of one
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
from handlers.alert_texts import alert_type, render
from handlers.i18n import Texts
from handlers.notify import NotifyPrefs
from handlers.outbox import Outbox

STORM_FOLD_MS = 60_000
REJECTION_FOLD_MS = 600_000
#: Event kinds that come in storms, and the field that says which connection or limit.
STORMS = {"ConnectionStatus": "stream", "RateLimitBackoff": "pool"}

class AlertRelay:
    """Subscribes to the alert events and queues one message per admin for each."""

    def __init__(self, bus: EventBus, outbox: Outbox, admins: Iterable[int], texts: Texts, *,
                 prefs: NotifyPrefs | None = None, leverage: int = 1,
                 asset: str = "USDT") -> None:
        self._outbox = outbox
        self._admins = tuple(admins)
        self._t = texts
        self.prefs = prefs or NotifyPrefs(None)
        self._leverage = leverage
        self._asset = asset
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
        folded = 0
        if key is not None:
            folded = self._storms.get(key, (0, 0))[1]
            self._storms[key] = (ev.ts_ms, 0)
        halted = isinstance(ev, StateChanged) and ev.new == "HALTED"
        mode = "on" if halted else self.prefs.mode(alert_type(ev))
        if mode == "off":
            return
        html = render(self._t, ev, leverage=self._leverage, asset=self._asset, fallback=text)
        if folded:
            t = self._t
            html += " " + t("(+{count} more like this)", count=folded)
        self._outbox.broadcast(self._admins, html, silent=mode == "silent")
        self.sent += 1

    def send(self, html: str, *, alert_type: str | None = None) -> None:
        """Queue an HTML message for every admin (startup, goodbye; the daily report passes
        ``alert_type="daily"`` so /notify can mute it)."""
        mode = "on" if alert_type is None else self.prefs.mode(alert_type)
        if mode != "off":
            self._outbox.broadcast(self._admins, html, silent=mode == "silent")

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
