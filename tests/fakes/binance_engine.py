"""Matching engine and account of the fake Binance USDⓈ-M exchange (sans-I/O).

One account, one-way position mode (positionSide BOTH), USDT margin, taker 0.05 % / maker 0.02 %.
MARKET orders fill at the price set with ``set_price`` (in ``fills_per_order`` parts); LIMIT
orders take when marketable, else rest and fill at their price when ``set_price`` crosses them.
Algo STOP_MARKET / TAKE_PROFIT_MARKET orders trigger when ``set_price`` crosses triggerPrice
(MARK_PRICE and CONTRACT_PRICE both use the set price) and emit the ALGO_UPDATE sequence
TRIGGERING -> TRIGGERED -> (ORDER_TRADE_UPDATE of the MARKET order) -> FINISHED, as in
shared/binance/samples/ws_user_ALGO_UPDATE_*. User-stream events are handed to ``emit`` as the
dicts Binance sends, with the samples' field names.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from tests.fakes.binance_account import Account, AlgoOrder, Order, Position
from tests.fakes.binance_data import (
    BRACKETS,
    CLIENT_ID_RE,
    SYMBOLS,
    ZERO,
    ApiError,
    Params,
    SymbolSpec,
    on_grid,
)

D = Decimal
TAKER_FEE, MAKER_FEE = D("0.0005"), D("0.0002")
STOP_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
MAX_OPEN_ALGOS = 200

REJECT_MESSAGES = {
    -2019: "Margin is insufficient.",
    -2021: "Order would immediately trigger.",
    -2022: "ReduceOnly Order is rejected.",
    -4164: "Order's notional must be no smaller than 100 (unless you choose reduce only).",
    -1111: "Precision is over the maximum defined for this asset.",
    -4131: "The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
}


def split_qty(qty: Decimal, parts: int, step: Decimal) -> list[Decimal]:
    """``qty`` in up to ``parts`` fills on the step grid (the last takes the remainder)."""
    base = (qty / parts / step).to_integral_value(rounding=ROUND_FLOOR) * step
    if parts <= 1 or base <= 0:
        return [qty]
    return [base] * (parts - 1) + [qty - base * (parts - 1)]


class Exchange:
    """The fake's trading state. Operations take request params and return response bodies,
    or raise ApiError; user-stream events go to ``emit`` synchronously, in Binance's order."""

    def __init__(self, *, emit: Callable[[dict[str, Any]], None], clock: Callable[[], int],
                 balance: Decimal = Decimal("10000"), margin_type: str = "CROSSED") -> None:
        self._emit, self.now = emit, clock
        self.prices: dict[str, Decimal] = {s: spec.default_price for s, spec in SYMBOLS.items()}
        self.account = Account(SYMBOLS, clock, self.prices, balance=balance,
                               margin_type=margin_type)
        self.fills_per_order = 1
        self.rejections: list[tuple[int, str]] = []
        #: how the next triggers end without a fill: "REJECTED", "EXPIRED" or "FINISHED" (aq=0)
        self.trigger_failures: list[tuple[str, str]] = []
        self.hold_market = False  # MARKET orders rest (NEW) until release_market()
        self.brackets: dict[str, list[dict[str, Any]]] = {
            s: [dict(b) for b in rows] for s, rows in BRACKETS.items()}
        self._order_ids = {s: itertools.count(spec.first_order_id) for s, spec in SYMBOLS.items()}
        self._algo_ids = itertools.count(1_000_000_033_225_453)
        self._trade_ids = itertools.count(310_194_316)

    # ------------------------------------------------------------------ helpers

    def spec(self, symbol: str | None) -> SymbolSpec:
        if symbol not in SYMBOLS:
            raise ApiError(-1121, "Invalid symbol.")
        return SYMBOLS[symbol]

    def _take_rejection(self) -> None:
        if self.rejections:
            code, msg = self.rejections.pop(0)
            raise ApiError(code, msg)

    def _price(self, spec: SymbolSpec, p: Params, key: str) -> Decimal:
        price = p.dec(key)
        precision_ok, on_tick = on_grid(price, spec.tick, spec.price_precision, spec.min_price)
        if not precision_ok:
            raise ApiError(-1111, REJECT_MESSAGES[-1111])
        if price < spec.min_price:
            raise ApiError(-4013, "Price less than min price.")
        if price > spec.max_price:
            raise ApiError(-4002, "Price greater than max price.")
        if not on_tick:
            raise ApiError(-4014, "Price not increased by tick size.")
        return price

    def _qty(self, spec: SymbolSpec, p: Params, *, market: bool) -> Decimal:
        qty = p.dec("quantity")
        precision_ok, on_step = on_grid(qty, spec.step, spec.qty_precision)
        if not precision_ok:
            raise ApiError(-1111, REJECT_MESSAGES[-1111])
        if qty <= 0 or qty < spec.min_qty:
            raise ApiError(-4003, "Quantity less than or equal to zero.")
        if qty > (spec.market_max_qty if market else spec.max_qty):
            raise ApiError(-4005, "Quantity greater than max quantity.")
        if not on_step:
            raise ApiError(-4023, "Quantity not increased by step size.")
        return qty

    def _client_id(self, p: Params, key: str) -> str:
        cid = p.get(key) or "x-" + secrets.token_urlsafe(15)[:20].replace("-", "_")
        if not CLIENT_ID_RE.match(cid):
            raise ApiError(-4015, "Client order id is not valid.")
        return cid

    def _position_side(self, p: Params) -> None:
        if p.get("positionSide", "BOTH") != "BOTH":
            raise ApiError(-4061, "Order's position side does not match user's setting.")

    # ------------------------------------------------------------------ orders

    def place_order(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``order.place`` / ``POST /fapi/v1/order`` (LIMIT and MARKET only, §3.5)."""
        p = Params(raw)
        self._take_rejection()
        spec = self.spec(p.req("symbol"))
        side = p.choice("side", ("BUY", "SELL"))
        otype = p.req("type")
        if otype in STOP_TYPES:
            raise ApiError(-4120, "Order type not supported for this endpoint. Please use the "
                                  "Algo Order API endpoints instead.")
        if otype not in ("LIMIT", "MARKET"):
            raise ApiError(-1116, "Invalid orderType.")
        self._position_side(p)
        market = otype == "MARKET"
        qty = self._qty(spec, p, market=market)
        reduce_only = p.flag("reduceOnly")
        mark = self.prices[spec.symbol]
        price, tif = ZERO, "GTC"
        if not market:
            tif = p.choice("timeInForce", ("GTC", "IOC", "FOK", "GTX", "GTD"))
            price = self._price(spec, p, "price")
            if side == "BUY" and price > mark * D("1.05"):
                raise ApiError(-4016, f"Limit price can't be higher than {mark * D('1.05')}.")
            if side == "SELL" and price < mark * D("0.95"):
                raise ApiError(-4024, f"Limit price can't be lower than {mark * D('0.95')}.")
            if tif == "GTX" and self._marketable(side, price, mark):
                raise ApiError(-5022, "Due to the order could not be executed as maker, the Post "
                                      "Only order will be rejected. The order will not be "
                                      "recorded in the order history")
        cid = self._client_id(p, "newClientOrderId")
        if self.account.order_by_client_id(spec.symbol, cid) is not None:
            raise ApiError(-4116, "ClientOrderId is duplicated.")
        pos = self.account.position(spec.symbol)
        reference = mark if market else price
        if reduce_only:
            if pos.reducible(side) == 0:
                raise ApiError(-2022, REJECT_MESSAGES[-2022])
        else:
            if qty * reference < spec.min_notional:
                raise ApiError(-4164, "Order's notional must be no smaller than "
                                      f"{spec.min_notional} (unless you choose reduce only).")
            opening = max(ZERO, qty - pos.reducible(side))
            if opening * reference / pos.leverage > self.account.available():
                raise ApiError(-2019, REJECT_MESSAGES[-2019])
            if (abs(pos.amount) + opening) * reference > self.max_notional(spec.symbol,
                                                                            pos.leverage):
                raise ApiError(-2027, "Exceeded the maximum allowable position at current "
                                      "leverage.")
        order = Order(order_id=next(self._order_ids[spec.symbol]), client_order_id=cid,
                      symbol=spec.symbol, side=side, type=otype, tif=tif, qty=qty, price=price,
                      reduce_only=reduce_only, update_ms=self.now())
        self.account.add_order(order)
        self._emit(self.account.order_event(order, "NEW"))
        ack = self.account.order_json(order, with_avg=False)
        self._match_new(order)
        if p.get("newOrderRespType", "ACK") == "RESULT":
            return self.account.order_json(order, with_avg=False)
        return ack

    @staticmethod
    def _marketable(side: str, price: Decimal, market: Decimal) -> bool:
        return price >= market if side == "BUY" else price <= market

    def _match_new(self, order: Order) -> None:
        px = self.prices[order.symbol]
        if order.type == "MARKET" and self.hold_market:
            return
        if order.type == "MARKET" or self._marketable(order.side, order.price, px):
            self._take(order, px, maker=False)
        elif order.tif in ("IOC", "FOK"):
            self._finish(order, "EXPIRED", er="2")

    def _take(self, order: Order, px: Decimal, *, maker: bool) -> None:
        qty = order.qty - order.executed
        if order.reduce_only:
            qty = min(qty, self.account.position(order.symbol).reducible(order.side))
        if qty > 0:
            for part in split_qty(qty, self.fills_per_order, SYMBOLS[order.symbol].step):
                self._fill(order, part, px, maker=maker)
        if order.executed < order.qty and (order.reduce_only or order.type == "MARKET"):
            self._finish(order, "EXPIRED", er="4" if order.reduce_only else "9")

    def _fill(self, order: Order, qty: Decimal, px: Decimal, *, maker: bool) -> None:
        fee = (qty * px * (MAKER_FEE if maker else TAKER_FEE)).quantize(D("0.00000001"))
        realized = self.account.apply_fill(order, qty, px, fee)
        trade_id = next(self._trade_ids)
        self.account.record_trade(order, trade_id, qty, px, fee, realized, maker)
        self._emit(self.account.trade_lite_event(order, qty, px, trade_id, maker))
        self._emit(self.account.order_event(order, "TRADE", last_qty=qty, last_px=px, fee=fee,
                                            realized=realized, trade_id=trade_id, maker=maker))
        self._emit(self.account.account_event(order.symbol, "ORDER"))

    def _finish(self, order: Order, status: str, *, er: str = "0") -> None:
        order.status, order.update_ms = status, self.now()
        self._emit(self.account.order_event(order, status, er=er))

    def _find_order(self, p: Params, missing: tuple[int, str]) -> Order:
        symbol = self.spec(p.req("symbol")).symbol
        cid = p.get("origClientOrderId")
        if p.get("orderId") is None and cid is None:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                                  "both were empty/null!")
        order = (self.account.orders.get(p.integer("orderId")) if p.get("orderId") is not None
                 else self.account.order_by_client_id(symbol, cid))  # type: ignore[arg-type]
        if order is None or order.symbol != symbol:
            raise ApiError(*missing)
        return order

    def cancel_order(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``order.cancel`` / ``DELETE /fapi/v1/order``."""
        order = self._find_order(Params(raw), (-2011, "Unknown order sent."))
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise ApiError(-2011, "Unknown order sent.")
        self._finish(order, "CANCELED")
        return self.account.order_json(order, with_avg=False)

    def query_order(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``order.status`` / ``GET /fapi/v1/order`` (includes avgPrice and cumQuote)."""
        order = self._find_order(Params(raw), (-2013, "Order does not exist."))
        return self.account.order_json(order, with_avg=True)

    def open_orders(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        symbol = Params(raw).get("symbol")
        return [self.account.order_json(o, with_avg=True) for o in self.account.open_orders(symbol)]

    # ------------------------------------------------------------------ algo orders

    def place_algo(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``algoOrder.place`` / ``POST /fapi/v1/algoOrder`` (CONDITIONAL STOP_MARKET and
        TAKE_PROFIT_MARKET; quantity or closePosition)."""
        p = Params(raw)
        self._take_rejection()
        if p.req("algoType") != "CONDITIONAL":
            raise ApiError(-1102, "Parameter 'algoType' was empty or malformed.")
        spec = self.spec(p.req("symbol"))
        side = p.choice("side", ("BUY", "SELL"))
        otype = p.req("type")
        if otype not in ALGO_TYPES:
            raise ApiError(-1116, "Invalid orderType.")
        self._position_side(p)
        trigger = self._price(spec, p, "triggerPrice")
        close_position = p.flag("closePosition")
        if close_position and p.get("quantity") is not None:
            raise ApiError(-1106, "Parameter 'quantity' sent when not required.")
        if close_position and p.get("reduceOnly") is not None:
            raise ApiError(-1106, "Parameter 'reduceOnly' sent when not required.")
        qty = ZERO if close_position else self._qty(spec, p, market=True)
        working = p.choice("workingType", ("MARK_PRICE", "CONTRACT_PRICE"), "CONTRACT_PRICE")
        cid = self._client_id(p, "clientAlgoId")
        if any(a.client_algo_id == cid for a in self.account.algos.values()):
            raise ApiError(-4116, "ClientOrderId is duplicated.")
        if len(self.account.open_algos(None)) >= MAX_OPEN_ALGOS:
            raise ApiError(-4045, "Reach max stop order limit.")
        algo = AlgoOrder(algo_id=next(self._algo_ids), client_algo_id=cid, symbol=spec.symbol,
                         side=side, type=otype, trigger=trigger, qty=qty,
                         close_position=close_position, reduce_only=p.flag("reduceOnly"),
                         working_type=working, create_ms=self.now(), update_ms=self.now())
        if algo.triggered_by(self.prices[spec.symbol]):
            raise ApiError(-2021, REJECT_MESSAGES[-2021])
        self.account.algos[algo.algo_id] = algo
        self._emit(self.account.algo_event(algo))
        return self.account.algo_json(algo)

    def _find_algo(self, p: Params) -> AlgoOrder:
        algo_id, cid = p.get("algoId"), p.get("clientAlgoId")
        if algo_id is None and cid is None:
            raise ApiError(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both "
                                  "were empty/null!")
        for algo in self.account.algos.values():
            if str(algo.algo_id) == algo_id or algo.client_algo_id == cid:
                return algo
        raise ApiError(-2013, "Order does not exist.")

    def cancel_algo(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``algoOrder.cancel`` / ``DELETE /fapi/v1/algoOrder`` (untriggered orders only)."""
        try:
            algo = self._find_algo(Params(raw))
        except ApiError as exc:
            if exc.code != -2013:
                raise
            raise ApiError(-2011, "Unknown order sent.") from None
        if algo.status != "NEW":
            raise ApiError(-2011, "Unknown order sent.")
        algo.status, algo.update_ms = "CANCELED", self.now()
        self._emit(self.account.algo_event(algo))
        return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200",
                "msg": "success"}

    def query_algo(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return self.account.algo_json(self._find_algo(Params(raw)))

    def user_trades(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``GET /fapi/v1/userTrades`` (symbol required; orderId optional)."""
        p = Params(raw)
        symbol = self.spec(p.req("symbol")).symbol
        order_id = p.integer("orderId") if p.get("orderId") is not None else None
        return [t for t in self.account.trades
                if t["symbol"] == symbol and order_id in (None, t["orderId"])]

    def open_algos(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        symbol = Params(raw).get("symbol")
        return [self.account.algo_json(a) for a in self.account.open_algos(symbol)]

    # ------------------------------------------------------------------ prices

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the price: trigger crossed algo orders (oldest first), then fill crossed
        resting LIMIT orders at their limit price (maker)."""
        self.spec(symbol)
        price = price if isinstance(price, Decimal) else D(str(price))
        self.prices[symbol] = price
        for algo in self.account.open_algos(symbol):
            if algo.status == "NEW" and algo.triggered_by(self.prices[symbol]):
                self._trigger(algo)
        for order in self.account.open_orders(symbol):
            if order.type == "LIMIT" and self._marketable(order.side, order.price, price):
                self._take(order, order.price, maker=True)

    def release_market(self) -> None:
        """Fill the MARKET orders ``hold_market`` kept resting."""
        self.hold_market = False
        for order in self.account.open_orders(None):
            if order.type == "MARKET":
                self._take(order, self.prices[order.symbol], maker=False)

    def fail_next_trigger(self, status: str = "REJECTED", reason: str = "Margin is insufficient"
                          ) -> None:
        """The next stop to trigger ends ``status`` without a fill (REJECTED / EXPIRED right
        after TRIGGERING; FINISHED with aq = 0 after TRIGGERED, its order expired unfilled)."""
        self.trigger_failures.append((status, reason))

    def _trigger(self, algo: AlgoOrder) -> None:
        algo.status, algo.trigger_ms = "TRIGGERING", self.now()
        self._emit(self.account.algo_event(algo))
        if self.trigger_failures:
            status, reason = self.trigger_failures.pop(0)
            if status == "FINISHED":
                order = Order(order_id=next(self._order_ids[algo.symbol]),
                              client_order_id=algo.client_algo_id, symbol=algo.symbol,
                              side=algo.side, type="MARKET", tif="GTC", qty=ZERO, price=ZERO,
                              reduce_only=True, close_position=algo.close_position,
                              orig_type=algo.type, stop_price=algo.trigger,
                              working_type=algo.working_type, update_ms=self.now())
                self.account.add_order(order)
                algo.me_order_id, algo.status = order.order_id, "TRIGGERED"
                self._emit(self.account.algo_event(algo))
                self._finish(order, "EXPIRED", er="8")
            algo.status, algo.reason, algo.update_ms = status, reason, self.now()
            self._emit(self.account.algo_event(algo))
            return
        pos = self.account.position(algo.symbol)
        qty = pos.reducible(algo.side) if algo.close_position else algo.qty
        if algo.reduce_only:
            qty = min(qty, pos.reducible(algo.side))
        if qty <= 0:
            algo.status, algo.reason = "REJECTED", "Reduce Only reject"
            self._emit(self.account.algo_event(algo))
            return
        order = Order(order_id=next(self._order_ids[algo.symbol]),
                      client_order_id=algo.client_algo_id, symbol=algo.symbol, side=algo.side,
                      type="MARKET", tif="GTC", qty=qty, price=ZERO,
                      reduce_only=algo.reduce_only or algo.close_position,
                      close_position=algo.close_position, orig_type=algo.type,
                      stop_price=algo.trigger, working_type=algo.working_type,
                      update_ms=self.now())
        self.account.add_order(order)
        algo.me_order_id, algo.status = order.order_id, "TRIGGERED"
        self._emit(self.account.algo_event(algo))
        self._emit(self.account.order_event(order, "NEW"))
        self._take(order, self.prices[algo.symbol], maker=False)
        algo.status, algo.update_ms = "FINISHED", self.now()
        self._emit(self.account.algo_event(algo))

    # ------------------------------------------------------------------ account setup

    def max_notional(self, symbol: str, leverage: int) -> Decimal:
        """Binance's ``maxNotionalValue``: the highest cap among brackets allowing
        ``leverage``."""
        caps = [D(str(b["notionalCap"])) for b in self.brackets[symbol]
                if b["initialLeverage"] >= leverage]
        return max(caps, default=ZERO)

    def leverage_brackets(self, raw: Mapping[str, Any]) -> Any:
        """``GET /fapi/v1/leverageBracket[?symbol=]`` (one object when asked for a symbol)."""
        symbol = Params(raw).get("symbol")
        if symbol is not None:
            return {"symbol": self.spec(symbol).symbol, "brackets": self.brackets[symbol]}
        return [{"symbol": s, "brackets": rows} for s, rows in self.brackets.items()]

    def set_leverage(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = Params(raw)
        spec = self.spec(p.req("symbol"))
        leverage = p.integer("leverage")
        if not 1 <= leverage <= self.brackets[spec.symbol][0]["initialLeverage"]:
            raise ApiError(-4028, f"Leverage {leverage} is not valid")
        self.account.position(spec.symbol).leverage = leverage
        now = self.now()
        self._emit({"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": now,
                    "ac": {"s": spec.symbol, "l": leverage}})
        return {"leverage": leverage, "symbol": spec.symbol,
                "maxNotionalValue": str(self.max_notional(spec.symbol, leverage))}

    def set_margin_type(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = Params(raw)
        spec = self.spec(p.req("symbol"))
        wanted = p.choice("marginType", ("ISOLATED", "CROSSED"))
        pos: Position = self.account.position(spec.symbol)
        if pos.margin_type == wanted:
            raise ApiError(-4046, "No need to change margin type.")
        if pos.amount != 0:
            raise ApiError(-4048, "Margin type cannot be changed if there exists position.")
        if self.account.open_orders(spec.symbol):
            raise ApiError(-4047, "Margin type cannot be changed if there exists open orders.")
        pos.margin_type = wanted
        return {"code": 200, "msg": "success"}
