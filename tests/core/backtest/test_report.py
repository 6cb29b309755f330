import math
import statistics
from dataclasses import replace
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.backtest.chart import render_backtest_chart
from core.backtest.report import (
    BacktestResult,
    InvariantError,
    check_invariants,
    compute_stats,
    equity_points,
    format_report,
    sharpe_ratio,
    to_json,
    write_json,
)
from core.events import ClosedTrade, ExitReason, Side
from utils.charts import render_equity_curve, write_chart

H = 3_600_000
T0 = 1_722_000_000_000  # 2024-07-26 UTC
D = Decimal


def trade(
    net: str,
    *,
    entry: int = T0,
    exit: int = T0 + H,
    side: Side = Side.LONG,
    fees: str = "0",
    funding: str = "0",
    symbol: str = "BTCUSDT",
    reason: ExitReason = ExitReason.TP,
) -> ClosedTrade:
    """A consistent trade: gross is derived so that net == gross - fees + funding."""
    gross = D(net) + D(fees) - D(funding)
    return ClosedTrade(
        symbol=symbol, side=side, entry_ts_ms=entry, exit_ts_ms=exit,
        entry_price=D("60000.1"), exit_price=D("60100.2"), quantity=D("0.010"),
        gross_pnl=gross, fees=D(fees), funding=D(funding), net_pnl=D(net), exit_reason=reason,
    )


def result(
    trades: list[ClosedTrade],
    *,
    initial: str = "1000",
    final: str | None = None,
    curve: list[tuple[int, float]] | None = None,
    first: int = T0,
    last: int = T0 + 10 * H,
    prices: list[tuple[int, float]] | None = None,
) -> BacktestResult:
    total = sum((t.net_pnl for t in trades), D(0))
    return BacktestResult(
        symbol="BTCUSDT", timeframe="1m", files=["btcusdt_20240808.gz"], events=1_000,
        first_ts_ms=first, last_ts_ms=last,
        initial_balance=D(initial),
        final_balance=D(final) if final is not None else D(initial) + total,
        trades=trades, equity_curve=curve or [],
        price_series=[(first + i * H, 6e4 + i) for i in range(11)] if prices is None else prices,
        wall_s=0.5,
    )


def spaced(*nets: str) -> list[ClosedTrade]:
    """One trade per 2-hour slot, each open for 1 hour."""
    return [trade(n, entry=T0 + 2 * i * H, exit=T0 + (2 * i + 1) * H) for i, n in enumerate(nets)]


# --------------------------------------------------------------------------- stats


def test_win_rate_profit_factor_and_sums():
    trades = [
        trade("30", entry=T0, exit=T0 + H, fees="1.5", funding="-0.25"),
        trade("-10", entry=T0 + 2 * H, exit=T0 + 3 * H, fees="0.5"),
        trade("20", entry=T0 + 4 * H, exit=T0 + 5 * H, funding="0.75"),
        trade("-5", entry=T0 + 6 * H, exit=T0 + 7 * H),
    ]
    s = compute_stats(result(trades))
    assert s.net_pnl == D("35") and s.trades == 4 and s.wins == 2
    assert s.fees == D("2.0") and s.funding == D("0.50")
    assert s.gross_pnl == s.net_pnl + s.fees - s.funding
    assert s.win_rate == 0.5
    assert s.profit_factor == pytest.approx(50 / 15)
    assert (s.best, s.worst, s.avg_trade) == (D("30"), D("-10"), D("8.75"))
    assert s.avg_holding_s == 3600.0
    assert s.events_per_s == 2_000.0


def test_profit_factor_without_losses_is_inf_and_json_null():
    r = result(spaced("10", "0", "5"))
    s = compute_stats(r)
    assert s.profit_factor == math.inf
    assert s.win_rate == pytest.approx(2 / 3)
    assert to_json(r, s)["stats"]["profit_factor"] is None
    assert to_json(r, s)["stats"]["profit_factor_state"] == "infinite"
    assert "∞" in format_report(r, s)


def test_only_losses_gives_zero_profit_factor():
    s = compute_stats(result(spaced("-1", "-2")))
    assert s.profit_factor == 0.0 and s.win_rate == 0.0


