"""The backtest chart: one price panel per traded symbol with its trade markers, over the equity
curve (matplotlib object API, Agg canvas; safe in an executor thread). Times are UTC."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.backtest.report import BacktestResult
from core.events import ClosedTrade
from utils.charts import BLUE, GREEN, RED, days, pad_if_singular, plot_series, png_bytes, utc_axis

__all__ = ["chart_panels", "render_backtest_chart"]


def chart_panels(symbols: int) -> int:
    """Panels of a backtest chart: one price panel per symbol, then the equity panel."""
    return max(symbols, 1) + 1


def _price_panel(ax: Axes, title: str, series: Sequence[tuple[int, float]],
                 trades: list[ClosedTrade]) -> None:
    plot_series(ax, series, color="#555555", linewidth=0.8, label="price")
    if trades:
        for side, marker, color in (("LONG", "^", GREEN), ("SHORT", "v", RED)):
            chosen = [t for t in trades if t.side.value == side]
            if chosen:
                ax.scatter(
                    days([t.entry_ts_ms for t in chosen]),
                    [float(t.entry_price) for t in chosen],
                    marker=marker, color=color, s=60, zorder=3, label=f"{side.lower()} entry",
                )
        for won, color, label in ((True, GREEN, "exit (win)"), (False, RED, "exit (loss)")):
            chosen = [t for t in trades if (t.net_pnl > 0) is won]
            if chosen:
                ax.scatter(
                    days([t.exit_ts_ms for t in chosen]),
                    [float(t.exit_price) for t in chosen],
                    marker="x", color=color, s=50, zorder=3, label=label,
                )
        utc_axis(ax)
        ax.legend(loc="best", fontsize="small")
    ax.set_title(title)
    ax.set_ylabel("price")


def render_backtest_chart(result: BacktestResult) -> bytes:
    """One price panel per traded symbol (top) over the equity curve (bottom), as PNG bytes.

    Entries: green ▲ for LONG, red ▼ for SHORT, at entry time and price. Exits: ``x`` at exit
    time and price, green for a winning trade (net PnL > 0), red otherwise. The equity panel
    draws ``result.equity_curve`` (or initial -> final balance when the curve is empty) and a
    dashed line at the initial balance.
    """
    symbols = list(result.symbols) or [result.symbol]
    multi = len(symbols) > 1
    n = chart_panels(len(symbols))
    fig = Figure(figsize=(12, 4 + 3 * (n - 1)), dpi=100, layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, gridspec_kw={"height_ratios": [3] * (n - 1) + [2]},
                        squeeze=False)[:, 0]
    trades = result.trades
    for ax, sym in zip(axes[:-1], symbols, strict=True):
        mine = [t for t in trades if t.symbol == sym] if multi else trades
        series = result.symbol_prices.get(sym, []) if multi else result.price_series
        _price_panel(ax, f"{sym} {result.timeframe}: {len(mine)} trades", series, mine)
    equity_ax = axes[-1]
    curve = result.equity_curve or [
        (result.first_ts_ms, float(result.initial_balance)),
        (result.last_ts_ms, float(result.final_balance)),
    ]
    plot_series(equity_ax, curve, color=BLUE, linewidth=1.2)
    equity_ax.axhline(float(result.initial_balance), color="#999999", linestyle="--", linewidth=0.8)
    equity_ax.set_ylabel(f"equity ({result.asset})")
    equity_ax.set_xlabel("time (UTC)")
    pad_if_singular(equity_ax, [  # the x axis is shared: pad only if everything is one instant
        *(p[0] for p in result.price_series), *(p[0] for p in curve),
        *(t.entry_ts_ms for t in trades), *(t.exit_ts_ms for t in trades),
    ])
    return png_bytes(fig)
