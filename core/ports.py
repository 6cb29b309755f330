"""The ports the engine talks through. Adapters (paper exchange, live Binance)
implement them; tests plug in fakes.

The engine is synchronous (core/event_bus.py), so the order port is fire-and-forget: a call
records what was asked and returns at once; the outcome arrives later on the bus as
``OrderUpdate`` / ``PositionUpdate`` / ``BalanceUpdate`` events, exactly as Binance's user data
stream delivers them. The paper exchange answers on the same dispatch cycle; the live adapter
answers when the exchange does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from core.events import OrderRequest
from core.filters import SymbolFilters

if TYPE_CHECKING:
    from core.binance.market_rest import MarketRest


@runtime_checkable
class Connection(Protocol):
    """CONNECTION: the only door to the exchange (or its paper stand-in)."""

    name: str  # "paper" | "testnet" | "live"

    def filters(self, symbol: str) -> SymbolFilters:
        """Trading rules of ``symbol``. Raises KeyError for an unknown symbol."""
        ...

    def submit_order(self, request: OrderRequest) -> None:
        """Place an order without blocking; its fate arrives as OrderUpdate events."""
        ...

    def cancel_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel an open order without blocking; the outcome arrives as an OrderUpdate."""
        ...

    def reference_price(self, symbol: str) -> Decimal | None:
        """Latest mark price (else last trade price) known to the connection, or None."""
        ...


class ServerTime(Protocol):
    """The exchange's clock."""

    def now_ms(self) -> int:
        """Exchange server time, ms since the epoch."""
        ...


class ExchangeAccount(Protocol):
    """The exchange account behind a live CONNECTION (testnet/live): its server time and an
    account read. The paper exchange computes its account itself and needs neither."""

    @property
    def clock(self) -> ServerTime:
        """The exchange's server time (local wall clock corrected by the measured offset)."""
        ...

    async def refresh_account(self) -> Decimal:
        """Read the account; publish ``BalanceUpdate`` SNAPSHOTs and an ``EquitySnapshot``
        (wallet balance, unrealized PnL, equity in the quote asset) on the bus; return the
        equity. Raises ``core.binance.errors.ExchangeError`` when the read fails."""
        ...


class LiveConnection(Connection, ExchangeAccount, Protocol):
    """The CONNECTION of testnet/live trading: orders plus the exchange account
    (``core.binance.adapter.BinanceConnection``)."""


class MarketDataRest(Protocol):
    """Public market-data REST (klines, 24 h ticker, open interest, mark price and funding
    rate) for the market-data worker, sent through a rate limiter whose REQUEST_WEIGHT pool
    counts it: in testnet/live the CONNECTION's own limiter (trading and market data share the
    per-IP limit), in paper mode a stand-alone public client's.
    ``core.binance.public_rest.PublicRest`` implements it."""

    def market_rest(self, budget_fraction: float) -> MarketRest:
        """Fetchers on a ``WorkerBudget`` of ``budget_fraction`` (0..1] of the pool's
        REQUEST_WEIGHT per minute; they raise ``BudgetExhausted`` instead of waiting."""
        ...

    async def close(self) -> None:
        """Close the REST client if this port owns it (paper); the CONNECTION closes its own
        in ``stop()``. Idempotent."""
        ...


class Component(Protocol):
    """Something the services own for the process's lifetime (e.g. the HTTP status server)."""

    async def start(self) -> None:
        """Start serving; raises if it cannot (e.g. OSError: port in use)."""
        ...

    async def stop(self) -> None:
        """Stop and release resources; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class Metric:
    """One monitoring sample (exported by web/status_server.py as Prometheus text).

    ``kind`` is "gauge" or "counter"; ``labels`` maps label name -> value.
    """

    name: str
    help: str
    value: float
    kind: str = "gauge"
    labels: dict[str, str] = field(default_factory=dict)
