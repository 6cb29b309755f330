"""Static data of the fake Binance: symbol rules, exchangeInfo, rate limits, request params.

Symbol values are mainnet-like (2026) as in core/filters.py DEFAULT_FILTERS; the exchangeInfo
structure follows shared/binance/samples/rest_exchangeInfo_2022_capture_*.json without the
``MAX_NUM_ALGO_ORDERS`` filter Binance removed on 2025-12-29 (PROTOCOL.md §6).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

D = Decimal
ZERO = D(0)
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


class ApiError(Exception):
    """A Binance error answer: ``{"code": code, "msg": msg}`` with HTTP/WS ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    base: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    min_price: Decimal
    max_price: Decimal
    max_leverage: int
    default_price: Decimal
    price_precision: int
    qty_precision: int
    first_order_id: int

    def price_text(self, value: Decimal) -> str:
        return f"{value:.{self.price_precision}f}"

    def qty_text(self, value: Decimal) -> str:
        return f"{value:.{self.qty_precision}f}"


SYMBOLS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec("BTCUSDT", "BTC", D("0.10"), D("0.001"), D("0.001"), D("1000"), D("120"),
                   D("100"), D("556.80"), D("4529764"), 125, D("68000.00"), 2, 3, 4_129_479_931),
        # ETHUSDT order ids exceed 2^53 on mainnet (PROTOCOL.md §8.10): so do the fake's.
        SymbolSpec("ETHUSDT", "ETH", D("0.01"), D("0.001"), D("0.001"), D("10000"), D("2000"),
                   D("20"), D("39.86"), D("306177"), 125, D("2500.00"), 2, 3,
                   8_389_765_739_703_625_592),
    )
}

# GET /fapi/v1/leverageBracket, from shared/binance/leverage_brackets_2024-10.json:
# (initialLeverage, notionalCap, maintMarginRatio, cum) per bracket
_BRACKET_ROWS = {
    "BTCUSDT": [(125, 50000, "0.004", 0), (100, 600000, "0.005", 50),
                (75, 3000000, "0.0065", 950), (50, 12000000, "0.01", 11450),
                (25, 70000000, "0.02", 131450), (20, 100000000, "0.025", 481450),
                (10, 230000000, "0.05", 2981450), (5, 480000000, "0.1", 14481450),
                (4, 600000000, "0.125", 26481450), (3, 800000000, "0.15", 41481450),
                (2, 1200000000, "0.25", 121481450), (1, 1800000000, "0.5", 421481450)],
    "ETHUSDT": [(125, 50000, "0.004", 0), (100, 600000, "0.005", 50),
                (75, 3000000, "0.0065", 950), (50, 12000000, "0.01", 11450),
                (25, 50000000, "0.02", 131450), (20, 65000000, "0.025", 381450),
                (10, 150000000, "0.05", 2006450), (5, 320000000, "0.1", 9506450),
                (4, 400000000, "0.125", 17506450), (3, 530000000, "0.15", 27506450),
                (2, 800000000, "0.25", 80506450), (1, 1200000000, "0.5", 280506450)],
}


def _brackets(rows: list[tuple[int, int, str, int]]) -> list[dict[str, Any]]:
    out, floor = [], 0
    for i, (lev, cap, mmr, cum) in enumerate(rows, 1):
        out.append({"bracket": i, "initialLeverage": lev, "notionalCap": float(cap),
                    "notionalFloor": float(floor), "maintMarginRatio": float(mmr),
                    "cum": float(cum)})
        floor = cap
    return out


BRACKETS = {s: _brackets(rows) for s, rows in _BRACKET_ROWS.items()}

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]


def exchange_info(server_time_ms: int) -> dict[str, Any]:
    """``GET /fapi/v1/exchangeInfo`` body."""
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_symbol_info(s) for s in SYMBOLS.values()],
    }


def _symbol_info(s: SymbolSpec) -> dict[str, Any]:
    return {
        "symbol": s.symbol, "pair": s.symbol, "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": s.base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": s.price_precision, "quantityPrecision": s.qty_precision,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
        "underlyingSubType": ["PoW"], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": str(s.min_price),
             "maxPrice": str(s.max_price), "tickSize": str(s.tick)},
            {"filterType": "LOT_SIZE", "stepSize": str(s.step), "minQty": str(s.min_qty),
             "maxQty": str(s.max_qty)},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": str(s.step), "minQty": str(s.min_qty),
             "maxQty": str(s.market_max_qty)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": str(s.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
             "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                       "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD", "RPI"],
    }


def num(value: Decimal, places: int = 8) -> str:
    """A user-stream number: "0" for zero (as Binance sends it), else fixed ``places``."""
    return "0" if value == 0 else f"{value:.{places}f}"


def as_text(value: Any) -> str:
    """A JSON request value as the server sees it in the signature payload (PROTOCOL.md §2.3)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return str(value)


class Params:
    """Request parameters (REST strings or WS JSON values) with Binance-style validation."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = {k: as_text(v) for k, v in raw.items() if v is not None}

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key)
        return default if value in (None, "") else value

    def req(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise ApiError(-1102, f"Mandatory parameter '{key}' was not sent, was empty/null, "
                                  "or malformed.")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key, default) if default is not None else self.req(key)
        if value not in allowed:
            raise ApiError(-1102, f"Parameter '{key}' was empty or malformed.")
        return value  # type: ignore[return-value]

    def dec(self, key: str) -> Decimal:
        text = self.req(key)
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ApiError(-1102, f"Parameter '{key}' was empty or malformed.") from None
        if not value.is_finite():
            raise ApiError(-1102, f"Parameter '{key}' was empty or malformed.")
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        text = self.get(key)
        if text is None:
            if default is None:
                self.req(key)
            return default  # type: ignore[return-value]
        try:
            return int(text)
        except ValueError:
            raise ApiError(-1102, f"Parameter '{key}' was empty or malformed.") from None

    def flag(self, key: str) -> bool:
        value = (self.get(key) or "false").lower()
        if value not in ("true", "false"):
            raise ApiError(-1102, f"Parameter '{key}' was empty or malformed.")
        return value == "true"


def on_grid(value: Decimal, step: Decimal, places: int, origin: Decimal = ZERO
            ) -> tuple[bool, bool]:
    """(at most ``places`` decimals, multiple of ``step`` from ``origin``): more decimals than
    the symbol's precision is -1111, off the grid -4014 (price) / -4023 (quantity)."""
    exp = value.normalize().as_tuple().exponent
    precision_ok = not isinstance(exp, int) or exp >= -places
    return precision_ok, (value - origin) % step == 0
