"""python-telegram-bot hosts the engine.

``run_hosted`` builds the Application (``build_application``) and ``serve`` runs it, following
``Application.run_polling``'s lifecycle inside the already running event loop of
``main.py run``::

    initialize (getMe, retried through network errors)
    post_init   outbox sender, alert relay, Services.start (journal, account snapshot),
                setMyCommands, hello message, JobQueue jobs, then the market feed task
    start_polling (pending updates dropped: a stale /close must not run after a restart)
    start       ... until SIGTERM/SIGINT or ``stop`` is set
    updater.stop, stop
    post_stop   Services.stop (feed stopped, journal flushed; orders and protective stops are
                left on the exchange), goodbye message, outbox drained (bounded), outbox stopped
    shutdown

Secrets: the bot token and every other secret setting are registered with
``utils.log_setup.add_secret`` before the first request; the error handler formats exceptions
itself and redacts them, because PTB/httpx errors can carry the request URL, which contains the
token. ``httpx`` request logging is turned down to WARNING.

A 409 Conflict from getUpdates (another process polls with the same token) is logged once in
plain words and stops the bot with exit status 1: two engines must not trade one account.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes

from core.events import PositionPhase
from core.services import RunError, Services
from handlers.alert_texts import word
from handlers.alerts import AlertRelay
from handlers.common import DEPS_KEY, Deps, deps, reply
from handlers.confirm import Confirmations
from handlers.i18n import Texts
from handlers.notify import NotifyPrefs
from handlers.outbox import Outbox
from handlers.registry import (
    Access,
    Command,
    UsageError,
    bot_commands,
    collect,
    discover,
    install,
)
from jobs import balance_refresh, daily_report
from utils.log_setup import add_secret, redact
from utils.settings import Settings

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RELAY_KEY = "alert_relay"


@dataclass(slots=True)
class HostOptions:
    """Knobs for tests and special deployments; the defaults are production values."""

    clock: Any = time.monotonic          # confirmation expiry clock (monotonic seconds)
    confirm_ttl_s: float = 60.0
    project_root: Path = PROJECT_ROOT    # what /dar exports
    outbox: dict[str, Any] = field(default_factory=dict)  # Outbox keyword arguments
    poll_timeout_s: float = 10.0         # getUpdates long-poll
    autostart_feed: bool = True
    drain_timeout_s: float = 5.0         # goodbye: how long to wait for the outbox at stop
    init_retry_max_s: float = 30.0
    install_signal_handlers: bool = True


@dataclass(slots=True)
class _HostState:
    options: HostOptions
    watcher: asyncio.Task | None = None
    conflict: bool = False


def build_application(settings: Settings, services: Services,
                      options: HostOptions | None = None) -> Application:
    """The PTB Application with every command module installed and the services attached.

    Raises:
        RunError: no token, or no admin ids.
        ValueError: a command module declares an invalid command.
        core.persisted.PersistError: ``notify.json`` or ``outbox.sqlite3`` is invalid.
    """
    options = options or HostOptions()
    if settings.telegram_bot_token is None:
        raise RunError("TELEGRAM_BOT_TOKEN is not set")
    if not settings.telegram_admin_ids:
        raise RunError("TELEGRAM_ADMIN_IDS is required when TELEGRAM_BOT_TOKEN is set")
    for _, value in settings:  # everything /logs or /settings could ever show
        if isinstance(value, SecretStr):
            add_secret(value)
    builder = (ApplicationBuilder().token(settings.telegram_bot_token.get_secret_value())
               .post_init(_post_init).post_stop(_post_stop))
    base_url = settings.telegram_api_base_url
    if base_url:
        builder = builder.base_url(base_url)
        if base_url.endswith("/bot"):
            builder = builder.base_file_url(base_url[: -len("bot")] + "file/bot")
    app = builder.build()

    ids = frozenset(settings.telegram_admin_ids)
    access = Access(admins=ids, users=ids)
    commands, callbacks = collect(discover())
    t = Texts(settings.bot_language)
    notify = NotifyPrefs(settings.data_dir / "notify.json")  # validated before the outbox opens
    outbox = Outbox(app.bot, settings.data_dir / "outbox.sqlite3",
                    skipped_note=lambda name, mb: t(
                        "{name} ({size} MB) is too large for Telegram and was not sent.",
                        name=name, size=mb),
                    **options.outbox)

    def dead_letter_alert(msg: Any, reason: str) -> None:
        outbox.broadcast(sorted(ids), t(
            "A message to chat {chat} could not be delivered and was set aside ({reason}); "
            "/health counts them.", chat=msg.chat_id, reason=reason[:200]), notice=True)

    outbox.on_dead_letter = dead_letter_alert
    app.bot_data[DEPS_KEY] = Deps(
        settings=settings, services=services, outbox=outbox,
        texts=t,
        confirmations=Confirmations(options.confirm_ttl_s, options.clock), access=access,
        project_root=options.project_root, commands=commands,
        notify=notify,
    )
    app.bot_data["_host"] = _HostState(options)
    install(app, commands, callbacks, access, on_usage=_on_usage, on_unknown=_on_unknown)
    app.add_error_handler(_on_error)
    return app


# ---------------------------------------------------------------------- lifecycle hooks


async def _post_init(app: Application) -> None:
    d: Deps = app.bot_data[DEPS_KEY]
    host: _HostState = app.bot_data["_host"]
    t = d.texts
    await d.outbox.start()
    relay = AlertRelay(d.services.engine.bus, d.outbox, sorted(d.admins), t, prefs=d.notify,
                       leverage=d.settings.leverage, asset=d.settings.quote_asset)
    app.bot_data[RELAY_KEY] = relay
    await d.services.start(start_feed=False)
    try:
        await app.bot.set_my_commands(bot_commands(d.commands, t.plain))
    except TelegramError as exc:
        logger.warning("setMyCommands failed: %s", redact(f"{type(exc).__name__}: {exc}"))
    engine = d.services.engine
    relay.send(t("<b>dort5bot started</b>: {trading_mode} mode, engine {mode}, symbols {symbols}",
                 trading_mode=word(t, d.settings.trading_mode),
                 mode=word(t, engine.state.mode.value),
                 symbols=", ".join(d.settings.symbols)))
    if app.job_queue is not None:
        balance_refresh.schedule(app.job_queue)
        daily_report.schedule(app.job_queue, hour=d.settings.daily_report_hour)
    if d.services.has_feed:
        host.watcher = asyncio.create_task(_announce_feed_end(d, relay), name="feed-watcher")
    if host.options.autostart_feed:
        d.services.start_feed()


async def _announce_feed_end(d: Deps, relay: AlertRelay) -> None:
    events = await d.services.wait_feed()
    t = d.texts
    if d.services.feed_error:
        relay.send(t("<b>Market feed failed</b>: {error}", error=redact(d.services.feed_error)))
    else:
        relay.send(t("Market feed finished after {events} events; commands keep working.",
                     events=events))


async def _post_stop(app: Application) -> None:
    d: Deps = app.bot_data[DEPS_KEY]
    host: _HostState = app.bot_data["_host"]
    t = d.texts
    if host.watcher is not None:
        host.watcher.cancel()
    await d.services.stop()
    st = d.services.engine.state
    if st.phase is not PositionPhase.FLAT and st.symbol:
        position = t("{side} {quantity} {symbol} stays open with its protective stops.",
                     side=word(t, st.side.value) if st.side else "", quantity=st.quantity,
                     symbol=st.symbol)
    else:
        position = t("No open position.")
    relay: AlertRelay | None = app.bot_data.get(RELAY_KEY)
    if relay is not None:
        relay.send(t("<b>dort5bot stopping</b>, goodbye. {position}", position=position))
    if not await d.outbox.drain(host.options.drain_timeout_s):
        logger.warning("stopping with %d Telegram messages unsent; they go out at the next "
                       "start", d.outbox.pending)
    await d.outbox.stop()


# ---------------------------------------------------------------------- replies and errors


async def _on_usage(update: Update, context: Any, command: Command, exc: UsageError) -> None:
    reply(update, context, deps(context).texts("Usage: {usage}", usage=command.usage))


async def _on_unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    reply(update, context, deps(context).texts("Unknown command. Send /help for the list."))


def error_summary(exc: BaseException | None) -> str:
    """The exception with its traceback, secrets redacted (for the log only)."""
    if exc is None:
        return "unknown error"
    return redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure (redacted; never raw exc_info) and tell an authorized user in one line."""
    logger.error("update handling failed: %s", error_summary(context.error))
    d: Deps | None = context.bot_data.get(DEPS_KEY)
    if d is None or not isinstance(update, Update):
        return
    user, chat = update.effective_user, update.effective_chat
    if chat is None or user is None or not d.access.allowed(user.id):
        return
    name = type(context.error).__name__ if context.error else "Error"
    d.outbox.send_text(chat.id, d.texts("Something went wrong ({error}); details are in /logs.",
                                        error=name))


