"""Mark-price klines in the replay: detection, the MarkPrice path, and the paper exchange and
RISK guardian following the mark, not the trade price.

There is no real markPriceKlines file in the shared data: the mark klines here are synthetic,
built from the real traded klines (tests/fakes/archive.py ``mark_rows``), shifted by a factor
where a test needs the mark to differ from the trade price.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.backtest.runner import BacktestError, run_backtest
from core.events import BarTick, Candle, ExitReason, FundingRate, MarketTick, MarkPrice, Side
from core.history.store import find_history
from core.replay.bar_ticks import with_bar_ticks
from core.replay.lines import MarkKline
from core.replay.source import ReplayError, ReplaySource, detect_format
from tests.conftest import shared_file
from tests.fakes.archive import KLINE_HEADER, mark_rows, read_day
from utils.settings import Settings

KLINES = "BTCUSDT-1m-2023-04-15.csv"
RISK_OFF = dict(risk_daily_loss_usdt=0, risk_daily_loss_pct=0, risk_max_drawdown_pct=0,
                risk_max_consecutive_losses=0)


def _write(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([KLINE_HEADER, *(",".join(r) for r in rows)]) + "\n")
    return path


def _marks(tmp_path: Path, name: str = KLINES, factor: float = 1.0) -> Path:
    _, rows = read_day(shared_file(name))
    return _write(tmp_path / "markPriceKlines" / name, mark_rows(rows, factor))


def test_the_folder_declares_mark_klines_and_the_content_must_agree(tmp_path: Path) -> None:
    marks = _marks(tmp_path)
    assert detect_format(marks) == "markprice_klines_csv"
    first = next(iter(ReplaySource([marks])))
    assert type(first) is MarkKline and first.symbol == "BTCUSDT"
    # the same mark klines outside the folder would be traded candles: refused
    outside = tmp_path / "elsewhere" / KLINES
    outside.parent.mkdir()
    outside.write_bytes(marks.read_bytes())
    with pytest.raises(ReplayError, match="markPriceKlines"):
        list(ReplaySource([outside]))
    # traded klines put in the folder would be mark prices: refused
    traded = tmp_path / "x" / "markPriceKlines" / KLINES
    traded.parent.mkdir(parents=True)
    traded.write_bytes(shared_file(KLINES).read_bytes())
    with pytest.raises(ReplayError, match="traded volume"):
        list(ReplaySource([traded]))


def test_mark_path_interleaved_with_the_traded_bar_path(tmp_path: Path) -> None:
    marks = _marks(tmp_path, factor=0.99)
    source = ReplaySource([shared_file(KLINES), marks])
    out = list(with_bar_ticks(source, lambda s: 1))  # a long held: low first on both paths
    assert not any(type(e) is MarkKline for e in out)
    bars = {k.open_ms: k for k in ReplaySource([marks])}
    candles = [i for i, e in enumerate(out) if type(e) is Candle]
    assert len(candles) == 1440
    for i in candles:
        c, steps = out[i], out[i - 8:i]
        assert [type(e) for e in steps] == [BarTick, MarkPrice] * 4
        m = bars[c.open_ms]
        assert [e.mark_price for e in steps[1::2]] == [m.open, m.low, m.high, m.close]
        assert [e.price for e in steps[::2]] == [c.open, c.low, c.high, c.close]
        assert [e.ts_ms for e in steps[::2]] == [e.ts_ms for e in steps[1::2]]
        assert c.ts_ms - 3 <= steps[-1].ts_ms <= c.ts_ms  # the path ends at the close
    assert all(e.index_price == 0.0 and e.next_funding_ms == 0
               for e in out if type(e) is MarkPrice)


def test_mark_klines_equal_to_the_traded_ones_change_no_trade(tmp_path: Path) -> None:
    # The mark of each step is replayed with (just after) the traded price of that step: a
    # mark-price take profit fills at its trigger as on the traded path, not at the previous
    # step's price (it did when the mark came first: 25 TPs filled up to 40 USDT worse).
    settings = Settings(_env_file=None).model_copy(update=RISK_OFF)
    assert settings.working_type == "MARK_PRICE"
    without = run_backtest(settings, [shared_file(KLINES)])
    with_marks = run_backtest(settings, [shared_file(KLINES), _marks(tmp_path)])
    assert any(t.exit_reason is ExitReason.TP for t in without.trades)
    assert with_marks.trades == without.trades
    assert with_marks.final_balance == without.final_balance


def _minute_bars(ticks: list[MarketTick]) -> list[list[str]]:
    """1m klines rows aggregated from trades (the mark follows the trades here)."""
    bars: dict[int, list[float]] = {}
    for t in ticks:
        b = bars.setdefault(t.ts_ms // 60_000, [t.price, t.price, t.price, t.price])
        b[1], b[2], b[3] = max(b[1], t.price), min(b[2], t.price), t.price
    return [[str(k * 60_000), *(f"{x:.3f}" for x in b), "0", str(k * 60_000 + 59_999), "0",
             "60", "0", "0", "0"] for k, b in sorted(bars.items())]


def test_with_trades_the_mark_bar_is_replayed_at_its_close_never_earlier(tmp_path: Path) -> None:
    trades = shared_file("BNBUSDT-aggTrades-2023-06_9000Rows.csv")
    ticks = [e for e in ReplaySource([trades]) if type(e) is MarketTick]
    marks = _write(tmp_path / "markPriceKlines" / "BNBUSDT-1m-2023-06-01.csv",
                   _minute_bars(ticks))
    bars = {k.ts_ms: k for k in ReplaySource([marks])}
    out = list(with_bar_ticks(ReplaySource([trades, marks]), lambda s: -1))
    assert [e.ts_ms for e in out] == sorted(e.ts_ms for e in out)
    assert sum(type(e) is MarketTick for e in out) == len(ticks)  # trades pass unchanged
    seen = [e for e in out if type(e) is MarkPrice]
    assert len(seen) == 3 * len(bars)
    for i in range(0, len(seen), 3):
        k = bars[seen[i].ts_ms]  # at the bar's close time, high first for a short held
        assert [e.mark_price for e in seen[i:i + 3]] == [k.high, k.low, k.close]
        assert {e.ts_ms for e in seen[i:i + 3]} == {k.ts_ms}


def test_funding_rate_of_the_marks_is_the_latest_settled_one(tmp_path: Path) -> None:
    klines = shared_file("XRPUSDT-5m-2021-11-15.csv")
    funding = shared_file("XRP_USDT_USDT-8h-funding_rate.csv")
    _, rows = read_day(klines)
    marks = _write(tmp_path / "markPriceKlines" / klines.name, mark_rows(rows))
    latest = 0.0
    checked = 0
    for e in with_bar_ticks(ReplaySource([klines, funding, marks])):
        if type(e) is FundingRate:
            latest = e.funding_rate
        elif type(e) is MarkPrice:
            assert e.funding_rate == latest and e.next_funding_ms == 0
            checked += latest != 0.0
    assert checked > 1000  # settlements from 2021-11-18 on; 0.0 (unknown) before


def test_liquidation_follows_the_mark_not_the_trade_price(tmp_path: Path) -> None:
    klines = shared_file(KLINES)
    marks = _marks(tmp_path, factor=0.94)  # the mark 6 % under the trades all day
    settings = Settings(_env_file=None).model_copy(
        update={"leverage": 20, "risk_price_band_pct": 0, **RISK_OFF})
    lows: list[tuple[int, float]] = []
    liquidations: list[tuple[int, float]] = []

    def observe(bus) -> None:
        bus.subscribe(BarTick, lambda e: lows.append((e.ts_ms, e.price)))

    without = run_backtest(settings, [klines])
    with_marks = run_backtest(settings, [klines, marks], observe=observe)
    assert without.trades and not any(t.exit_reason is ExitReason.LIQUIDATION
                                      for t in without.trades)
    longs = [t for t in with_marks.trades if t.side is Side.LONG]
    assert longs and all(t.exit_reason is ExitReason.LIQUIDATION for t in longs)
    for t in longs:
        liquidations.append((t.exit_ts_ms, float(t.exit_price)))
        traded = [p for ts, p in lows if t.entry_ts_ms <= ts <= t.exit_ts_ms]
        assert min(traded) > float(t.exit_price)  # the trade price never reached it
    assert with_marks.final_balance < without.final_balance


def test_risk_price_band_checks_entries_against_the_replayed_mark(tmp_path: Path) -> None:
    settings = Settings(_env_file=None).model_copy(update=RISK_OFF)  # band 2 % by default
    result = run_backtest(settings, [shared_file(KLINES), _marks(tmp_path, factor=0.94)])
    assert result.trades == []
    assert any("price_band" in r for r in result.no_trade_reasons)
    near = run_backtest(settings, [shared_file(KLINES), _marks(tmp_path, factor=0.999)])
    assert near.trades


def test_mark_klines_alone_cannot_drive_a_backtest(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="only mark-price klines"):
        run_backtest(Settings(_env_file=None), [_marks(tmp_path)])


def _touch(root: Path, rel: str) -> None:
    p = root / "data/futures/um" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def test_history_adds_the_shortest_mark_interval_covering_the_range(tmp_path: Path) -> None:
    day = 86_400_000
    start = 1681516800000  # 2023-04-15
    _touch(tmp_path, "daily/klines/BTCUSDT/1m/BTCUSDT-1m-2023-04-15.zip")
    _touch(tmp_path, "daily/klines/BTCUSDT/1m/BTCUSDT-1m-2023-04-16.zip")
    _touch(tmp_path, "daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2023-04-15.zip")
    _touch(tmp_path, "monthly/markPriceKlines/BTCUSDT/5m/BTCUSDT-5m-2023-04.zip")
    notes: list[str] = []
    one_day = find_history(tmp_path, "BTCUSDT", start, start + day, notes)
    assert [p.parent.name for p in one_day if "markPriceKlines" in p.parts] == ["1m"]
    assert notes == []
    two_days = find_history(tmp_path, "BTCUSDT", start, start + 2 * day, notes)
    assert [p.parent.name for p in two_days if "markPriceKlines" in p.parts] == ["5m"]
    # only partial mark klines: none added, and a note names the days and the command
    (tmp_path / "data/futures/um/monthly/markPriceKlines/BTCUSDT/5m/BTCUSDT-5m-2023-04.zip"
     ).unlink()
    paths = find_history(tmp_path, "BTCUSDT", start, start + 2 * day, notes)
    assert not any("markPriceKlines" in p.parts for p in paths)
    assert len(notes) == 1 and "2023-04-16" in notes[0] and "markPriceKlines:1m" in notes[0]
