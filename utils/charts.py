"""PNG charts with matplotlib's object API (``Figure`` + Agg canvas).

No ``pyplot``: nothing here touches matplotlib's global figure manager or rcParams, so a chart
can be rendered in an executor thread while the event loop keeps running. Times are UTC.

Generic building blocks only (utils/ imports nothing from core/): the backtest chart lives in
core/backtest/chart.py, the /ta chart in core/market/ta_chart.py.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

_DAY_MS = 86_400_000
_EPOCH_DAYS = mdates.date2num(datetime(1970, 1, 1, tzinfo=UTC))
GREEN, RED, BLUE = "#2ca02c", "#d62728", "#1f77b4"


def days(ts_ms: Sequence[int] | np.ndarray) -> np.ndarray:
    """Milliseconds since the Unix epoch -> matplotlib date numbers."""
    return np.asarray(ts_ms, dtype=np.float64) / _DAY_MS + _EPOCH_DAYS


def utc_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.grid(True, alpha=0.3)


def plot_series(ax: Axes, points: Sequence[tuple[int, float]], **style) -> None:
    if not points:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    xs = days([p[0] for p in points])
    ys = [float(p[1]) for p in points]
    if len(points) == 1:
        ax.plot(xs, ys, marker="o", **style)
    else:
        ax.plot(xs, ys, **style)
    utc_axis(ax)


def pad_if_singular(ax: Axes, ts_ms: Sequence[int]) -> None:
    """Show one hour around a lone timestamp instead of matplotlib's years-wide default."""
    if ts_ms and min(ts_ms) == max(ts_ms):
        x = float(days([ts_ms[0]])[0])
        ax.set_xlim(x - 1 / 48, x + 1 / 48)


def png_bytes(fig: Figure, *, compress_level: int | None = None) -> bytes:
    """PNG bytes; ``compress_level`` 0-9 (zlib) trades size for time (None: PIL's default)."""
    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    kwargs = {"pil_kwargs": {"compress_level": compress_level}} if compress_level is not None \
        else {}
    canvas.print_png(buf, **kwargs)
    return buf.getvalue()


def plain_numbers(ax: Axes) -> None:
    """Y tick labels as plain numbers with thousands separators: never matplotlib's offset
    notation (``+1e3`` in a corner), which a trader misreads."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.2f}"))


def equity_figure(points: Sequence[tuple[int, float]], title: str, *,
                  closes: Sequence[tuple[int, bool]] = (),
                  ylabel: str = "equity (USDT)") -> Figure:
    """A single-panel equity chart with a marker at every trade close.

    Args:
        points: ``(ts_ms, equity)`` in time order, USDT. Empty or a single point is fine.
        title: shown above the plot.
        closes: ``(exit ts_ms, won)`` of closed trades: a green up or red down marker on the
            curve at that time.
        ylabel: the y axis label (translated by the caller).
    """
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    plot_series(ax, points, color=BLUE, linewidth=1.2)
    if points and closes:
        xs = [p[0] for p in points]
        ys = [float(p[1]) for p in points]
        for won in (True, False):
            ts = [c[0] for c in closes if c[1] is won]
            if ts:
                ax.scatter(days(ts), np.interp(ts, xs, ys), marker="^" if won else "v",
                           color=GREEN if won else RED, s=40, zorder=3,
                           label="won" if won else "lost")
    pad_if_singular(ax, [p[0] for p in points])
    plain_numbers(ax)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return fig


def render_equity_curve(points: Sequence[tuple[int, float]], title: str, *,
                        closes: Sequence[tuple[int, bool]] = (),
                        ylabel: str = "equity (USDT)") -> bytes:
    """``equity_figure`` as PNG bytes."""
    return png_bytes(equity_figure(points, title, closes=closes, ylabel=ylabel))


def write_chart(path: str | Path, png_bytes: bytes) -> None:
    """Write PNG bytes to ``path``, creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes)
