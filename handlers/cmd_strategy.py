"""/strategy: the active strategy and its parameters; /strategy list: the catalog;
/strategy set ID [k=v ...]: switch (admin, confirmation, only while flat; persisted).

Thin: the catalog is ``core.strategies.catalog``, the switch ``Engine.set_strategy`` (which
validates, refuses while a position is open and writes ``DATA_DIR/strategy.json``). Parameters
given to ``set`` go over the rule's defaults; for ``ensemble`` over the ENSEMBLE_* settings.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from core.events import PositionPhase
from core.strategies.catalog import ENSEMBLE, StrategyError, catalog, get_spec
from core.strategies.selection import StrategyChoice, params_from_settings
from handlers.common import Deps, close_button, deps, reply, reply_chat_id, take_press
from handlers.confirm import Outcome
from handlers.registry import Command, UsageError

logger = logging.getLogger(__name__)

ACTION = "strategy"
PATTERN = rf"^c[fx]:{ACTION}:[A-Za-z0-9_-]{{1,16}}$"
PENDING_KEY = "strategy_pending"
_KV = re.compile(r"^[a-z_][a-z0-9_]{0,40}=\S{1,300}$")


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def effective_params(choice: StrategyChoice) -> dict[str, Any]:
    """The parameters the rule really runs with (defaults filled in)."""
    if choice.name == ENSEMBLE:
        return dict(choice.params)
    try:
        return get_spec(choice.name).resolve(choice.params)
    except StrategyError:
        return dict(choice.params)


def show_text(d: Deps) -> str:
    t = d.texts
    engine = d.services.engine
    choice = engine.strategy
    spec = catalog().get(choice.name)
    lines = [t("<b>Strategy</b>: <code>{name}</code> ({origin})", name=choice.name,
               origin=t.plain("set by /strategy set") if choice.origin == "persisted"
               else t.plain("from the settings"))]
    if spec is not None:
        lines.append(spec.description)
    lines.append(t("Parameters: {params}", params=_params_text(effective_params(choice))))
    last = engine.strategy_status()["last_signal"]
    if last is not None and last["confidence"] is not None:
        votes = ", ".join(f"{i} {s}" for i, s, _ in last["votes"])
        lines.append(t("Last signal {side} {symbol}: confidence {confidence} ({votes})",
                       side=last["side"], symbol=last["symbol"],
                       confidence=f"{last['confidence']:.2f}", votes=votes))
    elif last is not None:
        lines.append(t("Last signal {side} {symbol}: {reason}", side=last["side"],
                       symbol=last["symbol"], reason=last["reason"]))
    lines.append(t("/strategy list shows the catalog; /strategy set ID [k=v ...] switches."))
    return "\n".join(lines)


def list_text(d: Deps) -> str:
    t = d.texts
    lines = [t("<b>Strategy catalog</b>")]
    for spec in catalog().values():
        params = ", ".join(f"{k}={p.default}" for k, p in spec.params.items())
        lines.append(t("<code>{id}</code>: {description} ({params})", id=spec.id,
                       description=spec.description, params=params))
    lines.append(t("<code>ensemble</code>: members vote; a signal when their weighted agreement "
                   "reaches the threshold (members=id:weight,..., threshold=0.6)"))
    return "\n".join(lines)


def parse_set(d: Deps, args: list[str]) -> StrategyChoice:
    """``["supertrend", "period=7"]`` -> a validated choice.

    Raises:
        UsageError: no id, or an argument that is not k=v.
        StrategyError: unknown id or bad parameters (one line).
    """
    if not args:
        raise UsageError("set")
    name = args[0].lower()
    params: dict[str, Any] = {}
    if name == ENSEMBLE:
        params = params_from_settings(d.settings, ENSEMBLE)
    for item in args[1:]:
        if not _KV.match(item):
            raise UsageError(item)
        key, _, value = item.partition("=")
        params[key] = value
    choice = StrategyChoice(name, params, origin="persisted")
    choice.factory()
    return choice


def perform_switch(d: Deps, choice: StrategyChoice) -> str:
    t = d.texts
    try:
        d.services.engine.set_strategy(choice)
    except (StrategyError, RuntimeError) as exc:
        return t("Not switched: {reason}", reason=str(exc))
    except OSError as exc:
        return t("Not switched: the choice could not be saved ({reason})",
                 reason=type(exc).__name__)
    d.services.market.set_strategy(choice.name, choice.params)
    return t("Strategy switched to <code>{name}</code> ({params}); kept after a restart.",
             name=choice.name, params=_params_text(effective_params(choice)))


async def strategy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(context)
    t = d.texts
    args = context.args or []
    if not args:
        reply(update, context, show_text(d))
        return
    sub = args[0].lower()
    if sub == "list" and len(args) == 1:
        reply(update, context, list_text(d))
        return
    if sub != "set":
        raise UsageError(" ".join(args))
    user = update.effective_user
    if user is None or not d.access.allowed(user.id, admin_only=True):
        reply(update, context, t("Only an admin can switch strategies."))
        return
    try:
        choice = parse_set(d, args[1:])
    except StrategyError as exc:
        reply(update, context, t("Not switched: {reason}", reason=str(exc)))
        return
    if d.services.engine.state.phase is not PositionPhase.FLAT:
        reply(update, context, t("Not switched: a position is open; switch strategies only "
                                 "while flat."))
        return
    chat_id = reply_chat_id(update)
    if chat_id is None:
        return
    confirm, cancel = d.confirmations.issue(ACTION, chat_id, user.id)
    pending: dict[str, StrategyChoice] = context.bot_data.setdefault(PENDING_KEY, {})
    pending[confirm.rsplit(":", 1)[1]] = choice
    markup = InlineKeyboardMarkup([[
        InlineKeyboardButton(t.plain("Yes, switch"), callback_data=confirm),
        InlineKeyboardButton(t.plain("Cancel"), callback_data=cancel),
    ]])
    reply(update, context, t("Switch the strategy to <code>{name}</code> ({params})? The new "
                             "rule starts from the candles already seen.", name=choice.name,
                             params=_params_text(effective_params(choice)))
          + "\n" + t("The buttons expire in {seconds} s.", seconds=int(d.confirmations.ttl_s)),
          markup=markup)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The /strategy set confirmation: switch once, say so, remove the buttons."""
    press = take_press(update, context)
    if press is None:
        return
    d, outcome, confirmed = press.d, press.outcome, press.confirmed
    t = d.texts
    pending: dict[str, StrategyChoice] = context.bot_data.setdefault(PENDING_KEY, {})
    choice = pending.pop(press.data.rsplit(":", 1)[-1], None) \
        if outcome is not Outcome.UNKNOWN else None
    edit: str | None
    if outcome is Outcome.OK and confirmed and choice is not None:
        edit = perform_switch(d, choice)
        answer = t.plain("Done")
    elif outcome is Outcome.OK:
        edit = t("Cancelled: the strategy was not switched.")
        answer = t.plain("Cancelled")
    elif outcome is Outcome.EXPIRED:
        edit = t("This confirmation expired; send /strategy set again.")
        answer = t.plain("Expired; send /strategy set again.")
    else:
        edit = None
        answer = t.plain("This button is no longer valid.")
    await close_button(d, press.query, press.chat_id, answer, edit)


COMMANDS = (
    Command(name="strategy", help="The active strategy; list the catalog; switch (admin)",
            usage="/strategy [list | set ID [k=v ...]]", admin_only=False, callback=strategy),
)

CALLBACKS = ((PATTERN, on_button),)
