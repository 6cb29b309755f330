"""/pnl, /trades, /balance: results from the journal, the equity curve as a photo.

Periods are measured on the engine's clock (exchange time; replay time during a replay), so
"today" during a replay of 2024-08-08 means that day.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from functools import partial

from telegram import Update
from telegram.ext import ContextTypes

from handlers.alert_texts import trade_line
from handlers.common import (
    Deps,
    deps,
    int_arg,
    no_args,
    num,
    off_loop,
    reply,
    reply_chat_id,
    utc,
)
from handlers.outbox import Priority, escape
from handlers.registry import Command, UsageError
from utils.charts import render_equity_curve

DAY_MS = 86_400_000
PERIODS = ("today", "7d", "30d", "all")
TRADES_DEFAULT, TRADES_MAX = 10, 50


def period_start(period: str, now_ms: int) -> int | None:
    """Start (ms) of ``today`` (UTC midnight), ``7d``, ``30d``; None for ``all``."""
    if period == "today":
        return now_ms - now_ms % DAY_MS
    if period == "7d":
        return now_ms - 7 * DAY_MS
    if period == "30d":
        return now_ms - 30 * DAY_MS
    return None


def pnl_text(d: Deps, summary: dict, title: str, since_ms: int | None) -> str:
    """The PnL block shared by /pnl and the daily report (HTML)."""
    t = d.texts
    asset = d.settings.quote_asset
    snap = d.services.engine.status()
    upnl = (snap["position"] or {}).get("unrealized_pnl") or Decimal(0)
    heading = (t("<b>{title}</b> since {since} UTC", title=title, since=utc(since_ms))
               if since_ms is not None else t("<b>{title}</b>, all time", title=title))
    return "\n".join([
        heading,
        t("Realized net PnL: <b>{net}</b> {asset}", net=num(summary["net_pnl"], 4, sign=True),
          asset=asset),
        t("Gross {gross}, fees {fees}, funding {funding}",
          gross=num(summary["gross_pnl"], 4, sign=True), fees=num(summary["fees"], 4),
          funding=num(summary["funding"], 4, sign=True)),
        t("Unrealized PnL: {upnl} {asset}", upnl=num(upnl, 4, sign=True), asset=asset),
        t("Trades: {count} ({wins} won, {losses} lost), win rate {rate}%",
          count=summary["trades"], wins=summary["wins"], losses=summary["losses"],
          rate=num(summary["win_rate"] * 100, 1)),
    ])


async def equity_points(d: Deps, since_ms: int | None) -> list[tuple[int, float]]:
    """Equity snapshots from the journal; when there are fewer than two, the realized equity
    rebuilt from the period's round trips, ending at the current equity."""
    services = d.services
    journal = services.journal
    now = services.now_ms()
    equity_now = services.equity()
    points = [(ts, float(eq)) for ts, eq in await journal.equity_curve(since_ms)]
    if len(points) >= 2:
        if equity_now is not None and points[-1][0] < now:
            points.append((now, float(equity_now)))
        return points
    trades = await journal.trades(since_ms)
    wallet = services.engine.balance.wallet(d.settings.quote_asset)
    running = wallet - sum((tr.net_pnl for tr in trades), Decimal(0))
    points = []
    if trades:
        points.append((trades[0].entry_ts_ms, float(running)))
    for tr in trades:
        running += tr.net_pnl
        points.append((tr.exit_ts_ms, float(running)))
    if equity_now is not None and (not points or points[-1][0] <= now):
        points.append((now, float(equity_now)))
    return points


async def send_pnl(d: Deps, chat_ids: Iterable[int], period: str, title: str,
                   since_ms: int | None, *, priority: Priority = Priority.REPLY,
                   silent: bool = False) -> None:
    """Queue the PnL text and the equity chart (rendered once, off the event loop) for chats."""
    summary = await d.services.journal.pnl_summary(since_ms)
    text = pnl_text(d, summary, title, since_ms)
    points = await equity_points(d, since_ms)
    chart_title = d.texts.plain("Equity ({period}), {asset}", period=period,
                                asset=d.settings.quote_asset)
    closes = [(tr.exit_ts_ms, tr.net_pnl > 0) for tr in await d.services.journal.trades(since_ms)]
    ylabel = d.texts.plain("equity ({asset})", asset=d.settings.quote_asset)
    png = await off_loop(partial(render_equity_curve, points, chart_title, closes=closes,
                                 ylabel=ylabel))
    caption = d.texts("Equity curve ({period})", period=period)
    for chat_id in chat_ids:
        d.outbox.send_text(chat_id, text, priority=priority, silent=silent)
        d.outbox.send_photo(chat_id, png, caption, filename=f"equity_{period}.png",
                            priority=priority, silent=silent)


async def pnl(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    args = context.args or []
    if len(args) > 1:
        raise UsageError(" ".join(args))
    period = args[0].lower() if args else "today"
    if period not in PERIODS:
        raise UsageError(period)
    d = deps(context)
    chat_id = reply_chat_id(update)
    if chat_id is None:
        return
    since = period_start(period, d.services.now_ms())
    await send_pnl(d, [chat_id], period, d.texts.plain("PnL ({period})", period=period), since)


async def trades(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    args = context.args or []
    if len(args) > 1:
        raise UsageError(" ".join(args))
    n = int_arg(args, 0, TRADES_DEFAULT, 1, TRADES_MAX)
    d = deps(context)
    t = d.texts
    rows = await d.services.journal.trades(limit=n)
    if not rows:
        reply(update, context, t("No closed trades yet."))
        return
    lines = [t("<b>Last {n} trades</b>", n=len(rows))]
    for tr in rows:
        lines.append(f"{escape(utc(tr.exit_ts_ms))} "
                     + trade_line(t, tr, d.settings.leverage, d.settings.quote_asset))
    reply(update, context, "\n".join(lines))


async def balance(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    d = deps(context)
    t = d.texts
    balances = d.services.engine.balance.all()
    if not balances:
        reply(update, context, t("No balance reported yet."))
        return
    lines = [t("<b>Balance</b>")]
    for b in balances:
        lines.append(t("{asset}: wallet {wallet}, available {available}", asset=b.asset,
                       wallet=num(b.wallet, 4), available=num(b.available, 4)))
    account = d.services.account()  # paper: now; live: the exchange's latest snapshot
    if account is not None:
        lines.append(t("Equity {equity} {asset} (unrealized {upnl})",
                       equity=num(account.equity, 4), asset=d.settings.quote_asset,
                       upnl=num(account.unrealized_pnl, 4, sign=True)))
    reply(update, context, "\n".join(lines))


COMMANDS = (
    Command(name="pnl", help="Realized and unrealized PnL with the equity curve",
            usage="/pnl [today|7d|30d|all]", admin_only=False, callback=pnl),
    Command(name="trades", help="The last closed trades", usage="/trades [N]",
            admin_only=False, callback=trades),
    Command(name="balance", help="Wallet, available balance and equity", usage="/balance",
            admin_only=False, callback=balance),
)
