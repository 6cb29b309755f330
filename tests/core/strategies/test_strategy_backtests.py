"""Every catalog rule and the ensemble, backtested with defaults on the shared 1m BTC and 5m XRP
klines: trades happen, the money adds up, and the signals name their strategy."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.alerts import alert_text
from core.backtest import runner
from core.backtest.report import check_invariants, compute_stats
from core.backtest.runner import run_backtest
from core.events import PositionOpened, TradeSignal
from core.journal import to_jsonable
from main import main
from tests.conftest import shared_file
from utils.settings import load_settings

FILES = ("BTCUSDT-1m-2023-04-15.csv", "XRPUSDT-5m-2021-11-15.csv")
RULES = ("ema_adx", "macd", "rsi_reversion", "donchian_breakout", "supertrend",
         "bollinger_squeeze", "ict_fvg", "ensemble")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no developer .env, DATA_DIR inside tmp


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("strategy", RULES)
def test_default_backtest_trades_and_adds_up(strategy, name):
    settings = load_settings(strategy=strategy)
    result = run_backtest(settings, [shared_file(name)])
    check_invariants(result)
    stats = compute_stats(result)
    assert stats.trades == len(result.trades) > 0
    assert sum((t.net_pnl for t in result.trades), Decimal(0)) == (
        result.final_balance - result.initial_balance)
    assert all(t.fees > 0 for t in result.trades)
    # the rule's own exits fire: its stop loss or take profit (or an opposite signal)
    assert {t.exit_reason.value for t in result.trades} & {"SL", "TP", "SIGNAL"}


def test_ensemble_signals_carry_confidence_and_votes(monkeypatch):
    seen: list[TradeSignal] = []
    opened: list[PositionOpened] = []
    real = runner.build_engine

    def build(*args, **kwargs):
        engine = real(*args, **kwargs)
        engine.bus.subscribe(TradeSignal, seen.append)
        engine.bus.subscribe(PositionOpened, opened.append)
        return engine

    monkeypatch.setattr(runner, "build_engine", build)
    settings = load_settings(strategy="ensemble", ensemble_members="macd:1,supertrend:1,"
                             "ema_adx:0.5(ema_fast=5,ema_slow=13)", ensemble_threshold=0.6)
    result = run_backtest(settings, [shared_file(FILES[1])])
    check_invariants(result)
    assert result.trades and seen
    for sig in seen:
        assert sig.strategy == "ensemble" and sig.confidence >= 0.6
        assert [v[0] for v in sig.votes] == ["macd", "supertrend", "ema_adx"]
        agreeing = sum(w * s for (_, side, s), w in zip(sig.votes, (1, 1, 0.5), strict=True)
                       if side == sig.side.value)
        assert sig.confidence == pytest.approx(agreeing / 2.5, abs=1e-4)
    # the journal stores every field of the signal; the entry alert shows the ensemble's reason
    row = to_jsonable(seen[0])
    assert row["confidence"] == seen[0].confidence and len(row["votes"]) == 3
    assert opened and all(p.reason.startswith("ensemble ") for p in opened)
    assert alert_text(opened[0]).endswith(f"[{opened[0].reason}]")


def test_cli_backtest_any_rule_with_params(capsys):
    data = str(shared_file(FILES[0]))
    assert main(["backtest", data, "--strategy", "supertrend", "--param", "period=7",
                 "--param", "multiplier=2", "--param", "leverage=3"]) == 0
    assert "Trades:" in capsys.readouterr().out
    assert main(["backtest", data, "--strategy", "supertrend", "--param", "nope=1"]) == 2
    assert "'nope' is neither a parameter of supertrend nor a setting" in capsys.readouterr().err
    assert main(["backtest", data, "--strategy", "supertrend", "--param", "period=x"]) == 2
    assert capsys.readouterr().err.startswith("error: supertrend: parameter period='x'")
    assert main(["backtest", data, "--strategy", "nope"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert main(["backtest", data, "--strategy", "ensemble", "--param",
                 "ensemble_members=macd,nope"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err


def test_cli_strategies_lists_the_catalog(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for rule in RULES[:-1]:
        assert f"\n{rule}: " in "\n" + out
    assert "multiplier = 3.0" in out and "(float 1.0..5.0 step 0.25)" in out
    assert "ensemble:" in out
