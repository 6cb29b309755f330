"""What the dashboard shows, read from the running bot: plain JSON-ready dicts.

``BotView`` wraps the process's ``Services`` (engine, journal, market-data cache) and never
changes them. Money is a ``Decimal`` here and a decimal string on the wire (``dumps``); times
are ms since the epoch (exchange time where the engine has it); fractions are 0..1. Every
free-text value that could carry a credential (errors, log lines, settings) goes through
``utils.log_setup.redact``.

A few things the journal does not index are kept here from the bus, bounded: the latest
signals with their verdicts and the reason of the last mode change.
"""

from __future__ import annotations

import logging
from collections import deque
from decimal import Decimal
from typing import Any

import orjson

from core.binance.market_rest import INTERVAL_MS, interval_label
from core.events import (
    ClosedTrade,
    EngineMode,
    OrderRequest,
    PositionPhase,
    RiskRejected,
    SignalRejected,
    StateChanged,
    TradeSignal,
)
from core.services import Services
from utils.log_setup import recent_log_lines, redact
from utils.settings import parse_timeframe

logger = logging.getLogger(__name__)

SIGNALS_KEPT = 200


def dumps(value: Any) -> bytes:
    """JSON bytes: Decimals as strings, enums as their values, NaN never produced."""
    return orjson.dumps(value, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(type(value).__name__)


def trade_row(t: ClosedTrade) -> dict[str, Any]:
    """The backtest report's trade columns (README "JSON result")."""
    return {"symbol": t.symbol, "side": t.side.value, "entry_ts_ms": t.entry_ts_ms,
            "exit_ts_ms": t.exit_ts_ms, "entry_price": t.entry_price,
            "exit_price": t.exit_price, "quantity": t.quantity, "gross_pnl": t.gross_pnl,
            "fees": t.fees, "funding": t.funding, "net_pnl": t.net_pnl,
            "exit_reason": t.exit_reason.value}


def _interval_ms(timeframe: str) -> int:
    """A Binance kline interval or an engine timeframe (e.g. 5s) in ms; 0 if neither."""
    if timeframe in INTERVAL_MS:
        return INTERVAL_MS[timeframe]
    try:
        return parse_timeframe(timeframe)
    except ValueError:
        return 0


def downsample(points: list[Any], max_points: int) -> list[Any]:
    """At most ``max_points`` evenly spaced points, always keeping the last one."""
    n = len(points)
    if n <= max_points:
        return points
    step = n / max_points
    out = [points[int(i * step)] for i in range(max_points - 1)]
    out.append(points[-1])
    return out


class BotView:
    """Read model of one bot process for the API and the WebSocket channels.

    Args:
        services: the running process's services (engine, journal, market cache, health).
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.signals: deque[dict[str, Any]] = deque(maxlen=SIGNALS_KEPT)
        self._pending: dict[int, dict[str, Any]] = {}
        self.mode_reason = ""
        self.mode_changed_ms = 0
        bus = services.engine.bus
        bus.subscribe(TradeSignal, self._on_signal)
        bus.subscribe(SignalRejected, self._on_rejected)
        bus.subscribe(RiskRejected, self._on_risk_rejected)
        bus.subscribe(OrderRequest, self._on_order)
        bus.subscribe(StateChanged, self._on_state)

    # ------------------------------------------------------------------ bus (cheap, no I/O)

    def _on_signal(self, s: TradeSignal) -> None:
        row = {"ts_ms": s.ts_ms, "symbol": s.symbol, "side": s.side.value,
               "entry_price": s.entry_price, "quantity": s.quantity, "stop_loss": s.stop_loss,
               "take_profit": s.take_profit, "leverage": s.leverage, "reason": s.reason,
               "strategy": s.strategy, "confidence": s.confidence,
               "votes": [list(v) for v in s.votes],
               "verdict": "PENDING", "verdict_reason": ""}
        self.signals.append(row)
        self._pending = {id(s): row}  # a signal is judged before the next one is made

    def _on_rejected(self, ev: SignalRejected) -> None:
        row = self._pending.pop(id(ev.signal), None)
        if row is not None:
            row["verdict"], row["verdict_reason"] = "REJECTED", ev.reason

    def _on_risk_rejected(self, ev: RiskRejected) -> None:
        row = self._pending.pop(id(ev.signal), None)
        if row is not None:
            row["verdict"] = "REJECTED"
            row["verdict_reason"] = (f"risk {ev.limit}: {ev.value} / {ev.threshold} {ev.unit}"
                                     + (f" ({ev.detail})" if ev.detail else ""))

    def _on_order(self, req: OrderRequest) -> None:
        if req.intent == "ENTRY":
            for row in self._pending.values():
                row["verdict"] = "ACCEPTED"
            self._pending = {}

    def _on_state(self, ev: StateChanged) -> None:
        if ev.what == "mode":
            self.mode_reason, self.mode_changed_ms = ev.reason, ev.ts_ms

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Mode (with the reason of its last change), phase, health, uptime."""
        s = self.services
        engine = s.engine
        st = engine.state
        h = s.health()
        healthy, _ = s.health_check()
        now = s.now_ms()
        reason = st.halt_reason if st.mode is EngineMode.HALTED else self.mode_reason
        return {
            "trading_mode": self.settings.trading_mode,
            "mode": st.mode.value,
            "mode_reason": redact(reason),
            "mode_changed_ms": self.mode_changed_ms or None,
            "phase": st.phase.value,
            "symbols": list(self.settings.symbols),
            "started_ms": engine.started_ms,
            "uptime_s": engine.status()["uptime_s"],
            "now_ms": now,
            "health": {
                "healthy": healthy,
                "feed": h["feed"],
                "feed_error": redact(h["feed_error"]),
                "events_fed": h["events_fed"],
                "last_event_ms": h["last_event_ms"] or None,
                "streams": [{"name": k, "up": up, "detail": redact(str(d))}
                            for k, (up, d) in sorted(h["streams"].items())],
                "drops_10m": h["drops_10m"],
                "journal_pending": h["journal_pending"],
                "journal_write_errors": h["journal_write_errors"],
                "bus_errors": h["bus_errors"],
            },
        }

    def position(self) -> dict[str, Any] | None:
        """The open position, or None when flat. PnL in USDT at the current mark."""
        engine = self.services.engine
        pos = engine.status()["position"]
        if pos is None:
            return None
        st = engine.state
        mark = pos["mark_price"]
        notional = mark * st.quantity if mark is not None else None
        return {**pos, "phase": st.phase.value, "leverage": self.settings.leverage,
                "notional": notional,
                "liquidation_price": self.services.liquidation_price(st.symbol)}

    def balance(self) -> dict[str, Any]:
        """Wallet and available balance per asset, equity and unrealized PnL (USDT)."""
        engine = self.services.engine
        pos = engine.status()["position"]
        upnl = pos["unrealized_pnl"] if pos else Decimal(0)
        return {"asset": self.settings.quote_asset,
                "balances": [{"asset": b.asset, "wallet": b.wallet, "available": b.available}
                             for b in engine.balance.all()],
                "equity": self.services.equity(), "unrealized_pnl": upnl,
                "initial_balance": self.settings.initial_balance
                if self.settings.trading_mode == "paper" else None}

    # ------------------------------------------------------------------ history (journal)

    async def trades(self, *, since_ms: int | None, until_ms: int | None, symbol: str | None,
                     limit: int, offset: int) -> dict[str, Any]:
        """Closed round trips, newest first, filtered by exit time and symbol, paged."""
        rows = await self.services.journal.trades(since_ms)
        picked = [t for t in reversed(rows)
                  if (until_ms is None or t.exit_ts_ms <= until_ms)
                  and (symbol is None or t.symbol == symbol)]
        page = picked[offset:offset + limit]
        net = sum((t.net_pnl for t in picked), Decimal(0))
        return {"total": len(picked), "offset": offset, "limit": limit, "net_pnl": net,
                "trades": [trade_row(t) for t in page]}

    async def equity(self, *, since_ms: int | None, until_ms: int | None,
                     max_points: int) -> dict[str, Any]:
        """Equity snapshots ``[ts_ms, equity]`` oldest first, at most ``max_points``."""
        points = await self.services.journal.equity_curve(since_ms)
        picked = [(ts, eq) for ts, eq in points if until_ms is None or ts <= until_ms]
        now = self.services.equity()
        return {"points": [[ts, eq] for ts, eq in downsample(picked, max_points)],
                "total": len(picked), "equity": now}

    # ------------------------------------------------------------------ market

    def default_timeframe(self) -> str:
        market = self.services.market
        if not market.live:  # replay: the engine's own candles
            return interval_label(self.settings.timeframe_ms)
        return market.timeframes[0] if market.timeframes else "1m"

    def timeframes(self, symbol: str) -> list[str]:
        market = self.services.market
        if not market.live:
            return [self.default_timeframe()]
        return list(market.timeframes_for(symbol))

    async def candles(self, symbol: str, timeframe: str, limit: int) -> dict[str, Any]:
        """Candles ``[open_ms, open, high, low, close, volume]`` from the market-data cache
        (none yet: an empty list) with trade markers and the position's levels."""
        piece = await self.services.market.get("klines", (symbol, timeframe))
        series = piece.value
        bars = list(series.snapshot()) if series is not None else []
        if series is not None and series.current is not None and (
                not bars or series.current.open_ms > bars[-1].open_ms):
            bars.append(series.current)
        bars = bars[-limit:]
        out = [[c.open_ms, c.open, c.high, c.low, c.close, c.volume] for c in bars]
        first = bars[0].open_ms if bars else 0
        markers: list[dict[str, Any]] = []
        for t in await self.services.journal.trades(first or None):
            if t.symbol != symbol:
                continue
            if t.entry_ts_ms >= first:
                markers.append({"ts_ms": t.entry_ts_ms, "kind": "entry", "side": t.side.value,
                                "price": t.entry_price, "text": f"{t.side.value} entry"})
            markers.append({"ts_ms": t.exit_ts_ms, "kind": "exit", "side": t.side.value,
                            "price": t.exit_price,
                            "text": f"{t.exit_reason.value} {t.net_pnl:+.2f}"})
        st = self.services.engine.state
        levels = None
        if st.phase is not PositionPhase.FLAT and st.symbol == symbol and st.side is not None:
            markers.append({"ts_ms": st.opened_ms, "kind": "entry", "side": st.side.value,
                            "price": st.entry_price, "text": f"{st.side.value} entry"})
            levels = {"entry_price": st.entry_price, "stop_loss": st.stop_loss or None,
                      "take_profit": st.take_profit or None,
                      "liquidation_price": self.services.liquidation_price(symbol)}
        markers.sort(key=lambda m: m["ts_ms"])
        interval_ms = series.interval_ms if series is not None else _interval_ms(timeframe)
        return {"symbol": symbol, "timeframe": timeframe, "interval_ms": interval_ms,
                "age_s": piece.age_s, "stale": piece.stale, "candles": out,
                "markers": markers, "levels": levels}

    def recent_signals(self, limit: int) -> dict[str, Any]:
        """The latest signals (newest first) with ORDERING's verdict: ACCEPTED (an entry order
        went out), REJECTED (with the reason) or PENDING."""
        rows = list(self.signals)[-limit:]
        return {"signals": list(reversed(rows))}

    # ------------------------------------------------------------------ risk and strategy

    def risk(self) -> dict[str, Any]:
        """RISK's snapshot (core/risk/view.py: every limit with today's usage, cooldowns,
        refusals, the halt) plus the open notional against MAX_NOTIONAL. Money as Decimal,
        thresholds as text ("off" when a limit is not set)."""
        services = self.services
        engine = services.engine
        snap = engine.risk.snapshot(services.now_ms())
        pos = self.position()
        notional = pos["notional"] if pos and pos["notional"] is not None else None
        limits = []
        for row in snap["limits"]:
            used = row["used"]
            if row["name"] == "max_notional" and used is None:
                used = notional
            limits.append({"name": row["name"], "unit": row["unit"], "limit": row["threshold"],
                           "used": used, "breached": row["breached"]})
        st = engine.state
        return {
            "mode": st.mode.value, "halted": snap["halted"],
            "halt_reason": redact(snap["halt_reason"]) if snap["halted"] else "",
            "halted_ms": snap["halted_ms"] or None, "halt_limit": snap["halt_limit"] or "",
            "limits": limits, "cooldowns": snap["cooldowns"], "refusals": snap["refusals"],
            "equity": snap["equity"], "peak_equity": snap["peak_equity"],
            "day_start_equity": snap["day_start_equity"],
            "day_realized_pnl": snap["day_realized_pnl"], "loss_streak": snap["loss_streak"],
            "available_balance": engine.balance.available(self.settings.quote_asset),
            "guardian": {"available": True},
        }

    def strategy(self) -> dict[str, Any]:
        """The catalog of trend rules, the active one with its parameters, the last signal's
        confidence and votes (an ensemble's agreement, 0..1) and the current verdict per traded
        symbol."""
        from web.catalog import catalog_entries

        engine = self.services.engine
        verdicts = []
        for symbol in self.settings.symbols:
            v = engine.trending.verdict(symbol)
            if v is not None:
                verdicts.append({"symbol": symbol, "bias": v.bias, "detail": v.detail,
                                 "strength": v.strength})
        active = engine.strategy_status()
        return {"active": {"id": active["name"], "params": active["params"],
                           "origin": active["origin"], "last_signal": active["last_signal"],
                           "timeframe": interval_label(self.settings.timeframe_ms),
                           "verdicts": verdicts},
                "catalog": catalog_entries()}

    # ------------------------------------------------------------------ logs and settings

    @staticmethod
    def logs(limit: int) -> dict[str, Any]:
        """The latest log lines, oldest first, redacted again on the way out."""
        return {"lines": [redact(line) for line in recent_log_lines(limit)]}

    def public_settings(self) -> dict[str, Any]:
        """Effective settings; secrets only as "(set)"/"(unset)"."""
        view = self.settings.public_view()
        return {"settings": {k: redact(v) for k, v in sorted(view.items())}}
