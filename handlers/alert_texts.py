"""Alert messages in the trader's language: one translated template per engine alert event.

``core.alerts.alert_text`` decides which events are alerts (and prints the console's English
line); this module renders the Telegram message for the same events through the catalog, with
what a trader scans for: side, size, notional and leverage on entries; PnL in USDT and in % of
the margin, holding time and a win/loss icon on exits. Events this module has no template for
(added later by another module) fall back to their title and the console line.

Alert types (``handlers.notify.ALERT_TYPES``) are what /notify mutes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.events import (
    ClosedTrade,
    ConnectionStatus,
    EngineError,
    MarginCall,
    PositionAdopted,
    PositionOpened,
    ProtectiveOrderUpdate,
    RateLimitBackoff,
    SignalRejected,
    StateChanged,
    TradeClosed,
)
from handlers.common import duration, num, price
from handlers.i18n import N_, Texts
from handlers.notify import ALERT_TYPES
from handlers.outbox_html import escape

#: Engine mode and status words, translated where shown.
WORDS = {
    "ARMED": N_("ARMED"), "DISARMED": N_("DISARMED"), "HALTED": N_("HALTED"),
    "paper": N_("paper"), "testnet": N_("testnet"), "live": N_("live"),
    "FLAT": N_("flat"), "ENTERING": N_("entering"), "OPEN": N_("open"), "EXITING": N_("exiting"),
    "LONG": N_("LONG"), "SHORT": N_("SHORT"),
    "NEW": N_("placed on the exchange"), "PLACE_FAILED": N_("could not be placed"),
    "REJECTED": N_("rejected by the exchange"), "EXPIRED": N_("expired"),
}
#: Exit reasons (``ExitReason`` values), translated.
EXIT_REASONS = {
    "TP": N_("take profit"), "SL": N_("stop loss"), "TRAILING": N_("trailing stop"),
    "SIGNAL": N_("signal"), "MANUAL": N_("manual close"), "FLAT": N_("/flat"),
    "END": N_("end of data"), "LIQUIDATION": N_("liquidation"), "RISK": N_("risk limit"),
    "HALT": N_("kill switch (halt)"),
}
FALLBACK_TITLES: dict[str, str] = {"RiskRejected": N_("Signal refused by RISK")}


_TYPE_OF = {name: kind for kind, names in ALERT_TYPES.items() for name in names}


def alert_type(event: Any) -> str:
    return _TYPE_OF.get(type(event).__name__, "other")


def word(t: Texts, value: str) -> str:
    """A status word (mode, side, exit reason, order status) in the catalog's language."""
    msgid = WORDS.get(value)
    return t.plain(msgid) if msgid else value


def exit_reason(t: Texts, value: str) -> str:
    msgid = EXIT_REASONS.get(value)
    return t.plain(msgid) if msgid else value


def margin_return_pct(trade: ClosedTrade, leverage: int) -> Decimal | None:
    """Net PnL in % of the initial margin (entry notional / leverage)."""
    margin = trade.entry_price * trade.quantity / max(leverage, 1)
    return trade.net_pnl / margin * 100 if margin > 0 else None


def trade_line(t: Texts, trade: ClosedTrade, leverage: int, asset: str) -> str:
    """One closed trade for /trades and the exit alert (HTML)."""
    pct = margin_return_pct(trade, leverage)
    return t("{icon} {side} {quantity} {symbol} {entry} → {exit}: <b>{net}</b> {asset} "
             "({pct}), held {held}, {reason}",
             icon="✅" if trade.net_pnl > 0 else "❌", side=word(t, trade.side.value),
             quantity=trade.quantity, symbol=trade.symbol, entry=price(trade.entry_price),
             exit=price(trade.exit_price), net=num(trade.net_pnl, 4, sign=True), asset=asset,
             pct="-" if pct is None else num(pct, 2, sign=True) + "%",
             held=duration((trade.exit_ts_ms - trade.entry_ts_ms) / 1000),
             reason=exit_reason(t, trade.exit_reason.value))


