"""/notify preferences: per alert type, ``on`` (with a sound), ``silent`` (no sound) or ``off``.

Persisted in ``DATA_DIR/notify.json`` (``{"version": 1, "modes": {type: mode}}``), written
atomically, validated on load like the store of record: a damaged file (not JSON, an unknown
field, schema version, alert type or mode) stops the start with one line naming the file and
the field, and is left as it is. An engine HALT is always delivered with a sound, whatever the
preferences: it needs a human.
"""

from __future__ import annotations

from pathlib import Path

from core.persisted import Fields, read_json_file
from utils.files import write_json_atomic

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
    memory only; no file: every alert type is on.

    Raises:
        core.persisted.PersistError: the file is invalid (names the file and the field).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._modes: dict[str, str] = {}
        doc = read_json_file(path) if path is not None else None
        if doc is not None:
            f = Fields(doc, str(path))
            f.only("version", "modes")
            f.version(VERSION)
            for kind, mode in f.obj("modes").items():
                if kind not in ALERT_TYPES:
                    f.fail(f"modes.{kind}", f"is not an alert type (one of "
                                            f"{', '.join(ALERT_TYPES)})")
                if mode not in MODES:
                    f.fail(f"modes.{kind}", f"is {str(mode)[:20]!r}, not one of"
                                            f" {', '.join(MODES)}")
                self._modes[kind] = mode

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
