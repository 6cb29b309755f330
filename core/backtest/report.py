"""The backtest report: statistics, a JSON document, invariant checks and a terminal table.

Money stays ``Decimal`` end to end: ``ClosedTrade`` amounts are summed exactly and written to
JSON as decimal strings (``str(Decimal)``). The equity curve is ``float`` (it is analytics, like
indicators and charts), so the drawdown and Sharpe figures derived from it are floats too.

Definitions (see ``compute_stats``):

* Equity series: ``(first_ts_ms, initial_balance)``, then ``equity_curve``, then
  ``(last_ts_ms, final_balance)``, stably sorted by time.
* Max drawdown: the largest ``(peak - equity) / peak`` over that series, where ``peak`` is the
  running maximum; a fraction in 0..1. ``max_drawdown_usdt`` is the largest ``peak - equity``;
  the two maxima may come from different troughs.
* Sharpe: the equity series is resampled (last value carried forward) onto a fixed grid whose
  step is the median positive spacing of its samples; simple returns per step, risk-free rate 0,
  ``mean / stdev(ddof=1) * sqrt(steps per 365-day year)``. 0.0 when fewer than two returns or
  zero variance. A tail shorter than one step is not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from core.events import ClosedTrade

YEAR_MS = 365 * 24 * 3_600_000
_MAX_GRID = 1_000_000  # resampling grid cap for the Sharpe ratio (coarser step beyond it)
_TABLE_EDGE = 20  # format_report shows this many trades at each end of a long list


class InvariantError(ValueError):
    """A backtest result is internally inconsistent (the accounting or the one-position rule)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """Everything a backtest run produced.

    ``trades`` are in exit order. ``equity_curve`` is ``(ts_ms, equity)`` in USDT including
    unrealized PnL, sampled e.g. on every closed candle. ``price_series`` is ``(ts_ms, price)``
    for the chart, already downsampled by the caller. ``wall_s`` is the run's wall-clock time.
    """

    symbol: str
    timeframe: str
    files: list[str]
    events: int
    first_ts_ms: int
    last_ts_ms: int
    initial_balance: Decimal
    final_balance: Decimal
    trades: list[ClosedTrade]
    equity_curve: list[tuple[int, float]]
    price_series: list[tuple[int, float]]
    wall_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """Summary statistics of a ``BacktestResult`` (money in USDT).

    ``win_rate``, ``max_drawdown`` and ``exposure`` are fractions (0..1). ``profit_factor`` is
    None with no trades (or only break-even ones) and ``inf`` with wins but no losing trade.
    ``avg_trade``, ``best`` and ``worst`` are None with no trades.
    """

    net_pnl: Decimal
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    trades: int
    wins: int
    win_rate: float
    max_drawdown: float
    max_drawdown_usdt: float
    sharpe: float
    profit_factor: float | None
    exposure: float
    avg_trade: Decimal | None
    best: Decimal | None
    worst: Decimal | None
    avg_holding_s: float
    events_per_s: float


# --------------------------------------------------------------------------- statistics


def equity_points(result: BacktestResult) -> list[tuple[int, float]]:
    """The equity series the statistics use: initial balance, the curve, final balance."""
    points = [(result.first_ts_ms, float(result.initial_balance))]
    points.extend((int(ts), float(eq)) for ts, eq in result.equity_curve)
    points.append((result.last_ts_ms, float(result.final_balance)))
    points.sort(key=lambda p: p[0])  # stable: the initial balance stays first on a tie
    return points


def max_drawdown(values: list[float]) -> tuple[float, float]:
    """Largest peak-to-trough fall of ``values``: ``(fraction of the peak, absolute)``.

    The fraction is clamped to 0..1 and counts only while the running peak is positive.
    """
    peak = -math.inf
    worst_frac = worst_abs = 0.0
    for v in values:
        peak = max(peak, v)
        fall = peak - v
        worst_abs = max(worst_abs, fall)
        if peak > 0:
            worst_frac = max(worst_frac, fall / peak)
    return min(worst_frac, 1.0), worst_abs


