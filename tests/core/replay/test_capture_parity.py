"""The capture replay's fast path gives exactly the events of the shared market-stream parser.

Reference: each line -> JSON -> each payload (a combined-stream envelope unwrapped, an array
stream's elements) -> ``parse_market_event``. A line whose JSON does not parse, is not an object,
or holds a payload the shared parser rejects is a bad line; a line that gives no event is skipped.
The fast path must agree on the events (values and types, in file order), the bad line numbers
and the skipped count, on every shared raw capture and on generated lines.

The one shape the fast path decides without parsing: a line ending in ``]}}`` with ``depth`` in
its first 48 bytes is a depth update and is skipped (depth payloads are never events); the
generated lines keep that shape for depth updates only, as Binance does.
"""

from __future__ import annotations

import gzip
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.binance.parse_market import parse_market_event
from core.binance.wire import ParseError, unwrap
from core.replay.capture import batched, capture_chunks
from core.replay.lines import ReplayStats
from core.replay.source import detect_format
from tests.conftest import DATA_DIR, shared_file

KNOWN_CAPTURES = ["btcusdt_20230405.dat.gz", "btcusdt_20240808.gz", "ethusdt_20240808.gz"]
CAPTURES = sorted({p.name for p in DATA_DIR.glob("*.gz")} | set(KNOWN_CAPTURES))

_TS = re.compile(rb"^\s*\d+\s+")
Outcome = tuple[list[Any], list[int], dict[int, str], int]


def reference(lines: list[bytes]) -> Outcome:
    """(events, bad line numbers, ParseError reasons by line, skipped) by the shared parser."""
    events: list[Any] = []
    bad: list[int] = []
    reasons: dict[int, str] = {}
    skipped = 0
    for n, line in enumerate(lines, 1):
        body = line.strip()
        if not body:
            continue
        if m := _TS.match(body):
            body = body[m.end():]
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            bad.append(n)
            continue
        if not isinstance(obj, dict):
            bad.append(n)
            continue
        data = unwrap(obj)
        try:
            mine = [ev for d in (data if isinstance(data, list) else [data])
                    if (ev := parse_market_event(d)) is not None]
        except ParseError as exc:
            bad.append(n)
            reasons[n] = str(exc)
            continue
        events += mine
        skipped += not mine
    return events, bad, reasons, skipped


def fast(lines: list[bytes], size: int = 512) -> Outcome:
    """The same outcome from the replay's capture parser (chunks of ``size`` lines)."""
    stats = ReplayStats()
    found: list[tuple[int, str]] = []
    events = [ev for chunk in capture_chunks(batched(lines, size),
                                             bad=lambda n, why: found.append((n, why)),
                                             stats=stats)
              for ev in chunk]
    return events, [n for n, _ in found], dict(found), stats.skipped


def assert_same(lines: list[bytes], size: int = 512) -> None:
    want_events, want_bad, want_reasons, want_skipped = reference(lines)
    events, bad, reasons, skipped = fast(lines, size)
    assert events == want_events
    assert [tuple(map(type, e)) for e in events] == [tuple(map(type, e)) for e in want_events]
    assert bad == want_bad
    for n, why in want_reasons.items():  # the shared parser's own one-line reason
        assert reasons[n] == why
    assert all("\n" not in why for why in reasons.values())
    assert skipped == want_skipped


# --------------------------------------------------------------------------- shared captures


@pytest.mark.realdata
@pytest.mark.parametrize("name", CAPTURES)
def test_every_shared_capture_gives_the_shared_parsers_events(name: str) -> None:
    path = shared_file(name)
    if detect_format(path) != "capture":
        assert name not in KNOWN_CAPTURES
        pytest.skip(f"{name} is not a raw capture")
    lines = gzip.decompress(path.read_bytes()).splitlines()
    events, bad, _, skipped = reference(lines)
    assert events and not bad and skipped
    assert_same(lines)


# --------------------------------------------------------------------------- generated lines

SYMBOLS = st.integers(0, 31).flatmap(lambda r: st.sampled_from(
    [5, True, None, ["BTCUSDT"], {}] if r == 0 else ["BTCUSDT", "ETHUSDT", "BTCUSDT_260925"]))
