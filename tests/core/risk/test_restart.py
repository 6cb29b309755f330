"""RISK across restarts: HALTED stays, losses and the day are remembered (checkpoint in the
state, topped up from the journal), cooldowns run on."""

from __future__ import annotations

from decimal import Decimal

from core.events import EngineMode, PositionPhase, Side
from core.services import Services
from core.store import Store
from tests.core.risk.rig import ALL_OFF, DAY, MIN, T0, Rig
from utils.settings import load_settings

D = Decimal


def test_halt_survives_a_restart_flat_and_only_arm_lifts_it(tmp_path):
    rig = Rig(tmp_path, persist=True, risk_max_drawdown_pct=2)
    rig.tick(40000, T0)
    rig.signal(T0, notional="1000", sl_pct="5")
    rig.tick(39000, T0 + MIN)  # 2.5 % drawdown: kill switch
    assert rig.state.mode is EngineMode.HALTED and rig.state.phase is PositionPhase.FLAT
    reason = rig.state.halt_reason

    again = Rig(tmp_path, persist=True, risk_max_drawdown_pct=2)
    assert again.state.mode is EngineMode.HALTED
    assert again.state.halt_reason == reason and again.state.halted_ms == T0 + MIN
    assert again.state.phase is PositionPhase.FLAT
    assert again.engine.status()["halt_reason"] == reason
    again.tick(39000, T0 + 2 * MIN)
    again.signal(T0 + 2 * MIN)
    assert again.state.phase is PositionPhase.FLAT and not again.entries()
    again.engine.disarm(T0 + 3 * MIN)
    assert again.state.mode is EngineMode.HALTED
    again.engine.arm(T0 + 3 * MIN)
    assert again.state.mode is EngineMode.ARMED and again.state.halt_reason == ""
    again.tick(39000, T0 + 4 * MIN)
    again.signal(T0 + 4 * MIN)  # the peak restarted at the equity of the /arm
    assert again.state.phase is PositionPhase.OPEN


def test_cooldown_spans_a_restart(tmp_path):
    limits = dict(risk_max_consecutive_losses=2, risk_loss_cooldown_min=60)
    rig = Rig(tmp_path, persist=True, **limits)
    rig.trade(T0, pnl_pct=-0.5)
    rig.trade(T0 + 5 * MIN, pnl_pct=-0.5)  # cooldown until T0 + 66 min

    again = Rig(tmp_path, persist=True, **limits)
    snap = again.engine.risk.snapshot(T0 + 30 * MIN)
    assert [c["name"] for c in snap["cooldowns"]] == ["loss_cooldown"]
    again.tick(40000, T0 + 65 * MIN)
    again.signal(T0 + 65 * MIN)
    assert [r.limit for r in again.rejections()] == ["loss_cooldown"]
    again.tick(40000, T0 + 66 * MIN)
    again.signal(T0 + 66 * MIN)
    assert again.state.phase is PositionPhase.OPEN


def test_utc_day_boundary_restarts_the_daily_loss(tmp_path):
    rig = Rig(tmp_path, risk_daily_loss_usdt=4)
    rig.trade(T0 + DAY - 10 * MIN, pnl_pct=-1.5)  # -3 USDT and fees at 23:50 UTC
    assert rig.state.mode is EngineMode.ARMED
    rig.trade(T0 + DAY, pnl_pct=-1.5)  # 00:00 UTC: a new day, -3.2 USDT only
    assert rig.state.mode is EngineMode.ARMED
    snap = rig.engine.risk.snapshot(T0 + DAY + 2 * MIN)
    assert snap["day_start_ms"] == T0 + DAY
    assert snap["day_realized_pnl"] == rig.trades()[-1].net_pnl


def _settings(tmp_path, **kw):
    return load_settings(data_dir=tmp_path, symbols="ETHUSDT", slippage_pct="0",
                         **{**ALL_OFF, **kw})


async def _services(tmp_path, **kw) -> Services:
    services = Services(_settings(tmp_path, **kw), feed=None, persist=True)
    await services.start()
    return services


async def _losing_trade(services: Services, ts: int, price: float = 40000) -> None:
    from tests.core.risk.rig import Rig as _R  # the same crafted moves, on Services' engine

    rig = _R.__new__(_R)
    rig.engine, rig.events, rig.price = services.engine, [], D(str(price))
    services.engine.connection.publish_balance(ts, "SNAPSHOT")
    rig.trade(ts, pnl_pct=-1.5, side=Side.LONG, price=price)


async def test_a_loss_booked_just_before_a_restart_counts_after_it(tmp_path):
    limits = dict(risk_daily_loss_usdt=6)
    first = await _services(tmp_path, **limits)
    await _losing_trade(first, T0)
    loss = -first.engine.ledger.trades[0].net_pnl
    await first.stop()

    second = await _services(tmp_path, **limits)
    snap = second.engine.risk.snapshot(T0 + 5 * MIN)
    assert snap["day_realized_pnl"] == -loss
    await _losing_trade(second, T0 + 10 * MIN)  # together over 6 USDT
    assert second.engine.state.mode is EngineMode.HALTED
    await second.stop()


async def test_the_journal_restores_a_loss_whose_checkpoint_was_lost(tmp_path):
    limits = dict(risk_daily_loss_usdt=9, risk_max_consecutive_losses=3,
                  risk_loss_cooldown_min=60)
    first = await _services(tmp_path, **limits)
    await _losing_trade(first, T0)
    await _losing_trade(first, T0 + 5 * MIN)
    await first.stop()
    store = Store.open(tmp_path / "journal.sqlite3")  # the store of record (core/store.py)
    raw = store.get("engine_state")
    raw["risk"] = {}  # a state written before the trades (or by an older version)
    store.write({"engine_state": raw})
    store.close()

    second = await _services(tmp_path, **limits)
    book = second.engine.risk.book
    trades = await second.journal.trades()
    assert book.day_realized == sum(t.net_pnl for t in trades) < 0
    assert book.loss_streak == 2 and len(book.entries) == 2
    assert book.day_start_ms == T0
    await _losing_trade(second, T0 + 10 * MIN)  # the third loss in a row: a cooldown
    assert book.cooldown_until_ms == T0 + 11 * MIN + 60 * MIN
    assert second.engine.state.mode is EngineMode.HALTED  # and over 9 USDT today
    await second.stop()


async def test_status_health_and_metrics_show_the_halt(tmp_path):
    services = await _services(tmp_path)
    services.engine.halt("maintenance", T0)
    ok, details = services.health_check()
    assert ok and details["mode"] == "HALTED" and details["halt_reason"] == "maintenance"
    assert services.engine.status()["halt_reason"] == "maintenance"
    metrics = {(m.name, tuple(m.labels.items())): m.value for m in services.metrics()}
    assert metrics[("dort5bot_halted", ())] == 1
    await services.stop()
