"""Engine events: immutable, typed, timestamped.

Two families, both immutable:

* Market data (``MarketTick``, ``BookTicker``, ``MarkPrice``, ``Candle``, ``FundingRate``) are
  ``NamedTuple``s. They are created hundreds of thousands of times a second during replay, and a
  tuple is built about 3x faster than a frozen dataclass (bench/replay_throughput.py). Prices and
  quantities here are ``float``: they feed analytics, never an order. The paper exchange turns a
  price into ``Decimal`` with ``Decimal(repr(price))``, which restores the exchange's decimal
  string exactly (Binance prices carry far fewer than 15 significant digits).
* Everything else (signals, orders, fills, positions, balances, state) is a frozen, slotted,
  keyword-only dataclass. Money in them is ``Decimal`` (USDT or the symbol's margin asset).

All ``ts_ms`` fields are exchange time in milliseconds since the Unix epoch (Binance ``E``),
never the local clock, so live, paper and backtest make the same decisions on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import NamedTuple


class Side(str, Enum):
    """Position direction."""

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def sign(self) -> int:
        """+1 for LONG, -1 for SHORT."""
        return 1 if self is Side.LONG else -1

    @property
    def entry_order_side(self) -> OrderSide:
        """The order side that opens this position (BUY for LONG)."""
        return OrderSide.BUY if self is Side.LONG else OrderSide.SELL

    @property
    def exit_order_side(self) -> OrderSide:
        """The order side that closes this position (SELL for LONG)."""
        return OrderSide.SELL if self is Side.LONG else OrderSide.BUY


class OrderSide(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    LIQUIDATION = "LIQUIDATION"


class OrderStatus(str, Enum):
    """Binance order status (``X`` in ORDER_TRADE_UPDATE) plus REJECTED for refused requests."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)


class ExitReason(str, Enum):
    """Why a position was closed (the ``exit_reason`` of a round trip)."""

    TP = "TP"
    SL = "SL"
    TRAILING = "TRAILING"
    SIGNAL = "SIGNAL"
    MANUAL = "MANUAL"
    FLAT = "FLAT"
    END = "END"
    LIQUIDATION = "LIQUIDATION"
    HALT = "HALT"  # the kill switch (RISK or /halt) closed the position


class EngineMode(str, Enum):
    """ARMED opens positions on signals; DISARMED only manages an open one; HALTED does nothing
    until a human intervenes (set after a fault the engine cannot resolve itself)."""

    ARMED = "ARMED"
    DISARMED = "DISARMED"
    HALTED = "HALTED"


class PositionPhase(str, Enum):
    """ORDERING's state machine: FLAT -> ENTERING -> OPEN -> EXITING -> FLAT."""

    FLAT = "FLAT"
    ENTERING = "ENTERING"
    OPEN = "OPEN"
    EXITING = "EXITING"


# --------------------------------------------------------------------------- market data


class MarketTick(NamedTuple):
    """One market trade (``@trade``/``@aggTrade`` stream or a trades CSV row).

    Only trades with ``X == "MARKET"`` become ticks; insurance-fund and ADL prints are dropped at
    the parser. ``trade_ms`` is the trade time (``T``), ``ts_ms`` the event time (``E``).
    """

    symbol: str
    ts_ms: int
    trade_ms: int
    price: float
    quantity: float
    buyer_maker: bool


class BarTick(MarketTick):
    """A price on the path of a recorded kline (O, then L/H, then C), replayed before the
    kline itself when the data has no trades, so fills, stops and liquidations see the bar's
    range. TRENDING ignores it (it subscribes to MarketTick by exact type)."""

    __slots__ = ()


class BookTicker(NamedTuple):
    """Best bid/ask (``@bookTicker`` stream or bookTicker CSV). Prices in quote asset."""

    symbol: str
    ts_ms: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float


class MarkPrice(NamedTuple):
    """``markPriceUpdate``: mark and index price, funding rate (fraction, e.g. 0.0001 = 0.01 %)
    and next funding time (ms)."""

    symbol: str
    ts_ms: int
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_ms: int


class Candle(NamedTuple):
    """An OHLCV bar. ``open_ms`` is the bar's start; ``ts_ms`` the event time (for a closed bar
    from a klines file, its close time). ``volume`` is in base asset."""

    symbol: str
    ts_ms: int
    interval_ms: int
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


class FundingRate(NamedTuple):
    """A funding settlement at ``ts_ms`` with ``funding_rate`` (fraction) from a funding-rate
    history file; the paper exchange charges it on the open position at the last known price."""

    symbol: str
    ts_ms: int
    funding_rate: float