DECIMALS = st.one_of(
    st.from_regex(r"\A-?[0-9]{1,9}(\.[0-9]{1,12})?\Z"),
    st.floats(min_value=1e-9, max_value=1e9).map(lambda f: f"{f:.8f}"),
    st.sampled_from(["28155.10", "0.001", "0.00000001", "123456789.123456789012345", "-0"]),
)
BAD_VALUES = st.one_of(
    st.sampled_from(["", "x", "1e5", " 1", "1 ", "1,2", '"', '",1', "1]", "[1]", "{}", "{},1",
                     "inf", "NaN", "1" + "0" * 400, "1e-400", "1.", ".5", "+1", "0x10", "١",
                     "1_000", "true", "null"]),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.none(), st.lists(st.integers(0, 9), max_size=2), st.just({}),
)


def mostly(good: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` values with an odd one now and then (so that many chunks stay on the fast path
    and the odd value decides alone)."""
    return st.integers(0, 15).flatmap(lambda r: odd if r == 0 else good)


NUMBER = mostly(DECIMALS, BAD_VALUES)
TIME = mostly(st.integers(1_500_000_000_000, 1_900_000_000_000),
              st.sampled_from([True, False, "1723161255030", None, 1.5, "x", 0, 1, 2**62]))
FLAG = mostly(st.booleans(), st.sampled_from(["true", "false", "no", 1, 0, None]))
ST = st.sampled_from([..., ..., 1, 1, 1, 2, 2, "1", "2", None, True, 2.0, "x"])  # ...: absent
X = st.sampled_from(["MARKET", "MARKET", "MARKET", "INSURANCE_FUND", "ADL", ..., None, 5])
SIZES = st.sampled_from([1, 2, 3, 7, 48, 512])


def with_st(payload: dict, draw: Any) -> dict:
    value = draw(ST)
    if value is not ...:
        payload["st"] = value
    return payload


@st.composite
def payloads(draw: Any) -> tuple[str, dict]:
    """(stream kind, payload) of one of the market payloads, sometimes with a field missing."""
    kind = draw(st.sampled_from(["bookTicker", "trade", "aggTrade", "markPrice@1s", "kline"]))
    s, when = draw(SYMBOLS), draw(TIME)
    if kind == "bookTicker":
        d = {"e": "bookTicker", "u": 1, "E": when, "T": draw(TIME), "s": s, "b": draw(NUMBER),
             "B": draw(NUMBER), "a": draw(NUMBER), "A": draw(NUMBER)}
    elif kind in ("trade", "aggTrade"):
        d = {"e": kind, "E": when, "T": draw(TIME), "s": s, "t": 7, "p": draw(NUMBER),
             "q": draw(NUMBER), "m": draw(FLAG)}
        if kind == "trade" and (x := draw(X)) is not ...:
            d["X"] = x
        if kind == "aggTrade":
            d |= {"a": 5, "f": 1, "l": 2, "nq": "1"}
    elif kind == "markPrice@1s":
        d = {"e": "markPriceUpdate", "E": when, "s": s, "p": draw(NUMBER), "P": "1",
             "i": draw(st.one_of(DECIMALS, st.just(""))), "r": draw(st.one_of(DECIMALS,
                                                                              st.just(""))),
             "T": draw(st.one_of(TIME, st.just(0)))}
    else:
        interval = draw(st.sampled_from(["1m", "1h", "1M", "7x"]))
        d = {"e": "kline", "E": when, "s": s, "k": {
            "t": 1_700_000_000_000, "T": 1_700_000_059_999, "s": s, "i": interval,
            "o": draw(NUMBER), "h": draw(DECIMALS), "l": draw(DECIMALS), "c": draw(DECIMALS),
            "v": draw(DECIMALS), "x": draw(FLAG)}}
    if draw(st.integers(0, 15)) == 0:
        del d[draw(st.sampled_from(sorted(k for k in d if k != "e")))]
    return kind, with_st(d, draw)


def depth(draw: Any, s: Any) -> dict:
    return with_st({"e": "depthUpdate", "E": draw(TIME), "T": 1, "s": s, "U": 1, "u": 2,
                    "pu": 0, "b": [[draw(DECIMALS), "1"]], "a": [["2", draw(DECIMALS)]]}, draw)


@st.composite
def lines(draw: Any) -> bytes:
    """One capture line: ``<ts> <json>`` or bare JSON, envelope or bare payload, or odd lines."""
    shape = draw(st.integers(0, 24))
    prefix = b"" if draw(st.integers(0, 5)) == 0 else (
        str(draw(st.integers(10**15, 10**19))).encode() + b" ")
    if shape <= 16:
        kind, d = draw(payloads())
        body: Any = d if draw(st.integers(0, 3)) == 0 else {
            "stream": f"ethusdt@{kind}", "data": d}
        if body is not d and draw(st.integers(0, 15)) == 0:  # not an envelope after all
            body["e"] = draw(st.sampled_from(["kline", "bookTicker", "x"]))
    elif shape <= 18:
        d = depth(draw, draw(SYMBOLS))
        body = d if draw(st.booleans()) else {"stream": "ethusdt@depth@100ms", "data": d}
    elif shape == 19:
        items = draw(st.lists(payloads().filter(lambda p: p[0] == "markPrice@1s").map(
            lambda p: p[1]), max_size=3))
        body = {"stream": "!markPrice@arr@1s", "data": items}
    elif shape == 20:
        body = draw(st.sampled_from([{"result": None, "id": 1}, {"lastUpdateId": 5, "E": 1,
                                    "T": 1, "bids": [["1", "2"]], "asks": [["3", "4"]]},
                                     {"stream": "x", "data": "text"}, [1, 2], "x", 3]))
    else:
        return draw(st.sampled_from([b"", b"   ", b"garbage", prefix + b'{"e":"trade","E":1',
                                     prefix + b'{"stream":"btcusdt@trade","data":{"e":"tr']))
    return prefix + orjson.dumps(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines(), max_size=40), SIZES)
def test_generated_lines_give_the_shared_parsers_events(capture: list[bytes], size: int) -> None:
    assert_same(capture, size)


def tick(kind: str = "aggTrade", **fields: Any) -> tuple[str, dict]:
    return kind, {"e": kind, "E": 1_723_161_255_030, "T": 1_723_161_255_029, "s": "BTCUSDT",
                  "p": "61800.30", "q": "0.002", "m": False, "X": "MARKET", **fields}


def book(**fields: Any) -> tuple[str, dict]:
    return "bookTicker", {"e": "bookTicker", "u": 1, "E": 1_723_161_255_030, "s": "BTCUSDT",
                          "b": "61800.20", "B": "3.3", "a": "61800.30", "A": "0.5", **fields}


# Hazards of the batched fast path, each once: a value that is valid JSON for the batch but not
# a decimal string, a bool where an int or str belongs, an st that equals 1 without being 1.
@example([tick(p='"', q='",1')], 1)
@example([book(b='"', B='",1')], 1)
@example([tick(p="{},1", q="1")], 1)
@example([tick(E=True)], 1)
@example([book(E=True)], 1)
@example([tick(T=False)], 1)
@example([tick(s=5), tick()], 2)
@example([book(s=True)], 1)
@example([tick(m=1)], 1)
@example([tick(st=True)], 1)
@example([tick(st=2.0)], 1)
@example([tick(st="2"), book(st=2), book(st=1)], 3)
@example([tick("trade", X=None), tick("trade", X="ADL"), tick("trade", st=2)], 3)
@example([tick(p="1" + "0" * 400)], 1)
@example([book(E=None, T=1_723_161_255_000), book(E=0)], 2)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads(), min_size=1, max_size=30), SIZES)
def test_payloads_on_the_fast_path_give_the_shared_parsers_events(
        items: list[tuple[str, dict]], size: int) -> None:
    """Combined-stream lines with a local timestamp only: the fast path's own shape."""
    capture = [b"1723161255030314667 " + orjson.dumps(
        {"stream": f"btcusdt@{kind}", "data": d}) for kind, d in items]
    assert_same(capture, size)


def test_an_envelope_with_its_own_event_type_is_not_unwrapped() -> None:
    """``unwrap`` (shared with the live streams) leaves a message that has an ``e`` as it is."""
    kind, d = book()
    line = b"1723161255030314667 " + orjson.dumps({"stream": "x", "data": d, "e": "x"})
    assert reference([line])[0] == [] and fast([line])[0] == []


@pytest.mark.realdata
def test_a_shared_capture_with_2026_st_fields_drops_its_coin_m_payloads() -> None:
    """The same capture as Binance sends it since the CM migration: ``st`` 1 on every payload,
    and every third payload relabelled COIN-M (``st`` 2), which the replay drops."""
    lines = gzip.decompress(shared_file("btcusdt_20240808.gz").read_bytes()).splitlines()[:20_000]
    relabelled, kept = [], []
    for i, line in enumerate(lines):
        st_value = b"2" if i % 3 == 0 else b"1"
        relabelled.append(line.replace(b'"data":{', b'"data":{"st":' + st_value + b",", 1))
        if st_value == b"1":
            kept.append(line)
    assert_same(relabelled)
    events, _, _, skipped = fast(relabelled)
    assert events == fast(kept)[0]
    assert skipped == fast(kept)[3] + len(lines) - len(kept)
