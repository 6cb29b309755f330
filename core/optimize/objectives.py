"""What a study maximises, computed from one backtest (definitions of core/backtest/stats.py).

=================  ===========================================================================
``sharpe``         annualised Sharpe ratio of the equity curve (``stats.sharpe_ratio``)
``sortino``        annualised Sortino ratio, downside deviation (``stats.sortino_ratio``)
``calmar``         CAGR / max drawdown, as the report; the drawdown floored at 0.001 (0.1 %)
                   so a run without drawdown stays finite, the result clamped to ±1e6
``net_pnl``        realized net PnL, USDT (fees and funding included)
``profit_factor``  gross wins / gross losses of the round trips, capped at 100; 0.0 without
                   trades
=================  ===========================================================================

Unlike the report, which shows Sharpe/Sortino/CAGR/Calmar as n/a below one day of data, the
objectives are computed on any span: a walk-forward window or a one-day study must still rank
its trials (the ranking, not the annualised level, is what matters there). All are maximised.
A run with fewer than ``min_trades`` round trips is not scored (the trial is pruned): a
parameter set that never trades would otherwise win on drawdown alone.
"""

from __future__ import annotations

import math

from core.backtest.report import BacktestResult
from core.backtest.stats import (
    YEAR_MS,
    equity_points,
    max_drawdown,
    profit_factor,
    sharpe_ratio,
    sortino_ratio,
)

OBJECTIVES = ("sharpe", "sortino", "calmar", "net_pnl", "profit_factor")
PF_CAP = 100.0
DD_FLOOR = 0.001
CLAMP = 1e6


def calmar_ratio(result: BacktestResult, points: list[tuple[int, float]]) -> float:
    """CAGR over max drawdown (see the module table)."""
    span = result.last_ts_ms - result.first_ts_ms
    initial = float(result.initial_balance)
    if span <= 0 or initial <= 0:
        return 0.0
    growth = float(result.final_balance) / initial
    try:
        cagr = growth ** (YEAR_MS / span) - 1 if growth > 0 else -1.0
    except OverflowError:
        cagr = CLAMP
    dd, _ = max_drawdown([eq for _, eq in points])
    value = cagr / max(dd, DD_FLOOR)
    return max(-CLAMP, min(CLAMP, value)) if math.isfinite(value) else CLAMP


def objective_value(result: BacktestResult, name: str) -> float:
    """The objective ``name`` (one of ``OBJECTIVES``) of one backtest; always finite.

    Raises:
        ValueError: unknown objective name.
    """
    if name == "net_pnl":
        return float(sum((t.net_pnl for t in result.trades), 0))
    if name == "profit_factor":
        pf = profit_factor(result.trades)
        return 0.0 if pf is None else min(pf, PF_CAP)
    points = equity_points(result)
    if name == "sharpe":
        return sharpe_ratio(points)
    if name == "sortino":
        return sortino_ratio(points)
    if name == "calmar":
        return calmar_ratio(result, points)
    raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
