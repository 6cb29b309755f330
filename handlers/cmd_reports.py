"""/daily, /weekly, /monthly, /performance, /stats: the journal's closed trades grouped the way
Freqtrade users expect (``handlers/trade_stats.py`` does the grouping; periods are UTC and on
the engine's clock, so a replay reports its own days)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from core.backtest.stats import BREAKDOWNS
from core.events import ClosedTrade
from handlers.common import Deps, deps, duration, int_arg, no_args, num, reply
from handlers.outbox import escape
from handlers.registry import Command, UsageError
from handlers.trade_stats import Group, by_period, grouped, period_starts

PERIOD_DEFAULTS = {"day": (7, 31), "week": (4, 26), "month": (3, 24)}  # default, maximum


def _pct(value: object) -> str:
    return "-" if value is None else num(value, 2, sign=True) + "%"  # type: ignore[arg-type]


async def _periods(update: Update, context: ContextTypes.DEFAULT_TYPE, kind: str) -> None:
    args = context.args or []
    if len(args) > 1:
        raise UsageError(" ".join(args))
    default, most = PERIOD_DEFAULTS[kind]
    count = int_arg(args, 0, default, 1, most)
    d = deps(context)
    t = d.texts
    now = d.services.now_ms()
    oldest = period_starts(kind, count, now)[-1]
    trades = await d.services.journal.trades(int(oldest.timestamp() * 1000))
    wallet = d.services.engine.balance.wallet(d.settings.quote_asset)
    groups = by_period(trades, kind, count, now, wallet)
    titles = {"day": t.plain("Daily PnL"), "week": t.plain("Weekly PnL"),
              "month": t.plain("Monthly PnL")}
    lines = [t("<b>{title}</b> ({asset}, UTC, since {oldest})", title=titles[kind],
               asset=d.settings.quote_asset, oldest=groups[-1].key)]
    loc = t.localize
    rows = [f"{loc(g.key):<10} {loc(num(g.net_pnl, 2, sign=True)):>10} "
            f"{loc(_pct(g.return_pct)):>8} {g.trades:>3}" for g in groups]
    header = f"{t.plain('period'):<10} {t.plain('net'):>10} {'%':>8} {'#':>3}"
    lines.append("<pre>" + escape("\n".join([header, *rows])) + "</pre>")
    reply(update, context, "\n".join(lines))


async def daily(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _periods(update, context, "day")


async def weekly(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _periods(update, context, "week")


async def monthly(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _periods(update, context, "month")


def _group_lines(d: Deps, groups: list[Group]) -> list[str]:
    t = d.texts
    return [t("{key}: {count} trades, {wins} won ({rate}%), net <b>{net}</b> {asset}",
              key=g.key, count=g.trades, wins=g.wins, rate=num(g.win_rate * 100, 1),
              net=num(g.net_pnl, 4, sign=True), asset=d.settings.quote_asset) for g in groups]


async def _all_trades(update: Update, context: ContextTypes.DEFAULT_TYPE
                      ) -> tuple[Deps, list[ClosedTrade]] | None:
    """Every closed trade of the journal, or None after telling the chat there is none."""
    no_args(context.args)
    d = deps(context)
    trades = await d.services.journal.trades()
    if not trades:
        reply(update, context, d.texts("No closed trades yet."))
        return None
    return d, trades


async def performance(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    found = await _all_trades(update, context)
    if found is None:
        return
    d, trades = found
    t = d.texts
    lines = [t("<b>Performance by symbol</b>")]
    lines += _group_lines(d, grouped(trades, BREAKDOWNS["symbol"]))
    reply(update, context, "\n".join(lines))


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    found = await _all_trades(update, context)
    if found is None:
        return
    d, trades = found
    t = d.texts
    lines = [t("<b>Exit reasons</b>")]
    lines += _group_lines(d, grouped(trades, BREAKDOWNS["exit_reason"]))
    everything = grouped(trades, lambda tr: "all")[0]
    lines += [
        t("<b>Holding time</b>"),
        t("Average {all}; winners {wins}, losers {losses}", all=duration(everything.avg_hold_s),
          wins=duration(everything.avg_win_hold_s), losses=duration(everything.avg_loss_hold_s)),
        t("Long: {long} trades, short: {short} trades",
          long=sum(1 for tr in trades if tr.side.value == "LONG"),
          short=sum(1 for tr in trades if tr.side.value == "SHORT")),
    ]
    reply(update, context, "\n".join(lines))


COMMANDS = (
    Command(name="daily", help="Net PnL per UTC day", usage="/daily [N days]",
            admin_only=False, callback=daily),
    Command(name="weekly", help="Net PnL per week (Monday to Sunday, UTC)",
            usage="/weekly [N weeks]", admin_only=False, callback=weekly),
    Command(name="monthly", help="Net PnL per calendar month", usage="/monthly [N months]",
            admin_only=False, callback=monthly),
    Command(name="performance", help="Trades and net PnL per symbol", usage="/performance",
            admin_only=False, callback=performance),
    Command(name="stats", help="Exit reasons, wins and losses, average holding time",
            usage="/stats", admin_only=False, callback=stats),
)
