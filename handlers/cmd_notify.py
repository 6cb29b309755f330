"""/notify: which alerts ring, which arrive silently, which are not sent (per alert type)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from handlers.common import deps, reply
from handlers.notify import ALERT_TYPES, MODES
from handlers.registry import Command, UsageError


async def notify(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    args = [a.lower() for a in context.args or []]
    d = deps(context)
    t = d.texts
    if args:
        if len(args) != 2 or args[0] not in ALERT_TYPES or args[1] not in MODES:
            raise UsageError(" ".join(args)[:40])
        try:
            d.notify.set(args[0], args[1])
        except OSError as exc:
            reply(update, context, t("Changed until the next restart; saving failed ({error}).",
                                     error=type(exc).__name__))
            return
    words = {"on": t.plain("on"), "silent": t.plain("silent"), "off": t.plain("off")}
    lines = [t("<b>Alerts</b> (an engine halt always rings)")]
    lines += [f"{kind}: {words[mode]}" for kind, mode in d.notify.all().items()]
    lines.append(t("Change one: /notify TYPE on|silent|off"))
    reply(update, context, "\n".join(lines))


COMMANDS = (
    Command(name="notify", help="Alert types on, silent or off",
            usage="/notify [TYPE on|silent|off]", admin_only=True, callback=notify),
)
