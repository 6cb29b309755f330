"""Error classification: every Binance answer maps to one decision (STYLE.md §9)."""

from __future__ import annotations

import pickle

import pytest

from core.binance.errors import (
    BadPrecision,
    ClockSkew,
    ExchangeError,
    Fatal,
    InsufficientMargin,
    InvalidListenKey,
    IpBanned,
    MinNotionalRejected,
    NoChangeNeeded,
    OrderNotFound,
    PositionSideMismatch,
    PriceOutOfBounds,
    ReduceOnlyRejected,
    Rejected,
    RetryLater,
    UnknownOutcome,
    UseAlgoOrder,
    WouldImmediatelyTrigger,
    classify,
    timeout_error,
)

UNKNOWN_503 = "Unknown error, please check your request or try again later."


@pytest.mark.parametrize(("code", "msg", "status", "expected"), [
    (-1003, "Too many requests; current limit is 2400", 429, RetryLater),
    (-1003, "Way too many requests; IP(1.2.3.4) banned until 1700000000000.", 418, IpBanned),
    (-1003, "Way too many requests; IP banned until 1700000000000.", 429, IpBanned),
    (None, "", 418, IpBanned),
    (None, "", 429, RetryLater),
    (None, "Service Unavailable.", 503, RetryLater),
    (-1008, "Request throttled by system-level protection.", 503, RetryLater),
    (-1015, "Too many new orders.", 429, RetryLater),
    (-1000, UNKNOWN_503, 503, UnknownOutcome),
    (None, UNKNOWN_503, 503, UnknownOutcome),
    (-1001, "Internal error; unable to process your request.", 503, UnknownOutcome),
    (-1006, "An unexpected response was received from the message bus.", 400, UnknownOutcome),
    (-1007, "Timeout waiting for response from backend server.", 408, UnknownOutcome),
    (None, "Bad Gateway", 502, UnknownOutcome),
    (None, "timeout", 0, UnknownOutcome),
    (-1021, "Timestamp for this request is outside of the recvWindow.", 400, ClockSkew),
    (-1125, "This listenKey does not exist.", 400, InvalidListenKey),
    (-2015, "Invalid API-key, IP, or permissions for action.", 401, Fatal),
    (-1022, "Signature for this request is not valid.", 400, Fatal),
    (None, "", 401, Fatal),
    (-2019, "Margin is insufficient.", 400, InsufficientMargin),
    (-4164, "Order's notional must be no smaller than 100", 400, MinNotionalRejected),
    (-1111, "Precision is over the maximum defined for this asset.", 400, BadPrecision),
    (-2021, "Order would immediately trigger.", 400, WouldImmediatelyTrigger),
    (-2022, "ReduceOnly Order is rejected.", 400, ReduceOnlyRejected),
    (-4061, "Order's position side does not match user's setting.", 400, PositionSideMismatch),
    (-4120, "Order type not supported for this endpoint.", 400, UseAlgoOrder),
    (-4131, "The counterparty's best price does not meet the PERCENT_PRICE filter", 400,
     PriceOutOfBounds),
    (-2011, "Unknown order sent.", 400, OrderNotFound),
    (-2013, "Order does not exist.", 400, OrderNotFound),
    (-4046, "No need to change margin type.", 400, NoChangeNeeded),
    (-2010, "New order rejected.", 400, Rejected),
    (-1102, "Mandatory parameter 'quantity' was not sent", 400, Rejected),
    (-9999, "something new", 400, Rejected),
    (None, "WAF", 403, Rejected),
])
def test_classify(code: int | None, msg: str, status: int, expected: type) -> None:
    exc = classify(code, msg, status, None)
    assert type(exc) is expected
    assert (exc.code, exc.http_status, exc.msg) == (code, status, msg)


def test_hierarchy_says_what_to_do() -> None:
    assert issubclass(IpBanned, RetryLater)
    for cls in (InsufficientMargin, MinNotionalRejected, BadPrecision, WouldImmediatelyTrigger,
                ReduceOnlyRejected, PositionSideMismatch, UseAlgoOrder, OrderNotFound):
        assert issubclass(cls, Rejected)
    for cls in (RetryLater, UnknownOutcome, Rejected, ClockSkew, InvalidListenKey, Fatal):
        assert issubclass(cls, ExchangeError) and issubclass(cls, Exception)


def test_retry_after_is_kept_and_shown() -> None:
    exc = classify(-1003, "Too many requests", 429, 7.0)
    assert exc.retry_after_s == 7.0
    assert str(exc) == "Binance -1003 (HTTP 429, retry after 7s): Too many requests"
    assert classify(None, "x", 0, None).retry_after_s is None
    timeout = timeout_error("order.place", 10)
    assert isinstance(timeout, UnknownOutcome) and "order.place" in str(timeout)


def test_messages_never_carry_keys_or_signatures() -> None:
    sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    msg = (f"bad request apiKey={key}&symbol=BTCUSDT&signature={sig} "
           f'{{"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}}'
           f" X-MBX-APIKEY: shortkey")
    exc = classify(-1022, msg, 400, None)
    text = str(exc) + repr(exc) + exc.msg + str(exc.args)
    for secret in (sig, key, "pqia91ma19a5s61cv6a81", "shortkey"):
        assert secret not in text
    assert "symbol=BTCUSDT" in text


def test_errors_survive_pickling() -> None:
    exc = classify(-1003, "banned until 1", 418, 120.0)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is IpBanned
    assert (copy.code, copy.http_status, copy.retry_after_s, copy.msg) == (
        -1003, 418, 120.0, "banned until 1")
