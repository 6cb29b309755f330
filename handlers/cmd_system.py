"""/start, /help, /health, /logs, /settings: the bot about itself."""

from __future__ import annotations

import time

from telegram import Update
from telegram.ext import ContextTypes

from handlers.alert_texts import word
from handlers.common import deps, duration, int_arg, no_args, reply, utc
from handlers.i18n import N_
from handlers.outbox import escape
from handlers.registry import Command, help_lines
from utils.log_setup import recent_log_lines, redact, without_paths
from utils.version import describe

LOGS_DEFAULT, LOGS_MAX = 30, 200


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(context)
    t = d.texts
    reply(update, context, "\n".join([
        t("<b>dort5bot</b> is running: {trading_mode} mode, engine {mode}.",
          trading_mode=word(t, d.settings.trading_mode),
          mode=word(t, d.services.engine.state.mode.value)),
        t("Send /help for the commands."),
    ]))


async def help_(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(context)
    lines = help_lines(d.commands, d.texts.plain)
    reply(update, context, d.texts("<b>Commands</b>") + "\n" + "\n".join(escape(x) for x in lines))


def health_text(context: ContextTypes.DEFAULT_TYPE) -> str:
    d = deps(context)
    t = d.texts
    h = d.services.health()
    last = utc(h["last_event_ms"]) if h["last_event_ms"] else "-"
    lines = [t("<b>Health</b>"),
             t("Market feed: {feed} ({events} events, last event {last} UTC)",
               feed=h["feed"], events=h["events_fed"], last=last)]
    if h["feed_error"]:
        lines.append(t("Feed error: {error}", error=redact(h["feed_error"])))
    if h["streams"]:
        for name, (up, detail) in sorted(h["streams"].items()):
            lines.append(t("Stream {name}: {state} {detail}", name=name,
                           state=t.plain("up") if up else t.plain("down"), detail=detail))
    worker = d.services.market_worker
    if worker is not None:
        m = worker.health()
        lines.append(t("Market data: {passes} passes, {failures} failed, request weight "
                       "{used}/{cap} this minute, streams {up}/{total} up", passes=m["passes"],
                       failures=m["failures"], used=m["budget"][0], cap=m["budget"][1],
                       up=sum(m["streams"].values()), total=len(m["streams"])))
    lines += [
        t("Connection drops in the last 10 minutes: {count}", count=h["drops_10m"]),
        t("Journal: {pending} rows pending, {errors} write errors",
          pending=h["journal_pending"], errors=h["journal_write_errors"]),
        t("Store of record: {state}, {errors} write errors",
          state=t.plain("failing: new entries refused") if h["store_failing"] else t.plain("ok"),
          errors=h["store_write_errors"]),
        t("Inputs rejected by sanity checks: {count}", count=h["inputs_rejected"]),
        t("Event bus: {errors} handler errors", errors=h["bus_errors"]),
        t("Telegram outbox: {pending} pending, {sent} sent, {retries} retries, {dead} set aside "
          "for good", pending=d.outbox.pending, sent=d.outbox.sent, retries=d.outbox.retries,
          dead=d.outbox.dead_letters),
        t("Uptime: {uptime}", uptime=duration(time.monotonic() - d.started_monotonic)),
    ]
    return "\n".join(lines)


async def health(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    reply(update, context, health_text(context))


async def logs(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    n = int_arg(context.args or [], 0, LOGS_DEFAULT, 1, LOGS_MAX)
    t = deps(context).texts
    lines = recent_log_lines(n)
    if not lines:
        reply(update, context, t("No log lines yet."))
        return
    body = "\n".join(escape(without_paths(redact(line))) for line in lines)
    reply(update, context, t("<b>Last {n} log lines</b>", n=len(lines)) + f"\n<pre>{body}</pre>")


#: /settings sections: (title, name prefixes), first match wins; the rest is "Other".
SETTING_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (N_("Trading"), ("trading_mode", "symbols", "timeframe", "leverage", "initial_balance",
                     "quote_asset", "paper_", "max_notional", "slippage", "fee")),
    (N_("Strategy"), ("strategy", "ensemble", "ema_", "adx", "sl_", "tp_", "trailing", "atr")),
    (N_("Risk"), ("risk_", "daily_loss", "max_", "cooldown", "adopt_")),
    (N_("Binance"), ("binance_",)),
    (N_("Telegram"), ("telegram_", "bot_language", "daily_report")),
    (N_("Market data"), ("market_", "watchlist")),
    (N_("Storage and logs"), ("data_dir", "log_", "journal", "secrets_", "replay_")),
    (N_("HTTP"), ("http_", "api_")),
)
MAX_SETTING_CHARS = 60


def setting_groups(view: dict[str, str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """``public_view`` grouped by section, values shortened (paths to their last part, long
    lists cut), empty values left out."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, value in sorted(view.items()):
        if value == "":
            continue
        title = next((t for t, prefixes in SETTING_GROUPS if name.startswith(prefixes)),
                     N_("Other"))
        shown = without_paths(redact(value))
        if len(shown) > MAX_SETTING_CHARS:
            shown = shown[:MAX_SETTING_CHARS - 1] + "…"
        groups.setdefault(title, []).append((name, shown))
    order = [t for t, _ in SETTING_GROUPS] + [N_("Other")]
    return [(title, groups[title]) for title in order if title in groups]


async def settings_(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    d = deps(context)
    t = d.texts
    lines = [t("<b>Effective settings</b> (secrets hidden)")]
    for title, items in setting_groups(d.settings.public_view()):
        lines.append(f"\n<b>{escape(t.plain(title))}</b>")
        lines += [f"<code>{escape(name)}</code> {escape(value)}" for name, value in items]
    reply(update, context, "\n".join(lines))


async def version(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    no_args(context.args)
    d = deps(context)
    info = describe()
    import telegram

    reply(update, context, d.texts(
        "<b>dort5bot</b> {version} (commit {commit}), Python {python}, "
        "python-telegram-bot {ptb}; {trading_mode} mode", version=info["version"],
        commit=info["commit"], python=info["python"], ptb=telegram.__version__,
        trading_mode=d.settings.trading_mode))


COMMANDS = (
    Command(name="start", help="Say hello and show the engine mode", usage="/start",
            admin_only=False, callback=start),
    Command(name="help", help="List the commands", usage="/help", admin_only=False,
            callback=help_),
    Command(name="health", help="Feed, journal and Telegram health", usage="/health",
            admin_only=False, callback=health),
    Command(name="logs", help="Recent log lines, secrets redacted", usage="/logs [N]",
            admin_only=True, callback=logs),
    Command(name="settings", help="Effective settings, secrets hidden", usage="/settings",
            admin_only=True, callback=settings_),
    Command(name="version", help="Bot version, commit and libraries", usage="/version",
            admin_only=False, callback=version),
)
