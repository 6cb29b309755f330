"""Symbol trading rules and Decimal rounding at the order edge.

Facts from Binance USDⓈ-M ``GET /fapi/v1/exchangeInfo`` (shared/binance/PROTOCOL.md §6):
PRICE_FILTER ``tickSize`` applies to prices and trigger prices; LOT_SIZE ``stepSize`` to LIMIT
quantities and MARKET_LOT_SIZE to MARKET quantities; MIN_NOTIONAL ``notional`` is checked
against the mark price for MARKET orders and does not apply to reduce-only orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any


class FilterError(ValueError):
    """An order violates a symbol filter; the message says which and by how much."""


class QuantityTooSmall(FilterError):
    pass


class NotionalTooSmall(FilterError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolFilters:
    """One symbol's trading rules. Prices in quote asset, quantities in base asset."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    min_price: Decimal = Decimal(0)
    max_price: Decimal = Decimal(0)
    max_leverage: int = 125
    quote_asset: str = "USDT"
    status: str = "TRADING"


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= ``value`` (exact Decimal arithmetic)."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` that is >= ``value``."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def round_quantity(qty: Decimal, filters: SymbolFilters, *, market: bool) -> Decimal:
    """Floor a base-asset quantity to the symbol's step size.

    Uses MARKET_LOT_SIZE for market orders, LOT_SIZE otherwise, and caps at maxQty.

    Raises:
        QuantityTooSmall: the floored quantity is below minQty.
    """
    step = filters.market_step_size if market else filters.step_size
    min_qty = filters.market_min_qty if market else filters.min_qty
    max_qty = filters.market_max_qty if market else filters.max_qty
    out = floor_to_step(qty, step)
    if max_qty > 0 and out > max_qty:
        out = floor_to_step(max_qty, step)
    if out < min_qty or out <= 0:
        raise QuantityTooSmall(
            f"{filters.symbol}: quantity {qty} rounds to {out}, below the minimum {min_qty}"
        )
    return out.quantize(step)


def round_price(price: Decimal, filters: SymbolFilters, *, up: bool | None = None) -> Decimal:
    """Put a price on the symbol's tick grid.

    ``up=None`` rounds to the nearest tick, ``True`` up, ``False`` down (use down for a BUY
    limit and up for a SELL limit so the order stays passive).
    """
    tick = filters.tick_size
    if up is None:
        out = (price / tick).to_integral_value() * tick
    elif up:
        out = ceil_to_step(price, tick)
    else:
        out = floor_to_step(price, tick)
    return out.quantize(tick)


def check_min_notional(qty: Decimal, price: Decimal, filters: SymbolFilters) -> None:
    """Raise NotionalTooSmall if ``qty * price`` is below MIN_NOTIONAL (opening orders only)."""
    notional = qty * price
    if notional < filters.min_notional:
        raise NotionalTooSmall(
            f"{filters.symbol}: notional {notional:.2f} is below the minimum {filters.min_notional}"
        )


def parse_exchange_info(payload: dict[str, Any]) -> dict[str, SymbolFilters]:
    """Parse a ``GET /fapi/v1/exchangeInfo`` body into ``{symbol: SymbolFilters}``.

    Unknown filters and fields are ignored. Raises ``ValueError`` naming the symbol when a
    required filter (PRICE_FILTER, LOT_SIZE) is missing.
    """
    out: dict[str, SymbolFilters] = {}
    for sym in payload.get("symbols", []):
        name = sym["symbol"]
        f = {flt["filterType"]: flt for flt in sym.get("filters", [])}
        try:
            price, lot = f["PRICE_FILTER"], f["LOT_SIZE"]
        except KeyError as exc:
            raise ValueError(f"exchangeInfo: {name} lacks the {exc.args[0]} filter") from None
        mlot = f.get("MARKET_LOT_SIZE", lot)
        notional = f.get("MIN_NOTIONAL", {}).get("notional", "0")
        out[name] = SymbolFilters(
            symbol=name,
            tick_size=Decimal(price["tickSize"]),
            min_price=Decimal(price.get("minPrice", "0")),
            max_price=Decimal(price.get("maxPrice", "0")),
            step_size=Decimal(lot["stepSize"]),
            min_qty=Decimal(lot["minQty"]),
            max_qty=Decimal(lot["maxQty"]),
            market_step_size=Decimal(mlot["stepSize"]),
            market_min_qty=Decimal(mlot["minQty"]),
            market_max_qty=Decimal(mlot["maxQty"]),
            min_notional=Decimal(notional),
            quote_asset=sym.get("quoteAsset", "USDT"),
            status=sym.get("status", "TRADING"),
        )
    return out


def _defaults(symbol: str, tick: str, step: str, min_qty: str, max_mkt: str, notional: str,
              lev: int) -> SymbolFilters:
    return SymbolFilters(
        symbol=symbol, tick_size=Decimal(tick), step_size=Decimal(step),
        min_qty=Decimal(min_qty), max_qty=Decimal(max_mkt) * 10,
        market_step_size=Decimal(step), market_min_qty=Decimal(min_qty),
        market_max_qty=Decimal(max_mkt), min_notional=Decimal(notional), max_leverage=lev,
    )


# Mainnet values of the symbols in shared/data (exchangeInfo, 2026), used by the paper exchange
# and backtests when no EXCHANGE_INFO_PATH is given. Live trading always reads exchangeInfo.
DEFAULT_FILTERS: dict[str, SymbolFilters] = {
    f.symbol: f
    for f in (
        _defaults("BTCUSDT", "0.10", "0.001", "0.001", "120", "100", 125),
        _defaults("ETHUSDT", "0.01", "0.001", "0.001", "2000", "20", 125),
        _defaults("BNBUSDT", "0.010", "0.01", "0.01", "2000", "5", 75),
        _defaults("XRPUSDT", "0.0001", "0.1", "0.1", "1000000", "5", 75),
        _defaults("SOLUSDT", "0.0100", "0.01", "0.01", "5000", "5", 100),
        _defaults("DOGEUSDT", "0.00001", "1", "1", "10000000", "5", 75),
    )
}


def filters_for(symbol: str, table: dict[str, SymbolFilters] | None = None) -> SymbolFilters:
    """Filters for ``symbol`` from ``table`` or DEFAULT_FILTERS.

    Raises:
        KeyError: the symbol is unknown (message names it).
    """
    for source in (table or {}, DEFAULT_FILTERS):
        if symbol in source:
            return source[symbol]
    raise KeyError(f"no trading rules for {symbol}: add it to EXCHANGE_INFO_PATH")
