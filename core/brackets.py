"""Leverage brackets: maximum leverage, maintenance margin and isolated liquidation price.

Facts (Binance USDⓈ-M, shared/binance/PROTOCOL.md §6 and §10):

* ``GET /fapi/v1/leverageBracket[?symbol=]`` answers ``[{symbol, notionalCoef?, brackets:[
  {bracket, initialLeverage, notionalCap, notionalFloor, maintMarginRatio, cum}]}]``; with
  ``symbol`` a single object. Numbers may be JSON numbers or strings.
* The bracket of a position is the one whose ``notionalFloor <= notional < notionalCap``
  (notional in USDT, quantity × price). Its ``initialLeverage`` is the maximum leverage;
  an order that would exceed it is refused (-2027).
* Maintenance margin = ``notional × maintMarginRatio − cum`` (``cum``: maintenance amount, USDT).
* Isolated, one-way liquidation price:
  ``LP = (WB + cum − side·q·EP) / (q·MMR − side·q)``, ``side`` +1 long, −1 short, ``WB`` the
  isolated wallet balance (margin), ``q`` the absolute quantity, ``EP`` the entry price.

The live adapter parses the endpoint with ``parse_leverage_brackets``; paper trading and
backtests load a saved answer (``load_leverage_brackets``; the default is the 2024-10 snapshot
``core/leverage_brackets_2024-10.json``, copied from shared/binance, for BTC, ETH, BNB and XRP).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DEFAULT_BRACKETS_PATH = Path(__file__).with_name("leverage_brackets_2024-10.json")
ZERO = Decimal(0)


class BracketError(ValueError):
    """A leverage-bracket payload is malformed; the message names the symbol and field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bracket:
    """One notional bracket. Notionals and ``cum`` in USDT; ``maint_margin_ratio`` a fraction."""

    bracket: int
    initial_leverage: int
    notional_floor: Decimal
    notional_cap: Decimal
    maint_margin_ratio: Decimal
    cum: Decimal


@dataclass(frozen=True, slots=True)
class SymbolBrackets:
    """A symbol's brackets, sorted by ``notional_floor``."""

    symbol: str
    brackets: tuple[Bracket, ...]

    def for_notional(self, notional: Decimal) -> Bracket:
        """The bracket holding ``abs(notional)`` (USDT); the last one beyond every cap."""
        n = abs(notional)
        for b in self.brackets:
            if n < b.notional_cap:
                return b
        return self.brackets[-1]

    def max_leverage(self, notional: Decimal) -> int:
        """Highest leverage Binance allows for a position of ``notional`` USDT."""
        return self.for_notional(notional).initial_leverage

    def max_notional(self, leverage: int) -> Decimal:
        """Largest notional (USDT) a position may reach at ``leverage`` (Binance's
        ``maxNotionalValue``): the cap of the last bracket allowing that leverage; 0 if none."""
        caps = [b.notional_cap for b in self.brackets if b.initial_leverage >= leverage]
        return max(caps, default=ZERO)

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        """``notional × maintMarginRatio − cum`` of the notional's bracket, USDT."""
        b = self.for_notional(notional)
        return abs(notional) * b.maint_margin_ratio - b.cum


def liquidation_price(brackets: SymbolBrackets, *, quantity: Decimal, entry_price: Decimal,
                      margin: Decimal, tick_size: Decimal | None = None) -> Decimal:
    """Isolated one-way liquidation price (formula in the module docstring), USDT.

    ``quantity`` is signed (> 0 long, < 0 short); the bracket is the one of the entry notional.
    With ``tick_size`` the price is put on the tick grid on the cautious side (up for a long,
    down for a short). 0 for a flat position or a long that cannot be liquidated.
    """
    if quantity == 0:
        return ZERO
    side = 1 if quantity > 0 else -1
    q = abs(quantity)
    b = brackets.for_notional(q * entry_price)
    lp = (margin + b.cum - side * q * entry_price) / (q * b.maint_margin_ratio - side * q)
    if lp <= 0:
        return ZERO
    if tick_size is not None and tick_size > 0:
        rounding = ROUND_CEILING if side > 0 else ROUND_FLOOR
        lp = (lp / tick_size).to_integral_value(rounding=rounding) * tick_size
        lp = lp.quantize(tick_size)
    return lp


