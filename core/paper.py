"""The paper exchange: a ``Connection`` that fills orders against recorded or live market data.

It answers exactly as the live adapter does, with ``OrderUpdate`` / ``PositionUpdate`` /
``BalanceUpdate`` events on the bus (Binance's ORDER_TRADE_UPDATE and ACCOUNT_UPDATE order:
NEW, then the account update, then the fill).

Model (documented in README "Paper exchange"):

* Prices and their expiry, executable prices and triggered exits: core/paper_prices.py. A
  MARKET order fills at once, whole, at the executable price (a closing order carrying a
  ``trigger_price`` never better than it), moved against the order by ``slippage_ticks`` ticks
  plus ``slippage`` (fraction) and rounded to the tick size away from the order's favour.
  No entry is accepted while the symbol's prices are older than ``stale_ms``.
* Fees: taker fraction of the fill notional, charged in the margin asset at each fill.
* One-way mode, isolated margin (core/paper_margin.py), booked to 8 decimals. The leverage must
  be allowed by the leverage bracket of the position's notional (-2027 otherwise). When the mark
  price (else the last price) reaches the liquidation price, the position is closed at it; the
  margin left over goes as a liquidation clearance fee, so a liquidation loses exactly the
  position's margin.
* Funding (core/paper_funding.py): a settlement announced by ``markPrice`` or given by a funding
  file (``FundingRate``) is charged once, on a position held at that time, at the mark price
  when the data has one, else the last price.
* LIMIT orders are not simulated: the engine sends MARKET orders only (rejected with a reason).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from core.brackets import SymbolBrackets, flat_brackets
from core.event_bus import EventBus
from core.events import (
    BalanceUpdate,
    BarTick,
    BookTicker,
    Candle,
    EquitySnapshot,
    FundingRate,
    MarketTick,
    MarkPrice,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionUpdate,
)
from core.filters import SymbolFilters, ceil_to_step, filters_for, floor_to_step
from core.paper_funding import FundingSchedule, funding_payment
from core.paper_margin import CENT, initial_margin
from core.paper_margin import PaperPosition as _Position
from core.paper_prices import MarketView

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


def _dec(x: float) -> Decimal:
    """Float market price -> the exchange's exact decimal (repr gives the shortest round-trip)."""
    return Decimal(repr(x))


