"""Funding settlements of the paper exchange: when they are due, once each.

Sources (Binance USDⓈ-M): ``markPriceUpdate`` announces the rate ``r`` and the next funding time
``T``; a funding-rate history file (``FundingRate`` events) gives past settlements. Both can be
in one replay for the same symbol, so a settlement is identified by its time rounded to the
minute (file rows carry a few ms of jitter, e.g. ``1637193600017``) and charged once.

Payment (USDT, booked to 8 decimals like the wallet): ``−signed_qty × price × rate``; a long pays
a positive rate. ``price`` is the mark price at the settlement when the data has one, else the
last trade price.
"""

from __future__ import annotations

from decimal import Decimal

SETTLEMENT_KEY_MS = 60_000


def settlement_key(ts_ms: int) -> int:
    """The settlement's identity: its time rounded to the nearest minute (ms)."""
    return (ts_ms + SETTLEMENT_KEY_MS // 2) // SETTLEMENT_KEY_MS


def funding_payment(signed_qty: Decimal, price: Decimal, rate: Decimal,
                    quantum: Decimal) -> Decimal:
    """Wallet change of one settlement (negative = paid), quantized to ``quantum``."""
    return (-signed_qty * price * rate).quantize(quantum)


class FundingSchedule:
    """Announced rates and the settlements already charged, per symbol."""

    __slots__ = ("_announced", "_settled")

    def __init__(self) -> None:
        self._announced: dict[str, tuple[float, int]] = {}  # symbol -> (rate, next funding ms)
        self._settled: dict[str, set[int]] = {}

    def announce(self, symbol: str, rate: float, next_funding_ms: int) -> None:
        self._announced[symbol] = (rate, next_funding_ms)

    def due(self, symbol: str, now: int) -> tuple[float, int] | None:
        """``(rate, settlement ms)`` of an announced settlement reached by ``now`` and not yet
        claimed, claiming it; else None."""
        rate, t = self._announced.get(symbol, (0.0, 0))
        if t and now >= t and self.claim(symbol, t):
            return rate, t
        return None

    def claim(self, symbol: str, ts_ms: int) -> bool:
        """Mark the settlement at ``ts_ms`` charged; False if it already was."""
        seen = self._settled.setdefault(symbol, set())
        key = settlement_key(ts_ms)
        if key in seen:
            return False
        seen.add(key)
        if len(seen) > 64:  # keep the recent ones only
            seen.discard(min(seen))
        return True