# ---------------------------------------------------------------------- running


async def _initialize(app: Application, stop: asyncio.Event, retry_max_s: float) -> bool:
    """``app.initialize()`` (getMe), retried through network errors until ``stop`` is set.

    Raises:
        RunError: the token is rejected.
    """
    delay = 1.0
    while True:
        try:
            await app.initialize()
            return True
        except InvalidToken:
            raise RunError("TELEGRAM_BOT_TOKEN was rejected by the Bot API; "
                           "check the token") from None
        except NetworkError as exc:
            logger.warning("Bot API unreachable at startup (%s); retrying in %.0f s",
                           redact(f"{type(exc).__name__}: {exc}"), delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return False
        except TimeoutError:
            delay = min(delay * 2, retry_max_s)


async def run_hosted(settings: Settings, services: Services, *,
                     stop: asyncio.Event | None = None,
                     options: HostOptions | None = None) -> int:
    """Build the bot and ``serve`` it until SIGTERM/SIGINT (or ``stop``).

    Raises:
        RunError: the token is rejected, or the configuration is incomplete.
        core.persisted.PersistError: ``notify.json`` or ``outbox.sqlite3`` is invalid (names
            the file and the field); the services are stopped first.
    """
    try:
        app = build_application(settings, services, options)
    except BaseException:
        await services.stop()
        raise
    return await serve(app, stop=stop)


async def serve(app: Application, *, stop: asyncio.Event | None = None) -> int:
    """Run a built application (see the module docstring for the order) until ``stop`` is set
    or SIGTERM/SIGINT arrives. Returns the exit status: 0, or 1 when another process polls with
    the same token (HTTP 409 Conflict).

    Raises:
        RunError: the token is rejected.
    """
    host: _HostState = app.bot_data["_host"]
    options = host.options
    d: Deps = app.bot_data[DEPS_KEY]
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    if options.install_signal_handlers:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
                signals.append(sig)
            except (NotImplementedError, RuntimeError):
                pass

    def on_poll_error(exc: TelegramError) -> None:
        if isinstance(exc, Conflict):
            if not host.conflict:
                logger.error("another process is polling Telegram with this bot token (HTTP 409 "
                             "Conflict): stop the other instance or delete its webhook; "
                             "shutting down")
            host.conflict = True
            stop.set()
        else:
            logger.warning("polling Telegram failed: %s", redact(f"{type(exc).__name__}: {exc}"))

    updater = app.updater
    if updater is None:  # build_application always builds one; a caller's app may not
        raise RunError("the Telegram application has no updater to poll with")
    try:
        if not await _initialize(app, stop, options.init_retry_max_s):
            return 0
        try:
            if app.post_init is not None:
                await app.post_init(app)
            await updater.start_polling(
                timeout=timedelta(seconds=options.poll_timeout_s), drop_pending_updates=True,
                allowed_updates=["message", "callback_query"], error_callback=on_poll_error)
            await app.start()
            logger.info("Telegram bot running for %d admins", len(d.admins))
            await stop.wait()
        finally:
            if updater.running:
                await updater.stop()
            if app.running:
                await app.stop()
            if app.post_stop is not None:
                await app.post_stop(app)
            await app.shutdown()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return 1 if host.conflict else 0
