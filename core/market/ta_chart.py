"""The /ta chart: candlesticks, EMA 20/50/200, Bollinger bands, volume, RSI and MACD panes
(matplotlib object API, Agg canvas; safe in an executor thread). Times are UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from core.market.indicators_ta import IndicatorSet
from utils.charts import png_bytes

__all__ = ["render_ta_chart"]

_UP, _DOWN = "#26a69a", "#ef5350"
_EMA_STYLES = (("ema20", "#ff9800", "EMA20"), ("ema50", "#2962ff", "EMA50"),
               ("ema200", "#9c27b0", "EMA200"))


def _boxes(x: np.ndarray, bottom: np.ndarray, top: np.ndarray, half: float) -> np.ndarray:
    """Rectangles ``(n, 4, 2)`` centred on ``x``, for one PolyCollection (one draw call
    instead of one patch per bar)."""
    left, right = x - half, x + half
    return np.stack([np.column_stack([left, bottom]), np.column_stack([left, top]),
                     np.column_stack([right, top]), np.column_stack([right, bottom])], axis=1)


def render_ta_chart(ind: IndicatorSet, title: str, *, bars: int = 120) -> bytes:
    """Candlesticks with EMA 20/50/200 and Bollinger bands, volume with its 20-bar average,
    RSI(14) and MACD(12, 26, 9) panes, as PNG bytes.

    Args:
        ind: indicators over the whole history
            (``core.market.indicators_ta.compute_indicators``); only the last ``bars`` bars
            are drawn, so the long EMAs are already settled there.
        title: shown above the price pane (e.g. ``"BTCUSDT 15m"``).
        bars: how many of the latest bars to draw.

    The x axis is the bar index (no gaps for missing time), labelled with UTC open times.
    Pure: safe to call in an executor thread (object API, Agg canvas).
    """
    n = len(ind.ohlcv)
    start = max(0, n - bars)
    sl = slice(start, n)
    o, h, lo, c = (a[sl] for a in (ind.ohlcv.open, ind.ohlcv.high, ind.ohlcv.low,
                                    ind.ohlcv.close))
    vol, open_ms = ind.ohlcv.volume[sl], ind.ohlcv.open_ms[sl]
    x = np.arange(len(c), dtype=np.float64)
    up = c >= o
    colors = np.where(up, _UP, _DOWN)

    fig = Figure(figsize=(10, 7.5), dpi=100)
    grid = fig.add_gridspec(4, 1, height_ratios=[4, 1, 1.2, 1.4], hspace=0.06,
                            left=0.07, right=0.93, top=0.95, bottom=0.07)
    price_ax = fig.add_subplot(grid[0])
    axes = [price_ax] + [fig.add_subplot(grid[i], sharex=price_ax) for i in (1, 2, 3)]
    vol_ax, rsi_ax, macd_ax = axes[1:]

    if len(c):
        wicks = np.stack([np.column_stack([x, lo]), np.column_stack([x, h])], axis=1)
        price_ax.add_collection(LineCollection(list(wicks), colors=colors, linewidths=0.8))
        body_top = np.maximum(o, c)
        body_bottom = np.minimum(o, c)
        flat = body_top - body_bottom < (np.nanmax(h) - np.nanmin(lo)) * 1e-4
        body_top = np.where(flat, body_bottom + (np.nanmax(h) - np.nanmin(lo)) * 1e-4, body_top)
        price_ax.add_collection(PolyCollection(list(_boxes(x, body_bottom, body_top, 0.35)),
                                               facecolors=colors, edgecolors=colors,
                                               linewidths=0.5))
        price_ax.fill_between(x, ind.bb_lower[sl], ind.bb_upper[sl], color="#90a4ae",
                              alpha=0.15, linewidth=0, label="Bollinger 20, 2")
        price_ax.plot(x, ind.bb_middle[sl], color="#90a4ae", linewidth=0.7)
        for name, color, label in _EMA_STYLES:
            price_ax.plot(x, getattr(ind, name)[sl], color=color, linewidth=1.0, label=label)
        price_ax.set_xlim(-1, len(c))
        bottom = float(np.nanmin(np.concatenate([lo, ind.bb_lower[sl]])))
        top = float(np.nanmax(np.concatenate([h, ind.bb_upper[sl]])))
        pad = (top - bottom) * 0.05 or abs(top) * 1e-4 or 1.0
        price_ax.set_ylim(bottom - pad, top + pad)
        price_ax.legend(loc="upper left", fontsize="x-small", ncol=4, framealpha=0.6)

        vol_ax.add_collection(PolyCollection(list(_boxes(x, np.zeros_like(vol), vol, 0.35)),
                                             facecolors=colors, edgecolors="none", alpha=0.6))
        vol_ax.plot(x, ind.volume_sma20[sl], color="#555555", linewidth=0.8)
        vol_ax.set_ylim(0, max(float(np.nanmax(vol)), 1e-12) * 1.1)

        rsi_ax.plot(x, ind.rsi[sl], color="#7e57c2", linewidth=0.9)
        for level in (30, 70):
            rsi_ax.axhline(level, color="#999999", linestyle="--", linewidth=0.6)
        hist = ind.macd_hist[sl]
        hist0 = np.nan_to_num(hist)
        macd_ax.add_collection(PolyCollection(
            list(_boxes(x, np.minimum(hist0, 0), np.maximum(hist0, 0), 0.35)),
            facecolors=np.where(hist0 >= 0, _UP, _DOWN), edgecolors="none", alpha=0.6))
        macd_ax.plot(x, ind.macd[sl], color="#2962ff", linewidth=0.9, label="MACD")
        macd_ax.plot(x, ind.macd_signal[sl], color="#ff6d00", linewidth=0.9, label="signal")
        finite = hist[np.isfinite(hist)]
        lines = np.concatenate([finite, ind.macd[sl][np.isfinite(ind.macd[sl])],
                                ind.macd_signal[sl][np.isfinite(ind.macd_signal[sl])]])
        if lines.size:
            span = float(np.max(np.abs(lines))) or 1.0
            macd_ax.set_ylim(-span * 1.1, span * 1.1)
        macd_ax.legend(loc="upper left", fontsize="x-small", ncol=2, framealpha=0.6)
    else:
        price_ax.text(0.5, 0.5, "no data", ha="center", va="center",
                      transform=price_ax.transAxes)

    rsi_ax.set_ylim(0, 100)
    rsi_ax.set_yticks([30, 50, 70])
    for ax, label, ticks in zip(axes, ("price", "volume", "RSI 14", "MACD"), (6, 2, 3, 3),
                                strict=True):
        if ax is not rsi_ax:
            ax.yaxis.set_major_locator(MaxNLocator(ticks))
        ax.set_ylabel(label, fontsize="small")
        ax.grid(True, alpha=0.25)
        ax.yaxis.tick_right()
        ax.tick_params(labelsize="x-small")
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)

    def tick_label(value: float, _pos: object) -> str:
        i = round(value)
        if not 0 <= i < len(open_ms):
            return ""
        return datetime.fromtimestamp(int(open_ms[i]) / 1000, UTC).strftime("%m-%d %H:%M")

    macd_ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    macd_ax.xaxis.set_major_formatter(FuncFormatter(tick_label))
    macd_ax.set_xlabel("time (UTC)", fontsize="small")
    price_ax.set_title(title)
    return png_bytes(fig, compress_level=1)
