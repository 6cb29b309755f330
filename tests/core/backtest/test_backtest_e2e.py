"""End-to-end backtests on real recorded Binance data, through the CLI and the library."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.backtest.report import check_invariants, compute_stats, to_json
from core.backtest.runner import BacktestError, run_backtest
from core.event_bus import EventBus
from core.events import BalanceUpdate, ExitReason
from core.paper import PaperExchange
from core.replay.source import ReplaySource
from main import main
from tests.conftest import shared_file
from utils.settings import load_settings

# The README's demo parameters (README "Backtest"): keep them in sync.
DEMO_CAPTURE = ["--timeframe", "5s", "--param", "ema_fast=5", "--param", "ema_slow=13",
                "--param", "adx_period=7", "--param", "adx_min=15"]
DEMO_CAPTURE_SETTINGS = dict(timeframe="5s", ema_fast=5, ema_slow=13, adx_period=7, adx_min=15)
EXIT_REASONS = {"TP", "SL", "TRAILING", "SIGNAL", "FLAT", "END", "LIQUIDATION"}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no developer .env, DATA_DIR inside tmp


def check_document(doc: dict) -> None:
    """The --json schema and its exact money invariants."""
    assert set(doc) >= {"symbol", "timeframe", "data", "initial_balance", "final_balance",
                        "trades", "stats", "perf"}
    assert set(doc["data"]) == {"files", "events", "first_ts_ms", "last_ts_ms"}
    assert set(doc["stats"]) >= {"net_pnl", "win_rate", "max_drawdown", "sharpe",
                                 "profit_factor", "trades"}
    assert set(doc["perf"]) == {"wall_s", "events_per_s"}
    total = Decimal(0)
    last_exit = 0
    for t in doc["trades"]:
        assert t["side"] in ("LONG", "SHORT") and t["exit_reason"] in EXIT_REASONS
        gross, fees, funding, net = (Decimal(t[k]) for k in ("gross_pnl", "fees", "funding",
                                                              "net_pnl"))
        assert net == gross - fees + funding
        assert t["entry_ts_ms"] >= last_exit, "trades overlap"
        assert t["exit_ts_ms"] >= t["entry_ts_ms"]
        last_exit = t["exit_ts_ms"]
        total += net
    assert Decimal(doc["final_balance"]) - Decimal(doc["initial_balance"]) == total
    assert Decimal(doc["stats"]["net_pnl"]) == total
    assert doc["stats"]["trades"] == len(doc["trades"])


def test_capture_backtest_with_demo_parameters_trades_and_adds_up(tmp_path, capsys):
    data = shared_file("btcusdt_20240808.gz")
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["backtest", str(data), *DEMO_CAPTURE, "--json", str(out),
                 "--plot", str(png)]) == 0
    doc = json.loads(out.read_text())
    check_document(doc)
    assert doc["symbol"] == "BTCUSDT" and doc["data"]["events"] == 87_402
    assert len(doc["trades"]) >= 1
    assert png.read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr().out
    assert all(t["net_pnl"] in printed for t in doc["trades"])


def test_klines_backtest_with_default_parameters_trades_and_adds_up(tmp_path):
    data = shared_file("BTCUSDT-1m-2023-04-15.csv")
    out = tmp_path / "k.json"
    assert main(["backtest", str(data), "--json", str(out), "--balance", "2500"]) == 0
    doc = json.loads(out.read_text())
    check_document(doc)
    assert doc["initial_balance"] == "2500" and doc["timeframe"] == "1m"
    assert doc["data"]["events"] == 1440 and len(doc["trades"]) >= 5
    assert {t["exit_reason"] for t in doc["trades"]} <= EXIT_REASONS


def test_two_symbols_never_hold_two_positions():
    files = [shared_file("btcusdt_20240808.gz"), shared_file("ethusdt_20240808.gz")]
    settings = load_settings(symbols="BTCUSDT,ETHUSDT", timeframe="2s", ema_fast=3,
                             ema_slow=8, adx_period=5, adx_min=10)
    result = run_backtest(settings, files)
    check_invariants(result)  # includes: no overlap across symbols
    assert result.symbol == "BTCUSDT,ETHUSDT"
    assert {t.symbol for t in result.trades} == {"BTCUSDT", "ETHUSDT"}


@pytest.mark.parametrize("opened_ms, pays", [(1680652799000, True), (1680652801500, False)])
def test_funding_settlement_in_the_2023_capture(opened_ms, pays):
    """btcusdt_20230405 spans the 00:00 UTC funding (rate 0.0000276, mark 28155.1 in the last
    update before the next-funding time moves on). A position held at 00:00 pays it once; one
    opened after does not."""
    bus = EventBus()
    paper = PaperExchange(bus, initial_balance=Decimal("1000"), leverage=5)
    paper.restore({"wallet": "1000", "positions": {"BTCUSDT": {
        "qty": "0.010", "entry": "28150", "margin": "56.3", "leverage": 5,
        "opened_ms": opened_ms}}})
    fees: list[BalanceUpdate] = []
    bus.subscribe(BalanceUpdate, lambda e: e.reason == "FUNDING_FEE" and fees.append(e))
    for ev in ReplaySource([shared_file("btcusdt_20230405.dat.gz")]):
        bus.publish(ev)
    if pays:
        [fee] = fees
        exact = Decimal("0.010") * Decimal("28155.1") * Decimal("0.0000276")  # 0.0077708076
        assert fee.change == -exact.quantize(Decimal("0.00000001"))  # 8 dp, as Binance books
        assert fee.ts_ms == 1680652800000 and fee.symbol == "BTCUSDT"
        assert paper.wallet == Decimal("1000") + fee.change
    else:
        assert fees == [] and paper.wallet == Decimal("1000")


def test_end_of_data_closes_the_position_with_reason_end():
    settings = load_settings(**DEMO_CAPTURE_SETTINGS)
    result = run_backtest(settings, [shared_file("btcusdt_20240808.gz")])
    assert result.trades[-1].exit_reason is ExitReason.END
    stats = compute_stats(result)
    doc = to_json(result, stats)
    check_document(doc)


def test_wrong_symbol_is_a_clear_error():
    with pytest.raises(BacktestError, match="DOGEUSDT"):
        run_backtest(load_settings(), [shared_file("BTCUSDT-1m-2023-04-15.csv")],
                     symbol="DOGEUSDT")


@pytest.mark.parametrize("argv, needle", [
    (["--param", "nonsense=1"], "nonsense"),
    (["--param", "ema_fast"], "key=value"),
    (["--param", "leverage=900"], "LEVERAGE"),
    (["--timeframe", "7x"], "TIMEFRAME"),
])
def test_bad_arguments_exit_2_with_one_line(argv, needle, capsys):
    data = shared_file("BTCUSDT-1m-2023-04-15.csv")
    assert main(["backtest", str(data), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_corrupt_data_file_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "junk.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage-not-really-gzip")
    assert main(["backtest", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "junk.gz" in err and "\n" not in err
