"""/arm, /disarm, /close, /flat, /halt and their confirmation buttons.

/close, /flat and /halt always ask first; /arm asks in testnet/live mode (paper arms at once)
and always when the engine is HALTED, showing why it halted. The
prompt's buttons carry a one-time nonce that expires (handlers/confirm.py). Every action goes
through the engine facade with the engine's clock (exchange time).
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from core.events import EngineMode, ExitReason, PositionPhase
from handlers.alert_texts import word
from handlers.common import (
    Deps,
    close_button,
    deps,
    no_args,
    price,
    reply,
    reply_chat_id,
    take_press,
    utc,
)
from handlers.confirm import PATTERN, Outcome
from handlers.registry import Command

logger = logging.getLogger(__name__)

HALT_REASONS_KEY = "halt_reasons"  # bot_data: chat id -> the reason of a /halt being confirmed
MAX_HALT_REASON = 200


def needs_confirmation(action: str, trading_mode: str, *, halted: bool = False) -> bool:
    """/close, /flat and /halt always; /arm when HALTED or not paper trading."""
    if action == "arm":
        return halted or trading_mode != "paper"
    return action in ("close", "flat", "halt")


def perform(d: Deps, action: str, detail: str = "") -> str:
    """Run a confirmed (or unconfirmed, when allowed) action; the HTML result line.
    ``detail`` is the reason of a /halt."""
    t = d.texts
    engine = d.services.engine
    ts = d.services.now_ms()
    if action == "arm":
        engine.arm(ts, "telegram")
        return t("Engine <b>ARMED</b>: new signals may open positions.")
    if action == "halt":
        engine.halt(detail or "halted by hand (telegram)", ts)
        return t("Engine <b>HALTED</b>: entry orders cancelled, the position closing at "
                 "market. Only /arm lifts it.")
    if action == "disarm":
        if engine.state.mode is EngineMode.HALTED:
            return t("The engine is <b>HALTED</b>; only /arm lifts it.")
        engine.disarm(ts, "telegram")
        return t("Engine <b>DISARMED</b>: no new positions; an open position keeps its stops.")
    if action == "close":
        if engine.close_position(ExitReason.MANUAL, ts):
            return t("Closing the position; the engine stays {mode}.",
                     mode=word(t, engine.state.mode.value))
        return t("No open position.")
    if action == "flat":
        if engine.state.mode is EngineMode.HALTED:
            engine.flat(ts)
            return t("The engine stays <b>HALTED</b>; open orders cancelled, any position "
                     "closing. Only /arm lifts the halt.")
        if engine.flat(ts):
            return t("Engine <b>DISARMED</b> and the position is closing.")
        return t("Engine <b>DISARMED</b>; there was no position to close.")
    raise ValueError(f"unknown action {action!r}")


def _ask(update: Update, context: ContextTypes.DEFAULT_TYPE, action: str, question: str) -> None:
    d = deps(context)
    t = d.texts
    chat_id, user = reply_chat_id(update), update.effective_user
    if chat_id is None or user is None:
        return
    confirm, cancel = d.confirmations.issue(action, chat_id, user.id)
    markup = InlineKeyboardMarkup([[
        InlineKeyboardButton(t.plain("Yes, /{action}", action=action), callback_data=confirm),
        InlineKeyboardButton(t.plain("Cancel"), callback_data=cancel),
    ]])
    reply(update, context, question + "\n" + t("The buttons expire in {seconds} s.",
                                               seconds=int(d.confirmations.ttl_s)),
          markup=markup)


def _position_line(d: Deps) -> str | None:
    """``LONG 0.010 BTCUSDT at market (mark ≈ 56019.2)``: what a close would do, priced at
    the current mark, not at the entry; None when flat."""
    st = d.services.engine.state
    if st.phase is PositionPhase.FLAT or not st.symbol:
        return None
    t = d.texts
    side = word(t, st.side.value) if st.side else ""
    mark = d.services.engine.connection.reference_price(st.symbol)
    return t("{side} {quantity} {symbol} at market (mark ≈ {mark})", side=side,
             quantity=st.quantity, symbol=st.symbol, mark=price(mark))


async def arm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    d = deps(context)
    st = d.services.engine.state
    if st.mode is EngineMode.HALTED:
        _ask(update, context, "arm", d.texts(
            "The engine is <b>HALTED</b> since {time} UTC: {reason}\nArm it again in "
            "<b>{mode}</b> mode? New signals will open positions; /risk shows the limits.",
            time=utc(st.halted_ms) if st.halted_ms else "-", reason=st.halt_reason or "-",
            mode=d.settings.trading_mode))
        return
    if needs_confirmation("arm", d.settings.trading_mode):
        _ask(update, context, "arm", d.texts("Arm the engine in <b>{mode}</b> mode? New signals "
                                             "will open real positions.",
                                             mode=d.settings.trading_mode))
        return
    reply(update, context, perform(d, "arm"))


async def disarm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    reply(update, context, perform(deps(context), "disarm"))


async def close(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    d = deps(context)
    position = _position_line(d)
    if position is None:
        reply(update, context, d.texts("No open position."))
        return
    _ask(update, context, "close", d.texts("Close {position}? The engine stays armed.",
                                           position=position))


async def flat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    d = deps(context)
    position = _position_line(d)
    if position is None:
        question = d.texts("Go flat: disarm and cancel open orders? There is no position.")
    else:
        question = d.texts("Go flat: disarm, close {position} and cancel open orders?",
                           position=position)
    _ask(update, context, "flat", question)


async def halt(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(context)
    reason = " ".join(context.args or ()).strip()[:MAX_HALT_REASON]
    chat_id = reply_chat_id(update)
    if chat_id is not None:
        context.bot_data.setdefault(HALT_REASONS_KEY, {})[chat_id] = reason
    position = _position_line(d)
    if position is None:
        question = d.texts("HALT the engine: cancel entry orders and stop until /arm? There is "
                           "no position. Reason: {reason}", reason=reason or "-")
    else:
        question = d.texts("HALT the engine: cancel entry orders, close {position} at market "
                           "and stop until /arm? Reason: {reason}", position=position,
                           reason=reason or "-")
    _ask(update, context, "halt", question)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A confirmation button: act once, say so, remove the buttons."""
    press = take_press(update, context)
    if press is None:
        return
    d, outcome, action, confirmed = press.d, press.outcome, press.action, press.confirmed
    t = d.texts
    edit: str | None
    if outcome is Outcome.OK and confirmed:
        detail = ""
        if action == "halt":
            detail = context.bot_data.get(HALT_REASONS_KEY, {}).pop(press.chat_id, "")
        edit = perform(d, action, detail)
        answer = t.plain("Done")
    elif outcome is Outcome.OK:
        edit = t("Cancelled: /{action} was not run.", action=action)
        answer = t.plain("Cancelled")
    elif outcome is Outcome.EXPIRED:
        edit = t("This confirmation expired; send /{action} again.", action=action)
        answer = t.plain("Expired; send /{action} again.", action=action)
    else:
        edit = None
        answer = t.plain("This button is no longer valid.")
    await close_button(d, press.query, press.chat_id, answer, edit)


COMMANDS = (
    Command(name="arm", help="Let signals open positions (asks first in live mode)",
            usage="/arm", admin_only=True, callback=arm),
    Command(name="disarm", help="Stop opening positions; an open one keeps its stops",
            usage="/disarm", admin_only=True, callback=disarm),
    Command(name="close", help="Close the position at market and stay armed", usage="/close",
            admin_only=True, callback=close),
    Command(name="flat", help="Close the position, cancel orders and stops, disarm",
            usage="/flat", admin_only=True, callback=flat),
    Command(name="halt", help="Kill switch: close at market, cancel orders, stop until /arm",
            usage="/halt [reason]", admin_only=True, callback=halt),
)

CALLBACKS = ((PATTERN, on_button),)
