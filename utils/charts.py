"""PNG charts with matplotlib's object API (``Figure`` + Agg canvas).

No ``pyplot``: nothing here touches matplotlib's global figure manager or rcParams, so a chart
can be rendered in an executor thread while the event loop keeps running. Times are UTC.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:  # utils/ stays below core/; the result is only read
    from core.report import BacktestResult

_DAY_MS = 86_400_000
_EPOCH_DAYS = mdates.date2num(datetime(1970, 1, 1, tzinfo=UTC))
_GREEN, _RED, _BLUE = "#2ca02c", "#d62728", "#1f77b4"


def _days(ts_ms: Sequence[int] | np.ndarray) -> np.ndarray:
    """Milliseconds since the Unix epoch -> matplotlib date numbers."""
    return np.asarray(ts_ms, dtype=np.float64) / _DAY_MS + _EPOCH_DAYS


def _utc_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.grid(True, alpha=0.3)


def _plot_series(ax: Axes, points: Sequence[tuple[int, float]], **style) -> None:
    if not points:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    xs = _days([p[0] for p in points])
    ys = [float(p[1]) for p in points]
    if len(points) == 1:
        ax.plot(xs, ys, marker="o", **style)
    else:
        ax.plot(xs, ys, **style)
    _utc_axis(ax)


def _pad_if_singular(ax: Axes, ts_ms: Sequence[int]) -> None:
    """Show one hour around a lone timestamp instead of matplotlib's years-wide default."""
    if ts_ms and min(ts_ms) == max(ts_ms):
        x = float(_days([ts_ms[0]])[0])
        ax.set_xlim(x - 1 / 48, x + 1 / 48)


def _png(fig: Figure) -> bytes:
    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


def render_equity_curve(points: list[tuple[int, float]], title: str) -> bytes:
    """A single-panel equity chart as PNG bytes.

    Args:
        points: ``(ts_ms, equity)`` in time order, USDT. Empty or a single point is fine.
        title: Shown above the plot.
    """
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    _plot_series(ax, points, color=_BLUE, linewidth=1.2)
    _pad_if_singular(ax, [p[0] for p in points])
    ax.set_title(title)
    ax.set_ylabel("equity (USDT)")
    return _png(fig)


def render_backtest_chart(result: BacktestResult) -> bytes:
    """Price with trade markers (top) over the equity curve (bottom), as PNG bytes.

    Entries: green ▲ for LONG, red ▼ for SHORT, at entry time and price. Exits: ``x`` at exit
    time and price, green for a winning trade (net PnL > 0), red otherwise. The equity panel
    draws ``result.equity_curve`` (or initial -> final balance when the curve is empty) and a
    dashed line at the initial balance.
    """
    fig = Figure(figsize=(12, 7), dpi=100, layout="constrained")
    price_ax, equity_ax = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]}, squeeze=True
    )

    _plot_series(price_ax, result.price_series, color="#555555", linewidth=0.8, label="price")
    trades = result.trades
    if trades:
        for side, marker, color in (("LONG", "^", _GREEN), ("SHORT", "v", _RED)):
            chosen = [t for t in trades if t.side.value == side]
            if chosen:
                price_ax.scatter(
                    _days([t.entry_ts_ms for t in chosen]),
                    [float(t.entry_price) for t in chosen],
                    marker=marker, color=color, s=60, zorder=3, label=f"{side.lower()} entry",
                )
        for won, color, label in ((True, _GREEN, "exit (win)"), (False, _RED, "exit (loss)")):
            chosen = [t for t in trades if (t.net_pnl > 0) is won]
            if chosen:
                price_ax.scatter(
                    _days([t.exit_ts_ms for t in chosen]),
                    [float(t.exit_price) for t in chosen],
                    marker="x", color=color, s=50, zorder=3, label=label,
                )
        _utc_axis(price_ax)
        price_ax.legend(loc="best", fontsize="small")
    price_ax.set_title(f"{result.symbol} {result.timeframe}: {len(trades)} trades")
    price_ax.set_ylabel("price")

    curve = result.equity_curve or [
        (result.first_ts_ms, float(result.initial_balance)),
        (result.last_ts_ms, float(result.final_balance)),
    ]
    _plot_series(equity_ax, curve, color=_BLUE, linewidth=1.2)
    equity_ax.axhline(float(result.initial_balance), color="#999999", linestyle="--", linewidth=0.8)
    equity_ax.set_ylabel("equity (USDT)")
    equity_ax.set_xlabel("time (UTC)")
    _pad_if_singular(equity_ax, [  # the x axis is shared: pad only if everything is one instant
        *(p[0] for p in result.price_series), *(p[0] for p in curve),
        *(t.entry_ts_ms for t in trades), *(t.exit_ts_ms for t in trades),
    ])
    return _png(fig)


def write_chart(path: str | Path, png_bytes: bytes) -> None:
    """Write PNG bytes to ``path``, creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes)
