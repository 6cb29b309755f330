"""Bot texts in English and Turkish: standard gettext, compiled at load time.

The catalog is GNU gettext: English source strings are the message ids, written in the code as
``t("Balance: {wallet} USDT", wallet=...)``; translations live in
``locales/<lang>/LC_MESSAGES/dort5bot.po``. ``compile_po`` is a small ``msgfmt`` (the same
algorithm as CPython's ``Tools/i18n/msgfmt.py``) that turns a .po file into .mo bytes in
memory, read by the standard ``gettext.GNUTranslations``. No build step, no binary .mo files in
the repository, and any gettext tool (Poedit, msgmerge, msgfmt --check) works on the .po files.

Placeholders are ``str.format`` names (``python-brace-format``). ``Texts.__call__`` escapes every
interpolated value for Telegram's HTML parse mode; the templates themselves may hold the few tags
Telegram allows (``<b>``, ``<i>``, ``<code>``, ``<pre>``). ``Texts.plain`` formats without
escaping, for places that are not HTML (button labels, callback answers, command descriptions).
"""

from __future__ import annotations

import ast
import gettext
import html
import io
import logging
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DOMAIN = "dort5bot"
LANGUAGES = ("en", "tr")
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locales"


def N_(msgid: str) -> str:
    """Mark a string for the catalog without translating it now (gettext's ``N_``)."""
    return msgid


class PoError(ValueError):
    """A .po file cannot be parsed; the message names the file and line."""


def parse_po(text: str, *, source: str = "<po>") -> dict[str, str]:
    """Parse .po text into ``{msgid: msgstr}``.

    Fuzzy entries and untranslated ones (empty msgstr) are left out, as ``msgfmt`` does.
    Plural forms are stored the gettext way: ``msgid\\0msgid_plural`` -> ``form0\\0form1``.
    ``msgctxt`` is stored as ``context\\x04msgid``.

    Raises:
        PoError: a line that is not valid .po syntax.
    """
    out: dict[str, str] = {}
    entry: dict[str, Any] = {}
    section: str | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal entry, fuzzy
        if "msgid" in entry:
            msgid = entry["msgid"]
            if "msgid_plural" in entry:
                msgid += "\0" + entry["msgid_plural"]
                forms = sorted((int(k[7:-1]), v) for k, v in entry.items()
                               if k.startswith("msgstr["))
                msgstr = "\0".join(v for _, v in forms) if any(v for _, v in forms) else ""
            else:
                msgstr = entry.get("msgstr", "")
            if "msgctxt" in entry:
                msgid = entry["msgctxt"] + "\x04" + msgid
            if msgstr and (not fuzzy or not msgid):
                out[msgid] = msgstr
        entry = {}
        fuzzy = False

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if section is not None and section != "comment":
                flush()
                section = "comment"
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue
        keyword = line.split(None, 1)[0]
        if keyword in ("msgctxt", "msgid") and entry and section is not None and (
                section == "comment" or section.startswith("msgstr")):
            flush()
        if keyword in ("msgctxt", "msgid", "msgid_plural", "msgstr") or keyword.startswith(
                "msgstr["):
            section = keyword
            line = line[len(keyword):].strip()
        elif not line.startswith('"'):
            raise PoError(f"{source}:{lineno}: unexpected {line[:30]!r}")
        if section is None or section == "comment":
            raise PoError(f"{source}:{lineno}: string outside an entry")
        try:
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            raise PoError(f"{source}:{lineno}: bad string {line[:30]!r}") from None
        if not isinstance(value, str):
            raise PoError(f"{source}:{lineno}: bad string {line[:30]!r}")
        entry[section] = entry.get(section, "") + value
    flush()
    return out


