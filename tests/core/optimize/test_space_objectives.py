"""Search ranges and objectives, without Optuna."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.backtest.report import BacktestResult
from core.optimize.objectives import OBJECTIVES, calmar_ratio, objective_value, sortino_ratio
from core.optimize.space import ParamRange, SpaceError, apply, parse_range, strategy_space
from core.optimize.study import StudyError, split_trials, storage_url
from core.optimize.walkforward import DAY_MS, make_folds
from core.strategies.catalog import StrategyError, get_spec
from core.strategies.selection import params_from_settings
from utils.settings import load_settings


def test_parse_range_rule_parameters_and_settings() -> None:
    assert parse_range("ema_fast=3:20", "ema_adx") == ParamRange("ema_fast", 3, 20, None, "int")
    assert parse_range("SL_ATR=0.5:4:0.25", "ema_adx") == ParamRange("sl_atr", 0.5, 4.0, 0.25)
    assert parse_range("trailing_pct=0:2", "ema_adx") == ParamRange(
        "trailing_pct", 0, 2, None, "float", rule=False)
    assert parse_range("leverage=1:10", "ema_adx").kind == "int"


@pytest.mark.parametrize("item", ["ema_fast", "ema_fast=3", "ema_fast=3:x", "nope=1:2",
                                  "ema_fast=9:3", "sl_atr=1:2:0", "ema_fast=2.5:9",
                                  "adx_min=1:inf", "strategy_params=1:2"])
def test_parse_range_rejects(item: str) -> None:
    with pytest.raises(SpaceError):
        parse_range(item, "ema_adx")


def test_strategy_space_is_the_catalogs_then_overrides() -> None:
    catalog = get_spec("ema_adx").params
    space = {r.name: r for r in strategy_space("ema_adx", ["ema_fast=5:8", "trailing_pct=0:2"])}
    assert space["ema_fast"] == ParamRange("ema_fast", 5, 8, None, "int")
    assert space["trailing_pct"].high == 2.0 and not space["trailing_pct"].rule
    assert (space["ema_slow"].low, space["ema_slow"].high) == (catalog["ema_slow"].low,
                                                                catalog["ema_slow"].high)
    assert set(catalog) <= set(space)
    with pytest.raises(StrategyError):
        strategy_space("no_such_rule")
    with pytest.raises(SpaceError):
        strategy_space("ensemble")
    assert [r.name for r in strategy_space("ensemble", ["ensemble_threshold=0.5:0.9"])] == [
        "ensemble_threshold"]


def test_apply_puts_rule_values_in_strategy_params_over_fixed_ones() -> None:
    base = load_settings(strategy_params="ema_fast=7,adx_min=30", trading_mode="paper")
    ranges = strategy_space("ema_adx", ["leverage=1:10"])
    s = apply(base, ranges, {"ema_fast": 4, "sl_atr": 2.5, "leverage": 3})
    assert s.leverage == 3
    assert params_from_settings(s)["ema_fast"] == "4"
    assert params_from_settings(s)["adx_min"] == "30"
    assert params_from_settings(s)["sl_atr"] == "2.5"


def _result(curve: list[tuple[int, float]], final: str, span_days: float = 1.0) -> BacktestResult:
    return BacktestResult(
        symbol="BTCUSDT", timeframe="1m", files=[], events=0, first_ts_ms=0,
        last_ts_ms=int(span_days * DAY_MS), initial_balance=Decimal(1000),
        final_balance=Decimal(final), trades=[], equity_curve=curve, price_series=[], wall_s=1.0)


def test_sortino_counts_only_downside() -> None:
    up_only = [(i * 60_000, 1000.0 + i) for i in range(100)]
    assert sortino_ratio(up_only) == 0.0  # no negative return: undefined -> 0
    mixed = [(i * 60_000, 1000.0 + (i % 3 == 0) * -3 + i) for i in range(100)]
    assert sortino_ratio(mixed) > 0
    falling = [(i * 60_000, 1000.0 - i) for i in range(100)]
    assert sortino_ratio(falling) < 0


def test_calmar_is_cagr_over_drawdown_floored() -> None:
    flat_up = _result([(DAY_MS // 2, 1005.0)], "1010")  # +1 % in a day, no drawdown
    points = [(0, 1000.0), (DAY_MS // 2, 1005.0), (DAY_MS, 1010.0)]
    assert calmar_ratio(flat_up, points) == pytest.approx((1.01 ** 365 - 1) / 0.001)
    dipped = [(0, 1000.0), (DAY_MS // 2, 950.0), (DAY_MS, 1010.0)]
    assert calmar_ratio(_result([], "1010"), dipped) == pytest.approx((1.01 ** 365 - 1) / 0.05)
    huge = _result([], "2000", span_days=0.01)  # doubling in 15 minutes: clamped, finite
    assert calmar_ratio(huge, [(0, 1000.0), (1, 2000.0)]) == 1e6


def test_every_objective_is_finite_without_trades() -> None:
    r = _result([(1000, 1000.0)], "1000")
    for name in OBJECTIVES:
        assert objective_value(r, name) == 0.0
    with pytest.raises(ValueError):
        objective_value(r, "alpha")


def test_split_trials_adds_up() -> None:
    assert split_trials(7, 2) == [4, 3]
    assert split_trials(1, 3) == [1]
    assert sum(split_trials(100, 7)) == 100


def test_storage_url(tmp_path) -> None:
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path / 'optuna.sqlite3'}"
    assert storage_url("postgresql://u@h:5/db", tmp_path) == "postgresql+psycopg://u@h:5/db"
    assert storage_url(str(tmp_path / "s.db"), tmp_path) == f"sqlite:///{tmp_path / 's.db'}"


def test_make_folds_default_and_explicit() -> None:
    folds = make_folds(0, 10 * DAY_MS, 3)  # T = 10/5 = 2 days, D = 4 days
    assert [(f.train_start_ms, f.train_end_ms, f.test_end_ms) for f in folds] == [
        (0, 4 * DAY_MS, 6 * DAY_MS), (2 * DAY_MS, 6 * DAY_MS, 8 * DAY_MS),
        (4 * DAY_MS, 8 * DAY_MS, 10 * DAY_MS)]
    folds = make_folds(0, 10 * DAY_MS, 2, train_ms=6 * DAY_MS)
    assert folds[-1].test_end_ms == 10 * DAY_MS
    with pytest.raises(StudyError, match="need 12 days"):
        make_folds(0, 10 * DAY_MS, 3, train_ms=6 * DAY_MS, test_ms=2 * DAY_MS)