class PaperExchange:
    """Simulated Binance USDⓈ-M account for paper trading and backtests.

    Args:
        bus: the engine's bus (market data in, order/position/balance events out).
        initial_balance: starting wallet in ``quote_asset`` (USDT).
        leverage: leverage applied to new positions (1..the bracket's maximum).
        taker_fee: fraction (0.0005 = 0.05 %).
        slippage: fraction of price moved against every market fill (0.0001 = 1 bp).
        slippage_ticks: whole ticks moved against every market fill, on top of ``slippage``.
        mmr: maintenance margin rate (fraction) of a symbol without leverage brackets.
        filters: symbol rules; DEFAULT_FILTERS fill the gaps.
        brackets: leverage brackets per symbol (core/brackets.py); a symbol without gets one
            bracket of ``mmr`` and its filters' maximum leverage.
        stale_ms: prices older than this are forgotten (core/paper_prices.py); 0 = never.
    """

    name = "paper"

    def __init__(
        self,
        bus: EventBus,
        *,
        initial_balance: Decimal,
        leverage: int,
        taker_fee: Decimal = Decimal("0.0005"),
        slippage: Decimal = Decimal("0.0001"),
        slippage_ticks: int = 0,
        mmr: Decimal = Decimal("0.004"),
        filters: dict[str, SymbolFilters] | None = None,
        brackets: dict[str, SymbolBrackets] | None = None,
        stale_ms: int = 60_000,
        quote_asset: str = "USDT",
    ) -> None:
        self._bus = bus
        self._publish = bus.publish
        self.wallet = initial_balance
        self.leverage = leverage
        self.taker_fee = taker_fee
        self.slippage = slippage
        self.slippage_ticks = slippage_ticks
        self.mmr = mmr
        self._filters = filters or {}
        self._brackets = dict(brackets or {})
        self.asset = quote_asset
        self._positions: dict[str, _Position] = {}
        self.market = MarketView(stale_ms)
        self._funding = FundingSchedule()
        self._order_seq = 0
        self._trade_seq = 0
        self.now_ms = 0
        bus.subscribe(BookTicker, self._on_book)
        bus.subscribe(MarketTick, self._on_tick)
        bus.subscribe(BarTick, self._on_bar_tick)
        bus.subscribe(Candle, self._on_candle)
        bus.subscribe(MarkPrice, self._on_mark)
        bus.subscribe(FundingRate, self._on_funding_rate)

    # ------------------------------------------------------------------ Connection port

    def filters(self, symbol: str) -> SymbolFilters:
        return filters_for(symbol, self._filters)

    def brackets(self, symbol: str) -> SymbolBrackets:
        """Leverage brackets of ``symbol`` (one flat bracket of ``mmr`` when unknown)."""
        b = self._brackets.get(symbol)
        if b is None:
            max_lev = self.filters(symbol).max_leverage if symbol else 125
            b = self._brackets[symbol] = flat_brackets(symbol, self.mmr, max_lev)
        return b

    def reference_price(self, symbol: str) -> Decimal | None:
        p = self.market.reference(symbol)
        return _dec(p) if p else None

    def last_price(self, symbol: str) -> float | None:
        return self.market.last_price(symbol)

    def submit_order(self, request: OrderRequest) -> None:
        """Fill a MARKET order now (events queued on the bus); anything else is rejected."""
        self._order_seq += 1
        oid = self._order_seq
        ts = max(request.ts_ms, self.now_ms)
        reason = self._check(request, ts)
        if reason:
            self._publish(self._update(request, oid, OrderStatus.REJECTED, ts, reason=reason))
            return
        self._publish(self._update(request, oid, OrderStatus.NEW, ts))
        self._fill(request, oid, ts)

    def cancel_order(self, symbol: str, client_order_id: str) -> None:
        # Market orders fill at once; nothing ever rests on the paper book.
        logger.info("paper: cancel %s %s: no open order", symbol, client_order_id)

    # ------------------------------------------------------------------ account views

    def position(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(signed quantity, entry price) of ``symbol``; (0, 0) when flat."""
        p = self._positions.get(symbol)
        return (p.qty, p.entry) if p else (ZERO, ZERO)

    def unrealized_pnl(self) -> Decimal:
        """Σ (price - entry) * signed qty over open positions, at mark (else last) price."""
        total = ZERO
        for sym, p in self._positions.items():
            if p.qty:
                price = self.market.reference(sym)
                if price:
                    total += (_dec(price) - p.entry) * p.qty
        return total

    def equity(self) -> Decimal:
        return self.wallet + self.unrealized_pnl()

    def equity_snapshot(self, ts_ms: int) -> EquitySnapshot:
        """Wallet, unrealized PnL and their sum (USDT) at ``ts_ms``, for the journal."""
        upnl = self.unrealized_pnl()
        return EquitySnapshot(equity=self.wallet + upnl, wallet_balance=self.wallet,
                              unrealized_pnl=upnl, ts_ms=ts_ms)

    def margin_in_use(self) -> Decimal:
        return sum((p.margin for p in self._positions.values() if p.qty), ZERO)

    def available(self) -> Decimal:
        return self.wallet - self.margin_in_use()

    def publish_balance(self, ts_ms: int, reason: str = "SNAPSHOT") -> None:
        self._publish(self._balance(ts_ms, ZERO, reason))

    def snapshot(self) -> dict:
        """The account (wallet, positions, id counters) as JSON-ready strings."""
        return {
            "wallet": str(self.wallet), "order_seq": self._order_seq,
            "trade_seq": self._trade_seq,
            "positions": {
                s: {"qty": str(p.qty), "entry": str(p.entry), "margin": str(p.margin),
                    "leverage": p.leverage, "opened_ms": p.opened_ms}
                for s, p in self._positions.items() if p.qty
            },
        }

    def restore(self, snap: dict) -> None:
        """Load a ``snapshot()``. Raises ValueError/KeyError on a malformed snapshot."""
        self.wallet = Decimal(snap["wallet"])
        self._order_seq = int(snap.get("order_seq", 0))
        self._trade_seq = int(snap.get("trade_seq", 0))
        self._positions.clear()
        for sym, d in snap.get("positions", {}).items():
            p = _Position()
            p.qty, p.entry, p.margin = Decimal(d["qty"]), Decimal(d["entry"]), Decimal(d["margin"])
            p.leverage, p.opened_ms = int(d["leverage"]), int(d.get("opened_ms", 0))
            self._update_liq(sym, p)
            self._positions[sym] = p

    def publish_positions(self, ts_ms: int) -> None:
        """Publish every open position (as the exchange does on reconnect)."""
        for sym, p in list(self._positions.items()):
            self._publish(self._position_update(sym, p, ts_ms, "SNAPSHOT"))

    # ------------------------------------------------------------------ market data

    def _on_book(self, ev: BookTicker) -> None:
        self.market.on_book(ev.symbol, ev.ts_ms, ev.bid, ev.ask)
        self.now_ms = ev.ts_ms

    def _on_tick(self, ev: MarketTick) -> None:
        self.market.on_trade(ev.symbol, ev.ts_ms, ev.price)
        self.now_ms = ev.ts_ms
        if self._positions and not self.market.has_mark(ev.symbol):
            self._check_liquidation(ev.symbol, ev.price, ev.ts_ms)

    def _on_bar_tick(self, ev: BarTick) -> None:
        self.market.on_bar_tick(ev.symbol, ev.ts_ms, ev.price)
        self.now_ms = ev.ts_ms
        if self._positions and not self.market.has_mark(ev.symbol):
            self._check_liquidation(ev.symbol, ev.price, ev.ts_ms)

    def _on_candle(self, ev: Candle) -> None:
        if ev.closed:
            self.market.bar_closed(ev.symbol)

    def _on_mark(self, ev: MarkPrice) -> None:
        sym = ev.symbol
        self.now_ms = ev.ts_ms
        self._settle_due(sym, ev.ts_ms)  # a settlement the previous update announced
        self._funding.announce(sym, ev.funding_rate, ev.next_funding_ms)
        self.market.on_mark(sym, ev.ts_ms, ev.mark_price)
        self._settle_due(sym, ev.ts_ms)  # an update sent while its own settlement runs
        if self._positions:
            self._check_liquidation(sym, ev.mark_price, ev.ts_ms)

    def _on_funding_rate(self, ev: FundingRate) -> None:
        self.now_ms = max(self.now_ms, ev.ts_ms)
        if self._funding.claim(ev.symbol, ev.ts_ms):
            self._settle_funding(ev.symbol, ev.funding_rate, ev.ts_ms)

    # ------------------------------------------------------------------ internals

    def _check(self, req: OrderRequest, ts: int) -> str:
        if req.order_type is not OrderType.MARKET:
            return "paper exchange fills MARKET orders only"
        try:
            f = self.filters(req.symbol)
        except KeyError as exc:
            return str(exc.args[0])
        if req.quantity <= 0 or floor_to_step(req.quantity, f.market_step_size) != req.quantity:
            return f"quantity {req.quantity} is not a positive multiple of {f.market_step_size}"
        price_f = self.market.executable(req.symbol, req.side is OrderSide.BUY)
        if price_f is None:
            return f"no market price yet for {req.symbol}"
        pos = self._positions.get(req.symbol)
        held = pos.qty if pos else ZERO
        signed = req.quantity if req.side is OrderSide.BUY else -req.quantity
        if req.reduce_only:
            if held == 0 or (held > 0) == (signed > 0):
                return "reduce-only order would not reduce the position (-2022)"
            if abs(signed) > abs(held):
                return "reduce-only quantity exceeds the position (-2022)"
            if pos is not None and ts < pos.opened_ms:
                return (f"market data at {ts} ms predates the position opened at "
                        f"{pos.opened_ms} ms: replay older data with a fresh DATA_DIR")
            return ""
        if held != 0 and (held > 0) != (signed > 0):
            return "paper exchange does not reverse positions in one order; close first"
        if not self.market.fresh(req.symbol, ts):
            return (f"no fresh price for {req.symbol}: the data has a gap "
                    f"(prices older than {self.market.stale_ms // 1000} s are not executable)")
        price = self._fill_price(req, f)  # worst fill price
        notional = (abs(held) + req.quantity) * price
        lev = pos.leverage if pos and pos.qty else self.leverage
        allowed = self.brackets(req.symbol).max_leverage(notional)
        if lev > allowed:
            return (f"leverage {lev}x exceeds the {allowed}x the bracket of a {notional:.0f} "
                    f"USDT notional allows (-2027)")
        need = initial_margin(req.quantity * price, lev) + req.quantity * price * self.taker_fee
        if need > self.available():
            return f"margin is insufficient (-2019): need {need:.2f}, have {self.available():.2f}"
        return ""

    def _fill_price(self, req: OrderRequest, f: SymbolFilters) -> Decimal:
        buy = req.side is OrderSide.BUY
        trigger = float(req.trigger_price) if req.trigger_price else None
        raw = self.market.exit_price(req.symbol, buy, trigger) if req.reduce_only \
            else self.market.executable(req.symbol, buy)
        assert raw is not None  # _check saw a price
        tick = f.tick_size
        moved = self.slippage_ticks * tick
        if buy:
            return ceil_to_step(_dec(raw) * (1 + self.slippage) + moved, tick).quantize(tick)
        price = floor_to_step(_dec(raw) * (1 - self.slippage) - moved, tick).quantize(tick)
        return max(price, tick)

    def _fill(self, req: OrderRequest, oid: int, ts: int) -> None:
        self._settle_due(req.symbol, ts)
        f = self.filters(req.symbol)
        price = self._fill_price(req, f)
        qty = req.quantity
        fee = (qty * price * self.taker_fee).quantize(CENT)
        signed = qty if req.side is OrderSide.BUY else -qty
        pos = self._positions.setdefault(req.symbol, _Position())
        realized = pos.apply_fill(signed, price, ts, self.leverage)
        self._update_liq(req.symbol, pos)
        self.wallet += realized - fee
        self._trade_seq += 1
        self._publish(self._balance(ts, realized - fee, "ORDER"))
        self._publish(self._position_update(req.symbol, pos, ts, "ORDER"))
        self._publish(
            self._update(
                req, oid, OrderStatus.FILLED, ts, filled=qty, last_qty=qty, last_price=price,
                commission=fee, realized=realized, trade_id=self._trade_seq,
            )
        )
        if pos.qty == 0:
            del self._positions[req.symbol]

    def _update_liq(self, symbol: str, pos: _Position) -> None:
        try:
            tick: Decimal | None = self.filters(symbol).tick_size
        except KeyError:
            tick = None
        pos.update_liquidation(self.brackets(symbol), tick)

    def _check_liquidation(self, symbol: str, price: float, ts: int) -> None:
        pos = self._positions.get(symbol)
        if pos is not None and pos.crossed(price) and ts >= pos.opened_ms:
            self._liquidate(symbol, pos, ts)  # (data older than the position cannot close it)

    def _liquidate(self, symbol: str, pos: _Position, ts: int) -> None:
        self._settle_due(symbol, ts)
        price = pos.liq
        qty = abs(pos.qty)
        realized = ((price - pos.entry) * pos.qty).quantize(CENT)
        clearance = max(pos.margin + realized, ZERO)  # what is left of the margin
        side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
        self._order_seq += 1
        self._trade_seq += 1
        req = OrderRequest(
            symbol=symbol, side=side, order_type=OrderType.LIQUIDATION, quantity=qty,
            client_order_id=f"autoclose-{ts}", reduce_only=True, intent="LIQUIDATION", ts_ms=ts,
        )
        self.wallet += realized - clearance
        pos.qty = pos.entry = pos.margin = ZERO
        self._update_liq(symbol, pos)
        logger.warning("paper: %s liquidated at %s, lost %s", symbol, price, clearance - realized)
        self._publish(self._balance(ts, realized - clearance, "ORDER"))
        self._publish(self._position_update(symbol, pos, ts, "LIQUIDATION"))
        self._publish(
            self._update(
                req, self._order_seq, OrderStatus.FILLED, ts, filled=qty, last_qty=qty,
                last_price=price, commission=clearance, realized=realized,
                trade_id=self._trade_seq, reason="liquidation",
            )
        )
        del self._positions[symbol]

    def _settle_due(self, symbol: str, now: int) -> None:
        """Settle the announced funding of ``symbol`` once ``now`` has reached its time.

        Called on mark updates and before any fill, so a position closed right after the
        settlement time, before the next mark update reveals it, still pays.
        """
        due = self._funding.due(symbol, now)
        if due is not None:
            self._settle_funding(symbol, due[0], due[1])

    def _settle_funding(self, symbol: str, rate: float, ts: int) -> None:
        pos = self._positions.get(symbol)
        if pos is None or not pos.qty or not rate or pos.opened_ms > ts:
            return  # only a position held at the settlement time pays or receives
        price = self.market.reference(symbol)
        if not price:
            return
        payment = funding_payment(pos.qty, _dec(price), _dec(rate), CENT)
        self.wallet += payment
        self._publish(self._balance(ts, payment, "FUNDING_FEE", symbol))

    def _balance(self, ts: int, change: Decimal, reason: str, symbol: str = "") -> BalanceUpdate:
        return BalanceUpdate(
            asset=self.asset, wallet_balance=self.wallet, change=change,
            available_balance=self.available(), reason=reason, symbol=symbol, ts_ms=ts,
        )

    def _position_update(self, symbol: str, pos: _Position, ts: int, reason: str) -> PositionUpdate:
        upnl = ZERO
        price = self.market.reference(symbol)
        if pos.qty and price:
            upnl = (_dec(price) - pos.entry) * pos.qty
        return PositionUpdate(
            symbol=symbol, quantity=pos.qty, entry_price=pos.entry, unrealized_pnl=upnl,
            liquidation_price=pos.liq, isolated_margin=pos.margin,
            leverage=pos.leverage if pos.qty else 0, reason=reason, ts_ms=ts,
        )
    @staticmethod
    def _update(
        req: OrderRequest, oid: int, status: OrderStatus, ts: int, *, filled: Decimal = ZERO,
        last_qty: Decimal = ZERO, last_price: Decimal = ZERO, commission: Decimal = ZERO,
        realized: Decimal = ZERO, trade_id: int = 0, reason: str = "",
    ) -> OrderUpdate:
        return OrderUpdate(
            symbol=req.symbol, client_order_id=req.client_order_id, order_id=oid, side=req.side,
            order_type=req.order_type, status=status, quantity=req.quantity, filled_qty=filled,
            last_fill_qty=last_qty, last_fill_price=last_price,
            avg_price=last_price if filled else ZERO, commission=commission,
            realized_pnl=realized, reduce_only=req.reduce_only, trade_id=trade_id,
            reason=reason, ts_ms=ts,
        )
