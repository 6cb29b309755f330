"""/risk: every RISK limit, today's usage of it, the cooldowns running and the halt.

Reads the one read model (``RiskGuardian.snapshot``, core/risk/view.py) that the dashboard's
API reads too, as of the engine's clock (exchange time). /halt is with the other trading
controls (handlers/cmd_trading.py).
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from handlers.common import Deps, deps, duration, no_args, num, reply, utc
from handlers.i18n import N_
from handlers.registry import Command

#: What each limit is called on the screen (catalog msgids).
NAMES: dict[str, str] = {
    "daily_loss_usdt": N_("Daily loss"),
    "daily_loss_pct": N_("Daily loss of start-of-day equity"),
    "max_drawdown_pct": N_("Drawdown from the equity peak"),
    "consecutive_losses": N_("Losing trades in a row"),
    "entries_per_hour": N_("Entries in the last hour"),
    "entries_per_day": N_("Entries today"),
    "orders_per_minute": N_("Orders in the last minute"),
    "max_notional": N_("Largest notional"),
    "max_leverage": N_("Largest leverage"),
    "price_band": N_("Price band around the mark price"),
    "liq_distance": N_("Liquidation at least this far"),
    "liq_stop_multiple": N_("Liquidation distance in stop distances"),
    "funding_window": N_("No entry before adverse funding"),
    "trading_window": N_("Trading window"),
    "loss_cooldown": N_("Cooldown after losses"),
    "min_entry_interval": N_("Time between entries"),
}


def _used(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    return num(value, 0 if unit == "count" else 2)


def risk_text(d: Deps) -> str:
    t = d.texts
    services = d.services
    snap = services.engine.risk.snapshot(services.now_ms())
    lines = [t("<b>Risk</b> on {day} UTC (the day starts at 00:00 UTC)",
               day=utc(snap["day_start_ms"] or snap["now_ms"])[:10])]
    if snap["halted"]:
        lines.append(t("<b>HALTED</b> since {time} UTC: {reason}. Only /arm lifts it.",
                       time=utc(snap["halted_ms"]), reason=snap["halt_reason"]))
    lines.append(t("Realized PnL today {pnl} USDT; equity {equity}, peak {peak} USDT",
                   pnl=num(snap["day_realized_pnl"], 2, sign=True), equity=num(snap["equity"]),
                   peak=num(snap["peak_equity"])))
    for row in snap["limits"]:
        name = t(NAMES.get(row["name"], row["name"]))
        mark = "⛔ " if row["breached"] else ""
        if row["threshold"] == "off":
            lines.append(t("{mark}{name}: off", mark=mark, name=name))
        elif row["used"] is None:
            lines.append(t("{mark}{name}: {threshold} {unit}", mark=mark, name=name,
                           threshold=row["threshold"], unit=row["unit"]))
        else:
            lines.append(t("{mark}{name}: {used} / {threshold} {unit}", mark=mark, name=name,
                           used=_used(row["used"], row["unit"]), threshold=row["threshold"],
                           unit=row["unit"]))
    cooldowns = snap["cooldowns"]
    if cooldowns:
        for c in cooldowns:
            lines.append(t("Cooldown: {name}, {left} left (until {until} UTC)",
                           name=t(NAMES.get(c["name"], c["name"])),
                           left=duration(c["remaining_s"]), until=utc(c["until_ms"])))
    else:
        lines.append(t("Cooldowns: none running"))
    refusals: dict[str, int] = snap["refusals"]
    if refusals:
        lines.append(t("Refused since start: {refusals}", refusals=", ".join(
            f"{k} {v}" for k, v in sorted(refusals.items()))))
    return "\n".join(lines)


async def risk(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    reply(update, context, risk_text(deps(context)))


COMMANDS = (
    Command(name="risk", help="Risk limits, today's usage, cooldowns and the halt",
            usage="/risk", admin_only=False, callback=risk),
)
