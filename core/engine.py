"""The engine: modules wired on one bus, plus the small facade the front-ends (CLI, Telegram)
call. Built by ``build_engine``; the same object runs live, paper and backtests.

Subscription order is part of the design: the connection sees a price before TRENDING and
FOLLOW_ORDERS react to it, so a fill triggered by that price uses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.balance import BalanceStore
from core.event_bus import EventBus
from core.events import (
    CloseRequest,
    EngineMode,
    ExitReason,
    PositionOpened,
    PositionPhase,
)
from core.follow_orders import FollowOrders
from core.ledger import Ledger
from core.ordering import Ordering
from core.paper import PaperExchange
from core.ports import Connection
from core.state import EngineState
from core.strategies.rules import rule_factory
from core.trending import Trending
from utils.settings import Settings

STRATEGY_PARAMS = ("ema_fast", "ema_slow", "adx_period", "adx_min", "atr_period", "sl_atr",
                   "tp_atr", "sl_pct", "tp_pct")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Engine:
    """The wired modules. ``publish`` feeds an event in; the facade methods steer it."""

    settings: Settings
    bus: EventBus
    state: EngineState
    balance: BalanceStore
    connection: Connection
    trending: Trending
    ordering: Ordering
    follow_orders: FollowOrders
    ledger: Ledger
    started_ms: int

    @property
    def publish(self) -> Callable[[Any], None]:
        return self.bus.publish

    def resume(self) -> None:
        """Re-announce a position persisted by an earlier run (``PositionOpened`` with its SL/TP),
        so FOLLOW_ORDERS watches it again and the live adapter checks its protective orders."""
        st = self.state
        if st.phase is PositionPhase.FLAT or not st.symbol or st.side is None:
            return
        self.bus.publish(PositionOpened(
            symbol=st.symbol, side=st.side, quantity=st.quantity, entry_price=st.entry_price,
            stop_loss=st.stop_loss, take_profit=st.take_profit, ts_ms=st.opened_ms,
        ))

    # ------------------------------------------------------------------ facade

    def arm(self, ts_ms: int | None = None, reason: str = "command") -> None:
        self.ordering.set_mode(EngineMode.ARMED, ts_ms or now_ms(), reason)

    def disarm(self, ts_ms: int | None = None, reason: str = "command") -> None:
        self.ordering.set_mode(EngineMode.DISARMED, ts_ms or now_ms(), reason)

    def close_position(self, reason: ExitReason = ExitReason.MANUAL,
                       ts_ms: int | None = None) -> bool:
        """Ask ORDERING to close the open position; False when there is none."""
        st = self.state
        if st.phase is PositionPhase.FLAT or not st.symbol:
            return False
        self.bus.publish(CloseRequest(symbol=st.symbol, reason=reason, detail="requested",
                                      ts_ms=ts_ms or now_ms()))
        return True

    def flat(self, ts_ms: int | None = None) -> bool:
        """Disarm, cancel an entry order still in flight, then close any position (reason
        FLAT; the live adapter cancels the exchange-side stops once it is closed).
        True if a position (or an entry) was open."""
        ts = ts_ms or now_ms()
        self.disarm(ts, "flat")
        entries = [o for o in self.state.orders.values() if o.intent == "ENTRY"]
        for order in entries:
            self.connection.cancel_order(order.symbol, order.client_order_id)
        closing = self.close_position(ExitReason.FLAT, ts)
        return closing or bool(entries)

    def status(self) -> dict[str, Any]:
        """A snapshot for /status: mode, phase, position, levels, balances (Decimals)."""
        st = self.state
        out: dict[str, Any] = {
            "mode": st.mode.value, "phase": st.phase.value, "trading_mode": self.connection.name,
            "symbols": list(self.settings.symbols), "uptime_s": (now_ms() - self.started_ms) / 1000,
            "balances": {b.asset: {"wallet": b.wallet, "available": b.available}
                         for b in self.balance.all()},
            "position": None,
        }
        if st.phase is not PositionPhase.FLAT and st.symbol:
            mark = self.connection.reference_price(st.symbol)
            upnl = None
            if mark is not None and st.side is not None:
                upnl = (mark - st.entry_price) * st.quantity * st.side.sign
            out["position"] = {
                "symbol": st.symbol, "side": st.side.value if st.side else "",
                "quantity": st.quantity, "entry_price": st.entry_price, "mark_price": mark,
                "unrealized_pnl": upnl, "stop_loss": st.stop_loss,
                "take_profit": st.take_profit, "opened_ms": st.opened_ms,
            }
        return out


def strategy_params(settings: Settings) -> dict[str, Any]:
    return {k: getattr(settings, k) for k in STRATEGY_PARAMS}


def build_engine(
    settings: Settings,
    *,
    connection_factory: Callable[[EventBus], Connection] | None = None,
    persist: bool = True,
    default_mode: EngineMode | None = None,
    bus: EventBus | None = None,
) -> Engine:
    """Wire an engine from settings.

    Args:
        connection_factory: builds the CONNECTION on the bus; the paper exchange when None.
        persist: keep state in ``DATA_DIR/state.json`` (False for backtests).
        default_mode: mode when no state file exists (paper: ARMED if PAPER_START_ARMED;
            live/testnet: always DISARMED).

    Raises:
        ValueError: bad strategy name or parameters.
        core.state.StateError: unreadable state file.
    """
    bus = bus or EventBus()
    if connection_factory is None:
        connection_factory = lambda b: paper_from_settings(b, settings)  # noqa: E731
    connection = connection_factory(bus)
    if default_mode is None:
        armed = settings.trading_mode == "paper" and settings.paper_start_armed
        default_mode = EngineMode.ARMED if armed else EngineMode.DISARMED
    state = EngineState.load(settings.state_path if persist else None, default_mode=default_mode)
    if settings.trading_mode != "paper" and persist and state.mode is EngineMode.ARMED:
        state.mode = EngineMode.DISARMED  # live and testnet always start DISARMED
    balance = BalanceStore(bus)
    factory = rule_factory(settings.strategy, strategy_params(settings))
    trending = Trending(
        bus, factory, balance, symbols=settings.symbols, timeframe_ms=settings.timeframe_ms,
        leverage=settings.leverage, risk_fraction=settings.risk_fraction,
        max_notional=settings.max_notional, asset=settings.quote_asset,
    )
    follow = FollowOrders(
        bus, price_source=settings.price_source, trailing_pct=settings.trailing_pct,
        activation_pct=settings.trailing_activation_pct, exit_on_reverse=settings.exit_on_reverse,
    )
    ordering = Ordering(
        bus, connection, state, balance, max_notional=settings.max_notional,
        asset=settings.quote_asset, taker_fee=settings.taker_fee_pct / 100,
    )
    ledger = Ledger(bus, settings.data_dir / "ledger.json" if persist else None)
    engine = Engine(settings=settings, bus=bus, state=state, balance=balance,
                    connection=connection, trending=trending, ordering=ordering,
                    follow_orders=follow, ledger=ledger, started_ms=now_ms())
    engine.resume()
    return engine


def paper_from_settings(bus: EventBus, settings: Settings) -> PaperExchange:
    """A PaperExchange configured from settings (fees and slippage are percents there)."""
    filters = None
    if settings.exchange_info_path is not None:
        import json

        from core.filters import parse_exchange_info

        filters = parse_exchange_info(json.loads(settings.exchange_info_path.read_text()))
    paper = PaperExchange(
        bus, initial_balance=settings.initial_balance, leverage=settings.leverage,
        taker_fee=settings.taker_fee_pct / 100, maker_fee=settings.maker_fee_pct / 100,
        slippage=settings.slippage_pct / 100, mmr=settings.maintenance_margin_pct / 100,
        filters=filters, quote_asset=settings.quote_asset,
    )
    return paper
