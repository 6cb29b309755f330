"""Binance USDⓈ-M user-data and WS API messages -> typed objects (parse at the edge, STYLE §7).

User data events become the engine's events (core/events.py) where one exists: ORDER_TRADE_UPDATE
-> ``OrderUpdate``; ACCOUNT_UPDATE -> ``BalanceUpdate``s and ``PositionUpdate``s. The others become
the models of core/binance/models.py. Money is ``Decimal`` straight from Binance's strings; ids
are Python ints (ETHUSDT order ids exceed 2^53). Unknown fields are ignored; a missing required
field or malformed value raises ``ParseError`` naming the event and the field, never KeyError.

Field names: shared/binance/PROTOCOL.md §3.2-§3.4 (Binance user-data-stream pages, the official
Python SDK models) and the recorded payloads in shared/binance/samples/.
Market-stream parsers live in core/binance/parse_market.py and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import orjson

from core.binance.models import (
    AccountConfigUpdate,
    AlgoStatus,
    AlgoUpdate,
    ListenKeyExpired,
    MarginCall,
    MarginCallPosition,
    RateLimit,
    TradeLite,
    WsApiResponse,
)
from core.binance.parse_market import (  # noqa: F401  (re-exported)
    MarketEvent,
    parse_agg_trade,
    parse_book_ticker,
    parse_kline,
    parse_mark_price,
    parse_market_event,
    parse_trade,
)
from core.binance.wire import Fields, ParseError, unwrap
from core.events import (
    BalanceUpdate,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PositionUpdate,
)

__all__ = [
    "ParseError", "parse_order_trade_update", "parse_account_update", "parse_trade_lite",
    "parse_algo_update", "parse_order_result", "parse_algo_order_result", "parse_margin_call",
    "parse_account_config_update", "parse_listen_key_expired", "parse_rate_limits",
    "parse_ws_api_response", "parse_user_event",
    "parse_agg_trade", "parse_book_ticker", "parse_kline", "parse_mark_price",
    "parse_market_event", "parse_trade", "MarketEvent",
]

ZERO = Decimal(0)

# ORDER_TRADE_UPDATE X -> engine status. EXPIRED_IN_MATCH is an STP expiry; NEW_INSURANCE and
# NEW_ADL appear in liquidation flows (§3.2).
_ORDER_STATUS = {
    "NEW": OrderStatus.NEW, "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED, "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED, "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    "NEW_INSURANCE": OrderStatus.NEW,
    "NEW_ADL": OrderStatus.NEW,
}

# Order types core.events.OrderType lacks, mapped to the nearest member (used only while the enum
# has no member of that name; the exact type is kept in ``reason``).
_ORDER_TYPE_FALLBACK = {
    "STOP": "STOP_MARKET",
    "TAKE_PROFIT": "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET": "STOP_MARKET",
}

# ``er`` expiry reasons (§3.2, USDⓈ-M docs); unknown values are kept as their number.
_EXPIRY_REASONS = {
    "1": "self-trade prevention", "2": "IOC remainder", "3": "IOC and self-trade prevention",
    "4": "knocked out by reduce-only or would reverse the position", "5": "account liquidated",
    "6": "GTE condition unsatisfied", "7": "symbol delisted",
    "8": "initial order expired after the stop triggered", "9": "MARKET remainder",
    "10": "FOK not filled", "11": "post-only would take",
}


def _side(f: Fields, key: str) -> OrderSide:
    value = f.text(key)
    try:
        return OrderSide(value)
    except ValueError:
        raise f.fail(key, f"bad side {value!r} for") from None


def _order_type(f: Fields, key: str) -> tuple[OrderType, str]:
    raw = f.text(key)
    try:
        return OrderType(raw), ""
    except ValueError:
        pass
    if raw in _ORDER_TYPE_FALLBACK:
        return OrderType(_ORDER_TYPE_FALLBACK[raw]), f"type {raw}"
    raise f.fail(key, f"unknown order type {raw!r} for")


def _order_reason(o: Fields, exec_type: str, raw_status: str, type_note: str) -> str:
    notes: list[str] = []
    client_id = o.text("c")
    if client_id.startswith("autoclose-"):
        notes.append("liquidation")
    elif client_id == "adl_autoclose":
        notes.append("ADL")
    elif client_id.startswith("settlement_autoclose-"):
        notes.append("settlement")
    if exec_type in ("CALCULATED", "AMENDMENT"):
        notes.append(exec_type.lower())
    if raw_status == "EXPIRED_IN_MATCH":
        notes.append("expired in match")
    er = o.text("er", "0")
    if er not in ("", "0"):
        notes.append(f"{_EXPIRY_REASONS.get(er, 'expiry reason')} (er={er})")
    if type_note:
        notes.append(type_note)
    return "; ".join(notes)


def parse_order_trade_update(msg: Mapping[str, Any]) -> OrderUpdate:
    """ORDER_TRADE_UPDATE -> OrderUpdate.

    ``l``/``L`` are this execution's fill (zero unless ``x == "TRADE"``), ``z`` cumulative,
    ``n``/``N`` this fill's commission and asset (both optional: ``n`` is absent when no
    commission was charged, ``N`` defaults to USDT), ``rp`` this
    fill's realized PnL, ``t`` the trade id (0 without a fill), ``ts_ms`` the event time ``E``.
    ``reason`` summarises what the engine fields cannot hold: liquidation/ADL client ids, an
    AMENDMENT/CALCULATED execution, the ``er`` expiry reason, order types the enum lacks.
    """
    top = Fields(unwrap(msg), "ORDER_TRADE_UPDATE")
    o = top.obj("o")
    raw_status = o.text("X")
    status = _ORDER_STATUS.get(raw_status)
    if status is None:
        raise o.fail("X", f"unknown order status {raw_status!r} for")
    order_type, type_note = _order_type(o, "o")
    return OrderUpdate(
        symbol=o.text("s"),
        client_order_id=o.text("c"),
        order_id=o.integer("i"),
        side=_side(o, "S"),
        order_type=order_type,
        status=status,
        quantity=o.decimal("q"),
        filled_qty=o.decimal("z"),
        last_fill_qty=o.decimal("l"),
        last_fill_price=o.decimal("L"),
        avg_price=o.decimal("ap"),
        commission=o.decimal("n", "0"),  # absent when nothing was charged (PROTOCOL.md §10)
        commission_asset=o.text("N", "USDT"),
        realized_pnl=o.decimal("rp"),
        reduce_only=o.flag("R"),
        trade_id=o.integer("t"),
        reason=_order_reason(o, o.text("x"), raw_status, type_note),
        ts_ms=top.integer("E"),
    )


def parse_account_update(msg: Mapping[str, Any]
                         ) -> tuple[list[BalanceUpdate], list[PositionUpdate]]:
    """ACCOUNT_UPDATE -> (balances from ``a.B``, positions from ``a.P``).

    Every update carries ``reason`` = ``a.m`` (ORDER, FUNDING_FEE, ...). Balances: ``wb`` wallet
    balance, ``bc`` change excluding PnL and commission, ``symbol`` = ``a.S`` (the position of a
    FUNDING_FEE). Positions: ``pa`` signed amount, ``ep`` entry price, ``up`` unrealized PnL,
    ``iw`` isolated wallet. Only changed positions are sent; ``P`` may be empty or absent.
    """
    top = Fields(unwrap(msg), "ACCOUNT_UPDATE")
    a = top.obj("a")
    ts, reason, symbol = top.integer("E"), a.text("m"), a.text("S", "")
    balances = [
        BalanceUpdate(asset=b.text("a"), wallet_balance=b.decimal("wb"), change=b.decimal("bc"),
                      reason=reason, symbol=symbol, ts_ms=ts)
        for b in a.items("B", [])
    ]
    positions = [
        PositionUpdate(symbol=p.text("s"), quantity=p.decimal("pa"), entry_price=p.decimal("ep"),
                       unrealized_pnl=p.decimal("up"), isolated_margin=p.decimal("iw", "0"),
                       reason=reason, ts_ms=ts)
        for p in a.items("P", [])
    ]
    return balances, positions


def parse_trade_lite(msg: Mapping[str, Any]) -> TradeLite:
    """TRADE_LITE -> TradeLite (no fee, no realized PnL; §3.4)."""
    d = Fields(unwrap(msg), "TRADE_LITE")
    return TradeLite(
        symbol=d.text("s"), client_order_id=d.text("c"), order_id=d.integer("i"),
        side=_side(d, "S"), quantity=d.decimal("q"), price=d.decimal("p"),
        last_fill_qty=d.decimal("l"), last_fill_price=d.decimal("L"), trade_id=d.integer("t"),
        maker=d.flag("m"), trade_ms=d.integer("T"), ts_ms=d.integer("E"),
    )


def parse_algo_update(msg: Mapping[str, Any]) -> AlgoUpdate:
    """ALGO_UPDATE -> AlgoUpdate. ``ai`` "" (untriggered) becomes ``me_order_id=None``; ``ap``
    and ``aq`` are absent before the trigger and read as 0."""
    top = Fields(unwrap(msg), "ALGO_UPDATE")
    o = top.obj("o")
    raw_status = o.text("X")
    try:
        status = AlgoStatus(raw_status)
    except ValueError:
        raise o.fail("X", f"unknown algo status {raw_status!r} for") from None
    ai = o.text("ai", "")
    try:
        me_order_id = int(ai) if ai else None
    except ValueError:
        raise o.fail("ai", f"bad order id {ai!r} for") from None
    close_position = o.flag("cp")
    quantity = ZERO if close_position and o.raw("q", "") in ("", "0") else o.decimal("q")
    return AlgoUpdate(
        client_algo_id=o.text("caid"), algo_id=o.integer("aid"),
        algo_type=o.text("at", "CONDITIONAL"), order_type=o.text("o"), symbol=o.text("s"),
        side=_side(o, "S"), position_side=o.text("ps", "BOTH"), status=status,
        trigger_price=o.decimal("tp"), price=o.decimal("p", "0"), quantity=quantity,
        close_position=close_position, reduce_only=o.flag("R"),
        working_type=o.text("wt", "CONTRACT_PRICE"), me_order_id=me_order_id,
        avg_price=o.decimal("ap", "0"), executed_qty=o.decimal("aq", "0"),
        reason=o.text("rm", ""), trigger_ms=o.integer("tt", 0), ts_ms=top.integer("E"),
    )


def parse_order_result(result: Mapping[str, Any]) -> OrderUpdate:
    """An order object (WS ``order.place``/``order.status``/``order.cancel`` result, REST order
    endpoints, ``batchOrders`` entries) -> an OrderUpdate snapshot (never a fill: ``last_fill_*``
    are zero). ``avgPrice`` was removed from place/cancel results in the 2026-07 spec (§2.5), so
    ``avg_price`` is 0 when absent; ``ts_ms`` is ``updateTime``."""
    d = Fields(result, "order result")
    raw_status = d.text("status")
    status = _ORDER_STATUS.get(raw_status)
    if status is None:
        raise d.fail("status", f"unknown order status {raw_status!r} for")
    order_type, type_note = _order_type(d, "type")
    return OrderUpdate(
        symbol=d.text("symbol"), client_order_id=d.text("clientOrderId"),
        order_id=d.integer("orderId"), side=_side(d, "side"), order_type=order_type,
        status=status, quantity=d.decimal("origQty"), filled_qty=d.decimal("executedQty"),
        avg_price=d.decimal("avgPrice", "0"), reduce_only=d.flag("reduceOnly", False),
        reason=type_note, ts_ms=d.integer("updateTime"),
    )


def parse_algo_order_result(result: Mapping[str, Any]) -> AlgoUpdate:
    """An algo order object (``algoOrder.place`` result, ``GET /fapi/v1/openAlgoOrders`` and
    ``/fapi/v1/algoOrder``) -> AlgoUpdate. ``actualOrderId``/``actualPrice`` (REST queries
    only) give ``me_order_id``/``avg_price``; ``executed_qty`` is not reported (0)."""
    d = Fields(result, "algo order result")
    raw_status = d.text("algoStatus")
    try:
        status = AlgoStatus(raw_status)
    except ValueError:
        raise d.fail("algoStatus", f"unknown algo status {raw_status!r} for") from None
    actual = d.text("actualOrderId", "")
    return AlgoUpdate(
        client_algo_id=d.text("clientAlgoId"), algo_id=d.integer("algoId"),
        algo_type=d.text("algoType", "CONDITIONAL"), order_type=d.text("orderType"),
        symbol=d.text("symbol"), side=_side(d, "side"),
        position_side=d.text("positionSide", "BOTH"), status=status,
        trigger_price=d.decimal("triggerPrice"), price=d.decimal("price", "0"),
        quantity=d.decimal("quantity", "0"), close_position=d.flag("closePosition", False),
        reduce_only=d.flag("reduceOnly", False),
        working_type=d.text("workingType", "CONTRACT_PRICE"),
        me_order_id=d.integer("actualOrderId") if actual else None,
        avg_price=d.decimal("actualPrice", "0"), executed_qty=ZERO, reason="",
        trigger_ms=d.integer("triggerTime", 0), ts_ms=d.integer("updateTime"),
    )


def parse_margin_call(msg: Mapping[str, Any]) -> MarginCall:
    """MARGIN_CALL -> MarginCall (``cw`` only for a cross margin call)."""
    d = Fields(unwrap(msg), "MARGIN_CALL")
    positions = tuple(
        MarginCallPosition(
            symbol=p.text("s"), position_side=p.text("ps", "BOTH"), quantity=p.decimal("pa"),
            margin_type=p.text("mt"), isolated_wallet=p.decimal("iw", "0"),
            mark_price=p.decimal("mp"), unrealized_pnl=p.decimal("up"),
            maintenance_margin=p.decimal("mm"),
        )
        for p in d.items("p")
    )
    cw = d.decimal("cw") if d.has("cw") else None
    return MarginCall(cross_wallet_balance=cw, positions=positions, ts_ms=d.integer("E"))


def parse_account_config_update(msg: Mapping[str, Any]) -> AccountConfigUpdate:
    """ACCOUNT_CONFIG_UPDATE -> leverage (``ac.s``/``ac.l``) or multi-assets mode (``ai.j``)."""
    d = Fields(unwrap(msg), "ACCOUNT_CONFIG_UPDATE")
    ts = d.integer("E")
    if d.has("ac"):
        ac = d.obj("ac")
        return AccountConfigUpdate(symbol=ac.text("s"), leverage=ac.integer("l"), ts_ms=ts)
    if d.has("ai"):
        return AccountConfigUpdate(multi_assets=d.obj("ai").flag("j"), ts_ms=ts)
    raise d.fail("ac", "missing field")


def parse_listen_key_expired(msg: Mapping[str, Any]) -> ListenKeyExpired:
    """listenKeyExpired -> ListenKeyExpired (``E`` is a string in the docs, an int in the SDK)."""
    d = Fields(unwrap(msg), "listenKeyExpired")
    return ListenKeyExpired(listen_key=d.text("listenKey", ""), ts_ms=d.integer("E"))


def parse_rate_limits(entries: Any) -> list[RateLimit]:
    """A ``rateLimits`` array (WS API response or exchangeInfo) -> RateLimit list."""
    if not isinstance(entries, list):
        raise ParseError(f"rateLimits: expected a list, got {type(entries).__name__}")
    out = []
    for i, entry in enumerate(entries):
        r = Fields(entry, "rateLimits", f"[{i}].")
        out.append(RateLimit(
            rate_limit_type=r.text("rateLimitType"), interval=r.text("interval"),
            interval_num=r.integer("intervalNum"), limit=r.integer("limit"),
            count=r.integer("count") if r.has("count") else None,
        ))
    return out


def parse_ws_api_response(frame: Mapping[str, Any] | str | bytes) -> WsApiResponse:
    """A WS API response (dict, or the raw text frame) -> WsApiResponse (§2.2).

    Success: ``status`` 200 and ``result``. Error: ``status`` 4xx/5xx and
    ``error: {code, msg[, data: {serverTime, retryAfter}]}``. ``rateLimits`` may be absent.
    """
    if isinstance(frame, (str, bytes, bytearray)):
        try:
            frame = orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise ParseError("WS API response: not JSON") from None
    d = Fields(frame, "WS API response")
    raw_id = d.raw("id", None)
    if raw_id is not None and not isinstance(raw_id, (str, int)):
        raise d.fail("id", f"bad id {raw_id!r} for")
    code = msg = retry_after = server_time = None
    if d.has("error"):
        err = d.obj("error")
        code, msg = err.integer("code"), err.text("msg", "")
        if err.has("data") and isinstance(err.raw("data"), Mapping):
            data = err.obj("data")
            retry_after = data.integer("retryAfter") if data.has("retryAfter") else None
            server_time = data.integer("serverTime") if data.has("serverTime") else None
    limits = tuple(parse_rate_limits(d.raw("rateLimits"))) if d.has("rateLimits") else ()
    return WsApiResponse(
        id=raw_id, status=d.integer("status"), result=d.raw("result", None), error_code=code,
        error_msg=msg or "", rate_limits=limits, retry_after_ms=retry_after,
        server_time_ms=server_time,
    )


UserEvent = (OrderUpdate | tuple[list[BalanceUpdate], list[PositionUpdate]] | TradeLite
             | AlgoUpdate | MarginCall | AccountConfigUpdate | ListenKeyExpired)

_USER_PARSERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "ORDER_TRADE_UPDATE": parse_order_trade_update,
    "ACCOUNT_UPDATE": parse_account_update,
    "TRADE_LITE": parse_trade_lite,
    "ALGO_UPDATE": parse_algo_update,
    "MARGIN_CALL": parse_margin_call,
    "ACCOUNT_CONFIG_UPDATE": parse_account_config_update,
    "listenKeyExpired": parse_listen_key_expired,
}


def parse_user_event(msg: Any) -> UserEvent | None:
    """Route one user-data-stream message (raw or in a ``{"stream","data"}`` envelope) on ``e``.

    ACCOUNT_UPDATE returns the ``(balances, positions)`` tuple of ``parse_account_update``.
    Unknown ``e`` (STRATEGY_UPDATE, GRID_UPDATE, future events) and messages without ``e``
    (control replies) return None.

    Raises:
        ParseError: a known event is malformed, or the message is not a JSON object.
    """
    data = unwrap(msg)
    if not isinstance(data, Mapping):
        raise ParseError(f"user event: expected an object, got {type(data).__name__}")
    event = data.get("e")
    parser = _USER_PARSERS.get(event) if isinstance(event, str) else None
    return parser(data) if parser else None
