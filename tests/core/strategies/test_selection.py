"""Which strategy runs: settings, STRATEGY_PARAMS, the persisted /strategy set choice (validated
on load: a broken one stops the start), plugins from the default folders, and the live switch
while flat."""

from __future__ import annotations

import json

import pytest

from core.engine import build_engine
from core.events import Candle, PositionPhase, StateChanged
from core.persisted import PersistError
from core.strategies import catalog as cat
from core.strategies.catalog import StrategyError
from core.strategies.selection import StrategyChoice, active_strategy, choice_path, save_choice
from tests.core.strategies.crafted import closes
from tests.core.strategies.test_catalog import GOOD_PLUGIN
from utils.settings import Settings


@pytest.fixture(autouse=True)
def _fresh_catalog():
    cat.reset_plugins_for_tests()
    yield
    cat.reset_plugins_for_tests()


def settings(tmp_path, **values) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)


def test_settings_choose_the_rule_and_its_params(tmp_path):
    choice = active_strategy(settings(tmp_path, strategy="supertrend",
                                      strategy_params="period=7, multiplier=2"), persist=True)
    assert (choice.name, dict(choice.params), choice.origin) == (
        "supertrend", {"period": "7", "multiplier": "2"}, "settings")
    legacy = active_strategy(settings(tmp_path, ema_fast=5, ema_slow=13), persist=False)
    assert legacy.name == "ema_adx" and legacy.params["ema_fast"] == 5
    ens = active_strategy(settings(tmp_path, strategy="ensemble", ensemble_members="macd,ict_fvg",
                                   ensemble_threshold=0.7), persist=False)
    assert ens.params["members"] == "macd,ict_fvg" and ens.params["threshold"] == 0.7
    for bad in (dict(strategy="nope"), dict(strategy="macd", strategy_params="fast"),
                dict(strategy="macd", strategy_params="fast=x"),
                dict(strategy="ensemble", ensemble_members="macd:0")):
        with pytest.raises(StrategyError) as err:
            active_strategy(settings(tmp_path, **bad), persist=False)
        assert "\n" not in str(err.value)


def test_switch_while_flat_persists_and_a_restart_keeps_it(tmp_path):
    s = settings(tmp_path)
    engine = build_engine(s)
    for c in closes([100.0 + (i % 7) for i in range(40)]):
        engine.publish(c)
    changes = []
    engine.bus.subscribe(StateChanged, changes.append)
    engine.set_strategy(StrategyChoice("donchian_breakout", {"entry_period": "10"}))
    assert [(c.what, c.old, c.new, c.reason) for c in changes] == [
        ("strategy", "ema_adx", "donchian_breakout", "entry_period=10")]
    rule = engine.trending.rules["BTCUSDT"]
    assert rule.params["entry_period"] == 10 and rule.verdict().bias != "WARMING_UP"
    assert json.loads(choice_path(s).read_text())["strategy"] == "donchian_breakout"

    again = build_engine(s)
    assert (again.strategy.name, again.strategy.origin) == ("donchian_breakout", "persisted")
    assert build_engine(s, persist=False).strategy.name == "ema_adx"  # backtests ignore it

    with pytest.raises(StrategyError):
        again.set_strategy(StrategyChoice("nope"))
    again.state.phase = PositionPhase.OPEN
    with pytest.raises(RuntimeError, match="only while flat"):
        again.set_strategy(StrategyChoice("macd"))
    assert again.strategy.name == "donchian_breakout"


@pytest.mark.parametrize(("content", "field"), [
    ("{not json", "(document)"),
    ("[]", "(document)"),
    ('{"strategy": 3}', "strategy"),
    ('{"params": {}}', "strategy"),
    ('{"strategy": "gone_plugin", "params": {}}', "strategy"),
    ('{"strategy": "macd", "params": []}', "params"),
    ('{"strategy": "macd", "params": {"fast": NaN}}', "params.fast"),
    ('{"strategy": "macd", "params": {"fast": [12]}}', "params.fast"),
    ('{"strategy": "macd", "params": {"nope": 1}}', "params"),
    ('{"strategy": "macd", "params": {"fast": "x"}}', "params"),
    ('{"strategy": "macd", "param": {}}', "param"),
    ('{"version": 2, "strategy": "macd"}', "version"),
])
def test_a_broken_persisted_choice_stops_naming_the_file_and_field(tmp_path, content, field):
    s = settings(tmp_path, strategy="macd")
    choice_path(s).parent.mkdir(parents=True)
    choice_path(s).write_text(content)
    with pytest.raises(PersistError) as err:
        active_strategy(s, persist=True)
    msg = str(err.value)
    assert "\n" not in msg and str(choice_path(s)) in msg and f"field '{field}'" in msg, msg
    assert choice_path(s).read_text() == content
    assert active_strategy(s, persist=False).name == "macd"  # backtests never read it


def test_a_saved_choice_reads_back_and_one_without_version_is_version_1(tmp_path):
    s = settings(tmp_path)
    save_choice(s, StrategyChoice("supertrend", {"period": 7, "multiplier": 2.5}))
    assert json.loads(choice_path(s).read_text())["version"] == 1
    assert active_strategy(s, persist=True) == StrategyChoice(
        "supertrend", {"period": 7, "multiplier": 2.5}, origin="persisted")
    choice_path(s).write_text('{"strategy": "macd", "params": {"fast": "8"}}')
    assert dict(active_strategy(s, persist=True).params) == {"fast": "8"}


def test_plugins_load_from_data_dir_strategies_by_default(tmp_path):
    s = settings(tmp_path, strategy="every_n", strategy_params="n=2")
    (s.data_dir / "strategies").mkdir(parents=True)
    (s.data_dir / "strategies" / "every_n.py").write_text(GOOD_PLUGIN)
    (s.data_dir / "strategies" / "broken.py").write_text("raise ImportError('nope')\n")
    engine = build_engine(s, persist=False)
    assert engine.strategy.name == "every_n"
    signals = []
    from core.events import TradeSignal

    engine.bus.subscribe(TradeSignal, signals.append)
    for c in closes([100.0, 101.0, 102.0, 103.0]):
        engine.publish(Candle(*c))
    assert len(signals) == 2 and signals[0].strategy == "every_n"
    assert len(cat.plugin_errors()) == 1


def test_strategy_path_setting_points_elsewhere(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "every_n.py").write_text(GOOD_PLUGIN)
    s = settings(tmp_path, strategy="every_n", strategy_path=folder)
    assert active_strategy(s, persist=False).name == "every_n"
