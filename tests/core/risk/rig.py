"""A crafted-event rig for RISK: the real engine (paper exchange, RISK, ORDERING, ledger) on
one bus, driven by hand-made market events and signals at chosen exchange times."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from core.engine import Engine, build_engine
from core.events import (
    ExitReason,
    MarketTick,
    MarkPrice,
    OrderRequest,
    PositionPhase,
    RiskRejected,
    Side,
    TradeClosed,
    TradeSignal,
)
from utils.settings import load_settings

D = Decimal
SYMBOL = "BTCUSDT"
#: 2024-01-01 00:00:00 UTC, a Monday
T0 = 1_704_067_200_000
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000

#: every RISK limit off; a test turns on the one it exercises
ALL_OFF = dict(
    risk_daily_loss_usdt=0, risk_daily_loss_pct=0, risk_max_drawdown_pct=0,
    risk_max_consecutive_losses=0, risk_loss_cooldown_min=0, risk_min_entry_interval_s=0,
    risk_max_entries_per_hour=0, risk_max_entries_per_day=0, risk_max_notional=0,
    risk_max_leverage=0, risk_price_band_pct=0, risk_min_liq_distance_pct=0,
    risk_liq_stop_multiple=0, risk_funding_window_min=0, risk_max_orders_per_minute=0,
)


class Rig:
    """The engine plus helpers. ``persist`` keeps state, ledger and paper account under
    ``data_dir`` (the restart tests build a second Rig on the same directory)."""

    def __init__(self, data_dir: Path, *, persist: bool = False, fund: bool = True,
                 **overrides: Any) -> None:
        settings = load_settings(**{
            "data_dir": data_dir, "symbols": "ETHUSDT",  # TRENDING stays out of BTCUSDT
            "initial_balance": "1000", "slippage_pct": "0", "taker_fee_pct": "0.05",
            **ALL_OFF, **overrides})
        self.settings = settings
        self.engine: Engine = build_engine(settings, persist=persist)  # paper: ARMED
        self.events: list[Any] = []
        self.engine.bus.subscribe_all(self.events.append)
        self.price = D(40000)
        if fund:
            self.engine.connection.publish_balance(T0, "DEPOSIT")  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ inputs

    @property
    def bus(self):
        return self.engine.bus

    @property
    def state(self):
        return self.engine.state

    def tick(self, price: float | Decimal, ts: int, *, mark: bool = True,
             funding_rate: float = 0.0001, next_funding_ms: int = 0) -> None:
        self.price = D(str(price))
        self.bus.publish(MarketTick(SYMBOL, ts, ts, float(price), 1.0, False))
        if mark:
            self.bus.publish(MarkPrice(SYMBOL, ts, float(price), float(price), funding_rate,
                                       next_funding_ms or (ts // (8 * HOUR) + 1) * 8 * HOUR))

    def signal(self, ts: int, side: Side = Side.LONG, *, notional: str = "200",
               leverage: int = 5, sl_pct: str = "1", price: Decimal | None = None) -> None:
        p = price or self.price
        sl_dist = p * D(sl_pct) / 100
        self.bus.publish(TradeSignal(
            symbol=SYMBOL, side=side, entry_price=p, quantity=D(notional) / p,
            stop_loss=p - sl_dist * side.sign, take_profit=p + 2 * sl_dist * side.sign,
            leverage=leverage, reason="test", ts_ms=ts))

    def close(self, ts: int) -> None:
        self.engine.close_position(ExitReason.MANUAL, ts)

    def trade(self, ts: int, *, pnl_pct: float, side: Side = Side.LONG,
              notional: str = "200", price: float = 40000) -> None:
        """Open at ``price``, move the price by ``pnl_pct`` % in the trade's favour (negative:
        against) one minute later and close there."""
        self.tick(price, ts)
        self.signal(ts, side, notional=notional)
        assert self.state.phase is PositionPhase.OPEN, self.rejections()[-1:]
        self.tick(price * (1 + side.sign * pnl_pct / 100), ts + MIN)
        self.close(ts + MIN)
        assert self.state.phase is PositionPhase.FLAT

    # ------------------------------------------------------------------ views

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if type(e) is kind]

    def rejections(self) -> list[RiskRejected]:
        return self.of(RiskRejected)

    def entries(self) -> list[OrderRequest]:
        return [r for r in self.of(OrderRequest) if r.intent == "ENTRY"]

    def trades(self) -> list[Any]:
        return [e.trade for e in self.of(TradeClosed)]
