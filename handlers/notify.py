"""/notify preferences: per alert type, ``on`` (with a sound), ``silent`` (no sound) or ``off``.

Persisted in ``DATA_DIR/notify.json`` (``{"version": 1, "modes": {type: mode}}``), written
atomically. A damaged file is reported in one log line and ignored (every alert on), never
rewritten until the admin changes a preference. An engine HALT is always delivered with a
sound, whatever the preferences: it needs a human.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from utils.files import write_json_atomic

logger = logging.getLogger(__name__)

#: /notify's alert types and the event classes (by name) in each; anything else is "other".
ALERT_TYPES: dict[str, tuple[str, ...]] = {
    "entries": ("PositionOpened",),
    "exits": ("TradeClosed",),
    "rejections": ("SignalRejected", "RiskRejected"),
    "errors": ("EngineError",),
    "mode": ("StateChanged",),
    "connection": ("ConnectionStatus",),
    "stops": ("ProtectiveOrderUpdate", "PositionAdopted"),
    "margin": ("MarginCall",),
    "ratelimits": ("RateLimitBackoff",),
    "daily": (),  # the daily summary job
    "other": (),
}
MODES = ("on", "silent", "off")
VERSION = 1


class NotifyPrefs:
    """Alert modes by type (``handlers.alert_texts.ALERT_TYPES``); ``path`` None keeps them in
    memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._modes: dict[str, str] = {}
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                modes = raw["modes"] if isinstance(raw, dict) and raw.get("version") == VERSION \
                    else None
                if not isinstance(modes, dict) or not all(
                        k in ALERT_TYPES and v in MODES for k, v in modes.items()):
                    raise ValueError("unexpected content")
                self._modes = dict(modes)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.error("%s is unreadable (%s); every alert type is on until /notify "
                             "changes one", path.name, type(exc).__name__)

    def mode(self, alert_type: str) -> str:
        return self._modes.get(alert_type, "on")

    def all(self) -> dict[str, str]:
        return {kind: self.mode(kind) for kind in ALERT_TYPES}

    def set(self, alert_type: str, mode: str) -> None:
        """Raises ValueError for an unknown type or mode; OSError when it cannot be saved
        (the change still holds until a restart)."""
        if alert_type not in ALERT_TYPES or mode not in MODES:
            raise ValueError(f"{alert_type} {mode}")
        self._modes[alert_type] = mode
        if self.path is not None:
            write_json_atomic(self.path, {"version": VERSION, "modes": self._modes})
