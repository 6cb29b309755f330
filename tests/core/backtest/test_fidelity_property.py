"""Property: on any shared file and random rule parameters, every SL/trailing exit fills at or
worse than its trigger, every fill lies within the data's prices around its time (plus the
slippage ticks), and the backtest's invariants hold."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.backtest.report import check_invariants
from core.backtest.runner import run_backtest
from core.event_bus import EventBus
from core.events import (
    BarTick,
    BookTicker,
    Candle,
    CloseRequest,
    ExitReason,
    MarketTick,
    MarkPrice,
    OrderStatus,
    OrderUpdate,
    PositionOpened,
)
from core.filters import filters_for
from tests.conftest import shared_file
from utils.settings import load_settings

FILES = {  # file -> timeframes the rule may use on it
    "XRPUSDT-5m-2021-11-15.csv": [None],
    "BTCUSDT-1m-2023-04-15.csv": [None, "5m"],
    "BNBUSDT-aggTrades-2023-06_9000Rows.csv": ["1m", "5m"],
    "btcusdt_20230405.dat.gz": ["1s", "5s", "15s"],
}
WINDOW_MS = 5_000  # a fill must lie within the prices of the last few seconds


class PriceTape:
    """Every price the engine saw, as (ts, low, high), and the exits and fills."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float, float]] = []
        self.closes: list[CloseRequest] = []
        self.fills: list[OrderUpdate] = []
        self.long_at: list[tuple[int, bool]] = []

    def attach(self, bus: EventBus) -> None:
        add = self.points.append
        bus.subscribe(MarketTick, lambda e: add((e.ts_ms, e.price, e.price)))
        bus.subscribe(BarTick, lambda e: add((e.ts_ms, e.price, e.price)))
        bus.subscribe(BookTicker, lambda e: add((e.ts_ms, e.bid, e.ask)))
        bus.subscribe(MarkPrice, lambda e: add((e.ts_ms, e.mark_price, e.mark_price)))
        bus.subscribe(Candle, lambda e: e.closed and add((e.ts_ms, e.low, e.high)))
        bus.subscribe(CloseRequest, self.closes.append)
        bus.subscribe(OrderUpdate, lambda u: u.status is OrderStatus.FILLED
                      and self.fills.append(u))
        bus.subscribe(PositionOpened, lambda e: self.long_at.append(
            (e.ts_ms, e.side.value == "LONG")))

    def range_at(self, ts: int) -> tuple[float, float]:
        """Prices of the last WINDOW_MS and the one before (a bar path is continuous)."""
        times = [p[0] for p in self.points]
        start = max(bisect_left(times, ts - WINDOW_MS) - 1, 0)
        window = self.points[start:bisect_right(times, ts)]
        return min(p[1] for p in window), max(p[2] for p in window)


@st.composite
def runs(draw):
    name = draw(st.sampled_from(sorted(FILES)))
    fast = draw(st.integers(2, 8))
    params = dict(
        ema_fast=fast, ema_slow=draw(st.integers(fast + 1, fast + 12)),
        adx_period=draw(st.integers(3, 10)), adx_min=draw(st.floats(0, 30)),
        atr_period=draw(st.integers(3, 14)), sl_atr=draw(st.floats(0.3, 3)),
        tp_atr=draw(st.floats(0.3, 6)),
        sl_pct=draw(st.sampled_from([0.0, 0.05, 0.3, 1.0])),
        trailing_pct=draw(st.sampled_from([0.0, 0.05, 0.2, 1.0])),
        leverage=draw(st.sampled_from([1, 5, 20, 50, 75])),
        price_source=draw(st.sampled_from(["mark", "last"])),
    )
    return name, draw(st.sampled_from(FILES[name])), params


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=runs())
def test_exits_fills_and_invariants_on_shared_data(case, monkeypatch, tmp_path):
    name, timeframe, params = case
    monkeypatch.chdir(tmp_path)
    tape = PriceTape()
    result = run_backtest(load_settings(**params), [shared_file(name)], timeframe=timeframe,
                          observe=tape.attach)
    check_invariants(result)
    tape.points.sort(key=lambda p: p[0])
    symbol = result.symbols[0]
    tick = float(filters_for(symbol).tick_size)
    for close in tape.closes:
        if close.reason not in (ExitReason.SL, ExitReason.TRAILING, ExitReason.TP):
            continue
        fill = next(f for f in tape.fills if f.reduce_only and f.ts_ms >= close.ts_ms)
        long = [v for ts, v in tape.long_at if ts <= close.ts_ms][-1]
        assert close.trigger_price is not None
        if long:
            assert fill.last_fill_price <= close.trigger_price, (close, fill)
        else:
            assert fill.last_fill_price >= close.trigger_price, (close, fill)
    for fill in tape.fills:
        lo, hi = tape.range_at(fill.ts_ms)
        price = float(fill.last_fill_price)
        slack = 1.5 * tick + 1e-9
        assert lo - slack <= price <= hi + slack, (fill, lo, hi)
    assert all(t.exit_ts_ms >= t.entry_ts_ms for t in result.trades)
    assert result.final_balance - result.initial_balance == sum(
        (t.net_pnl for t in result.trades), Decimal(0))