def test_no_trades():
    r = result([])
    s = compute_stats(r)
    assert s.trades == 0 and s.wins == 0 and s.win_rate == 0.0
    assert s.profit_factor is None and s.net_pnl == 0
    assert s.avg_trade is None and s.best is None and s.worst is None
    assert s.exposure == 0.0 and s.max_drawdown == 0.0
    assert s.sharpe is None  # 10 hours of data: under the 1-day minimum span
    doc = to_json(r, s)
    assert doc["trades"] == [] and doc["stats"]["profit_factor"] is None
    assert doc["stats"]["profit_factor_state"] == "undefined"


def test_max_drawdown_on_known_curve_includes_initial_and_final():
    curve = [(T0 + H, 1100.0), (T0 + 2 * H, 880.0), (T0 + 3 * H, 1200.0), (T0 + 4 * H, 1000.0)]
    # peak 1100 -> 880 is 20 %; peak 1200 -> 1000 is 16.7 %; final 1500 raises nothing
    s = compute_stats(result([], final="1000", curve=curve))
    assert s.max_drawdown == pytest.approx(0.2)
    assert s.max_drawdown_usdt == pytest.approx(220.0)

    # the final balance counts: a curve that never falls, then a final balance 40 % lower
    s = compute_stats(result([], final="600", curve=[(T0 + H, 1000.0)]))
    assert s.max_drawdown == pytest.approx(0.4)

    # the initial balance counts: the first sample is already below it
    s = compute_stats(result([], final="900", curve=[(T0 + H, 900.0)]))
    assert s.max_drawdown == pytest.approx(0.1)


def test_exposure_is_union_of_holding_time_over_data_span():
    trades = [trade("1", entry=T0, exit=T0 + 2 * H), trade("1", entry=T0 + 5 * H, exit=T0 + 6 * H)]
    s = compute_stats(result(trades, first=T0, last=T0 + 10 * H))
    assert s.exposure == pytest.approx(0.3)
    # a trade sticking out of the data span is clipped to it
    clipped = [trade("1", entry=T0 - H, exit=T0 + 11 * H)]
    assert compute_stats(result(clipped)).exposure == 1.0


def test_sharpe_on_known_hourly_returns():
    curve = [(T0, 100.0), (T0 + H, 110.0), (T0 + 2 * H, 99.0), (T0 + 3 * H, 108.9)]
    r = result([], initial="100", final="108.9", curve=curve, first=T0, last=T0 + 3 * H)
    returns = [0.1, -0.1, 0.1]
    expected = statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(365 * 24)
    assert sharpe_ratio(equity_points(r)) == pytest.approx(expected, rel=1e-9)


def test_sharpe_is_zero_for_flat_equity():
    curve = [(T0 + i * H, 1000.0) for i in range(30)]
    assert compute_stats(result([], curve=curve, last=T0 + 30 * H)).sharpe == 0.0


