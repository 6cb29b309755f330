"""The backtest chart: price with trade markers over the equity curve (matplotlib object API,
Agg canvas; safe in an executor thread). Times are UTC."""

from __future__ import annotations

from matplotlib.figure import Figure

from core.backtest.report import BacktestResult
from utils.charts import BLUE, GREEN, RED, days, pad_if_singular, plot_series, png_bytes, utc_axis

__all__ = ["render_backtest_chart"]


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

    plot_series(price_ax, result.price_series, color="#555555", linewidth=0.8, label="price")
    trades = result.trades
    if trades:
        for side, marker, color in (("LONG", "^", GREEN), ("SHORT", "v", RED)):
            chosen = [t for t in trades if t.side.value == side]
            if chosen:
                price_ax.scatter(
                    days([t.entry_ts_ms for t in chosen]),
                    [float(t.entry_price) for t in chosen],
                    marker=marker, color=color, s=60, zorder=3, label=f"{side.lower()} entry",
                )
        for won, color, label in ((True, GREEN, "exit (win)"), (False, RED, "exit (loss)")):
            chosen = [t for t in trades if (t.net_pnl > 0) is won]
            if chosen:
                price_ax.scatter(
                    days([t.exit_ts_ms for t in chosen]),
                    [float(t.exit_price) for t in chosen],
                    marker="x", color=color, s=50, zorder=3, label=label,
                )
        utc_axis(price_ax)
        price_ax.legend(loc="best", fontsize="small")
    price_ax.set_title(f"{result.symbol} {result.timeframe}: {len(trades)} trades")
    price_ax.set_ylabel("price")

    curve = result.equity_curve or [
        (result.first_ts_ms, float(result.initial_balance)),
        (result.last_ts_ms, float(result.final_balance)),
    ]
    plot_series(equity_ax, curve, color=BLUE, linewidth=1.2)
    equity_ax.axhline(float(result.initial_balance), color="#999999", linestyle="--", linewidth=0.8)
    equity_ax.set_ylabel("equity (USDT)")
    equity_ax.set_xlabel("time (UTC)")
    pad_if_singular(equity_ax, [  # the x axis is shared: pad only if everything is one instant
        *(p[0] for p in result.price_series), *(p[0] for p in curve),
        *(t.entry_ts_ms for t in trades), *(t.exit_ts_ms for t in trades),
    ])
    return png_bytes(fig)