def sharpe_ratio(points: list[tuple[int, float]]) -> float:
    """Annualised Sharpe ratio of an equity series sorted by time (see the module docstring)."""
    if len(points) < 3:
        return 0.0
    ts = np.fromiter((p[0] for p in points), dtype=np.float64, count=len(points))
    eq = np.fromiter((p[1] for p in points), dtype=np.float64, count=len(points))
    spacing = np.diff(ts)
    spacing = spacing[spacing > 0]
    if spacing.size == 0:
        return 0.0
    span = ts[-1] - ts[0]
    step = max(float(np.median(spacing)), span / _MAX_GRID)
    grid = ts[0] + step * np.arange(int(span // step) + 1)
    sampled = eq[np.searchsorted(ts, grid, side="right") - 1]
    prev, cur = sampled[:-1], sampled[1:]
    usable = prev > 0
    returns = cur[usable] / prev[usable] - 1.0
    if returns.size < 2:
        return 0.0
    sd = float(returns.std(ddof=1))
    if not math.isfinite(sd) or sd <= 1e-12:
        return 0.0
    value = float(returns.mean()) / sd * math.sqrt(YEAR_MS / step)
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
    won = sum((t.net_pnl for t in trades if t.net_pnl > 0), Decimal(0))
    lost = -sum((t.net_pnl for t in trades if t.net_pnl < 0), Decimal(0))
    if lost > 0:
        return float(won / lost)
    return math.inf if won > 0 else None


def compute_stats(result: BacktestResult) -> Stats:
    """Summarise a backtest. Pure: the result is not changed and nothing is checked
    (``check_invariants`` does that)."""
    trades = result.trades
    n = len(trades)
    net = sum((t.net_pnl for t in trades), Decimal(0))
    wins = sum(1 for t in trades if t.net_pnl > 0)
    points = equity_points(result)
    dd_frac, dd_abs = max_drawdown([eq for _, eq in points])
    return Stats(
        net_pnl=net,
        gross_pnl=sum((t.gross_pnl for t in trades), Decimal(0)),
        fees=sum((t.fees for t in trades), Decimal(0)),
        funding=sum((t.funding for t in trades), Decimal(0)),
        trades=n,
        wins=wins,
        win_rate=wins / n if n else 0.0,
        max_drawdown=dd_frac,
        max_drawdown_usdt=dd_abs,
        sharpe=sharpe_ratio(points),
        profit_factor=profit_factor(trades),
        exposure=exposure(trades, result.first_ts_ms, result.last_ts_ms),
        avg_trade=net / n if n else None,
        best=max((t.net_pnl for t in trades), default=None),
        worst=min((t.net_pnl for t in trades), default=None),
        avg_holding_s=sum(t.exit_ts_ms - t.entry_ts_ms for t in trades) / n / 1000 if n else 0.0,
        events_per_s=result.events / result.wall_s if result.wall_s > 0 else 0.0,
    )


# --------------------------------------------------------------------------- invariants


def check_invariants(result: BacktestResult) -> None:
    """Verify the result's accounting and the single-position rule.

    Checks, exactly in ``Decimal``: every trade's ``net_pnl == gross_pnl - fees + funding``;
    ``final_balance - initial_balance == Σ net_pnl``. In time: no trade exits before it enters,
    and, sorted by entry, each trade exits no later than the next one enters (one position at a
    time, across symbols).

    Raises:
        InvariantError: naming every violation found.
    """
    problems: list[str] = []
    for i, t in enumerate(result.trades):
        expected = t.gross_pnl - t.fees + t.funding
        if t.net_pnl != expected:
            problems.append(
                f"trade #{i + 1} {t.symbol}: net_pnl {t.net_pnl} != gross_pnl - fees + funding "
                f"= {t.gross_pnl} - {t.fees} + {t.funding} = {expected}"
            )
        if t.exit_ts_ms < t.entry_ts_ms:
            problems.append(
                f"trade #{i + 1} {t.symbol}: exit_ts_ms {t.exit_ts_ms} before "
                f"entry_ts_ms {t.entry_ts_ms}"
            )
    total = sum((t.net_pnl for t in result.trades), Decimal(0))
    change = result.final_balance - result.initial_balance
    if change != total:
        problems.append(
            f"final_balance - initial_balance = {result.final_balance} - "
            f"{result.initial_balance} = {change} != sum of net_pnl {total} "
            f"(difference {change - total})"
        )
    ordered = sorted(result.trades, key=lambda t: (t.entry_ts_ms, t.exit_ts_ms))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.exit_ts_ms > b.entry_ts_ms:
            problems.append(
                f"overlapping trades: {a.symbol} {a.side.value} {a.entry_ts_ms}..{a.exit_ts_ms} "
                f"is still open when {b.symbol} {b.side.value} enters at {b.entry_ts_ms}"
            )
    if problems:
        raise InvariantError("backtest invariants violated: " + "; ".join(problems))


# --------------------------------------------------------------------------- JSON


def _json_float(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _money(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _trade_json(t: ClosedTrade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "side": t.side.value,
        "entry_ts_ms": t.entry_ts_ms,
        "exit_ts_ms": t.exit_ts_ms,
        "entry_price": str(t.entry_price),
        "exit_price": str(t.exit_price),
        "quantity": str(t.quantity),
        "gross_pnl": str(t.gross_pnl),
        "fees": str(t.fees),
        "funding": str(t.funding),
        "net_pnl": str(t.net_pnl),
        "exit_reason": t.exit_reason.value,
    }


def to_json(result: BacktestResult, stats: Stats) -> dict[str, Any]:
    """The report as a JSON-ready dict. Money is a decimal string; ratios are numbers, with
    ``null`` for an undefined (or infinite) profit factor."""
    return {
        "symbol": result.symbol,
        "timeframe": result.timeframe,
        "data": {
            "files": list(result.files),
            "events": result.events,
            "first_ts_ms": result.first_ts_ms,
            "last_ts_ms": result.last_ts_ms,
        },
        "initial_balance": str(result.initial_balance),
        "final_balance": str(result.final_balance),
        "trades": [_trade_json(t) for t in result.trades],
        "stats": {
            "net_pnl": str(stats.net_pnl),
            "win_rate": float(stats.win_rate),
            "max_drawdown": float(stats.max_drawdown),
            "sharpe": float(stats.sharpe),
            "profit_factor": _json_float(stats.profit_factor),
            "trades": stats.trades,
            "wins": stats.wins,
            "gross_pnl": str(stats.gross_pnl),
            "fees": str(stats.fees),
            "funding": str(stats.funding),
            "max_drawdown_usdt": str(Decimal(repr(round(stats.max_drawdown_usdt, 8)))),
            "exposure": float(stats.exposure),
            "avg_trade": _money(stats.avg_trade),
            "best": _money(stats.best),
            "worst": _money(stats.worst),
            "avg_holding_s": float(stats.avg_holding_s),
        },
        "perf": {"wall_s": float(result.wall_s), "events_per_s": float(stats.events_per_s)},
    }


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as indented JSON (orjson), creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


# --------------------------------------------------------------------------- terminal


def _utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    days, rest = divmod(s, 86_400)
    h, rest = divmod(rest, 3_600)
    m, sec = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{sec:02d}" if days else f"{h:02d}:{m:02d}:{sec:02d}"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows if len(r) > 1) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        if len(r) == 1:  # an elision marker spans the row
            lines.append(r[0])
            continue
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=False))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _trade_rows(trades: list[ClosedTrade]) -> list[list[str]]:
    rows = [["#", "side", "entry (UTC)", "exit (UTC)", "entry", "exit", "qty", "net PnL", "reason"]]
    hidden = max(0, len(trades) - 2 * _TABLE_EDGE)
    for i, t in enumerate(trades, 1):
        if hidden and i == _TABLE_EDGE + 1:
            rows.append([f"… {hidden} more"])
        if hidden and _TABLE_EDGE < i <= _TABLE_EDGE + hidden:
            continue
        rows.append([
            str(i), t.side.value, _utc(t.entry_ts_ms), _utc(t.exit_ts_ms), str(t.entry_price),
            str(t.exit_price), str(t.quantity), str(t.net_pnl), t.exit_reason.value,
        ])
    return rows


def _pf_text(pf: float | None) -> str:
    if pf is None:
        return "n/a"
    return "inf" if math.isinf(pf) else f"{pf:.2f}"


def format_report(result: BacktestResult, stats: Stats) -> str:
    """A plain fixed-width text report for the terminal (trade table elided past 40 rows)."""
    span_s = (result.last_ts_ms - result.first_ts_ms) / 1000
    lines = [
        f"Backtest {result.symbol} {result.timeframe}",
        f"Data:    {_utc(result.first_ts_ms)} → {_utc(result.last_ts_ms)} UTC "
        f"({_duration(span_s)}), {result.events:,} events, {len(result.files)} file(s)",
        "",
    ]
    if result.trades:
        lines += _table(_trade_rows(result.trades), right={0, 4, 5, 6, 7})
    else:
        lines.append("No trades.")
    pct = (
        f" ({stats.net_pnl / result.initial_balance * 100:+.2f} %)"
        if result.initial_balance > 0 else ""
    )
    summary = [
        ("Balance", f"{result.initial_balance} → {result.final_balance} USDT"),
        ("Net PnL", f"{stats.net_pnl} USDT{pct}"),
        ("Gross PnL", f"{stats.gross_pnl} USDT"),
        ("Fees", f"{stats.fees} USDT"),
        ("Funding", f"{stats.funding} USDT"),
        ("Trades", f"{stats.trades} ({stats.wins} won)"),
        ("Win rate", f"{stats.win_rate * 100:.2f} %"),
        ("Max drawdown", f"{stats.max_drawdown * 100:.2f} % ({stats.max_drawdown_usdt:.2f} USDT)"),
        ("Sharpe", f"{stats.sharpe:.2f}"),
        ("Profit factor", _pf_text(stats.profit_factor)),
        ("Exposure", f"{stats.exposure * 100:.2f} %"),
        ("Avg trade", "n/a" if stats.avg_trade is None else f"{stats.avg_trade:.4f} USDT"),
        ("Best / worst", "n/a" if stats.best is None else f"{stats.best} / {stats.worst} USDT"),
        ("Avg holding", _duration(stats.avg_holding_s)),
        ("Events", f"{result.events:,} ({stats.events_per_s:,.0f} events/s)"),
        ("Wall time", f"{result.wall_s:.2f} s"),
    ]
    lines.append("")
    lines += [f"{label + ':':<15}{value}" for label, value in summary]
    return "\n".join(lines) + "\n"
