"""What every command module shares: the dependencies in ``bot_data``, replying through the
outbox, and number/time formatting."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from core.services import Services
from handlers.confirm import Confirmations, Outcome
from handlers.i18n import Texts
from handlers.notify import NotifyPrefs
from handlers.outbox import Outbox
from handlers.registry import Access, Command, UsageError
from utils.log_setup import redact
from utils.settings import Settings

logger = logging.getLogger(__name__)

DEPS_KEY = "deps"
_INT = re.compile(r"-?[0-9]{1,12}")

T = TypeVar("T")


@dataclass(slots=True)
class Deps:
    """Everything a handler needs; one instance in ``application.bot_data["deps"]``."""

    settings: Settings
    services: Services
    outbox: Outbox
    texts: Texts
    confirmations: Confirmations
    access: Access
    project_root: Path
    commands: list[Command] = field(default_factory=list)
    notify: NotifyPrefs = field(default_factory=lambda: NotifyPrefs(None))
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def admins(self) -> frozenset[int]:
        return self.access.admins


def deps(context: Any) -> Deps:
    return context.bot_data[DEPS_KEY]


def reply_chat_id(update: Update) -> int | None:
    """Where a reply goes: the private chat it came from, or, for a command sent in a group,
    the sender's private chat (positions, balances and buttons are not for the whole group).
    None when the update has no chat."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None:
        return None
    if chat.type == "private" or user is None:
        return chat.id
    return user.id


def reply(update: Update, context: Any, text: str, *,
          markup: InlineKeyboardMarkup | None = None) -> None:
    """Queue an HTML reply, privately (``reply_chat_id``)."""
    chat_id = reply_chat_id(update)
    if chat_id is not None:
        deps(context).outbox.send_text(chat_id, text, markup=markup)


@dataclass(frozen=True, slots=True)
class Press:
    """An admin's press of a confirmation button, its nonce already taken
    (``Confirmations.take``): ``outcome``, the ``action`` it was issued for, and ``confirmed``
    (False for the cancel button)."""

    d: Deps
    query: Any
    chat_id: int
    data: str
    outcome: Outcome
    action: str
    confirmed: bool


def take_press(update: Update, context: Any) -> Press | None:
    """The press in ``update``, or None when it is not a button press in a chat or the user
    is not an admin (no answer at all: the gate already logged strangers). Only the admin who
    asked can use a nonce (see ``Confirmations.take``)."""
    query = update.callback_query
    chat = update.effective_chat
    user = update.effective_user
    if query is None or chat is None or user is None:
        return None
    d = deps(context)
    if not d.access.allowed(user.id, admin_only=True):
        return None
    data = query.data or ""
    outcome, action, confirmed = d.confirmations.take(data, chat.id, user.id)
    return Press(d, query, chat.id, data, outcome, action, confirmed)


async def close_button(d: Deps, query: Any, chat_id: int, answer: str, edit: str | None) -> None:
    """Finish a confirmation button press: answer the callback query (the small toast; a
    failure is only logged) and, when ``edit`` is given, replace the prompt's text and buttons
    with it through the outbox."""
    try:
        await query.answer(answer)
    except TelegramError as exc:
        logger.warning("answerCallbackQuery failed: %s", redact(f"{type(exc).__name__}: {exc}"))
    message = query.message
    if edit is not None and message is not None:
        d.outbox.edit_text(chat_id, message.message_id, edit)


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run CPU-heavy or blocking work (charts, zips) in the default executor, so market data
    and orders on the event loop are never delayed by it."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(func, *args))


# ---------------------------------------------------------------------- arguments


def int_arg(args: Sequence[str], index: int, default: int, lo: int, hi: int) -> int:
    """``args[index]`` as an int in ``lo..hi``, ``default`` when absent.

    Raises:
        UsageError: not an integer or out of range.
    """
    if len(args) <= index:
        return default
    text = args[index].strip()
    # ASCII digits only, and few of them: int() of a 10,000-digit string raises ValueError and
    # str.isdigit() accepts "²", which int() refuses
    if not _INT.fullmatch(text) or not lo <= int(text) <= hi:
        raise UsageError(text[:20])
    return int(text)


def no_args(args: Sequence[str] | None) -> None:
    if args:
        raise UsageError(" ".join(args))


# ---------------------------------------------------------------------- formatting


def num(value: Decimal | float | None, places: int = 2, *, sign: bool = False) -> str:
    """A number rounded half-up to ``places`` decimals; "-" for None."""
    if value is None:
        return "-"
    d = value if isinstance(value, Decimal) else Decimal(repr(value))
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) if places >= 0 else d
    text = f"{q:,f}"
    if sign and q > 0:
        text = "+" + text
    return text


def price(value: Decimal | float | None) -> str:
    """A price as the exchange writes it (no exponent, no thousands separator); computed
    averages are cut to 8 decimals. "-" for None or 0."""
    if value is None or value == 0:
        return "-"
    d = value if isinstance(value, Decimal) else Decimal(repr(value))
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        d = d.quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP).normalize()
    return f"{d:f}"


def utc(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ms / 1000))


def duration(seconds: float) -> str:
    """``3d 04:05:06`` or ``04:05:06``."""
    s = max(int(seconds), 0)
    days, s = divmod(s, 86_400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    clock = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}d {clock}" if days else clock