MARKET_EVENTS = (MarketTick, BarTick, BookTicker, MarkPrice, Candle, FundingRate)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeSignal:
    """TRENDING's proposal to open a position. Never an order: ORDERING decides.

    ``quantity`` is in base asset and not yet rounded (ORDERING floors it to the step size).
    ``stop_loss`` / ``take_profit`` are absolute prices (quote asset). ``strategy`` is the rule's
    catalog id; an ensemble adds ``confidence`` (weighted agreement, 0..1) and ``votes``
    (``(member_id, LONG|SHORT|NONE, strength)`` per member).
    """

    symbol: str
    side: Side
    entry_price: Decimal
    quantity: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    leverage: int
    reason: str
    ts_ms: int
    strategy: str = ""
    confidence: float | None = None
    votes: tuple[tuple[str, str, float], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseRequest:
    """Ask ORDERING to close the open position on ``symbol`` (reduce-only).

    ``trigger_price`` (quote asset) is the level that fired an SL, TP or trailing stop; the
    paper exchange never fills such an exit better than it. None for other exits."""

    symbol: str
    reason: ExitReason
    detail: str = ""
    trigger_price: Decimal | None = None
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalRejected:
    """A TradeSignal ORDERING refused (not ARMED, not FLAT, or a pre-trade check failed)."""

    signal: TradeSignal
    reason: str
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskApproved:
    """RISK let ``signal`` through: every limit passed (or the engine is not ARMED and FLAT,
    where ORDERING refuses it anyway). ORDERING acts only on this, never on a bare
    TradeSignal, so nothing reaches the exchange without passing RISK."""

    signal: TradeSignal
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskRejected:
    """RISK refused ``signal``: ``limit`` (e.g. "daily_loss_usdt") measured ``value`` against
    ``threshold``, both in ``unit`` ("USDT", "%", "count", "s", "x"). ``alert`` is True for
    the first refusal by that limit in its period (UTC day or hour), so alerts never storm."""

    signal: TradeSignal
    limit: str
    value: Decimal
    threshold: Decimal
    unit: str
    detail: str = ""
    alert: bool = True
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HaltRequest:
    """Trip the kill switch: ORDERING sets HALTED with ``reason``, cancels entry orders in
    flight and closes the position at market (exit reason HALT). ``limit`` names the breached
    limit, or "manual" for /halt."""

    reason: str
    limit: str = "manual"
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """What ORDERING asks CONNECTION to place. Quantity and price are already rounded to the
    symbol's filters; ``client_order_id`` is unique and generated before sending."""

    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    client_order_id: str
    reduce_only: bool = False
    price: Decimal | None = None
    intent: str = "ENTRY"  # "ENTRY" or the ExitReason value of a closing order
    trigger_price: Decimal | None = None  # the stop level behind a closing order (paper fills)
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate:
    """An order's new state, from the exchange (ORDER_TRADE_UPDATE) or the paper exchange.

    ``last_fill_qty``/``last_fill_price`` describe this execution (zero when it is not a fill);
    ``filled_qty`` is cumulative. ``commission`` is the fee of this fill in ``commission_asset``
    (positive = charged). ``realized_pnl`` is this fill's realized profit before fees (Binance
    ``rp``). ``trade_id`` is 0 when there is no fill.
    """

    symbol: str
    client_order_id: str
    order_id: int
    side: OrderSide
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_qty: Decimal
    last_fill_qty: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    commission_asset: str = "USDT"
    realized_pnl: Decimal = Decimal(0)
    reduce_only: bool = False
    trade_id: int = 0
    reason: str = ""
    ts_ms: int

    @property
    def is_fill(self) -> bool:
        return self.last_fill_qty > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionUpdate:
    """The exchange's view of a position (ACCOUNT_UPDATE ``P`` or the paper exchange).

    ``quantity`` is signed (negative = short), base asset; zero means flat.
    """

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal = Decimal(0)
    liquidation_price: Decimal = Decimal(0)
    isolated_margin: Decimal = Decimal(0)
    leverage: int = 0
    reason: str = ""
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionOpened:
    """ORDERING's notice that the entry completed: the position and its protective levels.

    ``stop_loss``/``take_profit`` are absolute prices: the signal's distances re-anchored on
    the actual average entry price. FOLLOW_ORDERS watches them; the live adapter places them on
    the exchange as algo orders.
    """

    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    ts_ms: int
    reason: str = ""  # the entry signal's reason (with an ensemble's confidence and votes)


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceUpdate:
    """A wallet balance change (ACCOUNT_UPDATE ``B`` or the paper exchange).

    ``change`` is this event's delta of ``wallet_balance``; ``reason`` uses Binance's ``m``
    vocabulary (ORDER, FUNDING_FEE, ...). ``symbol`` names the position a FUNDING_FEE belongs to.
    ``available_balance`` is None when the source does not report it.
    """

    asset: str
    wallet_balance: Decimal
    change: Decimal = Decimal(0)
    available_balance: Decimal | None = None
    reason: str = ""
    symbol: str = ""
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedTrade:
    """A round trip, entry to exit, in the margin asset (USDT).

    ``net_pnl == gross_pnl - fees + funding`` holds exactly. ``funding`` is signed (received
    positive, paid negative); ``fees`` is positive when charged.
    """

    symbol: str
    side: Side
    entry_ts_ms: int
    exit_ts_ms: int
    entry_price: Decimal
    exit_price: Decimal
    quantity: Decimal
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    net_pnl: Decimal
    exit_reason: ExitReason


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeClosed:
    """Published when a round trip completes."""

    trade: ClosedTrade
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged:
    """An engine mode (ARMED/DISARMED/HALTED) or ORDERING phase change."""

    what: str  # "mode" | "phase"
    old: str
    new: str
    reason: str = ""
    symbol: str = ""
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStatus:
    """A stream or API connection went up or down, or backed off (``detail`` says why)."""

    stream: str
    up: bool
    detail: str = ""
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySnapshot:
    """Wallet balance plus unrealized PnL, USDT, sampled by the journal's schedule."""

    equity: Decimal
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineError:
    """Something went wrong that a human should see (the bus keeps running)."""

    source: str
    message: str
    ts_ms: int
    details: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRejected:
    """Exchange or market input the edge sanity checks kept from the engine (core/sanity.py).

    ``kind`` is the rejected event's type name, ``detail`` its text (journaled: nothing is
    lost), ``ts_ms`` its own timestamp.
    """

    kind: str
    symbol: str
    reason: str
    detail: str
    ts_ms: int


# --------------------------------------------------------------------------- exchange adapter
# Published by the live Binance adapter (core/binance/); the paper exchange never sends them.


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectiveOrderUpdate:
    """An exchange-side protective order (algo STOP_MARKET / TAKE_PROFIT_MARKET) changed.

    ``kind`` is "SL" or "TP"; ``status`` is the algo status (NEW, TRIGGERED, FINISHED,
    CANCELED, REJECTED, EXPIRED) or PLACE_FAILED when the exchange refused to place it.
    ``trigger_price`` is in quote asset; ``detail`` says why (reject reason, -2021 ...).
    """

    symbol: str
    kind: str
    client_algo_id: str
    status: str
    trigger_price: Decimal
    detail: str = ""
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionAdopted:
    """A position found on the exchange at reconciliation (startup or user-stream reconnect)
    that the adapter did not place in this process. ``stops`` says what protects it:
    "adopted" (our SL/TP found on the exchange), "placed" (missing ones re-placed) or "none"
    (levels unknown: FOLLOW_ORDERS and a human must watch it). ``quantity`` is signed."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    stop_loss: Decimal = Decimal(0)
    take_profit: Decimal = Decimal(0)
    stops: str = "none"
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginCall:
    """Binance MARGIN_CALL: the account's margin ratio is high; ``symbols`` are the positions
    named in it. ``maintenance_margin`` is their sum (USDT); ``cross_wallet_balance`` is only
    sent for a cross margin call."""

    symbols: tuple[str, ...]
    maintenance_margin: Decimal
    cross_wallet_balance: Decimal | None = None
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfigChanged:
    """Binance ACCOUNT_CONFIG_UPDATE: a symbol's leverage (``leverage``) or the account's
    multi-assets mode (``multi_assets``) changed (set by us or by hand on the exchange)."""

    symbol: str = ""
    leverage: int | None = None
    multi_assets: bool | None = None
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitBackoff:
    """The adapter is holding back requests: ``pool`` (REQUEST_WEIGHT 1m, ORDERS 10s, ORDERS 1m,
    or IP for a 429/418 answer) is at ``used``/``limit``; nothing is sent to it for
    ``retry_after_s`` seconds. ``banned`` is True for an HTTP 418 IP ban."""

    pool: str
    used: int
    limit: int
    retry_after_s: float
    banned: bool = False
    detail: str = ""
    ts_ms: int
