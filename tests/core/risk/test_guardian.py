"""RISK on crafted event sequences: each limit refuses (or halts) at its threshold and not
before, through the real engine (paper exchange, ORDERING, ledger)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.events import (
    EngineMode,
    ExitReason,
    HaltRequest,
    PositionPhase,
    RiskApproved,
    Side,
    SignalRejected,
)
from tests.core.risk.rig import DAY, HOUR, MIN, T0, Rig

D = Decimal


def only_refusal(rig: Rig, limit: str):
    refused = rig.rejections()
    assert [r.limit for r in refused] == [limit]
    assert rig.state.phase is PositionPhase.FLAT
    return refused[0]


# ---------------------------------------------------------------------- kill switch


def test_daily_loss_usdt_halts_and_refuses_the_next_entry(tmp_path):
    rig = Rig(tmp_path, risk_daily_loss_usdt=5)
    rig.trade(T0, pnl_pct=-1)  # 200 USDT notional: -2 USDT and fees
    assert rig.state.mode is EngineMode.ARMED
    rig.trade(T0 + 10 * MIN, pnl_pct=-1.5)  # another -3 and fees: over 5
    assert rig.state.mode is EngineMode.HALTED
    assert rig.state.halt_reason.startswith("daily_loss_usdt")
    assert rig.of(HaltRequest)[0].limit == "daily_loss_usdt"
    rig.tick(40000, T0 + 20 * MIN)
    rig.signal(T0 + 20 * MIN)
    assert not rig.entries()[2:] and rig.state.phase is PositionPhase.FLAT
    assert rig.of(SignalRejected)[-1].reason == "engine is HALTED"


def test_daily_loss_below_the_limit_does_not_halt(tmp_path):
    rig = Rig(tmp_path, risk_daily_loss_usdt=50)
    rig.trade(T0, pnl_pct=-1)
    assert rig.state.mode is EngineMode.ARMED
    snap = rig.engine.risk.snapshot(T0 + 2 * MIN)
    row = next(r for r in snap["limits"] if r["name"] == "daily_loss_usdt")
    assert D(0) < row["used"] < D(50) and not row["breached"]


def test_daily_loss_pct_of_start_of_day_equity_halts(tmp_path):
    rig = Rig(tmp_path, risk_daily_loss_pct=D("0.3"))  # 3 USDT of 1000
    rig.trade(T0, pnl_pct=-1)  # -2.2 USDT: 0.22 %
    assert rig.state.mode is EngineMode.ARMED
    rig.trade(T0 + 10 * MIN, pnl_pct=-1)
    assert rig.state.mode is EngineMode.HALTED
    assert rig.state.halt_reason.startswith("daily_loss_pct")


def test_drawdown_with_an_open_position_closes_it_at_market_and_halts(tmp_path):
    rig = Rig(tmp_path, risk_max_drawdown_pct=2)
    rig.tick(40000, T0)
    rig.signal(T0, notional="1000", sl_pct="5")
    assert rig.state.phase is PositionPhase.OPEN
    rig.tick(39500, T0 + MIN)  # -12.5 USDT unrealized: 1.25 %
    assert rig.state.mode is EngineMode.ARMED
    rig.tick(39000, T0 + 2 * MIN)  # -25 USDT: 2.5 % from the peak
    assert rig.state.mode is EngineMode.HALTED
    assert rig.state.phase is PositionPhase.FLAT
    (trade,) = rig.trades()
    assert trade.exit_reason is ExitReason.HALT
    assert rig.state.halt_reason.startswith("max_drawdown_pct")


def test_halt_while_entering_cancels_the_entry_order(tmp_path):
    rig = Rig(tmp_path)
    rig.engine.connection.submit_order = lambda req: None  # the entry stays in flight
    rig.tick(40000, T0)
    rig.signal(T0)
    assert rig.state.phase is PositionPhase.ENTERING
    cancelled = []
    rig.engine.connection.cancel_order = lambda sym, cid: cancelled.append(cid)
    rig.engine.halt("by hand", T0 + 1)
    assert rig.state.mode is EngineMode.HALTED and rig.state.halt_reason == "by hand"
    assert cancelled == [rig.entries()[0].client_order_id]
    assert rig.state.close_pending == "HALT"


def test_arm_lifts_the_halt_and_resets_the_peak_but_not_the_day(tmp_path):
    rig = Rig(tmp_path, risk_daily_loss_usdt=3, risk_max_drawdown_pct=10)
    rig.trade(T0, pnl_pct=-2)  # -4 USDT and fees
    assert rig.state.mode is EngineMode.HALTED
    rig.engine.disarm(T0 + 5 * MIN)
    assert rig.state.mode is EngineMode.HALTED  # only /arm lifts a halt
    rig.engine.arm(T0 + 5 * MIN)
    assert rig.state.mode is EngineMode.ARMED and rig.state.halt_reason == ""
    rig.tick(40000, T0 + 6 * MIN)
    rig.signal(T0 + 6 * MIN)
    assert rig.rejections()[-1].limit == "daily_loss_usdt"  # refused for the rest of the day
    assert rig.state.mode is EngineMode.ARMED  # ... without halting again
    rig.tick(40000, T0 + DAY + MIN)
    rig.signal(T0 + DAY + MIN)
    assert rig.state.phase is PositionPhase.OPEN  # a new UTC day


# ---------------------------------------------------------------------- streak and pace


def test_consecutive_losses_start_a_cooldown(tmp_path):
    rig = Rig(tmp_path, risk_max_consecutive_losses=3, risk_loss_cooldown_min=30)
    rig.trade(T0, pnl_pct=-0.5)
    rig.trade(T0 + 5 * MIN, pnl_pct=1)  # a win resets the streak
    for i in range(3):
        rig.trade(T0 + (10 + 5 * i) * MIN, pnl_pct=-0.5)
    last_exit = T0 + 21 * MIN
    rig.tick(40000, last_exit + 29 * MIN)
    rig.signal(last_exit + 29 * MIN)
    r = only_refusal(rig, "loss_cooldown")
    assert r.value == D("1.0") and r.threshold == 30
    rig.tick(40000, last_exit + 30 * MIN)
    rig.signal(last_exit + 30 * MIN)
    assert rig.state.phase is PositionPhase.OPEN


def test_min_entry_interval(tmp_path):
    rig = Rig(tmp_path, risk_min_entry_interval_s=600)
    rig.trade(T0, pnl_pct=0.1)
    rig.tick(40000, T0 + 9 * MIN)
    rig.signal(T0 + 9 * MIN)
    r = only_refusal(rig, "min_entry_interval")
    assert (r.value, r.threshold, r.unit) == (D("540.0"), 600, "s")
    rig.trade(T0 + 10 * MIN, pnl_pct=0.1)


def test_entries_per_hour_is_a_rolling_hour(tmp_path):
    rig = Rig(tmp_path, risk_max_entries_per_hour=2)
    rig.trade(T0, pnl_pct=0.1)
    rig.trade(T0 + 10 * MIN, pnl_pct=0.1)
    rig.tick(40000, T0 + 59 * MIN)
    rig.signal(T0 + 59 * MIN)
    assert only_refusal(rig, "entries_per_hour").value == 2
    rig.trade(T0 + 60 * MIN + 1, pnl_pct=0.1)  # the first entry left the hour


def test_entries_per_day_restarts_at_the_utc_day_boundary(tmp_path):
    rig = Rig(tmp_path, risk_max_entries_per_day=2)
    late = T0 + DAY - 30 * MIN
    rig.trade(late - 20 * MIN, pnl_pct=0.1)
    rig.trade(late - 10 * MIN, pnl_pct=0.1)
    rig.tick(40000, T0 + DAY - 1)
    rig.signal(T0 + DAY - 1)  # 23:59:59.999 UTC
    assert only_refusal(rig, "entries_per_day").value == 2
    rig.trade(T0 + DAY, pnl_pct=0.1)  # 00:00:00.000 UTC, the next day


def test_orders_per_minute_counts_exits_too(tmp_path):
    rig = Rig(tmp_path, risk_max_orders_per_minute=3)
    rig.tick(40000, T0)
    rig.signal(T0)
    rig.close(T0 + 1000)
    rig.signal(T0 + 2000)
    rig.close(T0 + 3000)  # 4 orders in 3 s
    rig.signal(T0 + 4000)
    r = rig.rejections()[-1]
    assert (r.limit, r.value, r.threshold) == ("orders_per_minute", 4, 3)
    rig.tick(40000, T0 + MIN + 2001)
    rig.signal(T0 + MIN + 2001)  # two of them are older than a minute
    assert rig.state.phase is PositionPhase.OPEN


# ---------------------------------------------------------------------- the order itself


def test_max_notional_and_leverage(tmp_path):
    rig = Rig(tmp_path, risk_max_notional=500, risk_max_leverage=10)
    rig.tick(40000, T0)
    rig.signal(T0, notional="600")
    rig.signal(T0, notional="400", leverage=20)
    assert [(r.limit, r.threshold) for r in rig.rejections()] == [
        ("max_notional", 500), ("max_leverage", 10)]
    rig.signal(T0, notional="500", leverage=10)
    assert rig.state.phase is PositionPhase.OPEN


def test_price_band_against_the_mark_price(tmp_path):
    rig = Rig(tmp_path, risk_price_band_pct=1)
    rig.tick(40000, T0)
    rig.signal(T0, price=D(40500))  # 1.25 % above the mark
    r = only_refusal(rig, "price_band")
    assert r.value == D("1.250") and r.unit == "%"
    rig.signal(T0, price=D(40300))
    assert rig.state.phase is PositionPhase.OPEN


def test_liquidation_distance_and_the_stop_before_liquidation(tmp_path):
    rig = Rig(tmp_path, risk_min_liq_distance_pct=3, risk_liq_stop_multiple=2)
    rig.tick(40000, T0)
    rig.signal(T0, leverage=50)  # liquidation ~1.6 % away
    rig.signal(T0, leverage=10, sl_pct="6")  # liquidation ~9.6 %: the stop is 6 %
    rig.signal(T0, leverage=10, sl_pct="12")  # the stop is beyond the liquidation price
    assert [r.limit for r in rig.rejections()] == ["liq_distance", "liq_stop_multiple",
                                                   "liq_distance"]
    assert "beyond the liquidation price" in rig.rejections()[2].detail
    rig.signal(T0, leverage=10, sl_pct="4")
    assert rig.state.phase is PositionPhase.OPEN


@pytest.mark.parametrize(("side", "rate", "refused"), [
    (Side.LONG, 0.001, True),     # longs pay a positive rate
    (Side.SHORT, 0.001, False),   # shorts receive it
    (Side.SHORT, -0.001, True),
    (Side.LONG, 0.0001, False),   # under the threshold
])
def test_funding_window(tmp_path, side, rate, refused):
    rig = Rig(tmp_path, risk_funding_window_min=10, risk_funding_rate_pct=D("0.05"))
    settlement = T0 + 8 * HOUR
    rig.tick(40000, settlement - 11 * MIN, funding_rate=rate, next_funding_ms=settlement)
    rig.signal(settlement - 11 * MIN, side)  # outside the window
    assert rig.state.phase is PositionPhase.OPEN
    rig.close(settlement - 10 * MIN)
    rig.tick(40000, settlement - 9 * MIN, funding_rate=rate, next_funding_ms=settlement)
    rig.signal(settlement - 9 * MIN, side)
    assert (rig.state.phase is PositionPhase.FLAT) is refused
    if refused:
        assert only_refusal(rig, "funding_window").value == D("0.1000")


def test_trading_window_hours_and_weekdays(tmp_path):
    rig = Rig(tmp_path, risk_trading_hours="8-16", risk_trading_days="mon-fri")
    rig.tick(40000, T0 + 7 * HOUR + 59 * MIN)  # Monday 07:59 UTC
    rig.signal(T0 + 7 * HOUR + 59 * MIN)
    rig.tick(40000, T0 + 5 * DAY + 9 * HOUR)  # Saturday 09:00
    rig.signal(T0 + 5 * DAY + 9 * HOUR)
    assert [r.limit for r in rig.rejections()] == ["trading_hours", "trading_days"]
    rig.tick(40000, T0 + 16 * HOUR + 59 * MIN)  # Monday 16:59: hour 16 is allowed
    rig.signal(T0 + 16 * HOUR + 59 * MIN)
    assert rig.state.phase is PositionPhase.OPEN


# ---------------------------------------------------------------------- plumbing


def test_refusals_alert_once_per_limit_and_period_and_are_counted(tmp_path):
    rig = Rig(tmp_path, risk_max_leverage=10)
    rig.tick(40000, T0)
    for ts in (T0, T0 + MIN, T0 + HOUR):
        rig.signal(ts, leverage=20)
    assert [r.alert for r in rig.rejections()] == [True, False, True]
    assert rig.engine.risk.refusals == {"max_leverage": 3}
    assert not rig.of(RiskApproved)


def test_signals_pass_through_when_not_armed_and_flat(tmp_path):
    rig = Rig(tmp_path, risk_max_leverage=10)
    rig.engine.disarm(T0)
    rig.tick(40000, T0)
    rig.signal(T0, leverage=20)
    assert not rig.rejections() and rig.of(SignalRejected)[-1].reason == "engine is DISARMED"


def test_snapshot_shows_usage_and_cooldowns(tmp_path):
    rig = Rig(tmp_path, risk_daily_loss_usdt=50, risk_max_consecutive_losses=1,
              risk_loss_cooldown_min=30, risk_min_entry_interval_s=120)
    rig.trade(T0, pnl_pct=-1)
    snap = rig.engine.risk.snapshot(T0 + 2 * MIN)
    usage = {r["name"]: r for r in snap["limits"]}
    loss = -rig.trades()[0].net_pnl
    assert usage["daily_loss_usdt"]["used"] == loss.quantize(D("0.01"))
    assert usage["daily_loss_usdt"]["threshold"] == "50"
    assert usage["entries_per_day"]["used"] == 1
    assert {c["name"] for c in snap["cooldowns"]} == {"loss_cooldown"}
    assert snap["cooldowns"][0]["remaining_s"] == 29 * 60
    assert snap["halted"] is False


def test_console_alerts_a_limit_once_per_period(tmp_path):
    from core.alerts import ConsoleNotifier

    rig = Rig(tmp_path, risk_max_leverage=10)
    lines: list[str] = []
    ConsoleNotifier(rig.bus, sink=lines.append)
    rig.tick(40000, T0)
    rig.signal(T0, leverage=20)
    rig.signal(T0 + MIN, leverage=20)
    refused = [ln for ln in lines if "refused by RISK" in ln]
    assert len(refused) == 1 and "max_leverage 20 / 10 x" in refused[0]
