"""The catalog: specs, validation, user plugins, and that the rules stay free of NumPy/TA-Lib."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from core.strategies import catalog as cat
from core.strategies.catalog import (
    ParamSpec,
    StrategyError,
    catalog,
    get_spec,
    load_plugins,
    parse_param_text,
    plugin_errors,
    rule_factory,
    strategy_ids,
    validate_strategy,
)
from tests.core.strategies.crafted import closes

BUILTINS = ("ema_adx", "macd", "rsi_reversion", "donchian_breakout", "supertrend",
            "bollinger_squeeze", "ict_fvg")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _fresh_catalog():
    cat.reset_plugins_for_tests()
    yield
    cat.reset_plugins_for_tests()


def test_catalog_has_the_seven_rules_with_complete_specs():
    specs = catalog()
    assert tuple(specs)[: len(BUILTINS)] == BUILTINS
    for spec in specs.values():
        assert spec.description and "\n" not in spec.description and spec.source
        module = sys.modules[spec.factory.__module__]
        assert "Source" in (module.__doc__ or "") or "Sources" in (module.__doc__ or "")
        for name, p in spec.params.items():
            assert p.low <= p.default <= p.high, name
            assert p.step > 0 and p.kind in ("int", "float", "bool")
            if p.kind == "int":
                assert all(float(v).is_integer() for v in (p.default, p.low, p.high, p.step))
        rule = spec.build()
        assert rule.name == spec.id
        assert spec.warmup() == rule.warmup >= 1
        assert rule.verdict().bias == "WARMING_UP"


@pytest.mark.parametrize("rule_id", BUILTINS)
def test_every_rule_is_warm_after_its_warmup(rule_id):
    spec = get_spec(rule_id)
    rule = spec.build()
    prices = [100 + 5 * math.sin(i / 7) + (i % 3) * 0.3 for i in range(spec.warmup() + 5)]
    for c in closes(prices, spread=0.4):
        rule.on_candle(c)
    assert rule.verdict().bias in ("LONG", "SHORT", "NEUTRAL")


def test_warmup_follows_the_parameters():
    spec = get_spec("donchian_breakout")
    assert spec.warmup({"entry_period": 55}) > spec.warmup()
    assert get_spec("bollinger_squeeze").warmup({"squeeze_lookback": "200"}) == 219


def test_params_are_coerced_from_text_and_unknown_ones_rejected():
    assert get_spec("supertrend").resolve({"period": "7", "multiplier": "2.5"})["period"] == 7
    assert get_spec("rsi_reversion").resolve({"tp_to_middle": "false"})["tp_to_middle"] is False
    with pytest.raises(StrategyError, match="supertrend has no parameter 'nope'"):
        rule_factory("supertrend", {"nope": 1})
    with pytest.raises(StrategyError, match="period='x' is not a valid int"):
        rule_factory("supertrend", {"period": "x"})
    with pytest.raises(StrategyError, match="^ema_adx: ema_fast must be smaller"):
        rule_factory("ema_adx", {"ema_fast": 30, "ema_slow": 20})
    assert ParamSpec(1.0, 0, 2, 0.5).coerce("x", "1.5") == 1.5
    with pytest.raises(ValueError):
        ParamSpec(1.0, 0, 2, 0.5).coerce("x", "nan")


def test_validate_strategy_one_line_errors():
    validate_strategy("macd")
    validate_strategy("ensemble", {"members": "macd,supertrend:2"})
    with pytest.raises(StrategyError) as err:
        validate_strategy("nope")
    assert "\n" not in str(err.value) and "macd" in str(err.value)
    assert set(BUILTINS) | {"ensemble"} == set(strategy_ids())


def test_parse_param_text():
    assert parse_param_text(" period=10 , multiplier=2.5,") == {"period": "10",
                                                                "multiplier": "2.5"}
    with pytest.raises(StrategyError):
        parse_param_text("period")


GOOD_PLUGIN = '''
"""A plugin: LONG on every third candle."""
from core.events import Side
from core.strategies.rules import RuleDecision, Verdict
from core.strategies.spec import ParamSpec, StrategySpec


class EveryN:
    name = "every_n"

    def __init__(self, *, n: int = 3, sl: float = 1.0):
        self.n, self.sl, self.seen = n, sl, 0
        self.warmup = n

    def on_candle(self, candle):
        self.seen += 1
        if self.seen % self.n == 0:
            return RuleDecision(Side.LONG, self.sl, 2 * self.sl, f"candle {self.seen}")
        return None

    def verdict(self):
        return Verdict("NEUTRAL", f"{self.seen} candles")


STRATEGY = StrategySpec(id="every_n", description="LONG every n candles",
                        params={"n": ParamSpec(3, 2, 10, 1, "int"),
                                "sl": ParamSpec(1.0, 0.5, 2.0, 0.5)},
                        factory=EveryN, source="a test")
'''


def test_a_plugin_file_joins_the_catalog_and_broken_ones_are_one_line_each(tmp_path):
    (tmp_path / "every_n.py").write_text(GOOD_PLUGIN)
    (tmp_path / "syntax.py").write_text("def broken(:\n")
    (tmp_path / "nothing.py").write_text("X = 1\n")
    (tmp_path / "clash.py").write_text(GOOD_PLUGIN.replace('id="every_n"', 'id="macd"'))
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "raises.py").write_text(GOOD_PLUGIN.replace("self.n, self.sl, self.seen = n, sl, 0",
                                                            "raise RuntimeError('boom')"))
    assert load_plugins(tmp_path) == ["every_n"]
    assert load_plugins(tmp_path) == []  # once per folder
    spec = catalog()["every_n"]
    assert spec.origin.endswith("every_n.py") and spec.warmup({"n": 5}) == 5
    rule = rule_factory("every_n", {"n": "2"})()
    assert [rule.on_candle(c) is not None for c in closes([1.0, 2.0, 3.0, 4.0])] == [
        False, True, False, True]
    errors = plugin_errors()
    assert len(errors) == 5 and all("\n" not in e for e in errors)
    assert {e.split()[2] for e in errors} == {"syntax.py", "nothing.py", "clash.py",
                                              "exits.py", "raises.py"}
    validate_strategy("ensemble", {"members": "every_n:1,macd:1"})


def test_missing_plugin_folder_is_fine(tmp_path):
    assert load_plugins(tmp_path / "absent") == []
    assert load_plugins(None) == []


def test_the_rules_import_neither_numpy_nor_talib():
    code = ("import sys; from core.strategies.catalog import catalog, rule_factory; "
            "[s.build() for s in catalog().values()]; rule_factory('ensemble', "
            "{'members': 'macd,supertrend'})(); import core.trending; "
            "bad = {'numpy', 'talib'} & set(sys.modules); print(sorted(bad)); "
            "sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("rule_id", BUILTINS)
def test_vote_agrees_with_verdict_on_real_data(rule_id):
    from tests.core.strategies.test_indicators import read_klines

    rule = get_spec(rule_id).build()
    for c in read_klines("XRPUSDT-5m-2021-11-15.csv"):
        rule.on_candle(c)
        v = rule.verdict()
        assert rule.vote() == (v.bias, v.strength)


def test_the_readme_plugin_example_works(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Writing a plugin"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("\n```", start)]
    (tmp_path / "three_bar.py").write_text(code)
    assert load_plugins(tmp_path) == ["three_bar"] and not plugin_errors()
    rule = rule_factory("three_bar", {"bars": "3", "atr_period": "2"})()
    prices = [100, 99, 98, 97, 98, 99, 100, 101, 100]
    got = [(i, d.side.value) for i, c in enumerate(closes(prices))
           if (d := rule.on_candle(c)) is not None]
    assert got == [(3, "SHORT"), (6, "LONG")]
    assert rule.verdict().bias == "NEUTRAL"