def compile_mo(messages: dict[str, str]) -> bytes:
    """GNU .mo bytes (little endian, no hash table) for ``{msgid: msgstr}``."""
    keys = sorted(messages)
    ids = b""
    strs = b""
    offsets = []
    for k in keys:
        kb, vb = k.encode("utf-8"), messages[k].encode("utf-8")
        offsets.append((len(ids), len(kb), len(strs), len(vb)))
        ids += kb + b"\0"
        strs += vb + b"\0"
    n = len(keys)
    keystart = 7 * 4 + 16 * n
    valuestart = keystart + len(ids)
    koffsets: list[int] = []
    voffsets: list[int] = []
    for o1, l1, o2, l2 in offsets:
        koffsets += [l1, o1 + keystart]
        voffsets += [l2, o2 + valuestart]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, n, 7 * 4, 7 * 4 + n * 8, 0, 0)
    return (header + struct.pack(f"{len(koffsets)}i", *koffsets)
            + struct.pack(f"{len(voffsets)}i", *voffsets) + ids + strs)


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=8)
def translations(lang: str, locale_dir: Path = LOCALE_DIR) -> gettext.NullTranslations:
    """The gettext translations for ``lang``; English (the msgids) is the null translation.

    Raises:
        ValueError: unknown language.
        PoError / OSError: the catalog file is broken or missing.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    if lang == "en":
        return gettext.NullTranslations()
    path = po_path(lang, locale_dir)
    messages = parse_po(path.read_text("utf-8"), source=str(path))
    return gettext.GNUTranslations(io.BytesIO(compile_mo(messages)))


_NUMBER = re.compile(r"([+-]?)(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+)(%?)")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})((?: \d{2}:\d{2}(?::\d{2})?)?(?: UTC)?)")
_SWAP = str.maketrans({",": ".", ".": ","})
#: Number and date conventions per language (English needs none).
_CONVENTIONS: dict[str, dict[str, str]] = {"tr": {"date": "{2}.{1}.{0}"}}


class Texts:
    """The bot's words in one language: ``t(msgid, **values)`` -> HTML-safe text."""

    def __init__(self, lang: str = "en", *, locale_dir: Path = LOCALE_DIR) -> None:
        self.lang = lang
        self._tr = translations(lang, locale_dir)
        #: msgids asked for that the catalog lacks (in a language other than English); the
        #: tests render every reply and alert in Turkish and require this to stay empty
        self.missing: set[str] = set()

    def _gettext(self, msgid: str) -> str:
        text = self._tr.gettext(msgid)
        if text is msgid and self.lang != "en" and msgid:
            self.missing.add(msgid)
        return text

    def template(self, msgid: str) -> str:
        return self._gettext(msgid)

    def _format(self, msgid: str, values: dict[str, Any]) -> str:
        text = self._gettext(msgid)
        if not values:
            return text
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):  # a broken translation: fall back to English
            logger.error("translation of %r (%s) does not match its placeholders", msgid,
                         self.lang)
            return msgid.format(**values)

    def __call__(self, msgid: str, /, **values: Any) -> str:
        """Translate ``msgid`` and fill its placeholders with HTML-escaped values (numbers,
        percentages and dates in the language's conventions, see ``localize``)."""
        return self._format(msgid, {k: html.escape(self.localize(v), quote=False)
                                    for k, v in values.items()})

    def plain(self, msgid: str, /, **values: Any) -> str:
        """Translate and format without escaping (for text Telegram does not parse as HTML)."""
        return self._format(msgid, {k: self.localize(v) for k, v in values.items()})

    def localize(self, value: Any) -> str:
        """``value`` as text in the language's number and date conventions.

        English is unchanged (``1,234.5``, ``+0.45%``, ``2024-08-08 12:00:00``). Turkish
        writes ``1.234,5``, ``%+0,45`` and ``08.08.2024 12:00:00``. Only whole values that
        are a number, a percentage or a date are rewritten (symbols, ids and versions are
        left alone).
        """
        text = str(value)
        conv = _CONVENTIONS.get(self.lang)
        if conv is None or isinstance(value, bool):
            return text
        m = _DATE.fullmatch(text)
        if m:
            return conv["date"].format(*m.groups()) + (m.group(4) or "")
        m = _NUMBER.fullmatch(text)
        if m is None:
            return text
        sign, number, percent = m.groups()
        swapped = number.translate(_SWAP)
        return f"%{sign}{swapped}" if percent else f"{sign}{swapped}"
