"""The RISK property: with any sequence of prices, signals, closes and fills, no entry is ever
sent while a limit is breached, and a breached kill-switch limit always ends flat and HALTED.

The oracle is independent of RISK's book: it recomputes the day's realized PnL from the
ledger's round trips, the entries from the OrderRequests sent, and the equity from the paper
exchange's own account (wallet + unrealized PnL at the last price), at every step.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.events import EngineMode, OrderRequest, PositionPhase, Side, TradeSignal
from tests.core.risk.rig import DAY, HOUR, MIN, T0, Rig

D = Decimal
LIMITS = dict(risk_daily_loss_usdt=8, risk_max_drawdown_pct=3, risk_max_entries_per_hour=3,
              risk_max_leverage=10, risk_max_notional=600)
TOL = D("0.05")  # percent: the oracle's price for equity may differ from the mark by a tick

SIGNAL = st.tuples(st.just("signal"), st.sampled_from([Side.LONG, Side.SHORT]),
                   st.sampled_from([2, 5, 10, 20]), st.sampled_from(["100", "300", "600", "900"]))
ACTIONS = st.one_of(
    st.tuples(st.just("move"), st.floats(min_value=-2.5, max_value=2.5), st.integers(1, 30)),
    SIGNAL,
    st.tuples(st.just("close"),),
    st.tuples(st.just("round_trip"), SIGNAL),  # a signal, then a close a few seconds later
    st.tuples(st.just("night"),),  # jump to the next UTC day
)


class Oracle:
    """Watches the bus and checks every entry against limits recomputed from scratch."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.entries: list[int] = []
        self.peak = D(0)
        self.violations: list[str] = []
        self.signals: dict[int, TradeSignal] = {}
        rig.bus.subscribe(TradeSignal, lambda s: self.signals.__setitem__(s.ts_ms, s))
        rig.bus.subscribe(OrderRequest, self.on_order)

    def day_loss(self, ts: int) -> Decimal:
        start = ts - ts % DAY
        pnl = sum((t.net_pnl for t in self.rig.engine.ledger.trades
                   if start <= t.exit_ts_ms <= ts), D(0))
        return max(-pnl, D(0))

    def equity(self) -> Decimal:
        return self.rig.engine.connection.equity()  # type: ignore[attr-defined]

    def drawdown(self) -> Decimal:
        eq = self.equity()
        self.peak = max(self.peak, eq)
        return (self.peak - eq) / self.peak * 100 if self.peak > 0 else D(0)

    def on_order(self, req: OrderRequest) -> None:
        if req.intent != "ENTRY":
            return
        ts = req.ts_ms
        sig = self.signals[ts]
        recent = [t for t in self.entries if t > ts - HOUR]
        checks = {
            "daily_loss": self.day_loss(ts) < LIMITS["risk_daily_loss_usdt"],
            "drawdown": self.drawdown() < LIMITS["risk_max_drawdown_pct"] + TOL,
            "entries_per_hour": len(recent) < LIMITS["risk_max_entries_per_hour"],
            "leverage": sig.leverage <= LIMITS["risk_max_leverage"],
            "notional": sig.quantity * sig.entry_price <= LIMITS["risk_max_notional"],
            "mode": self.rig.state.mode is EngineMode.ARMED,
        }
        self.violations += [f"entry at {ts} with {k} breached" for k, ok in checks.items()
                            if not ok]
        self.entries.append(ts)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=1, max_size=40))
def test_no_entry_while_breached_and_a_kill_breach_ends_flat_and_halted(actions):
    rig = Rig(Path("/nonexistent-risk-property"), **LIMITS)
    oracle = Oracle(rig)
    ts = T0
    price = D(40000)
    rig.tick(price, ts)
    for action in actions:
        kind = action[0]
        if kind == "move":
            ts += action[2] * MIN
            price = (price * (1 + D(repr(action[1])) / 100)).quantize(D("0.1"))
            rig.tick(price, ts)
        elif kind == "signal":
            ts += 1000
            rig.tick(price, ts)
            rig.signal(ts, action[1], leverage=action[2], notional=action[3], sl_pct="2")
        elif kind == "round_trip":
            _, side, lev, notional = action[1]
            ts += 1000
            rig.tick(price, ts)
            rig.signal(ts, side, leverage=lev, notional=notional, sl_pct="2")
            ts += 5000
            rig.tick(price, ts)
            rig.close(ts)
        elif kind == "close":
            ts += 1000
            rig.tick(price, ts)
            rig.close(ts)
        else:
            ts = ts - ts % DAY + DAY
            rig.tick(price, ts)
        assert not oracle.violations, oracle.violations
        breached = (oracle.day_loss(ts) >= LIMITS["risk_daily_loss_usdt"]
                    or oracle.drawdown() >= LIMITS["risk_max_drawdown_pct"] + TOL)
        if breached:
            assert rig.state.mode is EngineMode.HALTED, (kind, oracle.day_loss(ts))
            assert rig.state.phase is PositionPhase.FLAT
        if rig.state.mode is EngineMode.HALTED:
            assert rig.state.phase is PositionPhase.FLAT and not rig.state.orders
