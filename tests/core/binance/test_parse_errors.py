"""Malformed and unusual Binance messages: a ParseError naming the event and the field (never
KeyError/TypeError), lenient defaults, unknown events ignored, COIN-M payloads dropped, and a
fuzz test over mutated recorded samples."""

from __future__ import annotations

import copy
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.binance.models import ListenKeyExpired
from core.binance.parse import (
    ParseError,
    parse_account_config_update,
    parse_account_update,
    parse_algo_update,
    parse_listen_key_expired,
    parse_margin_call,
    parse_market_event,
    parse_order_trade_update,
    parse_rate_limits,
    parse_user_event,
    parse_ws_api_response,
)
from core.events import MarketTick, OrderStatus

pytestmark = pytest.mark.realdata
D = Decimal


def load(samples_dir: Path, name: str) -> Any:
    return json.loads((samples_dir / name).read_text())


def sample_names(samples_dir: Path, kind: str) -> list[str]:
    """Relative names of the recorded ``ws_user_`` or ``ws_market_`` samples."""
    return sorted(p.relative_to(samples_dir).as_posix() for p in samples_dir.rglob("*.json")
                  if kind in p.name)


# --------------------------------------------------------------------------- malformed input


def otu(samples_dir: Path) -> dict[str, Any]:
    return load(samples_dir,
                "unattributed/uat_2025-03_ws_user_ORDER_TRADE_UPDATE_TRADE_FILLED_MARKET_"
                "BTCUSDT.json")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda m: m["o"].pop("q"), "ORDER_TRADE_UPDATE: missing field 'o.q'"),
    (lambda m: m.pop("E"), "ORDER_TRADE_UPDATE: missing field 'E'"),
    (lambda m: m["o"].update(q="abc"), "ORDER_TRADE_UPDATE: bad decimal 'abc' for 'o.q'"),
    (lambda m: m["o"].update(L="NaN"), "ORDER_TRADE_UPDATE: bad decimal 'NaN' for 'o.L'"),
    (lambda m: m["o"].update(X="WEIRD"), "unknown order status 'WEIRD' for 'o.X'"),
    (lambda m: m["o"].update(S="HOLD"), "bad side 'HOLD' for 'o.S'"),
    (lambda m: m["o"].update(o="ICEBERG"), "unknown order type 'ICEBERG' for 'o.o'"),
    (lambda m: m["o"].update(i=True), "bad integer True for 'o.i'"),
    (lambda m: m["o"].update(R="yes"), "bad boolean 'yes' for 'o.R'"),
    (lambda m: m.update(o=[]), "ORDER_TRADE_UPDATE: 'o' is list, expected an object"),
])
def test_malformed_order_trade_update(samples_dir: Path, mutate: Any, message: str) -> None:
    msg = otu(samples_dir)
    mutate(msg)
    with pytest.raises(ParseError) as err:
        parse_user_event(msg)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_commission_asset_defaults_to_usdt(samples_dir: Path) -> None:
    msg = otu(samples_dir)
    del msg["o"]["N"]
    assert parse_order_trade_update(msg).commission_asset == "USDT"


def test_expiry_reason_and_liquidation_are_reported(samples_dir: Path) -> None:
    msg = otu(samples_dir)
    msg["o"].update(x="EXPIRED", X="EXPIRED_IN_MATCH", er="1", c="autoclose-1742585119")
    u = parse_order_trade_update(msg)
    assert u.status is OrderStatus.EXPIRED
    assert "liquidation" in u.reason and "er=1" in u.reason and "expired in match" in u.reason
    msg["o"].update(X="EXPIRED", er="12", c="x")
    assert parse_order_trade_update(msg).reason == "expiry reason (er=12)"


def test_malformed_account_update_names_the_nested_field(samples_dir: Path) -> None:
    msg = load(samples_dir, "ws_user_ACCOUNT_UPDATE_ORDER_hedge_docs_example.json")
    del msg["a"]["P"][2]["pa"]
    with pytest.raises(ParseError, match=r"ACCOUNT_UPDATE: missing field 'a.P\[2\].pa'"):
        parse_account_update(msg)
    msg = load(samples_dir, "ws_user_ACCOUNT_UPDATE_ORDER_hedge_docs_example.json")
    msg["a"]["B"] = {"a": "USDT"}
    with pytest.raises(ParseError, match="expected a list at 'a.B'"):
        parse_account_update(msg)


def test_funding_fee_account_update_carries_the_symbol() -> None:
    msg = {"e": "ACCOUNT_UPDATE", "E": 5, "T": 5, "a": {
        "m": "FUNDING_FEE", "S": "BTCUSDT",
        "B": [{"a": "USDT", "wb": "100.5", "cw": "100.5", "bc": "-0.25"}]}}
    (balance,), positions = parse_account_update(msg)
    assert (balance.symbol, balance.reason, balance.change) == ("BTCUSDT", "FUNDING_FEE",
                                                               D("-0.25"))
    assert positions == []


