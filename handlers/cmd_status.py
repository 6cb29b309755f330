"""/status: mode, engine state, connection health, the position and the balance at a glance."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from handlers.alert_texts import word
from handlers.common import deps, duration, no_args, num, price, reply, utc
from handlers.registry import Command


def status_text(context: ContextTypes.DEFAULT_TYPE) -> str:
    d = deps(context)
    t = d.texts
    services = d.services
    engine = services.engine
    snap = engine.status()
    health = services.health()
    asset = d.settings.quote_asset
    lines = [
        t("<b>Status</b>: {trading_mode} mode, engine <b>{mode}</b>, phase {phase}",
          trading_mode=word(t, snap["trading_mode"]), mode=word(t, snap["mode"]),
          phase=word(t, snap["phase"])),
        t("Symbols: {symbols}, timeframe {timeframe}", symbols=", ".join(snap["symbols"]),
          timeframe=d.settings.timeframe),
        t("Connection: market feed {feed}, {drops} drops in 10 min; Telegram {pending} pending",
          feed=health["feed"], drops=health["drops_10m"], pending=d.outbox.pending),
    ]
    strat = snap.get("strategy")
    if strat is not None:
        lines.append(t("Strategy: <code>{name}</code> (/strategy)", name=strat["name"]))
        last = strat["last_signal"]
        if last is not None and last["confidence"] is not None:
            votes = ", ".join(f"{i} {s}" for i, s, _ in last["votes"])
            lines.append(t("Last signal {side} {symbol}: confidence {confidence} ({votes})",
                           side=last["side"], symbol=last["symbol"],
                           confidence=f"{last['confidence']:.2f}", votes=votes))
    if snap["mode"] == "HALTED":
        lines.insert(1, t("<b>HALTED</b> since {time} UTC: {reason}. Only /arm lifts it.",
                          time=utc(snap["halted_ms"]) if snap["halted_ms"] else "-",
                          reason=snap["halt_reason"] or "-"))
    pos = snap["position"]
    if pos is None:
        lines.append(t("Position: none"))
    else:
        lines += [
            t("Position: <b>{side}</b> {quantity} {symbol}", side=pos["side"],
              quantity=pos["quantity"], symbol=pos["symbol"]),
            t("Entry {entry}, mark {mark}, unrealized PnL {upnl} {asset}",
              entry=price(pos["entry_price"]), mark=price(pos["mark_price"]),
              upnl=num(pos["unrealized_pnl"], 4, sign=True), asset=asset),
            t("Liquidation {liq}, SL {sl}, TP {tp}",
              liq=price(services.liquidation_price(pos["symbol"])),
              sl=price(pos["stop_loss"]), tp=price(pos["take_profit"])),
        ]
        levels = engine.follow_orders.levels()
        if levels is not None and levels[2]:
            lines.append(t("Trailing stop {trail}", trail=price(levels[2])))
    bal = snap["balances"].get(asset)
    if bal is not None:
        lines.append(t("Balance: wallet {wallet} {asset}, available {available}",
                       wallet=num(bal["wallet"], 2), available=num(bal["available"], 2),
                       asset=asset))
    lines.append(t("Uptime: {uptime}", uptime=duration(snap["uptime_s"])))
    return "\n".join(lines)


async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    reply(update, context, status_text(context))


COMMANDS = (
    Command(name="status", help="Mode, engine state, connection, position and balance",
            usage="/status", admin_only=False, callback=status),
)
