"""RISK on replayed shared data, with limits set so they bite: which limit fired, on which
file, at what time (exchange time, UTC). The backtest is deterministic, so the times are exact.

file, limit: first firing (UTC)

- BTCUSDT-1m-2023-04-15.csv, daily_loss_usdt 5 (kill switch): halt 14:20:19.999 (5.42 USDT)
- BTCUSDT-1m-2023-04-15.csv, max_drawdown_pct 1 (kill switch): halt 19:27:59.999 (1.01 %)
- BTCUSDT-1m-2023-04-15.csv, 3 losses in a row then 60 min: refused 06:11:59.999 (8 signals)
- BTCUSDT-1m-2023-04-15.csv, entries_per_hour 2: refused 06:11:59.999 (7 signals)
- BTCUSDT-1m-2023-04-15.csv, trading_hours 0-11: refused 13:08:59.999 (15 signals)
- btcusdt_20240808.gz (5 s candles), min_entry_interval 60 s: refused 23:59:35.136 (35.1 s)
- XRPUSDT-5m-2021-11-15.csv, max_leverage 20 with LEVERAGE=50: refused 11-15 05:49:59.999
  (all 33 signals)
- XRPUSDT-5m-2021-11-15.csv, entries_per_day 3: refused 11-16 15:54:59.999 (13 signals)
"""

from __future__ import annotations

import json
import time

import pytest

from core.backtest.runner import run_backtest
from main import main
from tests.conftest import shared_file
from tests.core.risk.rig import ALL_OFF
from utils.settings import load_settings

KLINES = "BTCUSDT-1m-2023-04-15.csv"
XRP = "XRPUSDT-5m-2021-11-15.csv"
CAPTURE = "btcusdt_20240808.gz"
DEMO = dict(timeframe="5s", ema_fast=5, ema_slow=13, adx_period=7, adx_min=15)


def utc_ms(text: str) -> int:
    whole, _, ms = text.partition(".")
    return int(time.mktime(time.strptime(whole, "%Y-%m-%d %H:%M:%S")) - time.timezone) * 1000 \
        + int(ms or 0)


def backtest(name: str, **kw):
    settings = load_settings(_env_file=None, **{**ALL_OFF, **kw})
    return run_backtest(settings, [shared_file(name)])


@pytest.mark.parametrize(("limit", "kw", "halt_at"), [
    ("daily_loss_usdt", {"risk_daily_loss_usdt": 5}, "2023-04-15 14:20:19.999"),
    ("max_drawdown_pct", {"risk_max_drawdown_pct": 1}, "2023-04-15 19:27:59.999"),
])
def test_a_kill_switch_limit_halts_the_backtest_and_it_stays_flat(limit, kw, halt_at):
    result = backtest(KLINES, **kw)
    halt = result.risk["halt"]
    assert halt["limit"] == limit and halt["ts_ms"] == utc_ms(halt_at)
    assert halt["reason"].startswith(limit)
    # Nothing opens after the halt. (With the drawdown limit, the last entry's own fee is what
    # crosses 1 %: it was allowed, then closed at market at once, exit reason HALT.)
    assert result.trades and all(t.entry_ts_ms <= halt["ts_ms"] for t in result.trades)
    assert result.trades[-1].exit_ts_ms <= halt["ts_ms"]
    unlimited = backtest(KLINES)
    assert len(unlimited.trades) > len(result.trades)


@pytest.mark.parametrize(("name", "limit", "kw", "count", "first"), [
    (KLINES, "loss_cooldown", {"risk_max_consecutive_losses": 3, "risk_loss_cooldown_min": 60},
     8, "2023-04-15 06:11:59.999"),
    (KLINES, "entries_per_hour", {"risk_max_entries_per_hour": 2}, 7, "2023-04-15 06:11:59.999"),
    (KLINES, "trading_hours", {"risk_trading_hours": "0-11"}, 15, "2023-04-15 13:08:59.999"),
    (CAPTURE, "min_entry_interval", {"risk_min_entry_interval_s": 60, **DEMO}, 1,
     "2024-08-08 23:59:35.136"),
    (XRP, "max_leverage", {"leverage": 50, "risk_max_leverage": 20}, 33,
     "2021-11-15 05:49:59.999"),
    (XRP, "entries_per_day", {"risk_max_entries_per_day": 3}, 13, "2021-11-16 15:54:59.999"),
])
def test_a_limit_bites_on_shared_data(name, limit, kw, count, first):
    result = backtest(name, **kw)
    assert result.risk["refusals"] == {limit: count}
    refused = result.risk["refused"]
    assert refused[0]["ts_ms"] == utc_ms(first) and refused[0]["limit"] == limit
    assert result.risk["halt"] is None
    entries = sorted(t.entry_ts_ms for t in result.trades)
    if limit == "entries_per_day":
        per_day: dict[int, int] = {}
        for ts in entries:
            per_day[ts // 86_400_000] = per_day.get(ts // 86_400_000, 0) + 1
        assert max(per_day.values()) <= 3
    if limit == "trading_hours":
        assert all(ts // 3_600_000 % 24 <= 11 for ts in entries)


def test_the_report_says_which_signals_risk_refused_and_why(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["backtest", str(shared_file(KLINES)), "--param", "risk_daily_loss_usdt=5",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "HALTED at 2023-04-15 14:20:19 UTC: daily_loss_usdt" in printed
    doc = json.loads(out.read_text())
    assert doc["risk"]["halt"]["limit"] == "daily_loss_usdt"
    assert doc["risk"]["halt"]["ts_ms"] == utc_ms("2023-04-15 14:20:19.999")
    assert main(["backtest", str(shared_file(KLINES)), "--param", "risk_max_entries_per_hour=2",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "signals refused (entries_per_hour" in printed
    assert "2023-04-15 06:11:59  LONG  BTCUSDT  entries_per_hour 2 / 2 count" in printed
    doc = json.loads(out.read_text())
    assert doc["risk"]["refused"][0] == {
        "ts_ms": utc_ms("2023-04-15 06:11:59.999"), "symbol": "BTCUSDT", "side": "LONG",
        "limit": "entries_per_hour", "value": "2", "threshold": "2", "unit": "count",
        "detail": ""}