def render(t: Texts, ev: Any, *, leverage: int, asset: str, fallback: str) -> str:
    """The Telegram message (HTML) for alert event ``ev``; ``fallback`` is the console line
    for events without a template."""
    if isinstance(ev, PositionOpened):
        notional = ev.entry_price * ev.quantity
        lines = [t("🟢 <b>Entry filled</b>: {side} {quantity} {symbol} @ {entry}",
                   side=word(t, ev.side.value), quantity=ev.quantity, symbol=ev.symbol,
                   entry=price(ev.entry_price)),
                 t("Notional {notional} {asset}, leverage {leverage}x, margin {margin} {asset}",
                   notional=num(notional, 2), asset=asset, leverage=leverage,
                   margin=num(notional / max(leverage, 1), 2)),
                 t("Stop loss {sl}, take profit {tp}", sl=price(ev.stop_loss),
                   tp=price(ev.take_profit))]
        if ev.reason:
            lines.append(t("Why: {reason}", reason=ev.reason))
        return "\n".join(lines)
    if isinstance(ev, TradeClosed):
        tr = ev.trade
        title = (t("✅ <b>Exit filled, won</b>") if tr.net_pnl > 0
                 else t("❌ <b>Exit filled, lost</b>"))
        return "\n".join([
            title, trade_line(t, tr, leverage, asset),
            t("Gross {gross}, fees {fees}, funding {funding} {asset}",
              gross=num(tr.gross_pnl, 4, sign=True), fees=num(tr.fees, 4),
              funding=num(tr.funding, 4, sign=True), asset=asset)])
    if isinstance(ev, SignalRejected):
        return t("⛔ <b>Signal rejected</b>: {side} {symbol}: {reason}",
                 side=word(t, ev.signal.side.value), symbol=ev.signal.symbol, reason=ev.reason)
    if isinstance(ev, EngineError):
        return t("⚠️ <b>Error</b> in {source}: {message}", source=ev.source, message=ev.message)
    if isinstance(ev, StateChanged):
        if ev.new == "HALTED":
            return t("🛑 <b>Engine HALTED: needs a human</b> ({reason}). /arm lifts the halt "
                     "after a confirmation.", reason=ev.reason or "-")
        return t("⚙️ <b>Engine {new}</b> (was {old}){why}", new=word(t, ev.new),
                 old=word(t, ev.old), why=f": {ev.reason}" if ev.reason else "")
    if isinstance(ev, ConnectionStatus):
        return t("📡 <b>Connection down</b>: {stream} ({detail})", stream=ev.stream,
                 detail=ev.detail or "-")
    if isinstance(ev, ProtectiveOrderUpdate):
        return t("🛡️ <b>Protective order</b>: {kind} {symbol} at {trigger}, {status}{detail}",
                 kind=word(t, ev.kind), symbol=ev.symbol, trigger=price(ev.trigger_price),
                 status=word(t, ev.status), detail=f" ({ev.detail})" if ev.detail else "")
    if isinstance(ev, PositionAdopted):
        return t("📥 <b>Position adopted from the exchange</b>: {quantity} {symbol} @ {entry}; "
                 "stops: {stops}; stop loss {sl}, take profit {tp}", quantity=ev.quantity,
                 symbol=ev.symbol, entry=price(ev.entry_price), stops=ev.stops,
                 sl=price(ev.stop_loss), tp=price(ev.take_profit))
    if isinstance(ev, MarginCall):
        return t("🚨 <b>Margin call</b> on {symbols}: maintenance margin {mm} {asset}",
                 symbols=", ".join(ev.symbols), mm=num(ev.maintenance_margin, 4), asset=asset)
    if isinstance(ev, RateLimitBackoff):
        if ev.banned:
            return t("⏳ <b>Rate limit</b>: {pool} IP banned for {seconds} s", pool=ev.pool,
                     seconds=num(ev.retry_after_s, 1))
        return t("⏳ <b>Rate limit</b>: {pool} at {used}/{limit}, waiting {seconds} s",
                 pool=ev.pool, used=ev.used, limit=ev.limit, seconds=num(ev.retry_after_s, 1))
    title = FALLBACK_TITLES.get(type(ev).__name__, N_("Alert"))
    return f"<b>{t(title)}</b>\n{escape(fallback)}"
