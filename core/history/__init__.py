"""Historical market data: Binance's public USDⓈ-M futures archive (data.binance.vision) and,
for recent days it has not published yet, the REST API; stored under ``DATA_DIR/history/`` in
the archive's own layout, which the replay reads as it is (``core/replay/``).
"""

from core.history.layout import HistoryError

__all__ = ["HistoryError"]
