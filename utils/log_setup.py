"""Structured logging with secret redaction and an in-memory tail for Telegram ``/logs``.

``setup_logging`` installs one stream handler on the root logger (JSON lines or plain text) and
one ring-buffer handler keeping the last N lines as plain text. Both carry a ``RedactingFilter``
that replaces registered secrets (API key and secret, bot token) and anything that looks like a
credential (Telegram bot token, Binance ``signature=``, ``apiKey=``, ``X-MBX-APIKEY``) with
``***`` in the message, its arguments, the exception text and the stack text, before any
formatter sees the record.

The secret registry and the ring are process-wide on purpose: a secret must be redacted
whichever logger or module formats it, and ``redact`` serves modules that show text to a user.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

import orjson

MASK = "***"
#: Shorter values are refused: masking them would blank out ordinary words and numbers, and the
#: pattern of blanks would reveal the secret (a key "USDT" turns every BTCUSDT into BTC***).
#: Binance keys are 64 characters and Telegram tokens about 46; Settings refuses shorter ones.
MIN_SECRET_LEN = 16

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Telegram bot token: <bot id>:<35 url-safe chars>
    (re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}"), MASK),
    # Binance HMAC-SHA256 signature in a query string or JSON
    (re.compile(r"(signature[\"']?\s*[=:]\s*[\"']?)[0-9a-fA-F]{64}", re.I), r"\1" + MASK),
    # API key as a parameter (WS API, query string, JSON, repr of a dict)
    (re.compile(r"(api_?key[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;}]+", re.I), r"\1" + MASK),
    # API key header
    (re.compile(r"(X-MBX-APIKEY[\"']?\s*[:=]\s*[\"']?)[^\s&\"',;}]+", re.I), r"\1" + MASK),
)

_OURS = "_dort5bot_handler"  # marks handlers installed by setup_logging


class _Redactor:
    """Known secret values plus credential-shaped patterns, replaced by ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        if value is None:
            return
        getter = getattr(value, "get_secret_value", None)  # pydantic SecretStr
        text = str(getter() if getter else value)
        if len(text) < MIN_SECRET_LEN:
            return
        with self._lock:
            if text in self._secrets:
                return
            self._secrets.add(text)
            # Longest first, so a secret containing another is masked whole; and only whole
            # tokens: a secret is not masked inside a longer word or number.
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._regex = re.compile(
                "|".join(_whole(s) for s in alternatives))

    def __call__(self, text: str) -> str:
        regex = self._regex
        if regex is not None:
            text = regex.sub(MASK, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def _whole(secret: str) -> str:
    """A regex for ``secret`` as a whole token: no letter or digit glued to either end."""
    head = r"(?<![A-Za-z0-9])" if secret[0].isalnum() else ""
    tail = r"(?![A-Za-z0-9])" if secret[-1].isalnum() else ""
    return head + re.escape(secret) + tail


_REDACTOR = _Redactor()


def add_secret(value: Any) -> None:
    """Register a secret (``str`` or pydantic ``SecretStr``) to be masked, as a whole token, in
    every log line and in ``redact``. None and values shorter than ``MIN_SECRET_LEN`` (16)
    characters are ignored (Settings refuses such secrets at start-up)."""
    _REDACTOR.add(value)


def redact(text: str) -> str:
    """``text`` with registered secrets and credential-shaped substrings replaced by ``***``."""
    return _REDACTOR(text)


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so no formatter or later handler sees a secret.

    The message is rendered with its arguments (so a secret split between format string and
    argument is still caught), redacted, and stored back with ``args`` cleared. Exception and
    stack text are rendered and redacted too. Never drops a record, never raises.
    """

    _exc_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-arguments: keep both parts, still redacted
            message = f"{record.msg!r} (unformattable args {record.args!r})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None  # the redacted text is the only version left to format
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _iso_utc(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg``, and
    ``exc`` / ``stack`` when present."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


class PlainFormatter(logging.Formatter):
    """``2024-08-08T12:00:00.123Z INFO core.ordering: message`` plus any traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_utc(record.created)


#: Loggers whose lines /logs shows: the bot's own packages, not the libraries' chatter (the
#: JobQueue's scheduler, HTTP clients).
OWN_LOGGERS = ("core", "handlers", "jobs", "utils", "web", "bootstrap", "dort5bot", "main")
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.@+-]+/)+([\w.@+-]+)")


def without_paths(text: str) -> str:
    """``text`` with absolute file paths cut to ``…/name`` (no machine layout in chat)."""
    return _ABS_PATH.sub(lambda m: "…/" + m.group(1), text)


class _RingHandler(logging.Handler):
    """Keeps the last ``maxlen`` formatted lines of the bot's own loggers, paths shortened."""

    def __init__(self, ring: deque[str]) -> None:
        super().__init__()
        self.ring = ring

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] not in OWN_LOGGERS:
            return
        try:
            self.ring.append(without_paths(self.format(record)))
        except Exception:
            self.handleError(record)


_ring: deque[str] = deque(maxlen=500)


def recent_log_lines(n: int) -> list[str]:
    """The last ``n`` log lines (plain text, redacted), oldest first."""
    if n <= 0:
        return []
    lines = list(_ring)
    return lines[-n:]


def setup_logging(
    level: str,
    json_lines: bool,
    secrets: Iterable[Any] = (),
    *,
    stream: IO[str] | None = None,
    ring_size: int = 500,
) -> logging.Handler:
    """Configure the root logger; calling it again replaces what an earlier call installed.

    Args:
        level: DEBUG, INFO, WARNING or ERROR (case-insensitive).
        json_lines: JSON lines on ``stream`` when True, plain text otherwise.
        secrets: values to mask (``str`` or ``SecretStr``; None is skipped), see ``add_secret``.
        stream: where lines go; ``sys.stderr`` by default.
        ring_size: how many recent lines ``recent_log_lines`` keeps (always plain text).

    Returns:
        The stream handler (tests read its stream).

    Raises:
        ValueError: unknown level name.
    """
    global _ring
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    for secret in secrets:
        add_secret(secret)

    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()

    redacting = RedactingFilter()
    out = logging.StreamHandler(stream if stream is not None else sys.stderr)
    out.setFormatter(JsonLinesFormatter() if json_lines else PlainFormatter())
    _ring = deque(_ring, maxlen=ring_size)
    ring = _RingHandler(_ring)
    ring.setFormatter(PlainFormatter())
    for handler in (out, ring):
        handler.addFilter(redacting)
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(numeric)
    # aiosqlite logs every statement at DEBUG; one journal flush would flood the log.
    logging.getLogger("aiosqlite").setLevel(max(numeric, logging.INFO))
    return out
