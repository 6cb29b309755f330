"""Fakes at the engine's ports, shared by tests."""

from __future__ import annotations

from decimal import Decimal

from core.binance.market_rest import MarketRest, RestRequester, WeightPools, WorkerBudget
from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    EquitySnapshot,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionUpdate,
)
from core.filters import SymbolFilters, filters_for

ZERO = Decimal(0)


class FixedClock:
    """Server time that moves only when a test sets ``ms``."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def now_ms(self) -> int:
        return self.ms


class FakeExchange:
    """A Connection that records orders and lets the test decide their fate.

    It keeps the exchange's truth (signed position per symbol) and publishes what Binance would:
    OrderUpdate and PositionUpdate. ``violations`` collects any entry order that arrived while a
    position was open or another entry order was outstanding.
    """

    name = "fake"

    def __init__(self, bus: EventBus, prices: dict[str, Decimal]) -> None:
        self.bus = bus
        self.prices = prices
        self.clock = FixedClock(1_700_000_000_000)
        self.account: EquitySnapshot | None = None  # what refresh_account reads
        self.account_reads = 0
        self.positions: dict[str, Decimal] = {}
        self.outstanding: dict[str, OrderRequest] = {}
        self.filled: dict[str, Decimal] = {}
        self.submitted: list[OrderRequest] = []
        self.violations: list[str] = []
        self._oid = 0
        self._tid = 0
        self.last_update: OrderUpdate | None = None

    # --- Connection port
    def filters(self, symbol: str) -> SymbolFilters:
        return filters_for(symbol)

    def reference_price(self, symbol: str) -> Decimal | None:
        return self.prices.get(symbol)

    def cancel_order(self, symbol: str, client_order_id: str) -> None:
        if client_order_id in self.outstanding:
            self.finish(client_order_id, OrderStatus.CANCELED)

    def submit_order(self, request: OrderRequest) -> None:
        if not request.reduce_only:
            open_pos = [s for s, q in self.positions.items() if q]
            entries = [c for c, r in self.outstanding.items() if not r.reduce_only]
            if open_pos or entries:
                self.violations.append(
                    f"entry {request.client_order_id} while positions={open_pos} entries={entries}")
        self.submitted.append(request)
        self.outstanding[request.client_order_id] = request
        self.filled[request.client_order_id] = ZERO

    # --- ExchangeAccount port
    async def refresh_account(self) -> Decimal:
        """Publish ``account`` (set by the test) as the exchange would; its equity."""
        self.account_reads += 1
        assert self.account is not None, "set FakeExchange.account first"
        self.bus.publish(self.account)
        return self.account.equity

    # --- test controls
    def open_position_count(self) -> int:
        return sum(1 for q in self.positions.values() if q)

    def fill(self, cid: str, qty: Decimal | None = None, *, position_first: bool = True) -> None:
        """Fill ``qty`` (default: all the rest) of an outstanding order at the symbol's price."""
        req = self.outstanding[cid]
        rest = req.quantity - self.filled[cid]
        qty = rest if qty is None else min(qty, rest)
        held = self.positions.get(req.symbol, ZERO)
        signed = qty if req.side is OrderSide.BUY else -qty
        if req.reduce_only:
            if held == 0 or (held > 0) == (signed > 0):
                self.finish(cid, OrderStatus.EXPIRED, reason="reduce-only: nothing to reduce")
                return
            qty = min(qty, abs(held))
            signed = qty if req.side is OrderSide.BUY else -qty
        price = self.prices[req.symbol]
        self.filled[cid] += qty
        self._tid += 1
        new_pos = held + signed
        self.positions[req.symbol] = new_pos
        done = self.filled[cid] == req.quantity
        up = OrderUpdate(
            symbol=req.symbol, client_order_id=cid, order_id=1, side=req.side,
            order_type=req.order_type,
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            quantity=req.quantity, filled_qty=self.filled[cid], last_fill_qty=qty,
            last_fill_price=price, avg_price=price, reduce_only=req.reduce_only,
            trade_id=self._tid, ts_ms=1,
        )
        pos = PositionUpdate(symbol=req.symbol, quantity=new_pos, entry_price=price, ts_ms=1)
        if done:
            del self.outstanding[cid]
        for ev in ((pos, up) if position_first else (up, pos)):
            self.bus.publish(ev)
        self.last_update = up
        if new_pos == 0:
            self._expire_reduce_only(req.symbol)

    def finish(self, cid: str, status: OrderStatus, reason: str = "") -> None:
        """End an outstanding order without (further) fills: REJECTED, CANCELED or EXPIRED."""
        req = self.outstanding.pop(cid)
        up = OrderUpdate(
            symbol=req.symbol, client_order_id=cid, order_id=1, side=req.side,
            order_type=req.order_type, status=status, quantity=req.quantity,
            filled_qty=self.filled[cid], reduce_only=req.reduce_only, reason=reason, ts_ms=1,
        )
        self.last_update = up
        self.bus.publish(up)

    def external_close(self, symbol: str) -> None:
        """The exchange closes the position (its stop order or a liquidation)."""
        held = self.positions.get(symbol, ZERO)
        if not held:
            return
        self.positions[symbol] = ZERO
        self._tid += 1
        self.bus.publish(PositionUpdate(symbol=symbol, quantity=ZERO, entry_price=ZERO, ts_ms=1))
        self.bus.publish(OrderUpdate(
            symbol=symbol, client_order_id="exchange-stop", order_id=99,
            side=OrderSide.SELL if held > 0 else OrderSide.BUY,
            order_type=OrderType.STOP_MARKET, status=OrderStatus.FILLED, quantity=abs(held),
            filled_qty=abs(held), last_fill_qty=abs(held), last_fill_price=self.prices[symbol],
            trade_id=self._tid, ts_ms=1,
        ))
        self._expire_reduce_only(symbol)

    def _expire_reduce_only(self, symbol: str) -> None:
        for cid, r in list(self.outstanding.items()):
            if r.symbol == symbol and r.reduce_only:
                self.finish(cid, OrderStatus.EXPIRED, reason="position closed")


def fund(bus: EventBus, amount: str = "10000", asset: str = "USDT") -> None:
    bus.publish(BalanceUpdate(asset=asset, wallet_balance=Decimal(amount),
                              available_balance=Decimal(amount), ts_ms=0))


class FakeMarketDataRest:
    """A ``core.ports.MarketDataRest`` over a test's REST client and limiter: records the
    budget fractions asked for and counts ``close()`` calls (it owns nothing)."""

    def __init__(self, rest: RestRequester, limiter: WeightPools) -> None:
        self.rest = rest
        self.limiter = limiter
        self.fractions: list[float] = []
        self.budgets: list[WorkerBudget] = []
        self.closed = 0

    def market_rest(self, budget_fraction: float) -> MarketRest:
        self.fractions.append(budget_fraction)
        budget = WorkerBudget(self.limiter, budget_fraction)
        self.budgets.append(budget)
        return MarketRest(self.rest, budget, self.limiter.clock.now_ms)

    async def close(self) -> None:
        self.closed += 1