def _dec(d: Mapping[str, Any], key: str, symbol: str) -> Decimal:
    try:
        value = d[key]
        if isinstance(value, bool):
            raise TypeError
        out = Decimal(str(value))
    except (KeyError, TypeError, InvalidOperation):
        raise BracketError(f"leverage brackets of {symbol}: bad or missing {key!r}") from None
    if not out.is_finite() or out < 0:
        raise BracketError(f"leverage brackets of {symbol}: {key} {out} is not >= 0")
    return out


def parse_symbol_brackets(obj: Mapping[str, Any]) -> SymbolBrackets:
    """One ``{symbol, brackets: [...]}`` object of ``GET /fapi/v1/leverageBracket``.

    ``notionalCoef`` (a per-user multiplier on the caps and ``cum``, sub-accounts) is applied
    when present. Raises BracketError naming the symbol and field.
    """
    if not isinstance(obj, Mapping) or not isinstance(obj.get("symbol"), str):
        raise BracketError("leverage brackets: an entry has no symbol")
    symbol = obj["symbol"]
    raw = obj.get("brackets")
    if not isinstance(raw, list) or not raw:
        raise BracketError(f"leverage brackets of {symbol}: no brackets")
    coef = _dec(obj, "notionalCoef", symbol) if "notionalCoef" in obj else Decimal(1)
    out = []
    for d in raw:
        if not isinstance(d, Mapping):
            raise BracketError(f"leverage brackets of {symbol}: a bracket is not an object")
        lev = _dec(d, "initialLeverage", symbol)
        if lev < 1 or lev != lev.to_integral_value():
            raise BracketError(f"leverage brackets of {symbol}: initialLeverage {lev}")
        mmr = _dec(d, "maintMarginRatio", symbol)
        if mmr >= 1:
            raise BracketError(f"leverage brackets of {symbol}: maintMarginRatio {mmr} >= 1")
        out.append(Bracket(
            bracket=int(_dec(d, "bracket", symbol)), initial_leverage=int(lev),
            notional_floor=(_dec(d, "notionalFloor", symbol) * coef).normalize(),
            notional_cap=(_dec(d, "notionalCap", symbol) * coef).normalize(),
            maint_margin_ratio=mmr.normalize(), cum=(_dec(d, "cum", symbol) * coef).normalize(),
        ))
    out.sort(key=lambda b: b.notional_floor)
    return SymbolBrackets(symbol, tuple(out))


def parse_leverage_brackets(payload: Any) -> dict[str, SymbolBrackets]:
    """``GET /fapi/v1/leverageBracket`` (a list, or one object when asked for one symbol)
    -> ``{symbol: SymbolBrackets}``. Raises BracketError on a malformed payload."""
    items = [payload] if isinstance(payload, Mapping) else payload
    if not isinstance(items, list):
        raise BracketError("leverage brackets: expected a list or an object")
    return {sb.symbol: sb for sb in map(parse_symbol_brackets, items)}


def load_leverage_brackets(path: str | Path | None = None) -> dict[str, SymbolBrackets]:
    """A saved leverageBracket answer from ``path`` (default: the packaged 2024-10 snapshot).

    Raises:
        BracketError: unreadable file or malformed content (the message names the file).
    """
    path = Path(path) if path is not None else DEFAULT_BRACKETS_PATH
    try:
        payload = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BracketError(f"{path}: cannot read leverage brackets ({exc})") from None
    try:
        return parse_leverage_brackets(payload)
    except BracketError as exc:
        raise BracketError(f"{path}: {exc}") from None


def flat_brackets(symbol: str, maint_margin_ratio: Decimal, max_leverage: int) -> SymbolBrackets:
    """A single bracket (``cum`` 0) for a symbol the bracket table does not know."""
    return SymbolBrackets(symbol, (Bracket(
        bracket=1, initial_leverage=max_leverage, notional_floor=ZERO,
        notional_cap=Decimal("1e18"), maint_margin_ratio=maint_margin_ratio, cum=ZERO),))
