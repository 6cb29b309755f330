"""Isolated one-way positions of the paper exchange: margin, realized PnL, liquidation price.

Binance books USDT amounts to 8 decimals: initial margin (rounded up), realized PnL and the
margin released by a partial close (rounded half-even) are quantized to ``CENT``, so balances
never carry the 28 digits of raw Decimal division. The liquidation price comes from the leverage
bracket of the position's notional (core/brackets.py).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from core.brackets import SymbolBrackets, liquidation_price

ZERO = Decimal(0)
CENT = Decimal("0.00000001")  # Binance books USDT balances, margins and PnL to 8 decimals


def initial_margin(notional: Decimal, leverage: int) -> Decimal:
    """Initial margin of ``notional`` (USDT) at ``leverage``, rounded up to 8 decimals."""
    return (notional / leverage).quantize(CENT, rounding=ROUND_CEILING)


class PaperPosition:
    """One symbol's position: signed quantity, average entry price, isolated margin (USDT),
    liquidation price (Decimal and float for the hot path), leverage, opening time (ms)."""

    __slots__ = ("qty", "entry", "margin", "liq", "liq_f", "leverage", "opened_ms")

    def __init__(self) -> None:
        self.qty = ZERO  # signed
        self.entry = ZERO
        self.margin = ZERO
        self.liq = ZERO
        self.liq_f = 0.0
        self.leverage = 1
        self.opened_ms = 0

    def apply_fill(self, signed: Decimal, price: Decimal, ts: int, leverage: int) -> Decimal:
        """Book a fill of ``signed`` quantity at ``price``; returns the realized PnL (USDT).

        Opening or adding moves the average entry and adds initial margin at the position's
        leverage (``leverage`` for a new position); reducing releases margin pro rata.
        """
        qty = abs(signed)
        if self.qty == 0 or (self.qty > 0) == (signed > 0):  # open or add
            new_qty = self.qty + signed
            self.entry = (self.entry * abs(self.qty) + price * qty) / abs(new_qty)
            if self.qty == 0:
                self.opened_ms = ts
                self.leverage = leverage
            self.qty = new_qty
            self.margin += initial_margin(qty * price, self.leverage)
            return ZERO
        closed = min(qty, abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        realized = ((price - self.entry) * closed * direction).quantize(CENT)
        self.margin -= (self.margin * closed / abs(self.qty)).quantize(CENT)
        self.qty += signed
        if self.qty == 0:
            self.entry = self.margin = ZERO
        return realized

    def update_liquidation(self, brackets: SymbolBrackets, tick: Decimal | None) -> None:
        """Recompute the liquidation price (0 when flat)."""
        if self.qty == 0:
            self.liq, self.liq_f = ZERO, 0.0
            return
        self.liq = liquidation_price(brackets, quantity=self.qty, entry_price=self.entry,
                                     margin=self.margin, tick_size=tick)
        self.liq_f = float(self.liq)

    def crossed(self, price: float) -> bool:
        """Whether ``price`` (mark, else last) reached the liquidation price."""
        if self.qty > 0:
            return price <= self.liq_f
        return self.qty < 0 and price >= self.liq_f