def test_sharpe_uses_fixed_period_when_sampling_is_irregular():
    # Same hourly path, but with an extra sample at half past each hour repeating the value:
    # the median spacing becomes 30 min, and the repeated values are carried forward.
    hourly = [100.0, 110.0, 99.0, 108.9, 100.0]
    curve = []
    for i, v in enumerate(hourly):
        curve += [(T0 + i * H, v), (T0 + i * H + H // 2, v)]
    r = result([], initial="100", final="100", curve=curve, first=T0, last=curve[-1][0])
    halfhour = [0.0]  # each hour: flat first half, the move lands on the next full hour
    for a, b in zip(hourly, hourly[1:], strict=False):
        halfhour += [b / a - 1, 0.0]
    expected = statistics.mean(halfhour) / statistics.stdev(halfhour) * math.sqrt(365 * 48)
    assert sharpe_ratio(equity_points(r)) == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- JSON


TRADE_KEYS = {
    "symbol", "side", "entry_ts_ms", "exit_ts_ms", "entry_price", "exit_price", "quantity",
    "gross_pnl", "fees", "funding", "net_pnl", "exit_reason", "holding_s",
}
MONEY_TRADE_KEYS = {
    "entry_price", "exit_price", "quantity", "gross_pnl", "fees", "funding", "net_pnl",
}


def test_json_schema_is_exact(tmp_path):
    trades = [
        trade("12.34", side=Side.LONG, fees="0.12", funding="-0.01", reason=ExitReason.TP),
        trade("-3.21", entry=T0 + 2 * H, exit=T0 + 3 * H, side=Side.SHORT, reason=ExitReason.SL),
    ]
    r = result(trades, curve=[(T0 + H, 1012.34), (T0 + 3 * H, 1009.13)])
    doc = to_json(r, compute_stats(r))

    assert {"symbol", "symbols", "timeframe", "timerange", "asset", "reproduce", "data",
            "initial_balance", "final_balance", "trades", "stats", "breakdowns", "notes",
            "no_trade_reasons", "risk", "units", "perf"} == set(doc)
    assert doc["symbol"] == "BTCUSDT" and doc["timeframe"] == "1m"
    assert doc["data"] == {"files": [{"path": "btcusdt_20240808.gz"}], "events": 1_000,
                           "first_ts_ms": T0, "last_ts_ms": T0 + 10 * H}
    assert set(doc["breakdowns"]) == {"symbol", "exit_reason", "side", "day", "week", "month"}
    assert [r["key"] for r in doc["breakdowns"]["exit_reason"]] == ["SL", "TP"]
    assert doc["units"]["money"] == "USDT" and "win_rate" in doc["units"]["fractions"]
    assert D(doc["initial_balance"]) == D("1000") and D(doc["final_balance"]) == D("1009.13")
    for src, row in zip(trades, doc["trades"], strict=False):
        assert set(row) == TRADE_KEYS
        assert row["side"] in {"LONG", "SHORT"} and row["exit_reason"] == src.exit_reason.value
        assert type(row["entry_ts_ms"]) is int and type(row["exit_ts_ms"]) is int
        for k in MONEY_TRADE_KEYS:
            assert isinstance(row[k], str) and D(row[k]) == getattr(src, k)
    assert [row["side"] for row in doc["trades"]] == ["LONG", "SHORT"]
    assert [row["exit_reason"] for row in doc["trades"]] == ["TP", "SL"]

    stats = doc["stats"]
    required = {"net_pnl", "win_rate", "max_drawdown", "sharpe", "profit_factor", "trades"}
    assert required <= set(stats)
    assert isinstance(stats["net_pnl"], str) and D(stats["net_pnl"]) == D("9.13")
    for k in ("win_rate", "max_drawdown", "profit_factor"):
        assert type(stats[k]) is float
    assert stats["sharpe"] is None and stats["sortino"] is None  # 10 h: under the minimum span
    assert type(stats["trades"]) is int and stats["trades"] == 2
    for k in ("gross_pnl", "fees", "funding", "max_drawdown_usdt", "avg_trade", "best", "worst"):
        D(stats[k])  # extra money keys are decimal strings too
    assert set(doc["perf"]) == {"wall_s", "events_per_s"}
    assert all(type(v) is float for v in doc["perf"].values())

    path = tmp_path / "out" / "report.json"
    write_json(path, doc)
    assert orjson.loads(path.read_bytes()) == doc
    assert path.read_text().startswith('{\n  "symbol"')


# --------------------------------------------------------------------------- invariants


def test_consistent_result_passes():
    check_invariants(result(spaced("10", "-4.5", "0.01")))
    check_invariants(result([]))
    # back-to-back trades (exit == next entry) are allowed, also across symbols
    check_invariants(result([trade("1", entry=T0, exit=T0 + H),
                             trade("1", entry=T0 + H, exit=T0 + 2 * H, symbol="ETHUSDT")]))


def test_wrong_final_balance_is_caught():
    with pytest.raises(InvariantError, match="final_balance"):
        check_invariants(result(spaced("10", "-4"), final="1006.01"))


def test_bad_net_pnl_is_caught():
    bad = replace(trade("10", fees="1"), net_pnl=D("10.5"))
    with pytest.raises(InvariantError, match=r"trade #1 .*net_pnl 10\.5"):
        check_invariants(result([bad]))


def test_overlapping_trades_are_caught_across_symbols_and_in_any_order():
    a = trade("1", entry=T0 + 2 * H, exit=T0 + 4 * H)
    b = trade("1", entry=T0, exit=T0 + 3 * H, symbol="ETHUSDT")
    with pytest.raises(InvariantError, match="overlapping"):
        check_invariants(result([a, b]))


def test_invariant_error_is_a_value_error():
    assert issubclass(InvariantError, ValueError)


@st.composite
def trade_lists(draw):
    n = draw(st.integers(0, 30))
    cents = st.integers(-10**7, 10**7)
    ts = T0
    trades = []
    for _ in range(n):
        ts += draw(st.integers(0, 10 * H))
        hold = draw(st.integers(0, 10 * H))
        gross = D(draw(cents)).scaleb(-2)
        fees = D(draw(st.integers(0, 10**5))).scaleb(-4)
        funding = D(draw(st.integers(-10**5, 10**5))).scaleb(-6)
        trades.append(ClosedTrade(
            symbol=draw(st.sampled_from(["BTCUSDT", "ETHUSDT"])),
            side=draw(st.sampled_from(list(Side))),
            entry_ts_ms=ts, exit_ts_ms=ts + hold,
            entry_price=D("100.5"), exit_price=D("101.25"), quantity=D("0.001"),
            gross_pnl=gross, fees=fees, funding=funding, net_pnl=gross - fees + funding,
            exit_reason=draw(st.sampled_from(list(ExitReason))),
        ))
        ts += hold
    return trades


@settings(max_examples=75, deadline=None)
@given(trades=trade_lists(), initial=st.integers(1, 10**6))
def test_random_consistent_results_hold_invariants(trades, initial):
    last = max([T0 + H] + [t.exit_ts_ms for t in trades])
    r = result(trades, initial=str(initial), first=T0, last=last)
    check_invariants(r)
    s = compute_stats(r)
    total = sum((t.net_pnl for t in trades), D(0))
    assert s.net_pnl == total == r.final_balance - r.initial_balance
    assert s.net_pnl == s.gross_pnl - s.fees + s.funding
    assert 0.0 <= s.win_rate <= 1.0 and 0.0 <= s.exposure <= 1.0 and 0.0 <= s.max_drawdown <= 1.0
    doc = orjson.loads(orjson.dumps(to_json(r, s)))
    assert D(doc["stats"]["net_pnl"]) == s.net_pnl
    assert sum((D(t["net_pnl"]) for t in doc["trades"]), D(0)) == s.net_pnl


# --------------------------------------------------------------------------- report and chart


def test_format_report_lists_every_trade_net_pnl():
    trades = spaced("12.3456", "-7.0001", "0.0042")
    r = result(trades)
    text = format_report(r, compute_stats(r))
    for t in trades:
        assert str(t.net_pnl) in text
    assert "BTCUSDT" in text and "1m" in text


def test_format_report_elides_the_middle_of_long_trade_lists():
    trades = [trade(f"{i}.{i:02d}", entry=T0 + i * H, exit=T0 + i * H + 1) for i in range(1, 51)]
    r = result(trades, last=T0 + 60 * H)
    text = format_report(r, compute_stats(r))
    assert "… 10 more" in text
    assert "1.01" in text and "50.50" in text  # first and last rows stay
    assert "25.25" not in text  # trade 25 is in the elided middle
    trades_table = text.split("By symbol")[0]
    table_rows = [ln for ln in trades_table.splitlines() if ln.strip()[:2].strip().isdigit()]
    assert len(table_rows) == 40


def test_format_report_without_trades():
    r = result([])
    text = format_report(r, compute_stats(r))
    assert "No trades" in text and "n/a" in text


def is_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1_000


def test_backtest_chart_renders_png(tmp_path):
    trades = [
        trade("5", entry=T0 + H, exit=T0 + 2 * H, side=Side.LONG),
        trade("-2", entry=T0 + 3 * H, exit=T0 + 5 * H, side=Side.SHORT),
    ]
    curve = [(T0 + i * H, 1000.0 + i) for i in range(11)]
    png = render_backtest_chart(result(trades, curve=curve))
    assert is_png(png)
    path = tmp_path / "charts" / "bt.png"
    write_chart(path, png)
    assert path.read_bytes() == png


def test_backtest_chart_zero_trades_and_one_point():
    assert is_png(render_backtest_chart(result([])))
    one = result([], curve=[(T0, 1000.0)], prices=[(T0, 60_000.0)], first=T0, last=T0)
    assert is_png(render_backtest_chart(one))
    assert is_png(render_backtest_chart(result([], prices=[])))


def test_equity_curve_renders_png():
    assert is_png(render_equity_curve([(T0 + i * H, 100.0 + i * i) for i in range(50)], "PnL 7d"))
    assert is_png(render_equity_curve([(T0, 100.0)], "one point"))
    assert is_png(render_equity_curve([], "empty"))


def test_charts_render_concurrently_in_threads():
    from concurrent.futures import ThreadPoolExecutor

    r = result(spaced("1", "-1"), curve=[(T0 + i * H, 1000.0 + i) for i in range(11)])
    with ThreadPoolExecutor(max_workers=4) as pool:
        pngs = list(pool.map(lambda _: render_backtest_chart(r), range(8)))
    assert all(is_png(p) for p in pngs) and len(set(pngs)) == 1
