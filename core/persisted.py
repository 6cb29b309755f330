"""Validation of every persisted document on load (store of record, legacy JSON files and the
small JSON files beside the store: ``strategy.json``, ``watchlist.json``, ``notify.json``).

A document is accepted only when every field has the right type, is finite, lies in its range
and the document's schema version is known. Otherwise ``PersistError`` names the file, the
document and the field in one line; the caller stops the bot (exit 2) and the file is left as
it is.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

E = TypeVar("E", bound=Enum)

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")
MAX_MS = 4_102_444_800_000  # 2100-01-01: no persisted exchange time is later
MAX_LEVERAGE = 125
MAX_DECIMAL = Decimal("1e15")  # no quantity, price or USDT amount of this bot comes close


class PersistError(ValueError):
    """A persisted document is unreadable or invalid; the message names file and field."""


def read_json_file(path: Path) -> Any:
    """The decoded JSON document in ``path``, or None when there is no such file (the caller's
    defaults apply). ``NaN``/``Infinity`` decode to non-finite floats: the field checks reject
    them.

    Raises:
        PersistError: the file cannot be read, is not UTF-8 or not JSON (names the file).
    """
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PersistError(f"{path}: field '(document)' cannot be read ({type(exc).__name__});"
                           " fix it or move the file aside, then restart (nothing was changed)"
                           ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PersistError(f"{path}: field '(document)' is not JSON ({exc}); fix it or move the"
                           " file aside, then restart (nothing was changed)") from None


class Fields:
    """Typed, range-checked access to one JSON document.

    Args:
        doc: the decoded document (anything; a non-dict fails on first access).
        where: what to name in errors, e.g. ``"data/journal.sqlite3 [engine_state]"``.
        prefix: dotted path of ``doc`` inside its document (nested objects).
    """

    __slots__ = ("doc", "where", "prefix")

    def __init__(self, doc: Any, where: str, prefix: str = "") -> None:
        self.doc, self.where, self.prefix = doc, where, prefix
        if not isinstance(doc, dict):
            self.fail("", f"expected an object, got {type(doc).__name__}")

    def fail(self, name: str, problem: str) -> NoReturn:
        field = f"{self.prefix}{name}" or "(document)"
        raise PersistError(f"{self.where}: field {field!r} {problem}; fix it or move the file"
                           " aside, then restart (nothing was changed)")

    def _get(self, name: str, default: Any) -> Any:
        if name in self.doc:
            return self.doc[name]
        if default is _REQUIRED:
            self.fail(name, "is missing")
        return default

    def dec(self, name: str, *, default: Any = None, minimum: Decimal | None = Decimal(0),
            ) -> Decimal:
        """A finite Decimal (JSON string or integer) >= ``minimum`` (None: any sign), at most
        ``MAX_DECIMAL`` in magnitude."""
        raw = self._get(name, _REQUIRED if default is None else default)
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            self.fail(name, f"must be a decimal string, got {type(raw).__name__}")
        try:
            value = Decimal(raw)
        except (InvalidOperation, ValueError):
            self.fail(name, f"is not a number ({str(raw)[:20]!r})")
        if not value.is_finite():
            self.fail(name, f"is not finite ({raw})")
        if minimum is not None and value < minimum:
            self.fail(name, f"is {value}, below {minimum}")
        if abs(value) > MAX_DECIMAL:
            self.fail(name, f"is {str(raw)[:20]}, beyond {MAX_DECIMAL:.0e}")
        return value

    def int_(self, name: str, *, default: Any = None, minimum: int = 0,
             maximum: int | None = None) -> int:
        raw = self._get(name, _REQUIRED if default is None else default)
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.fail(name, f"must be an integer, got {type(raw).__name__}")
        if raw < minimum or (maximum is not None and raw > maximum):
            self.fail(name, f"is {raw}, outside {minimum}..{maximum if maximum else ''}")
        return raw

    def ts(self, name: str, *, default: Any = None) -> int:
        """Exchange time, ms since the epoch, 0 .. 2100."""
        return self.int_(name, default=default, minimum=0, maximum=MAX_MS)

    def str_(self, name: str, *, default: Any = None, pattern: re.Pattern | None = None,
             max_len: int = 200) -> str:
        raw = self._get(name, _REQUIRED if default is None else default)
        if not isinstance(raw, str):
            self.fail(name, f"must be a string, got {type(raw).__name__}")
        if len(raw) > max_len or (pattern is not None and raw and not pattern.match(raw)):
            self.fail(name, f"is not valid ({raw[:40]!r})")
        return raw

    def bool_(self, name: str, *, default: Any = None) -> bool:
        raw = self._get(name, _REQUIRED if default is None else default)
        if not isinstance(raw, bool):
            self.fail(name, f"must be true or false, got {type(raw).__name__}")
        return raw

    def symbol(self, name: str, *, default: Any = None) -> str:
        """A Binance symbol (``BTCUSDT``) or "" (none)."""
        return self.str_(name, default=default, pattern=SYMBOL_RE)

    def enum(self, name: str, kind: type[E], *, default: Any = None) -> E:
        raw = self._get(name, _REQUIRED if default is None else default)
        try:
            return kind(raw)
        except (ValueError, TypeError):
            self.fail(name, f"is {str(raw)[:20]!r}, not one of "
                            f"{', '.join(str(m.value) for m in kind)}")

    def obj(self, name: str) -> dict[str, Any]:
        """A nested object (``{}`` when absent)."""
        raw = self._get(name, {})
        if not isinstance(raw, dict):
            self.fail(name, f"must be an object, got {type(raw).__name__}")
        return raw

    def sub(self, name: str, key: str) -> Fields:
        """Fields of ``doc[name][key]``."""
        return Fields(self.obj(name).get(key), self.where, f"{self.prefix}{name}.{key}.")

    def only(self, *names: str) -> None:
        """Fail on a field that is not one of ``names`` (a typo in a hand-edited file would
        otherwise be dropped by the next save)."""
        for name in self.doc:
            if name not in names:
                self.fail(str(name), f"is not a known field (expected {', '.join(names)})")

    def version(self, known: int) -> int:
        """The document's schema ``version`` (absent: 1); a newer one than ``known`` fails."""
        v = self.int_("version", default=1, minimum=1)
        if v > known:
            self.fail("version", f"is {v}, newer than this bot's {known}: upgrade the bot")
        return v


_REQUIRED = object()

