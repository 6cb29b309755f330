"""Crafted candles for rule tests: explicit OHLC bars, a mirror (prices reflected, so a LONG
setup becomes the SHORT one), and a runner collecting decisions by bar index."""

from __future__ import annotations

from core.events import Candle

TF = 60_000
MIRROR = 400.0  # p -> MIRROR - p keeps every crafted price positive


def bar(i: int, o: float, h: float, lo: float, c: float, symbol: str = "BTCUSDT") -> Candle:
    assert lo <= min(o, c) <= max(o, c) <= h, (i, o, h, lo, c)
    return Candle(symbol, i * TF + TF - 1, TF, i * TF, o, h, lo, c, 1.0, True)


def closes(values, spread: float = 1.0) -> list[Candle]:
    """One bar per close: open at the previous close, high/low ``spread`` around."""
    out = []
    prev = values[0]
    for i, c in enumerate(values):
        out.append(bar(i, prev, max(prev, c) + spread, min(prev, c) - spread, c))
        prev = c
    return out


def mirror(candles: list[Candle]) -> list[Candle]:
    return [bar(i, MIRROR - c.open, MIRROR - c.low, MIRROR - c.high, MIRROR - c.close)
            for i, c in enumerate(candles)]


def run(rule, candles):
    """Feed every candle; ``[(index, decision)]`` for the candles that decided."""
    out = []
    for i, c in enumerate(candles):
        d = rule.on_candle(c)
        if d is not None:
            out.append((i, d))
    return out
