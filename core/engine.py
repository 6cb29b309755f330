"""The engine: modules wired on one bus, plus the small facade the front-ends (CLI, Telegram)
call. Built by ``build_engine``; the same object runs live, paper and backtests.

Subscription order is part of the design: the connection sees a price before TRENDING and
FOLLOW_ORDERS react to it, so a fill triggered by that price uses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import crashpoints
from core.balance import BalanceStore
from core.event_bus import EventBus
from core.events import (
    CloseRequest,
    EngineMode,
    ExitReason,
    HaltRequest,
    PositionOpened,
    PositionPhase,
    StateChanged,
)
from core.follow_orders import FollowOrders
from core.ledger import Ledger
from core.migrate import store_for
from core.ordering import Ordering
from core.paper import PaperExchange
from core.paper_account import attach_paper_account
from core.ports import Connection
from core.recovery import recover_paper
from core.risk import RiskGuardian, RiskLimits
from core.sanity import EdgeSanity
from core.state import EngineState
from core.store import Store
from core.strategies.selection import (
    StrategyChoice,
    active_strategy,
    params_from_settings,
    save_choice,
)
from core.trending import Trending
from utils.settings import Settings

logger = logging.getLogger(__name__)


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
    risk: RiskGuardian
    started_ms: int
    strategy: StrategyChoice
    store: Store | None = None
    recovery_notes: tuple[str, ...] = ()
    sanity: EdgeSanity | None = None
    paper: PaperExchange | None = None  # the connection, when build_engine made the paper exchange

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
        """DISARMED; a HALTED engine stays HALTED (only ``arm`` lifts a halt)."""
        if self.state.mode is EngineMode.HALTED:
            return
        self.ordering.set_mode(EngineMode.DISARMED, ts_ms or now_ms(), reason)

    def halt(self, reason: str = "", ts_ms: int | None = None, *,
             limit: str = "manual") -> None:
        """Trip the kill switch by hand: HALTED with ``reason``, entry orders cancelled, the
        position closed at market. Lifted only by ``arm``."""
        text = reason.strip() or "halted by hand"
        self.bus.publish(HaltRequest(reason=text, limit=limit, ts_ms=ts_ms or now_ms()))

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

    def set_strategy(self, choice: StrategyChoice, *, persist: bool = True) -> None:
        """Switch TRENDING to ``choice`` (``/strategy set``): only while FLAT, validated first,
        persisted to ``DATA_DIR/strategy.json`` when ``persist`` so a restart keeps it; a
        ``StateChanged(what="strategy")`` records the switch in the journal.

        Raises:
            core.strategies.catalog.StrategyError: not a valid strategy or parameters.
            RuntimeError: a position (or an entry/exit) is in progress.
            OSError: the choice cannot be persisted (nothing switched).
        """
        factory = choice.factory()
        if self.state.phase is not PositionPhase.FLAT:
            raise RuntimeError("a position is open; switch strategies only while flat")
        if persist:
            save_choice(self.settings, choice)
        old = self.strategy
        self.trending.set_rule_factory(factory, choice.name)
        self.strategy = choice
        logger.info("strategy switched to %s %s", choice.name, dict(choice.params))
        self.bus.publish(StateChanged(  # journaled: when which strategy started to trade
            what="strategy", old=old.name, new=choice.name,
            reason=",".join(f"{k}={v}" for k, v in choice.params.items()), ts_ms=now_ms()))

    def strategy_status(self) -> dict[str, Any]:
        """The active strategy, its parameters, and the last signal's confidence and votes."""
        sig = self.trending.last_signal
        last = None
        if sig is not None:
            last = {"symbol": sig.symbol, "side": sig.side.value, "ts_ms": sig.ts_ms,
                    "reason": sig.reason, "confidence": sig.confidence,
                    "votes": [list(v) for v in sig.votes]}
        return {"name": self.strategy.name, "params": dict(self.strategy.params),
                "origin": self.strategy.origin, "last_signal": last}

    def status(self) -> dict[str, Any]:
        """A snapshot for /status: mode, phase, position, levels, balances (Decimals), the
        strategy (``strategy_status``)."""
        st = self.state
        out: dict[str, Any] = {
            "mode": st.mode.value, "phase": st.phase.value, "trading_mode": self.connection.name,
            "halt_reason": st.halt_reason, "halted_ms": st.halted_ms,
            "symbols": list(self.settings.symbols), "uptime_s": (now_ms() - self.started_ms) / 1000,
            "balances": {b.asset: {"wallet": b.wallet, "available": b.available}
                         for b in self.balance.all()},
            "position": None, "strategy": self.strategy_status(),
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
    """The settings' parameters of ``STRATEGY`` (see core/strategies/selection.py)."""
    return params_from_settings(settings)


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
        connection_factory: builds the CONNECTION on the bus; when None the paper exchange
            (``paper_from_settings``) is built, and is also ``Engine.paper``.
        persist: keep engine state, ledger, paper account and the journal's fills and round
            trips in the store of record ``DATA_DIR/journal.sqlite3`` (legacy JSON files are
            migrated), after the startup recovery (core/recovery.py); False for backtests.
        default_mode: mode when no state file exists (paper: ARMED if PAPER_START_ARMED;
            live/testnet: always DISARMED).

    Raises:
        core.strategies.catalog.StrategyError: bad strategy name or parameters (one line).
        core.persisted.PersistError: an invalid store, legacy file or ``strategy.json`` (names
            file and field).
    """
    bus = bus or EventBus()
    sanity = EdgeSanity(bus, max_jump=settings.sanity_max_price_jump_pct / 100,
                        max_future_ms=int(settings.sanity_max_future_s * 1000))
    sanity.install(bus)
    paper: PaperExchange | None = None
    connection: Connection
    if connection_factory is None:
        connection = paper = paper_from_settings(bus, settings)
    else:
        connection = connection_factory(bus)
    if default_mode is None:
        armed = settings.trading_mode == "paper" and settings.paper_start_armed
        default_mode = EngineMode.ARMED if armed else EngineMode.DISARMED
    choice = active_strategy(settings, persist=persist)  # strategy.json checked before the store
    store = store_for(settings) if persist else None
    state = EngineState.load(store, default_mode=default_mode)
    if settings.trading_mode != "paper" and persist and state.mode is EngineMode.ARMED:
        state.mode = EngineMode.DISARMED  # live and testnet always start DISARMED
    balance = BalanceStore(bus)
    trending = Trending(
        bus, choice.factory(), balance, symbols=settings.symbols,
        timeframe_ms=settings.timeframe_ms, leverage=settings.leverage,
        risk_fraction=settings.risk_fraction, max_notional=settings.max_notional,
        asset=settings.quote_asset, strategy=choice.name,
    )
    follow = FollowOrders(
        bus, price_source=settings.price_source, trailing_pct=settings.trailing_pct,
        activation_pct=settings.trailing_activation_pct, exit_on_reverse=settings.exit_on_reverse,
        stale_ms=int(settings.price_stale_s * 1000),
    )
    risk = RiskGuardian(bus, state, connection, RiskLimits.from_settings(settings),
                        asset=settings.quote_asset)
    ordering = Ordering(
        bus, connection, state, balance, max_notional=settings.max_notional,
        asset=settings.quote_asset, taker_fee=settings.taker_fee_pct / 100,
    )
    ledger = Ledger(bus, store)
    notes: list[str] = []
    if store is not None:
        if paper is not None:
            attach_paper_account(paper, store, bus)
            notes = recover_paper(state, ledger, paper, now_ms())
        store.bind(bus)
    engine = Engine(settings=settings, bus=bus, state=state, balance=balance,
                    connection=connection, trending=trending, ordering=ordering,
                    follow_orders=follow, ledger=ledger, risk=risk, started_ms=now_ms(),
                    strategy=choice, store=store, recovery_notes=tuple(notes), sanity=sanity,
                    paper=paper)
    crashpoints.watch(bus)  # the kill harness's event trigger, after the engine's subscribers
    engine.resume()
    return engine


def paper_from_settings(bus: EventBus, settings: Settings) -> PaperExchange:
    """A PaperExchange configured from settings (fees and slippage are percents there).

    Raises:
        core.brackets.BracketError: LEVERAGE_BRACKETS_PATH is unreadable or malformed.
    """
    from core.brackets import load_leverage_brackets

    filters = None
    if settings.exchange_info_path is not None:
        import json

        from core.filters import parse_exchange_info

        filters = parse_exchange_info(json.loads(settings.exchange_info_path.read_text()))
    paper = PaperExchange(
        bus, initial_balance=settings.initial_balance, leverage=settings.leverage,
        taker_fee=settings.taker_fee_pct / 100,
        slippage=settings.slippage_pct / 100, slippage_ticks=settings.slippage_ticks,
        mmr=settings.maintenance_margin_pct / 100, filters=filters,
        brackets=load_leverage_brackets(settings.leverage_brackets_path),
        stale_ms=int(settings.price_stale_s * 1000), quote_asset=settings.quote_asset,
    )
    return paper
