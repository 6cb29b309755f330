"""One-time confirmation nonces for dangerous commands (/close, /flat, /arm in live mode).

A prompt carries two inline buttons whose ``callback_data`` is ``cf:<action>:<nonce>``
(confirm) or ``cx:<action>:<nonce>`` (cancel): at most 6 + 8 + 16 = 30 bytes, under the Bot
API's 64. A nonce is used once and expires after ``ttl_s`` (monotonic clock, injectable): a
press after that, or a second press, does nothing but say so.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

MAX_CALLBACK_DATA = 64
PATTERN = r"^c[fx]:[a-z]{1,8}:[A-Za-z0-9_-]{1,16}$"


class Outcome(str, Enum):
    OK = "ok"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # already used, never issued, or issued for another chat/action


@dataclass(frozen=True, slots=True)
class _Pending:
    action: str
    chat_id: int
    user_id: int
    expires: float


class Confirmations:
    """Issued nonces, each valid once for ``ttl_s`` seconds, in the chat that asked, for the
    user who asked."""

    def __init__(self, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._pending: dict[str, _Pending] = {}

    def issue(self, action: str, chat_id: int, user_id: int) -> tuple[str, str]:
        """A new nonce for ``action``; returns ``(confirm_data, cancel_data)``."""
        now = self._clock()
        stale = [n for n, p in self._pending.items() if now - p.expires > 10 * self.ttl_s]
        for n in stale:
            del self._pending[n]
        nonce = secrets.token_urlsafe(9)  # 12 characters, 72 bits
        self._pending[nonce] = _Pending(action, chat_id, user_id, now + self.ttl_s)
        confirm, cancel = f"cf:{action}:{nonce}", f"cx:{action}:{nonce}"
        assert len(confirm.encode()) <= MAX_CALLBACK_DATA
        return confirm, cancel

    def take(self, data: str, chat_id: int, user_id: int) -> tuple[Outcome, str, bool]:
        """Consume the nonce in ``data``: ``(outcome, action, confirmed)``.

        ``confirmed`` is False for the cancel button. Only the user who asked may press: another
        user's press (even an admin's) is UNKNOWN and leaves the nonce for its owner. Otherwise
        the nonce is gone afterwards whatever the outcome, so a replayed press is UNKNOWN.
        """
        kind, action, nonce = (data.split(":", 2) + ["", ""])[:3]
        pending = self._pending.get(nonce)
        if (pending is None or pending.action != action or pending.chat_id != chat_id
                or pending.user_id != user_id):
            return Outcome.UNKNOWN, action, False
        del self._pending[nonce]
        if self._clock() > pending.expires:
            return Outcome.EXPIRED, action, False
        return Outcome.OK, action, kind == "cf"
