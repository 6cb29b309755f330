"""Account state of the fake Binance (orders, algo orders, one-way positions, USDT wallet) and the
JSON it answers with: REST/WS API bodies and user-stream events shaped like
shared/binance/samples/ (field names, numbers as strings, "0" for zero)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.fakes.binance_data import ZERO, SymbolSpec, num

D = Decimal


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    reduce_only: bool
    update_ms: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    close_position: bool = False
    orig_type: str = ""
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed else ZERO


@dataclass
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    type: str
    trigger: Decimal
    qty: Decimal
    close_position: bool
    reduce_only: bool
    working_type: str
    create_ms: int
    update_ms: int
    status: str = "NEW"
    me_order_id: int | None = None
    trigger_ms: int = 0
    reason: str = ""

    def triggered_by(self, price: Decimal) -> bool:
        """STOP_MARKET BUY / TAKE_PROFIT_MARKET SELL fire at or above the trigger price; the
        other two at or below."""
        rising = (self.type == "STOP_MARKET") == (self.side == "BUY")
        return price >= self.trigger if rising else price <= self.trigger


@dataclass
class Position:
    symbol: str
    leverage: int = 20
    margin_type: str = "CROSSED"
    amount: Decimal = ZERO          # signed, base asset
    entry: Decimal = ZERO
    realized: Decimal = ZERO        # accumulated realized PnL ("cr")
    update_ms: int = 0

    def reducible(self, side: str) -> Decimal:
        """How much an order on ``side`` can reduce this position (0 if it would add)."""
        if side == "SELL" and self.amount > 0 or side == "BUY" and self.amount < 0:
            return abs(self.amount)
        return ZERO

    @property
    def isolated_wallet(self) -> Decimal:
        if self.margin_type != "ISOLATED":
            return ZERO
        return (abs(self.amount) * self.entry / self.leverage).quantize(D("0.00000001"))

    def apply(self, side: str, qty: Decimal, px: Decimal) -> Decimal:
        """Book a fill; return its realized PnL (before fees)."""
        signed = qty if side == "BUY" else -qty
        if self.amount == 0 or (self.amount > 0) == (signed > 0):
            new = self.amount + signed
            self.entry = (abs(self.amount) * self.entry + qty * px) / abs(new)
            self.amount = new
            return ZERO
        closing = min(qty, abs(self.amount))
        realized = closing * (px - self.entry) * (1 if self.amount > 0 else -1)
        self.amount += signed
        if self.amount == 0:
            self.entry = ZERO
        elif qty > closing:
            self.entry = px
        self.realized += realized
        return realized


class Account:
    """Orders, algo orders, positions and the USDT wallet, plus their wire shapes."""

    def __init__(self, symbols: dict[str, SymbolSpec], clock: Callable[[], int],
                 prices: dict[str, Decimal], *, balance: Decimal, margin_type: str) -> None:
        self.symbols, self.now, self.prices = symbols, clock, prices
        self.wallet = D(balance)
        self.orders: dict[int, Order] = {}
        self.algos: dict[int, AlgoOrder] = {}
        self.positions = {s: Position(s, margin_type=margin_type) for s in symbols}
        self.trades: list[dict[str, Any]] = []   # GET /fapi/v1/userTrades rows
        self.liquidation: dict[str, str] = {}    # liquidationPrice of position reads

    # ------------------------------------------------------------------ state

    def position(self, symbol: str) -> Position:
        return self.positions[symbol]

    def add_order(self, order: Order) -> None:
        self.orders[order.order_id] = order

    def order_by_client_id(self, symbol: str, cid: str) -> Order | None:
        for order in reversed(self.orders.values()):
            if order.symbol == symbol and order.client_order_id == cid:
                return order
        return None

    def open_orders(self, symbol: str | None) -> list[Order]:
        return [o for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and symbol in (None, o.symbol)]

    def open_algos(self, symbol: str | None) -> list[AlgoOrder]:
        return [a for a in self.algos.values()
                if a.status == "NEW" and symbol in (None, a.symbol)]

    def apply_fill(self, order: Order, qty: Decimal, px: Decimal, fee: Decimal) -> Decimal:
        pos = self.positions[order.symbol]
        realized = pos.apply(order.side, qty, px)
        pos.update_ms = order.update_ms = self.now()
        self.wallet += realized - fee
        order.executed += qty
        order.cum_quote += qty * px
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        return realized

    def record_trade(self, o: Order, trade_id: int, qty: Decimal, px: Decimal, fee: Decimal,
                     realized: Decimal, maker: bool) -> None:
        spec = self.symbols[o.symbol]
        self.trades.append({
            "buyer": o.side == "BUY", "commission": num(fee), "commissionAsset": "USDT",
            "id": trade_id, "maker": maker, "orderId": o.order_id, "price": spec.price_text(px),
            "qty": spec.qty_text(qty), "quoteQty": f"{qty * px:.8f}", "realizedPnl": num(realized),
            "side": o.side, "positionSide": "BOTH", "symbol": o.symbol, "time": self.now(),
        })

    def used_margin(self) -> Decimal:
        positions = sum((abs(p.amount) * p.entry / p.leverage for p in self.positions.values()),
                        ZERO)
        orders = sum(((o.qty - o.executed) * o.price / self.positions[o.symbol].leverage
                      for o in self.open_orders(None) if not o.reduce_only), ZERO)
        return positions + orders

    def available(self) -> Decimal:
        return self.wallet - self.used_margin()

    def cross_wallet(self) -> Decimal:
        return self.wallet - sum((p.isolated_wallet for p in self.positions.values()), ZERO)

    # ------------------------------------------------------------------ user-stream events

    def order_event(self, o: Order, exec_type: str, *, last_qty: Decimal = ZERO,
                    last_px: Decimal = ZERO, fee: Decimal = ZERO, realized: Decimal = ZERO,
                    trade_id: int = 0, maker: bool = False, er: str = "0") -> dict[str, Any]:
        spec, now = self.symbols[o.symbol], self.now()
        return {"e": "ORDER_TRADE_UPDATE", "T": now, "E": now, "o": {
            "s": o.symbol, "c": o.client_order_id, "S": o.side, "o": o.type, "f": o.tif,
            "q": spec.qty_text(o.qty), "p": spec.price_text(o.price) if o.price else "0",
            "ap": num(o.avg_price, 5), "sp": spec.price_text(o.stop_price) if o.stop_price else "0",
            "x": exec_type, "X": o.status, "i": o.order_id,
            "l": spec.qty_text(last_qty) if last_qty else "0",
            "z": spec.qty_text(o.executed) if o.executed else "0",
            "L": spec.price_text(last_px) if last_px else "0", "n": num(fee), "N": "USDT",
            "T": now, "t": trade_id, "b": "0", "a": "0", "m": maker, "R": o.reduce_only,
            "wt": o.working_type, "ot": o.orig_type or o.type, "ps": "BOTH",
            "cp": o.close_position, "rp": num(realized), "pP": False, "si": 0, "ss": 0,
            "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0, "er": er,
        }}

    def trade_lite_event(self, o: Order, qty: Decimal, px: Decimal, trade_id: int,
                         maker: bool) -> dict[str, Any]:
        spec, now = self.symbols[o.symbol], self.now()
        return {"e": "TRADE_LITE", "E": now, "T": now, "s": o.symbol, "q": spec.qty_text(o.qty),
                "p": spec.price_text(o.price), "m": maker, "c": o.client_order_id, "S": o.side,
                "L": spec.price_text(px), "l": spec.qty_text(qty), "t": trade_id,
                "i": o.order_id}

    def account_event(self, symbol: str, reason: str) -> dict[str, Any]:
        now, pos = self.now(), self.positions[symbol]
        return {"e": "ACCOUNT_UPDATE", "T": now, "E": now, "a": {
            "m": reason,
            "B": [{"a": "USDT", "wb": f"{self.wallet:.8f}", "cw": f"{self.cross_wallet():.8f}",
                   "bc": "0"}],
            "P": [{"s": symbol, "pa": self.symbols[symbol].qty_text(pos.amount),
                   "ep": num(pos.entry), "cr": num(pos.realized), "up": num(self.upnl(pos)),
                   "mt": "isolated" if pos.margin_type == "ISOLATED" else "cross",
                   "iw": num(pos.isolated_wallet), "ps": "BOTH", "ma": "USDT",
                   "bep": num(pos.entry)}],
        }}

    def algo_event(self, a: AlgoOrder) -> dict[str, Any]:
        spec, now = self.symbols[a.symbol], self.now()
        o: dict[str, Any] = {
            "caid": a.client_algo_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.type,
            "s": a.symbol, "S": a.side, "ps": "BOTH", "f": "GTC",
            "q": spec.qty_text(a.qty) if a.qty else "0", "X": a.status,
            "ai": str(a.me_order_id) if a.me_order_id is not None else "",
        }
        if a.me_order_id is not None:
            me = self.orders[a.me_order_id]
            o |= {"ap": num(me.avg_price, 5), "aq": spec.qty_text(me.executed) if me.executed
                  else "0", "act": "MARKET"}
        o |= {"tp": spec.price_text(a.trigger), "p": "0", "V": "EXPIRE_MAKER",
              "wt": a.working_type, "pm": "NONE", "cp": a.close_position, "pP": False,
              "R": a.reduce_only, "tt": a.trigger_ms, "gtd": 0}
        if a.reason:
            o["rm"] = a.reason
        return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": o}

    # ------------------------------------------------------------------ API bodies

    def upnl(self, pos: Position, price: Decimal | None = None) -> Decimal:
        mark = price if price is not None else self.mark(pos.symbol)
        return (pos.amount * (mark - pos.entry)).quantize(D("0.00000001")) if pos.amount else ZERO

    def mark(self, symbol: str) -> Decimal:
        return self.prices[symbol]

    def order_json(self, o: Order, *, with_avg: bool) -> dict[str, Any]:
        """Order object; ``avgPrice``/``cumQuote`` only on queries (removed from
        place/cancel results in the 2026-07 spec, PROTOCOL.md §2.5)."""
        spec = self.symbols[o.symbol]
        out: dict[str, Any] = {
            "orderId": o.order_id, "symbol": o.symbol, "status": o.status,
            "clientOrderId": o.client_order_id, "price": spec.price_text(o.price),
        }
        if with_avg:
            out["avgPrice"] = f"{o.avg_price:.5f}"
        out |= {"origQty": spec.qty_text(o.qty), "executedQty": spec.qty_text(o.executed),
                "cumQty": spec.qty_text(o.executed)}
        if with_avg:
            out["cumQuote"] = f"{o.cum_quote:.5f}"
        return out | {
            "timeInForce": o.tif, "type": o.type, "reduceOnly": o.reduce_only,
            "closePosition": o.close_position, "side": o.side, "positionSide": "BOTH",
            "stopPrice": spec.price_text(o.stop_price), "workingType": o.working_type,
            "priceProtect": False, "origType": o.orig_type or o.type, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
            "updateTime": o.update_ms,
        }

    def algo_json(self, a: AlgoOrder) -> dict[str, Any]:
        spec = self.symbols[a.symbol]
        me = self.orders.get(a.me_order_id) if a.me_order_id is not None else None
        return {
            "algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "algoType": "CONDITIONAL",
            "orderType": a.type, "symbol": a.symbol, "side": a.side, "positionSide": "BOTH",
            "timeInForce": "GTC", "quantity": spec.qty_text(a.qty), "algoStatus": a.status,
            "actualOrderId": str(a.me_order_id) if a.me_order_id is not None else "",
            "actualPrice": f"{me.avg_price:.5f}" if me else "0.00000",
            "triggerPrice": spec.price_text(a.trigger), "price": spec.price_text(ZERO),
            "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": a.working_type, "priceMatch": "NONE",
            "closePosition": a.close_position, "priceProtect": False,
            "reduceOnly": a.reduce_only, "createTime": a.create_ms, "updateTime": a.update_ms,
            "triggerTime": a.trigger_ms, "goodTillDate": 0,
        }

    def position_json(self, pos: Position, *, v2: bool) -> dict[str, Any]:
        spec, mark = self.symbols[pos.symbol], self.mark(pos.symbol)
        notional = pos.amount * mark
        isolated_margin = pos.isolated_wallet + (self.upnl(pos) if pos.isolated_wallet else ZERO)
        out = {
            "symbol": pos.symbol, "positionSide": "BOTH",
            "positionAmt": spec.qty_text(pos.amount), "entryPrice": f"{pos.entry:.8f}",
            "breakEvenPrice": f"{pos.entry:.8f}", "markPrice": f"{mark:.8f}",
            "unRealizedProfit": f"{self.upnl(pos):.8f}",
            "liquidationPrice": self.liquidation.get(pos.symbol, "0") if pos.amount else "0",
            "isolatedMargin": f"{isolated_margin:.8f}",
            "notional": f"{notional:.8f}", "isolatedWallet": f"{pos.isolated_wallet:.8f}",
            "updateTime": pos.update_ms,
        }
        if v2:
            return out | {"marginType": pos.margin_type.lower().replace("crossed", "cross"),
                          "isAutoAddMargin": "false", "leverage": str(pos.leverage),
                          "maxNotionalValue": "1000000"}
        initial = abs(notional) / pos.leverage
        return out | {"marginAsset": "USDT", "initialMargin": f"{initial:.8f}",
                      "maintMargin": f"{abs(notional) * D('0.004'):.8f}",
                      "positionInitialMargin": f"{initial:.8f}",
                      "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0",
                      "askNotional": "0"}

    def positions_json(self, symbol: str | None, *, v2: bool) -> list[dict[str, Any]]:
        """v2: every symbol; v3 and ``v2/account.position``: only symbols with a position or
        open orders (PROTOCOL.md §2.5)."""
        out = []
        for pos in self.positions.values():
            if symbol not in (None, pos.symbol):
                continue
            if v2 or pos.amount != 0 or self.open_orders(pos.symbol):
                out.append(self.position_json(pos, v2=v2))
        return out

    def balances_json(self) -> list[dict[str, Any]]:
        upnl = sum((self.upnl(p) for p in self.positions.values()), ZERO)
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": f"{self.wallet:.8f}",
                 "crossWalletBalance": f"{self.cross_wallet():.8f}",
                 "crossUnPnl": f"{upnl:.8f}", "availableBalance": f"{self.available():.8f}",
                 "maxWithdrawAmount": f"{self.available():.8f}", "marginAvailable": True,
                 "updateTime": self.now()}]

    def status_json(self) -> dict[str, Any]:
        upnl = sum((self.upnl(p) for p in self.positions.values()), ZERO)
        used = self.used_margin()
        return {
            "totalInitialMargin": f"{used:.8f}", "totalMaintMargin": "0",
            "totalWalletBalance": f"{self.wallet:.8f}",
            "totalUnrealizedProfit": f"{upnl:.8f}",
            "totalMarginBalance": f"{self.wallet + upnl:.8f}",
            "totalCrossWalletBalance": f"{self.cross_wallet():.8f}",
            "availableBalance": f"{self.available():.8f}",
            "maxWithdrawAmount": f"{self.available():.8f}",
            "assets": [{"asset": "USDT", "walletBalance": f"{self.wallet:.8f}",
                        "unrealizedProfit": f"{upnl:.8f}",
                        "availableBalance": f"{self.available():.8f}",
                        "updateTime": self.now()}],
            "positions": self.positions_json(None, v2=False),
        }
