"""The /pnl equity chart: plain y numbers (no offset notation), readable UTC dates, a marker
at every trade close."""

from __future__ import annotations

import re

from matplotlib.backends.backend_agg import FigureCanvasAgg

from utils.charts import equity_figure

T0 = 1_723_075_200_000  # 2024-08-08 00:00 UTC
MIN = 60_000


def test_equity_chart_has_no_offset_axis_and_marks_every_close():
    # equity that moves by cents around 1000: matplotlib's default would label it "+1e3"
    points = [(T0 + i * MIN, 1000.0 + (i % 7) * 0.013) for i in range(120)]
    closes = [(T0 + 10 * MIN, True), (T0 + 50 * MIN, False), (T0 + 90 * MIN, True)]
    fig = equity_figure(points, "PnL today", closes=closes, ylabel="equity (USDT)")
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    assert ax.yaxis.get_offset_text().get_text() == ""
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{2}", label) for label in labels)
    assert any(label.startswith("1,000.") for label in labels)
    markers = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert markers == {"won": 2, "lost": 1}
    dates = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert dates and not any("e+" in d or "1e" in d for d in dates)
