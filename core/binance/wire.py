"""Typed field readers for Binance JSON (parse at the edge, STYLE.md §7).

Every reader names the event and the field path in its error, so a malformed message gives one
readable line (``ORDER_TRADE_UPDATE: missing field 'o.q'``) instead of a ``KeyError``. Binance
sends money as decimal strings; readers turn them into ``Decimal`` exactly (never via float).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_MISSING = object()


class ParseError(ValueError):
    """A Binance message lacks a required field or has a malformed value."""


class Fields:
    """Reads fields of one JSON object; ``where`` is the event name, ``prefix`` the path."""

    __slots__ = ("_d", "_where", "_prefix")

    def __init__(self, d: Any, where: str, prefix: str = "") -> None:
        if not isinstance(d, Mapping):
            path = prefix.rstrip(".") or "message"
            raise ParseError(f"{where}: '{path}' is {type(d).__name__}, expected an object")
        self._d, self._where, self._prefix = d, where, prefix

    def fail(self, key: str, problem: str) -> ParseError:
        return ParseError(f"{self._where}: {problem} '{self._prefix}{key}'")

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        value = self._d.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise self.fail(key, "missing field")
            return default
        return value

    def has(self, key: str) -> bool:
        return self._d.get(key) is not None

    def obj(self, key: str) -> Fields:
        return Fields(self.raw(key), self._where, f"{self._prefix}{key}.")

    def items(self, key: str, default: Any = _MISSING) -> list[Fields]:
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise self.fail(key, "expected a list at")
        return [Fields(v, self._where, f"{self._prefix}{key}[{i}].") for i, v in enumerate(value)]

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self.raw(key, default)
        if isinstance(value, (dict, list)):
            raise self.fail(key, f"bad value {value!r} for")
        return value if isinstance(value, str) else _text(value)

    def integer(self, key: str, default: Any = _MISSING) -> int:
        value = self.raw(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise self.fail(key, f"bad integer {value!r} for")

    def decimal(self, key: str, default: Any = _MISSING) -> Decimal:
        value = self.raw(key, default)
        if isinstance(value, Decimal):
            return value
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            try:
                out = Decimal(value.strip() if isinstance(value, str) else value)
            except InvalidOperation:
                out = Decimal("NaN")
            if out.is_finite():
                return out
        raise self.fail(key, f"bad decimal {value!r} for")

    def number(self, key: str, default: Any = _MISSING) -> float:
        value = self.raw(key, default)
        if isinstance(value, str) and value == "":
            return 0.0
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            try:
                out = float(value)
            except ValueError:
                out = math.nan
            if math.isfinite(out):
                return out
        raise self.fail(key, f"bad number {value!r} for")

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        value = self.raw(key, default)
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise self.fail(key, f"bad boolean {value!r} for")


def _text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def unwrap(msg: Any) -> Any:
    """The payload of a combined-stream envelope ``{"stream": ..., "data": {...}}``, else
    ``msg`` itself."""
    if isinstance(msg, Mapping) and "data" in msg and "stream" in msg and "e" not in msg:
        return msg["data"]
    return msg