def test_algo_update_with_bad_me_order_id(samples_dir: Path) -> None:
    msg = load(samples_dir, "ws_user_ALGO_UPDATE_TRIGGERED_STOP_MARKET_DOGEUSDT_capture.json")
    msg["data"]["o"]["ai"] = "abc"
    with pytest.raises(ParseError, match="ALGO_UPDATE: bad order id 'abc' for 'o.ai'"):
        parse_user_event(msg)
    msg["data"]["o"]["ai"] = ""
    msg["data"]["o"]["X"] = "SLEEPING"
    with pytest.raises(ParseError, match="unknown algo status"):
        parse_user_event(msg)


def test_algo_close_position_without_quantity() -> None:
    msg = {"e": "ALGO_UPDATE", "E": 7, "T": 7, "o": {
        "caid": "sl-1", "aid": 12, "o": "STOP_MARKET", "s": "BTCUSDT", "S": "SELL", "q": "",
        "X": "NEW", "ai": "", "tp": "60000.00", "cp": True, "R": False}}
    a = parse_algo_update(msg)
    assert (a.quantity, a.close_position, a.me_order_id, a.reason) == (0, True, None, "")


@pytest.mark.parametrize("stamp", ["1736996475556", 1736996475556])
def test_listen_key_expired_accepts_string_and_int_time(stamp: Any) -> None:
    msg = {"e": "listenKeyExpired", "E": stamp, "listenKey": "abc"}
    assert parse_user_event(msg) == ListenKeyExpired(listen_key="abc", ts_ms=1736996475556)
    assert parse_listen_key_expired(msg).ts_ms == 1736996475556


def test_margin_call_and_account_config_update() -> None:
    call = parse_user_event({"e": "MARGIN_CALL", "E": 9, "cw": "3.16812045", "p": [
        {"s": "ETHUSDT", "ps": "LONG", "pa": "1.327", "mt": "CROSSED", "iw": "0",
         "mp": "187.17127", "up": "-1.166074", "mm": "1.614445"}]})
    assert call.cross_wallet_balance == D("3.16812045")
    assert (call.positions[0].symbol, call.positions[0].maintenance_margin) == (
        "ETHUSDT", D("1.614445"))
    isolated = parse_margin_call({"e": "MARGIN_CALL", "E": 9, "p": []})
    assert isolated.cross_wallet_balance is None and isolated.positions == ()
    lev = parse_user_event({"e": "ACCOUNT_CONFIG_UPDATE", "E": 1, "T": 1,
                            "ac": {"s": "BTCUSDT", "l": 25}})
    assert (lev.symbol, lev.leverage, lev.multi_assets) == ("BTCUSDT", 25, None)
    assert parse_account_config_update(
        {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1, "ai": {"j": True}}).multi_assets is True
    with pytest.raises(ParseError, match="ACCOUNT_CONFIG_UPDATE: missing field 'ac'"):
        parse_account_config_update({"e": "ACCOUNT_CONFIG_UPDATE", "E": 1})


@pytest.mark.parametrize("msg", [
    {"e": "STRATEGY_UPDATE", "E": 1, "su": {}},
    {"e": "GRID_UPDATE", "E": 1},
    {"e": "CONDITIONAL_ORDER_TRIGGER_REJECT", "E": 1},
    {"result": None, "id": 1},
    {"stream": "abc", "data": {"e": "SOMETHING_NEW"}},
])
def test_unknown_user_events_are_none(msg: Any) -> None:
    assert parse_user_event(msg) is None


@pytest.mark.parametrize("msg", ["text", 5, ["a"], {"stream": "x", "data": "y"}])
def test_non_object_user_message_is_a_parse_error(msg: Any) -> None:
    with pytest.raises(ParseError, match="expected an object"):
        parse_user_event(msg)


def test_ws_api_response_shapes() -> None:
    r = parse_ws_api_response(b'{"id":null,"status":401,"error":{"code":-2015,'
                              b'"msg":"Invalid API-key, IP, or permissions for action."}}')
    assert (r.id, r.status, r.error_code) == (None, 401, -2015)
    throttled = parse_ws_api_response({"id": 7, "status": 429, "error": {
        "code": -1003, "msg": "Too many requests",
        "data": {"serverTime": 1000, "retryAfter": 3500}}})
    assert throttled.retry_after_s == 2.5
    assert type(throttled.exception()).__name__ == "RetryLater"
    with pytest.raises(ParseError, match="not JSON"):
        parse_ws_api_response("{nope")
    with pytest.raises(ParseError, match="missing field 'status'"):
        parse_ws_api_response({"id": 1, "result": {}})
    with pytest.raises(ParseError, match="bad id"):
        parse_ws_api_response({"id": [1], "status": 200})
    with pytest.raises(ParseError, match="rateLimits: missing field '\\[0\\].limit'"):
        parse_rate_limits([{"rateLimitType": "ORDERS", "interval": "SECOND",
                            "intervalNum": 10}])


