"""Typed Binance messages that have no engine event in core/events.py.

Frozen, slotted, keyword-only like the engine events. Money is ``Decimal``; ``ts_ms`` is the
exchange event time ``E`` (ms since the Unix epoch). Field sources are the Binance USDⓈ-M user
data stream and WebSocket API pages (shared/binance/PROTOCOL.md §2.2, §3.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from core.binance.errors import ExchangeError, classify
from core.events import OrderSide


class AlgoStatus(str, Enum):
    """ALGO_UPDATE ``X``: NEW -> TRIGGERING -> TRIGGERED -> FINISHED, or CANCELED / REJECTED /
    EXPIRED (§3.4)."""

    NEW = "NEW"
    CANCELED = "CANCELED"
    TRIGGERING = "TRIGGERING"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in (AlgoStatus.FINISHED, AlgoStatus.CANCELED, AlgoStatus.REJECTED,
                        AlgoStatus.EXPIRED)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlgoUpdate:
    """ALGO_UPDATE: a conditional (algo) order's new state.

    ``me_order_id`` is the matching-engine order id (``ai``, a string on the wire, "" until
    the order triggers -> None); once set, that order's fills arrive as ORDER_TRADE_UPDATE with
    ``i == me_order_id``. ``avg_price``/``executed_qty`` describe that order (``ap``/``aq``).
    ``reason`` is ``rm`` (e.g. "Reduce Only reject"), "" when absent.
    """

    client_algo_id: str
    algo_id: int
    algo_type: str
    order_type: str            # STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT, TRAILING_...
    symbol: str
    side: OrderSide
    position_side: str
    status: AlgoStatus
    trigger_price: Decimal
    price: Decimal
    quantity: Decimal
    close_position: bool
    reduce_only: bool
    working_type: str
    me_order_id: int | None
    avg_price: Decimal
    executed_qty: Decimal
    reason: str
    trigger_ms: int
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeLite:
    """TRADE_LITE: a fast fill notice without fee or realized PnL (§3.4). It may arrive before
    the ORDER_TRADE_UPDATE of the same trade; dedupe on (symbol, trade_id)."""

    symbol: str
    client_order_id: str
    order_id: int
    side: OrderSide
    quantity: Decimal          # original order quantity
    price: Decimal             # original order price (0 for MARKET)
    last_fill_qty: Decimal
    last_fill_price: Decimal
    trade_id: int
    maker: bool
    trade_ms: int
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginCallPosition:
    """One position of a MARGIN_CALL ``p`` entry."""

    symbol: str
    position_side: str
    quantity: Decimal
    margin_type: str
    isolated_wallet: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    maintenance_margin: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginCall:
    """MARGIN_CALL. ``cross_wallet_balance`` is only present for a cross margin call."""

    cross_wallet_balance: Decimal | None
    positions: tuple[MarginCallPosition, ...]
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfigUpdate:
    """ACCOUNT_CONFIG_UPDATE: a symbol's leverage (``ac``) or multi-assets mode (``ai``)."""

    symbol: str = ""
    leverage: int | None = None
    multi_assets: bool | None = None
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenKeyExpired:
    """listenKeyExpired: no more user events until a new key is created and reconnected."""

    listen_key: str
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """One ``rateLimits`` entry (WS API response or exchangeInfo). ``count`` is None in
    exchangeInfo, which states limits only."""

    rate_limit_type: str       # REQUEST_WEIGHT | ORDERS
    interval: str              # SECOND | MINUTE | HOUR | DAY
    interval_num: int
    limit: int
    count: int | None = None

    @property
    def interval_s(self) -> int:
        return self.interval_num * _INTERVAL_S.get(self.interval, 0)


_INTERVAL_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


@dataclass(frozen=True, slots=True, kw_only=True)
class WsApiResponse:
    """A WS API response frame (§2.2). ``id`` is None for connection-level errors (e.g. a
    revoked key after ``session.logon``). ``result`` is the raw JSON result (dict or list) on
    success; ``error_code``/``error_msg`` are set otherwise. ``retry_after_ms`` and
    ``server_time_ms`` come from ``error.data`` when Binance sends them (rate limits)."""

    id: str | int | None
    status: int
    result: Any = None
    error_code: int | None = None
    error_msg: str = ""
    rate_limits: tuple[RateLimit, ...] = ()
    retry_after_ms: int | None = None
    server_time_ms: int | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.error_code is None

    @property
    def retry_after_s(self) -> float | None:
        if self.retry_after_ms is None:
            return None
        if self.server_time_ms is None:
            return None
        return max(0.0, (self.retry_after_ms - self.server_time_ms) / 1000)

    def exception(self) -> ExchangeError | None:
        """The classified error of a failed response (see errors.classify), None if ok."""
        if self.ok:
            return None
        return classify(self.error_code, self.error_msg, self.status, self.retry_after_s)
