"""Telegram HTML helpers for the outbox: splitting long texts, escaping, plain-text fallback."""

from __future__ import annotations

import html
import re
from typing import Any

MAX_TEXT = 4096
MAX_CAPTION = 1024
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)[^>]*>")
_ANY_TAG = re.compile(r"<[^>]*>")


def split_html(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split HTML text into parts of at most ``limit`` characters.

    Cuts at line breaks where possible, else inside a line but never inside a tag or an
    ``&entity;``. Tags open at a cut are closed at the end of the part and reopened at the start
    of the next one, so every part is valid Telegram HTML on its own.
    """
    if len(text) <= limit:
        return [text]
    reserve = 200  # room for the closing and reopening tags
    budget = max(limit - reserve, 100)
    parts: list[str] = []
    opened: list[tuple[str, str]] = []  # (name, full opening tag) still open at the cut
    rest = text
    while rest:
        prefix = "".join(tag for _, tag in opened)
        room = budget - len(prefix)
        if len(rest) <= room:
            chunk, rest = rest, ""
        else:
            cut = rest.rfind("\n", 0, room)
            if cut <= 0:
                cut = _safe_cut(rest, room)
            else:
                cut += 1  # keep the newline with the first part
            chunk, rest = rest[:cut], rest[cut:]
        stack = list(opened)
        for m in _TAG.finditer(chunk):
            name = m.group(2).lower()
            if m.group(1):
                for i in range(len(stack) - 1, -1, -1):
                    if stack[i][0] == name:
                        del stack[i]
                        break
            else:
                stack.append((name, m.group(0)))
        closing = "".join(f"</{name}>" for name, _ in reversed(stack))
        body = (prefix + chunk).rstrip("\n") if not stack else prefix + chunk
        parts.append(body + closing)
        opened = stack
    return [p for p in parts if p.strip()]


def _safe_cut(text: str, room: int) -> int:
    """An index <= room that is not inside a tag or an entity (at least 1)."""
    cut = room
    lt, gt = text.rfind("<", 0, cut), text.rfind(">", 0, cut)
    if lt > gt:
        cut = lt
    amp, semi = text.rfind("&", 0, cut), text.rfind(";", 0, cut)
    if amp > semi and cut - amp <= 10:
        cut = amp
    return max(cut, 1)


def escape(value: Any) -> str:
    """``html.escape`` for Telegram's HTML parse mode (quotes left alone)."""
    return html.escape(str(value), quote=False)


def to_plain(text: str) -> str:
    """HTML as the plain text a reader would see (tags removed, entities decoded): the fallback
    when Telegram cannot parse a message's HTML."""
    return html.unescape(_ANY_TAG.sub("", text))