# --------------------------------------------------------------------------- market edge cases


def test_coin_m_payloads_are_dropped(samples_dir: Path) -> None:
    for name in sample_names(samples_dir, "ws_market_"):
        msg = load(samples_dir, name)
        data = msg.get("data", msg)
        data["st"] = 2
        assert parse_market_event(msg) is None, name
        data["st"] = 1
        assert (parse_market_event(msg) is None) == (data["e"] == "depthUpdate"), name


def _first_capture_line(path: Path, needle: bytes) -> dict[str, Any]:
    """The first line of a recorded capture (``<recv_us> <frame>``) containing ``needle``."""
    with gzip.open(path, "rb") as fh:
        for line in fh:
            if needle in line:
                return json.loads(line.split(b" ", 1)[1])
    raise AssertionError(f"{needle!r} not in {path.name}")


def test_trade_insurance_fund_and_adl_prints_are_not_market_ticks(data_dir: Path) -> None:
    # the one INSURANCE_FUND print of the real 2023-04-05 capture (PROTOCOL.md §4)
    frame = _first_capture_line(data_dir / "btcusdt_20230405.dat.gz", b'"X":"INSURANCE_FUND"')
    assert frame["data"]["e"] == "trade"
    assert parse_market_event(frame) is None
    for kind, expected_none in (("MARKET", False), ("ADL", True), ("NA", True)):
        frame["data"]["X"] = kind
        assert (parse_market_event(frame) is None) == expected_none, kind
    frame["data"]["X"] = "MARKET"
    tick = parse_market_event(frame)
    assert tick == MarketTick("BTCUSDT", 1680652874406, 1680652874400, 28722.5, 0.001, True)
    del frame["data"]["X"]  # a payload without X is a market trade
    assert parse_market_event(frame) == tick
    frame["data"]["st"] = 2
    assert parse_market_event(frame) is None
    frame["data"]["st"] = 1
    del frame["data"]["p"]
    with pytest.raises(ParseError, match="trade: missing field 'p'"):
        parse_market_event(frame)


def test_market_edge_cases() -> None:
    assert parse_market_event({"stream": "!markPrice@arr", "data": [{"e": "markPriceUpdate"}]}
                              ) is None
    assert parse_market_event({"result": None, "id": 3}) is None
    with pytest.raises(ParseError, match="aggTrade: missing field 'p'"):
        parse_market_event({"e": "aggTrade", "E": 1, "s": "BTCUSDT", "q": "1", "T": 1,
                            "m": False})
    with pytest.raises(ParseError, match="bad number 'inf' for 'b'"):
        parse_market_event({"e": "bookTicker", "E": 1, "s": "X", "b": "inf", "B": "1",
                            "a": "2", "A": "1"})
    quarterly = parse_market_event({"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT_260925",
                                    "p": "1", "i": "1", "P": "1", "r": "", "T": 0})
    assert quarterly.funding_rate == 0.0
    month = parse_market_event({"e": "kline", "E": 1, "s": "BTCUSDT", "k": {
        "t": 0, "T": 2_678_399_999, "i": "1M", "o": "1", "c": "1", "h": "1", "l": "1",
        "v": "1", "x": True}})
    assert month.interval_ms == 2_678_400_000 and month.closed
    with pytest.raises(ParseError, match="market event: expected an object"):
        parse_market_event("x")


# --------------------------------------------------------------------------- fuzz: only ParseError


JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                      st.integers(), max_size=2))


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _set(obj: Any, path: tuple, value: Any, delete: bool) -> None:
    for key in path[:-1]:
        obj = obj[key]
    if delete and isinstance(obj, dict):
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_samples_raise_only_parse_error(samples_dir: Path, data: st.DataObject) -> None:
    names = sample_names(samples_dir, "ws_user_") + sample_names(samples_dir, "ws_market_")
    name = data.draw(st.sampled_from(names))
    msg = load(samples_dir, name)
    path = data.draw(st.sampled_from(_paths(msg)))
    mutated = copy.deepcopy(msg)
    _set(mutated, path, data.draw(JUNK), data.draw(st.booleans()))
    parser = parse_user_event if "ws_user_" in name else parse_market_event
    try:
        parser(mutated)
    except ParseError:
        pass
