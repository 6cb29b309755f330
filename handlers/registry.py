"""Command metadata and the loader: each ``handlers/cmd_*.py`` module declares its commands once.

A command module exposes ``COMMANDS`` (a tuple of ``Command``) and may expose ``CALLBACKS``
(``(regex, coroutine)`` pairs for inline-button presses). ``discover`` imports every
``cmd_*`` module of the package; ``install`` registers them on a PTB ``Application`` behind the
deny-by-default gate. ``/help`` and ``setMyCommands`` are both generated from the same list.

Authorization: a ``TypeHandler`` in group -1 sees every update first. An update whose
``effective_user`` is not an allow-listed numeric id gets no answer at all (not even
``answerCallbackQuery``) and is logged with the user id only. ``admin_only`` commands
additionally require an admin; today the allow-list is exactly ``TELEGRAM_ADMIN_IDS``, so the flag
matters once read-only users exist.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

logger = logging.getLogger(__name__)

Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]

_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_COMMANDS = 100  # setMyCommands limit
MAX_DESCRIPTION = 256


class UsageError(ValueError):
    """A command got arguments it cannot use; the user sees the command's one-line usage.

    The optional message says which argument was wrong (already in the user's language).
    """


@dataclass(frozen=True, slots=True)
class Command:
    """One bot command, declared once.

    Args:
        name: without the slash; 1-32 characters of ``a-z0-9_`` (Bot API).
        help: one line for /help and the Telegram command menu (an English msgid of the
            catalog; translated when shown). 1-256 characters.
        usage: the syntax, starting with ``/name``, e.g. ``/pnl [today|7d|30d|all]``.
        admin_only: only TELEGRAM_ADMIN_IDS may run it.
        callback: ``async def callback(update, context)``; raises ``UsageError`` on bad args.
    """

    name: str
    help: str
    usage: str
    admin_only: bool
    callback: Callback


def discover(package: str = "handlers") -> list[ModuleType]:
    """Import every ``cmd_*`` module of ``package``, sorted by name."""
    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("cmd_"))
    return [importlib.import_module(f"{package}.{name}") for name in names]


def collect(modules: Iterable[ModuleType]) -> tuple[list[Command], list[tuple[str, Callback]]]:
    """The commands and button callbacks the modules declare, checked.

    Raises:
        ValueError: a bad name, help or usage, a duplicate command, or too many commands.
    """
    commands: list[Command] = []
    callbacks: list[tuple[str, Callback]] = []
    for module in modules:
        commands.extend(getattr(module, "COMMANDS", ()))
        callbacks.extend(getattr(module, "CALLBACKS", ()))
    check_commands(commands)
    return commands, callbacks


def check_commands(commands: Sequence[Command]) -> None:
    """Raise ValueError unless every command satisfies the Bot API limits and is unique."""
    seen: set[str] = set()
    for c in commands:
        if not _NAME.match(c.name):
            raise ValueError(f"command name {c.name!r} must be 1-32 characters of a-z, 0-9, _")
        if c.name in seen:
            raise ValueError(f"command /{c.name} is declared twice")
        seen.add(c.name)
        if not 1 <= len(c.help) <= MAX_DESCRIPTION:
            raise ValueError(f"/{c.name}: help must be 1-{MAX_DESCRIPTION} characters")
        if c.usage.split(" ", 1)[0] != f"/{c.name}":
            raise ValueError(f"/{c.name}: usage must start with /{c.name}")
    if len(commands) > MAX_COMMANDS:
        raise ValueError(f"{len(commands)} commands; the Bot API allows {MAX_COMMANDS}")


def bot_commands(commands: Iterable[Command], translate: Callable[[str], str]) -> list[BotCommand]:
    """``setMyCommands`` entries, descriptions translated (plain text, not HTML)."""
    return [BotCommand(c.name, translate(c.help)[:MAX_DESCRIPTION]) for c in commands]


def help_lines(commands: Iterable[Command], translate: Callable[[str], str]) -> list[str]:
    """``/usage - help`` lines for /help (plain text; escape before sending as HTML)."""
    return [f"{c.usage} - {translate(c.help)}" for c in commands]


# ---------------------------------------------------------------------- wiring


@dataclass(frozen=True, slots=True)
class Access:
    """Who may do what: numeric Telegram user ids."""

    admins: frozenset[int]
    users: frozenset[int]  # allowed to run commands that are not admin-only (admins included)

    def allowed(self, user_id: int | None, *, admin_only: bool = False) -> bool:
        if user_id is None:
            return False
        return user_id in (self.admins if admin_only else self.users)


def _user_id(update: object) -> int | None:
    user = getattr(update, "effective_user", None)
    return user.id if user is not None else None


def make_gate(access: Access) -> Callable[[object, Any], Coroutine[Any, Any, None]]:
    """The group -1 handler: unauthorized updates stop here, unanswered."""

    async def gate(update: object, context: Any) -> None:
        uid = _user_id(update)
        if not access.allowed(uid):
            logger.warning("unauthorized update from user id %s ignored", uid)
            raise ApplicationHandlerStop

    return gate


def install(
    app: Application,
    commands: Sequence[Command],
    callbacks: Sequence[tuple[str, Callback]],
    access: Access,
    *,
    on_usage: Callable[[Update, Any, Command, UsageError], Awaitable[None]],
    on_unknown: Callback,
) -> None:
    """Register the gate, every command, every button callback and the unknown-command reply."""
    app.add_handler(TypeHandler(Update, make_gate(access)), group=-1)
    for command in commands:
        app.add_handler(CommandHandler(command.name, _guarded(command, access, on_usage),
                                       filters=filters.UpdateType.MESSAGE))
    for pattern, callback in callbacks:
        app.add_handler(CallbackQueryHandler(callback, pattern=pattern))
    app.add_handler(MessageHandler(filters.COMMAND & filters.UpdateType.MESSAGE, on_unknown))


def _guarded(command: Command, access: Access,
             on_usage: Callable[[Update, Any, Command, UsageError], Awaitable[None]]) -> Callback:
    async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if command.admin_only and not access.allowed(_user_id(update), admin_only=True):
            logger.warning("user id %s may not run /%s", _user_id(update), command.name)
            return
        try:
            await command.callback(update, context)
        except UsageError as exc:
            await on_usage(update, context, command, exc)

    run.__qualname__ = f"command_{command.name}"
    return run
