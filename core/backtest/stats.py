"""Backtest statistics and Freqtrade-style breakdowns.

Money stays ``Decimal`` (sums of ``ClosedTrade`` amounts); ratios over the equity curve are
float analytics. Definitions:

* Equity series: ``(first_ts_ms, initial_balance)``, then ``equity_curve``, then
  ``(last_ts_ms, final_balance)``, stably sorted by time.
* Max drawdown: the largest ``(peak - equity) / peak`` (fraction 0..1) with the times of that
  peak and trough. The backtest measures it on every equity change (every price of a held
  symbol, core/backtest/tracking.py); without that, on the equity series.
* Sharpe / Sortino: the equity series resampled (last value carried forward) onto a fixed grid
  whose step is the median positive spacing of its samples; simple returns per step, risk-free
  rate 0, ``mean / stdev(ddof=1)`` (Sortino: ``mean / downside deviation``, the root mean
  square of the negative returns) ``× sqrt(steps per 365-day year)``. They, CAGR and Calmar are
  ``None`` ("n/a") when the data spans less than ``MIN_RATIO_SPAN_MS`` (1 day): annualising
  minutes of data gives meaningless numbers.
* CAGR: ``(final / initial) ** (365 days / span) - 1``. Calmar: ``CAGR / max drawdown``.
* Expectancy: mean net PnL per trade (USDT); expectancy ratio (Freqtrade):
  ``(1 + avg win / avg loss) × win rate - 1``.
* Profit factor: Σ wins / |Σ losses|; ``inf`` with wins and no loss; ``None`` (undefined) with
  neither.
* Market change: ``last / first - 1`` of each traded symbol's price over the run, a fraction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from core.events import ClosedTrade

if TYPE_CHECKING:
    from core.backtest.report import BacktestResult

YEAR_MS = 365 * 24 * 3_600_000
MIN_RATIO_SPAN_MS = 24 * 3_600_000  # below this, Sharpe/Sortino/CAGR/Calmar are n/a
_MAX_GRID = 1_000_000  # resampling grid cap (coarser step beyond it)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """Summary statistics of a ``BacktestResult`` (money in USDT, Decimal).

    ``win_rate``, ``max_drawdown``, ``exposure``, ``cagr`` and ``market_change`` are fractions.
    ``None`` means "not defined" (see the module docstring); ``profit_factor`` may be ``inf``.
    """

    net_pnl: Decimal
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    trades: int
    wins: int
    losses: int
    draws: int
    win_rate: float
    max_drawdown: float
    max_drawdown_usdt: float
    drawdown_start_ms: int
    drawdown_end_ms: int
    sharpe: float | None
    sortino: float | None
    cagr: float | None
    calmar: float | None
    profit_factor: float | None
    expectancy: Decimal | None
    expectancy_ratio: float | None
    exposure: float
    avg_trade: Decimal | None
    best: Decimal | None
    worst: Decimal | None
    avg_holding_s: float
    max_holding_s: float
    market_change: dict[str, float]
    events_per_s: float


def equity_points(result: BacktestResult) -> list[tuple[int, float]]:
    """The equity series the statistics use: initial balance, the curve, final balance."""
    points = [(result.first_ts_ms, float(result.initial_balance))]
    points.extend((int(ts), float(eq)) for ts, eq in result.equity_curve)
    points.append((result.last_ts_ms, float(result.final_balance)))
    points.sort(key=lambda p: p[0])  # stable: the initial balance stays first on a tie
    return points


def max_drawdown(values: list[float]) -> tuple[float, float]:
    """Largest peak-to-trough fall of ``values``: ``(fraction of the peak, absolute)``."""
    frac, usdt, _, _ = _drawdown(list(enumerate(values)))
    return frac, usdt


def _drawdown(points: list[tuple[int, float]]) -> tuple[float, float, int, int]:
    """(fraction, absolute, peak time, trough time) of the deepest relative fall."""
    peak, peak_t = -math.inf, 0
    frac = usdt = 0.0
    start = end = points[0][0] if points else 0
    for t, v in points:
        if v > peak:
            peak, peak_t = v, t
        fall = peak - v
        usdt = max(usdt, fall)
        if peak > 0 and fall / peak > frac:
            frac, start, end = fall / peak, peak_t, t
    return min(frac, 1.0), usdt, start, end


def _returns(points: list[tuple[int, float]]) -> tuple[np.ndarray, float] | None:
    if len(points) < 3:
        return None
    ts = np.fromiter((p[0] for p in points), dtype=np.float64, count=len(points))
    eq = np.fromiter((p[1] for p in points), dtype=np.float64, count=len(points))
    spacing = np.diff(ts)
    spacing = spacing[spacing > 0]
    if spacing.size == 0:
        return None
    span = ts[-1] - ts[0]
    step = max(float(np.median(spacing)), span / _MAX_GRID)
    grid = ts[0] + step * np.arange(int(span // step) + 1)
    sampled = eq[np.searchsorted(ts, grid, side="right") - 1]
    prev, cur = sampled[:-1], sampled[1:]
    usable = prev > 0
    returns = cur[usable] / prev[usable] - 1.0
    return (returns, step) if returns.size >= 2 else None


def sharpe_ratio(points: list[tuple[int, float]]) -> float:
    """Annualised Sharpe ratio of an equity series sorted by time; 0.0 when undefined."""
    r = _returns(points)
    if r is None:
        return 0.0
    returns, step = r
    sd = float(returns.std(ddof=1))
    if not math.isfinite(sd) or sd <= 1e-12:
        return 0.0
    value = float(returns.mean()) / sd * math.sqrt(YEAR_MS / step)
    return value if math.isfinite(value) else 0.0


def sortino_ratio(points: list[tuple[int, float]]) -> float:
    """Annualised Sortino ratio (downside deviation); 0.0 when undefined or no loss."""
    r = _returns(points)
    if r is None:
        return 0.0
    returns, step = r
    down = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not math.isfinite(down) or down <= 1e-12:
        return 0.0
    value = float(returns.mean()) / down * math.sqrt(YEAR_MS / step)
    return value if math.isfinite(value) else 0.0


def exposure(trades: list[ClosedTrade], first_ts_ms: int, last_ts_ms: int) -> float:
    """Fraction of ``[first_ts_ms, last_ts_ms]`` covered by at least one open position."""
    span = last_ts_ms - first_ts_ms
    if span <= 0:
        return 0.0
    covered = 0
    cursor = first_ts_ms
    for t in sorted(trades, key=lambda t: t.entry_ts_ms):
        start = max(t.entry_ts_ms, cursor)
        end = min(t.exit_ts_ms, last_ts_ms)
        if end > start:
            covered += end - start
            cursor = end
    return covered / span


def profit_factor(trades: list[ClosedTrade]) -> float | None:
    """Σ winning net PnL / |Σ losing net PnL|; inf with no losses, None when undefined."""
    won = sum((t.net_pnl for t in trades if t.net_pnl > 0), ZERO)
    lost = -sum((t.net_pnl for t in trades if t.net_pnl < 0), ZERO)
    if lost > 0:
        return float(won / lost)
    return math.inf if won > 0 else None


def _expectancy_ratio(trades: list[ClosedTrade]) -> float | None:
    wins = [t.net_pnl for t in trades if t.net_pnl > 0]
    losses = [-t.net_pnl for t in trades if t.net_pnl < 0]
    if not trades or not losses:
        return None
    avg_win = sum(wins, ZERO) / len(wins) if wins else ZERO
    avg_loss = sum(losses, ZERO) / len(losses)
    return float((1 + avg_win / avg_loss) * len(wins) / len(trades) - 1)


def compute_stats(result: BacktestResult) -> Stats:
    """Summarise a backtest. Pure: nothing is changed or checked (see check_invariants)."""
    trades = result.trades
    n = len(trades)
    net = sum((t.net_pnl for t in trades), ZERO)
    wins = sum(1 for t in trades if t.net_pnl > 0)
    losses = sum(1 for t in trades if t.net_pnl < 0)
    points = equity_points(result)
    frac, usdt, dd_start, dd_end = _drawdown(points)
    dd = result.drawdown
    if dd is not None and dd.fraction >= frac:
        frac, dd_start, dd_end = dd.fraction, dd.peak_ts_ms, dd.trough_ts_ms
        usdt = max(usdt, dd.usdt)
    span = result.last_ts_ms - result.first_ts_ms
    long_enough = span >= MIN_RATIO_SPAN_MS
    cagr = None
    if long_enough and result.initial_balance > 0:
        growth = float(result.final_balance / result.initial_balance)
        try:
            cagr = growth ** (YEAR_MS / span) - 1 if growth > 0 else -1.0
        except OverflowError:
            cagr = math.inf
    holds = [(t.exit_ts_ms - t.entry_ts_ms) / 1000 for t in trades]
    return Stats(
        net_pnl=net, gross_pnl=sum((t.gross_pnl for t in trades), ZERO),
        fees=sum((t.fees for t in trades), ZERO), funding=sum((t.funding for t in trades), ZERO),
        trades=n, wins=wins, losses=losses, draws=n - wins - losses,
        win_rate=wins / n if n else 0.0,
        max_drawdown=frac, max_drawdown_usdt=usdt, drawdown_start_ms=dd_start,
        drawdown_end_ms=dd_end,
        sharpe=sharpe_ratio(points) if long_enough else None,
        sortino=sortino_ratio(points) if long_enough else None,
        cagr=cagr, calmar=cagr / frac if cagr is not None and frac > 0 else None,
        profit_factor=profit_factor(trades),
        expectancy=net / n if n else None, expectancy_ratio=_expectancy_ratio(trades),
        exposure=exposure(trades, result.first_ts_ms, result.last_ts_ms),
        avg_trade=net / n if n else None,
        best=max((t.net_pnl for t in trades), default=None),
        worst=min((t.net_pnl for t in trades), default=None),
        avg_holding_s=sum(holds) / n if n else 0.0, max_holding_s=max(holds, default=0.0),
        market_change={s: b / a - 1 for s, (a, b) in result.market_change.items() if a > 0},
        events_per_s=result.events / result.wall_s if result.wall_s > 0 else 0.0,
    )


# --------------------------------------------------------------------------- breakdowns


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _week(ms: int) -> str:
    y, w, _ = datetime.fromtimestamp(ms / 1000, tz=UTC).isocalendar()
    return f"{y}-W{w:02d}"


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m")


#: UTC period labels of a time in ms (``2024-08-08``, ``2024-W32``, ``2024-08``), shared with
#: Telegram's /daily, /weekly and /monthly so both name a period the same way.
PERIOD_LABELS: dict[str, Callable[[int], str]] = {"day": _day, "week": _week, "month": _month}

BREAKDOWNS: dict[str, Callable[[ClosedTrade], str]] = {
    "symbol": lambda t: t.symbol,
    "exit_reason": lambda t: t.exit_reason.value,
    "side": lambda t: t.side.value,
    "day": lambda t: _day(t.exit_ts_ms),  # periods by exit time, like Freqtrade
    "week": lambda t: _week(t.exit_ts_ms),
    "month": lambda t: _month(t.exit_ts_ms),
}


def breakdowns(trades: list[ClosedTrade], initial: Decimal) -> dict[str, list[dict[str, Any]]]:
    """Per symbol, exit reason, side, day, week and month (exit time, UTC): rows of
    ``{key, trades, wins, draws, losses, win_rate, net_pnl, net_pnl_fraction, avg_net_pnl,
    avg_holding_s}``; ``net_pnl_fraction`` is of the initial balance."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, key in BREAKDOWNS.items():
        groups: dict[str, list[ClosedTrade]] = defaultdict(list)
        for t in trades:
            groups[key(t)].append(t)
        rows = []
        for k in sorted(groups):
            g = groups[k]
            net = sum((t.net_pnl for t in g), ZERO)
            wins = sum(1 for t in g if t.net_pnl > 0)
            losses = sum(1 for t in g if t.net_pnl < 0)
            rows.append({
                "key": k, "trades": len(g), "wins": wins, "draws": len(g) - wins - losses,
                "losses": losses, "win_rate": wins / len(g), "net_pnl": net,
                "net_pnl_fraction": float(net / initial) if initial > 0 else None,
                "avg_net_pnl": net / len(g),
                "avg_holding_s": sum((t.exit_ts_ms - t.entry_ts_ms) for t in g) / len(g) / 1000,
            })
        out[name] = rows
    return out
